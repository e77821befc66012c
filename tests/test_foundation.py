"""Configuration, service resolution (configured, embedded) and the CLI's error contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import redis

from searchflow.config import Settings
from searchflow.errors import ServiceUnavailable, UsageError
from searchflow.services import mask_url, resolve_postgres, resolve_redis


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "searchflow.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )


def test_mask_url_hides_password() -> None:
    assert mask_url("postgresql://bob:s3cret@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_warehouse_defaults_under_home(tmp_path: Path) -> None:
    s = Settings(home=tmp_path / "h")
    assert s.warehouse_path == (tmp_path / "h" / "warehouse.duckdb").resolve()
    assert (
        Settings(home=tmp_path, warehouse=tmp_path / "w.duckdb").warehouse_path.name == "w.duckdb"
    )


def test_env_prefix_and_blank_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEARCHFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("SEARCHFLOW_REDIS_URL", "  ")
    s = Settings()
    assert s.home_path == tmp_path.resolve()
    assert s.redis_url is None


def test_unwritable_home_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="not writable"):
        Settings(home=blocker / "sub").ensure_home()


def test_configured_unreachable_postgres_names_masked_url(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, postgres_url="postgresql://u:topsecret@127.0.0.1:1/x")
    with pytest.raises(ServiceUnavailable) as err:
        resolve_postgres(s)
    assert "u:***@127.0.0.1:1" in str(err.value) and "topsecret" not in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_unreachable_redis_is_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "services",
        env={"SEARCHFLOW_HOME": str(tmp_path), "SEARCHFLOW_REDIS_URL": "redis://:pw@127.0.0.1:1/0"},
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "redis://:***@127.0.0.1:1/0" in lines[0]


def test_configured_urls_win(service_settings: Settings) -> None:
    assert resolve_postgres(service_settings) == (service_settings.postgres_url, "configured")
    assert resolve_redis(service_settings) == (service_settings.redis_url, "configured")


@pytest.mark.slow
def test_embedded_servers_start_and_are_used(tmp_path: Path) -> None:
    """With nothing configured and localhost ignored, real embedded servers start under HOME."""
    home = tmp_path / "home"
    env = {
        "SEARCHFLOW_HOME": str(home),
        "SEARCHFLOW_PROBE_LOCALHOST": "false",
    }
    code = (
        "import json, psycopg2, redis\n"
        "from searchflow.config import get_settings\n"
        "from searchflow.services import resolve_all\n"
        "u = resolve_all(get_settings())\n"
        "con = psycopg2.connect(u.postgres_url); cur = con.cursor()\n"
        "cur.execute('show data_directory'); pgdata = cur.fetchone()[0]\n"
        "cur.execute('create table t(x int); insert into t values (42); select x from t')\n"
        "r = redis.Redis.from_url(u.redis_url); r.set('k', 'v')\n"
        "print(json.dumps({'pg': u.postgres_origin, 'redis': u.redis_origin, 'pgdata': pgdata,\n"
        "  'x': cur.fetchone()[0], 'k': r.get('k').decode(), 'sock': u.redis_url}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["pg"] == "embedded" and out["redis"] == "embedded"
    assert Path(out["pgdata"]).resolve().is_relative_to(home.resolve())
    assert out["x"] == 42 and out["k"] == "v"
    assert (home / "embedded").is_dir()
    # The process that started the embedded Redis stopped it on exit: nothing answers any more.
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(out["sock"], socket_connect_timeout=2).ping()


def test_service_fixtures_are_real(service_settings: Settings) -> None:
    con = psycopg2.connect(service_settings.postgres_url)
    with con.cursor() as cur:
        cur.execute("select current_database()")
        assert cur.fetchone()[0].startswith("sf_test_")
    con.close()
    client = redis.Redis.from_url(service_settings.redis_url)
    assert client.dbsize() == 0
