"""Faults (servers down, least-privilege role) and the command line."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from click.testing import CliRunner

from searchflow.cli import cli
from searchflow.errors import SearchflowError, ServiceUnavailable
from searchflow.sync import run_sync
from searchflow.sync.access import grant_sync_role

from .marts import reco_row

pytestmark = pytest.mark.services


def _as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{role}@{host}{port}"))


@pytest.fixture
def roles(postgres_url):
    """Create login roles in the test server; drop them (and their grants) afterwards."""
    created: list[str] = []
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True

    def make(grants: bool) -> str:
        role = f"sf_sync_{uuid.uuid4().hex[:8]}"
        with admin.cursor() as cur:
            cur.execute(f"CREATE ROLE {role} LOGIN")
            created.append(role)
            if grants:
                grant_sync_role(cur, urlsplit(postgres_url).path.lstrip("/"), role)
        return role

    yield make
    with admin.cursor() as cur:
        for role in created:
            cur.execute(f"DROP OWNED BY {role}")
            cur.execute(f"DROP ROLE {role}")
    admin.close()


def test_sync_runs_as_a_least_privilege_role(service_settings, default_marts, postgres_url, roles):
    run_sync(service_settings, "user_segments")  # the owner creates the crm schema once
    role = roles(grants=True)
    settings = service_settings.model_copy(update={"postgres_url": _as_role(postgres_url, role)})
    for name in ("user_segments", "email_triggers", "recommendations"):
        report = run_sync(settings, name, full_resync=True)
        assert report["status"] == "succeeded"
    con = psycopg2.connect(settings.postgres_url)
    try:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            con.cursor().execute("CREATE TABLE crm.sneaky (x int)")
    finally:
        con.close()


def test_role_without_grants_gets_one_clear_line(
    service_settings, default_marts, postgres_url, roles
):
    run_sync(service_settings, "user_segments")
    settings = service_settings.model_copy(
        update={"postgres_url": _as_role(postgres_url, roles(grants=False))}
    )
    with pytest.raises(SearchflowError, match="no permission on the crm schema.*reverse-etl.md"):
        run_sync(settings, "user_segments", attempts=1)


def test_postgres_down_is_retried_then_one_line(service_settings, default_marts):
    settings = service_settings.model_copy(
        update={"postgres_url": "postgresql://nobody@127.0.0.1:1/none"}
    )
    with pytest.raises(ServiceUnavailable, match="PostgreSQL") as info:
        run_sync(settings, "user_segments", attempts=2)
    assert "\n" not in str(info.value)


def test_redis_down_writes_no_run_and_one_line(service_settings, default_marts, postgres_url):
    run_sync(service_settings, "user_segments")  # the crm tables exist
    settings = service_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with pytest.raises(ServiceUnavailable, match="Redis"):
        run_sync(settings, "recommendations", attempts=2)
    with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute("SELECT sync, status FROM crm.sync_runs ORDER BY started_at")
        assert cur.fetchall() == [("user_segments", "succeeded"), ("recommendations", "failed")]


def test_cli_sync_json_and_reconcile(service_env, default_marts):
    runner = CliRunner()
    first = runner.invoke(cli, ["sync", "all", "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["inserted"] == 92 and set(summary["syncs"]) == {
        "user_segments",
        "email_triggers",
        "recommendations",
    }
    second = runner.invoke(cli, ["sync", "all", "--json"])
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["written"] == 0
    assert all(s["seconds"] >= 0 for s in summary["syncs"].values())
    dry = runner.invoke(cli, ["sync", "user_segments", "--dry-run"])
    assert dry.exit_code == 0 and "dry run" in dry.output
    rec = runner.invoke(cli, ["reconcile", "all", "--json"])
    assert rec.exit_code == 0 and json.loads(rec.stdout.strip().splitlines()[-1])["in_sync"]


def test_cli_missing_mart_is_one_line(service_env):
    from searchflow.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["sync", "user_segments"])
    assert exit_info.value.code == 1


def test_recommendations_run_as_a_least_privilege_redis_user(
    service_settings, default_marts, build_marts
):
    """The ACL docs/reverse-etl.md gives a Redis user is enough for sync, dry run and reconcile."""
    import redis

    from searchflow.sync import run_reconcile

    parts = urlsplit(service_settings.redis_url)
    if parts.scheme != "redis":
        pytest.skip("the test Redis is not reached over TCP")
    admin = redis.Redis.from_url(service_settings.redis_url)
    user, password = f"sf_sync_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", "~reco:*", "~searchflow:owned*",
        "+mget", "+set", "+pexpireat", "+unlink", "+exists", "+dbsize", "+ping", "+select",
        "+lindex", "+lrange", "+rpush", "+rename", "+del",
    )  # fmt: skip
    try:
        netloc = f"{user}:{password}@{parts.hostname}:{parts.port or 6379}"
        settings = service_settings.model_copy(
            update={"redis_url": urlunsplit(parts._replace(netloc=netloc))}
        )
        admin.set("reco:theirs", "x")
        assert run_sync(settings, "recommendations", dry_run=True)["inserted"] == 40
        assert run_sync(settings, "recommendations")["inserted"] == 40
        assert run_sync(settings, "recommendations")["unchanged"] == 40
        assert run_reconcile(settings, "recommendations")["in_sync"]
        build_marts(recos=[reco_row(i) for i in range(30)])  # deletes go through the owned list
        assert run_sync(settings, "recommendations", dry_run=True)["deleted"] == 10
        assert run_sync(settings, "recommendations")["deleted"] == 10
        assert run_reconcile(settings, "recommendations")["in_sync"]
        assert admin.get("reco:theirs") == b"x"
    finally:
        admin.execute_command("ACL", "DELUSER", user)
        admin.close()
