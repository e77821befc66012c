"""Who may connect where: the least-privilege sync role and the databases SearchFlow creates.

PostgreSQL grants ``CONNECT`` and ``TEMPORARY`` on every new database to ``PUBLIC``, so a role
made for the syncs alone could still connect to every other database of the server. A database
SearchFlow creates (:func:`create_database`) therefore starts without ``PUBLIC``'s grant: the
creating role and the roles named get ``CONNECT`` explicitly, nobody else. For databases SearchFlow
did not create, docs/reverse-etl.md says what an administrator does.
"""

from __future__ import annotations

from collections.abc import Iterable

# The privileges a sync role needs once the crm schema exists (docs/reverse-etl.md shows the same).
_SYNC_GRANTS: tuple[str, ...] = (
    "GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}",  # TEMPORARY: the staging tables
    "GRANT USAGE ON SCHEMA crm TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON crm.user_segments TO {role}",
    "GRANT SELECT, INSERT ON crm.email_queue, crm.sync_runs, crm.sync_rejects TO {role}",
    "GRANT UPDATE (finished_at, status, error, seconds) ON crm.sync_runs TO {role}",
    "GRANT USAGE ON SEQUENCE crm.sync_rejects_reject_id_seq TO {role}",
)


def _ident(cur, name: str) -> str:
    from psycopg2 import sql

    return sql.Identifier(name).as_string(cur)


def sync_role_grants(cur, database: str, role: str) -> list[str]:
    """The statements that give ``role`` what a sync needs in ``database``, and nothing more."""
    db, who = _ident(cur, database), _ident(cur, role)
    return [statement.format(db=db, role=who) for statement in _SYNC_GRANTS]


def grant_sync_role(cur, database: str, role: str) -> None:
    """Run :func:`sync_role_grants` (as the crm schema's owner, after the first sync)."""
    for statement in sync_role_grants(cur, database, role):
        cur.execute(statement)


def restrict_connect(cur, database: str, grantees: Iterable[str] = ()) -> None:
    """Take ``PUBLIC``'s ``CONNECT`` and ``TEMPORARY`` on ``database`` away; give ``CONNECT`` (and
    ``TEMPORARY``) explicitly to the current role and to ``grantees``."""
    db = _ident(cur, database)
    cur.execute(f"REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC")
    for role in ("CURRENT_USER", *(_ident(cur, g) for g in grantees)):
        cur.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}")


def create_database(cur, name: str, grantees: Iterable[str] = ()) -> None:
    """``CREATE DATABASE`` without ``PUBLIC``'s connect grant (``cur`` must be in autocommit).

    The creating role owns it; ``grantees`` (e.g. the sync role) may connect too, nobody else.
    """
    cur.execute(f"CREATE DATABASE {_ident(cur, name)}")
    restrict_connect(cur, name, grantees)


def public_connect_databases(cur) -> list[str]:
    """The databases any role may connect to through ``PUBLIC`` (what an administrator reviews)."""
    cur.execute(
        """
        SELECT datname FROM pg_database
        WHERE datallowconn AND has_database_privilege('public', oid, 'CONNECT')
        ORDER BY datname
        """
    )
    return [row[0] for row in cur.fetchall()]
