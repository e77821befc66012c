"""The least-privilege sync role connects only where it is granted, on the real server."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from searchflow.sync import run_sync
from searchflow.sync.access import (
    create_database,
    grant_sync_role,
    public_connect_databases,
    restrict_connect,
)
from searchflow.sync.postgres_ddl import ensure_crm_schema

pytestmark = pytest.mark.services


def _url(base: str, database: str, role: str | None = None) -> str:
    parts = urlsplit(base)
    netloc = parts.netloc
    if role:
        netloc = f"{role}@{parts.hostname or '127.0.0.1'}" + (
            f":{parts.port}" if parts.port else ""
        )
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


def _can_connect(url: str) -> bool:
    try:
        psycopg2.connect(url, connect_timeout=5).close()
    except psycopg2.OperationalError as exc:
        assert "permission denied for database" in str(exc), exc
        return False
    return True


@pytest.fixture
def server(postgres_admin_url: str):
    """Three databases and a login role on the test server, all dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = {k: f"sf_access_{tag}_{k}" for k in ("served", "sibling", "foreign")}
    role = f"sf_sync_{tag}"
    admin = psycopg2.connect(postgres_admin_url)
    admin.autocommit = True
    cur = admin.cursor()
    cur.execute(f"CREATE ROLE {role} LOGIN")
    create_database(cur, names["served"])  # SearchFlow's: its destination database
    create_database(cur, names["sibling"])  # SearchFlow's too, not granted to the role
    cur.execute(f'CREATE DATABASE "{names["foreign"]}"')  # someone else's: PUBLIC may connect
    try:
        yield postgres_admin_url, names, role
    finally:
        for name in names.values():
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()


def test_the_sync_role_connects_only_to_its_database(server, service_settings, default_marts):
    admin_url, names, role = server
    served = _url(admin_url, names["served"])
    with psycopg2.connect(served) as con, con.cursor() as cur:  # the owner's first sync: the schema
        ensure_crm_schema(cur)
        grant_sync_role(cur, names["served"], role)
    con.close()

    assert _can_connect(_url(admin_url, names["served"], role))
    assert not _can_connect(_url(admin_url, names["sibling"], role))
    settings = service_settings.model_copy(
        update={"postgres_url": _url(admin_url, names["served"], role)}
    )
    assert run_sync(settings, "user_segments", attempts=1)["status"] == "succeeded"

    # A database SearchFlow did not create keeps PostgreSQL's default: PUBLIC may connect.
    foreign = _url(admin_url, names["foreign"], role)
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    cur = admin.cursor()
    try:
        listed = public_connect_databases(cur)
        assert names["foreign"] in listed
        assert names["served"] not in listed and names["sibling"] not in listed
        assert _can_connect(foreign)
        # What docs/reverse-etl.md tells an administrator to do for such a database.
        restrict_connect(cur, names["foreign"])
        assert not _can_connect(foreign)
        assert names["foreign"] not in public_connect_databases(cur)
        assert _can_connect(_url(admin_url, names["foreign"]))  # its owner still can
    finally:
        admin.close()
