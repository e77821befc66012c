"""Postgres connections and transactions for the syncs.

A sync takes its connections from a callable (``PgConnect``): the resolved URL's by default, a
Prefect SqlAlchemyConnector block's pool in served runs. Every run, real or dry, and every
reconcile works inside one transaction on a fresh connection: the run commits, a dry run, a
reconcile or a failure rolls back, so the destination is never half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

from searchflow.config import Settings

PgConnect = Callable[[], Any]  # returns a DB-API (psycopg2) connection
WarehouseGuard = Callable[[], AbstractContextManager[Any]]  # held while the mart is read


def default_pg_connect(settings: Settings) -> PgConnect:
    """Connections from the resolved URL (local runs, tests); served runs pass a block's instead."""

    def connect():
        import psycopg2

        from searchflow.services import postgres_url

        return psycopg2.connect(postgres_url(settings), connect_timeout=10)

    return connect


@contextmanager
def transaction(pg_connect: PgConnect, name: str) -> Iterator[tuple[Any, Any]]:
    """One transaction on a fresh connection, serialised per sync, in UTC; the caller commits."""
    con = pg_connect()
    try:
        con.autocommit = False
        cur = con.cursor()
        cur.execute("SET LOCAL TimeZone = 'UTC'")
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"searchflow.sync.{name}",))
        yield con, cur
    except BaseException:
        with suppress(Exception):  # the connection may be gone; the server rolls back on its own
            con.rollback()
        raise
    finally:
        with suppress(Exception):
            con.close()
