"""A PostgreSQL database of a test's own: created on entry, dropped (connections and all) on exit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg2


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` instead."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new database named ``prefix`` plus a random suffix, through ``admin_url``."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
