"""HTTP API: ``GET /users/{id}`` on loopback with 200k users, at a fixed 500 requests/s (open loop:
requests leave on schedule whether or not earlier ones answered, so a slow server shows as latency,
not as a politely slower client). Reports p50/p99 latency and the requests/s achieved. Goal: p99
under 20 ms at 500 requests/s.

The server is ``searchflow serve`` in its own process over a published snapshot of 200k users
(Parquet, as publication writes it) and one recommendation key per user in Redis, under a key
prefix of its own that is deleted afterwards. Bounded in count and time.

No seed-style counterpart: the seed documents describe the API without measuring it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from bench import Row

AREA = "api"
USERS = 200_000
RATE = 500  # requests per second
REQUESTS = 10_000
TIME_LIMIT_SECONDS = 120


def _publish(home: Path, users: int) -> None:
    import duckdb

    from searchflow import ledger, published

    con = duckdb.connect()
    con.execute("CREATE SCHEMA marketing")
    con.execute(
        f"""
        CREATE TABLE marketing.mart_user_segments AS
        SELECT printf('user_%07d', i) AS user_id,
               ['casual', 'engaged', 'converter', 'dormant'][1 + i % 4] AS segment,
               (i % 50)::BIGINT AS total_searches, (i % 9)::BIGINT AS total_clicks,
               (i % 3)::BIGINT AS total_conversions, (i % 7 * 113.5)::DECIMAL(14, 2) AS lifetime_value,
               TIMESTAMP '2025-01-01' + INTERVAL (i % 600) MINUTE AS first_seen_at,
               TIMESTAMP '2025-01-02' + INTERVAL (i % 600) MINUTE AS last_seen_at,
               TIMESTAMP '2025-01-08' AS as_of
        FROM range({users}) t(i)
        """
    )
    ledger.ensure_ledger(con)
    published.write_snapshot(con, home, "tbench", ["marketing.mart_user_segments"])
    published.export_ops(con, home)
    con.close()


def _fill_redis(url: str, prefix: str, users: int) -> None:
    import redis

    client = redis.Redis.from_url(url)
    value = b'{"destinations":["Paris","Rome","Lisbon"],"score":0.5,"generated_at":"2025-01-08"}'
    pipe = client.pipeline(transaction=False)
    for i in range(users):
        pipe.set(f"{prefix}user_{i:07d}", value, ex=3600)
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    client.close()


def _drop_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    batch = []
    for key in client.scan_iter(match=f"{prefix}*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)
    client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _load(base: str, users: int, requests: int) -> tuple[list[float], float, int]:
    """Open-loop GETs at RATE per second; (latencies in seconds, wall seconds, errors)."""
    import httpx

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def one(i: int) -> None:
            nonlocal errors
            user = f"user_{(i * 7919) % users:07d}"
            started = time.perf_counter()
            try:
                response = await client.get(f"/users/{user}")
                if response.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - started)

        tasks = []
        start = time.perf_counter()
        for i in range(requests):
            delay = start + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() - start > TIME_LIMIT_SECONDS:
                break
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return latencies, wall, errors


def run(scale: float) -> list[Row]:
    from searchflow.config import get_settings
    from searchflow.services import redis_url

    users = max(int(USERS * scale), 1000)
    requests = max(int(REQUESTS * scale), 500)
    url = redis_url(get_settings())
    prefix = f"bench-reco-{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory(prefix="searchflow-bench-api-") as tmp:
        home = Path(tmp)
        _publish(home, users)
        _fill_redis(url, prefix, users)
        port = _free_port()
        env = {
            **os.environ,
            "SEARCHFLOW_HOME": str(home),
            "SEARCHFLOW_REDIS_URL": url,
            "SEARCHFLOW_RECO_PREFIX": prefix,
        }
        env.pop("PREFECT_API_URL", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "searchflow.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    # warm: the first lookup builds the in-memory index of the version
                    urllib.request.urlopen(f"{base}/users/user_0000000", timeout=30).read()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("searchflow serve did not start") from None
                    time.sleep(0.3)
            latencies, wall, errors = asyncio.run(_load(base, users, requests))
        finally:
            server.terminate()
            server.wait(timeout=30)
            _drop_redis(url, prefix)
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(int(len(ordered) * 0.99), len(ordered) - 1)] * 1000
    achieved = len(ordered) / wall
    return [
        Row(
            AREA,
            f"GET /users/{{id}} at {RATE}/s, {users:,} users",
            len(ordered),
            wall,
            goal=f"p99 < 20 ms at {RATE}/s",
            note=f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {achieved:.0f} req/s, {errors} errors",
        )
    ]
