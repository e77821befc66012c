"""Issue 13's check, as a user runs it: `searchflow run`, then `searchflow serve` on a free port,
then the answers of /health, /stats, /users, /metrics and POST /runs over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import psycopg2
import pytest
import redis

from searchflow import warehouse

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(900)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served(service_settings, service_env) -> Iterator[str]:
    """`searchflow run` once, then `searchflow serve` on a free port (stopped afterwards)."""
    env = {**os.environ, **service_env}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "searchflow.cli", "run", "--events", "3000", "--seed", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "searchflow.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                _get(f"{base}/openapi.json")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_after_searchflow_run_the_api_answers(served: str, service_settings) -> None:
    status, body = _get(f"{served}/health")
    assert status == 200, body

    with warehouse.session(service_settings, read_only=True) as con:
        raw_rows = sum(
            con.execute(f"SELECT count(*) FROM raw.{t}_events").fetchone()[0]
            for t in ("search", "click", "conversion")
        )
    stats = json.loads(_get(f"{served}/stats")[1])
    assert stats["events"]["landed"] == raw_rows > 0

    pg = psycopg2.connect(service_settings.postgres_url)
    with pg.cursor() as cur:
        cur.execute("SELECT user_id, segment FROM crm.user_segments ORDER BY user_id")
        segments = dict(cur.fetchall())
    pg.close()
    client = redis.Redis.from_url(service_settings.redis_url, decode_responses=True)
    user_id = next(u for u in segments if client.exists(f"reco:{u}"))
    stored = json.loads(client.get(f"reco:{user_id}"))
    client.close()
    status, body = _get(f"{served}/users/{user_id}")
    assert status == 200, body
    user = json.loads(body)
    assert user["segment"] == segments[user_id]
    assert user["recommendations"]["destinations"] == stored["destinations"]

    assert _get(f"{served}/users/nobody-at-all")[0] == 404
    status, metrics = _get(f"{served}/metrics")
    assert status == 200 and "searchflow_events_landed_total" in metrics
    assert _get(f"{served}/runs", "POST", b'{"events": 10, "seed": 1}')[0] == 401
