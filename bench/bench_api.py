"""HTTP API: ``GET /users/{id}`` on loopback with 200k users, at an offered 500 requests/s (open
loop: each request has its scheduled send time and its latency is counted from that time, so a
server that falls behind shows as latency, not as a politely slower client). Reports p50/p99
latency, the requests/s answered, and the server's CPU time per request. Goal: p99 under 20 ms at
500 requests/s.

The server is ``searchflow serve`` in its own process over a published snapshot of 200k users
(Parquet, as publication writes it) and one recommendation key per user in Redis, under a key
prefix of its own that is deleted afterwards.

Bounded in count and time, and never waits without a timeout: the server has a start-up deadline,
each connection and each request a timeout, the load a time limit after which nothing new is
sent and a grace after which unanswered requests count as errors; the server is killed if it does
not stop when asked. The client is a few lines of asyncio over keep-alive connections (HTTP/1.1,
``Content-Length`` bodies, which is what uvicorn sends): a general HTTP client costs more CPU per
request than the server under test, and on a shared machine that would be what is measured.

No seed-style counterpart: the seed documents describe the API without measuring it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import Row

AREA = "api"
USERS = 200_000
RATE = 500  # requests per second offered
REQUESTS = 10_000
WARMUP_REQUESTS = 300
TIME_LIMIT_SECONDS = 60.0  # no request is sent after this
GRACE_SECONDS = 15.0  # then what is still unanswered counts as an error
START_SECONDS = 180.0  # server start-up deadline (imports are slow on a loaded machine)
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0
CAPACITY_CONNECTIONS = 8
MAX_CONNECTIONS = 64  # as a proxy in front would: past this a request waits for a free one


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


def _redis(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)


def _fill_redis(url: str, prefix: str, users: int) -> None:
    client = _redis(url)
    value = b'{"destinations":["Paris","Rome","Lisbon"],"score":0.5,"generated_at":"2025-01-08"}'
    pipe = client.pipeline(transaction=False)
    for i in range(users):
        pipe.set(f"{prefix}user_{i:07d}", value, ex=3600)
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    client.close()


def _drop_redis(url: str, prefix: str) -> None:
    client = _redis(url)
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


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc); None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Load:
    """What one open-loop run measured."""

    latencies: list[float] = field(default_factory=list)  # seconds, from the scheduled send time
    sent: int = 0
    errors: int = 0  # non-200, broken connection, timeout, dropped, unanswered
    connections: int = 0
    wall: float = 0.0


async def _response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response with a Content-Length body; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _load(host: str, port: int, users: int, requests: int, rate: float) -> Load:
    """``requests`` GETs offered at ``rate`` per second over keep-alive connections."""
    loop = asyncio.get_running_loop()
    result = Load()
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    open_writers: set[asyncio.StreamWriter] = set()
    opened = 0  # connections opened or being opened, so the cap holds while connects are pending

    async def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        nonlocal opened
        if idle.empty() and opened < MAX_CONNECTIONS:
            opened += 1
            try:
                conn = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
            except BaseException:
                opened -= 1
                raise
            open_writers.add(conn[1])
            result.connections += 1
            return conn
        return await asyncio.wait_for(idle.get(), REQUEST_TIMEOUT)  # queued behind the others

    async def one(i: int, scheduled: float) -> None:
        nonlocal opened
        conn = None
        try:
            conn = await connection()
            reader, writer = conn
            user = f"user_{(i * 7919) % users:07d}"
            writer.write(
                f"GET /users/{user} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode()
            )
            status = await asyncio.wait_for(_response(reader), REQUEST_TIMEOUT)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
            if conn is not None:
                conn[1].close()
                open_writers.discard(conn[1])
                opened -= 1
            return
        result.latencies.append(loop.time() - scheduled)
        if status != 200:
            result.errors += 1
        idle.put_nowait(conn)

    tasks: list[asyncio.Task] = []
    start = loop.time()
    for i in range(requests):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if loop.time() - start > TIME_LIMIT_SECONDS:
            break
        tasks.append(asyncio.create_task(one(i, scheduled)))
    result.sent = len(tasks)
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=GRACE_SECONDS + REQUEST_TIMEOUT)
        for task in pending:
            task.cancel()
        result.errors += len(pending)
    result.wall = loop.time() - start
    for writer in open_writers:
        writer.close()
    return result


async def _capacity(host: str, port: int, users: int, requests: int) -> tuple[float, int]:
    """Closed loop: ``CAPACITY_CONNECTIONS`` clients each sending its next request when the last
    one answered, ``requests`` in all (bounded by the time limit); (answered per second, errors).
    What the server can answer on this machine now, beside which the offered rate is judged."""
    loop = asyncio.get_running_loop()
    answered = errors = 0
    start = loop.time()
    per_client = max(requests // CAPACITY_CONNECTIONS, 1)

    async def client(c: int) -> None:
        nonlocal answered, errors
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT
            )
        except (TimeoutError, OSError):
            errors += per_client
            return
        try:
            for i in range(per_client):
                if loop.time() - start > TIME_LIMIT_SECONDS:
                    return
                user = f"user_{(c * per_client + i) * 7919 % users:07d}"
                writer.write(f"GET /users/{user} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                if await asyncio.wait_for(_response(reader), REQUEST_TIMEOUT) == 200:
                    answered += 1
                else:
                    errors += 1
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(client(c) for c in range(CAPACITY_CONNECTIONS)))
    return answered / max(loop.time() - start, 1e-9), errors


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)] if ordered else float("nan")


def _wait_ready(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            # the lifespan loads the served version's index; this also warms the connections
            urllib.request.urlopen(f"{base}/users/user_0000000", timeout=10).read()
            return
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"searchflow serve exited with {server.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"searchflow serve did not answer within {START_SECONDS:.0f}s"
                ) from None
            time.sleep(0.5)


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=15)


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
        port = _free_port()
        env = {
            **os.environ,
            "SEARCHFLOW_HOME": str(home),
            "SEARCHFLOW_REDIS_URL": url,
            "SEARCHFLOW_RECO_PREFIX": prefix,
        }
        env.pop("PREFECT_API_URL", None)
        server = None
        try:
            _fill_redis(url, prefix, users)
            server = subprocess.Popen(
                [sys.executable, "-m", "searchflow.cli", "serve", "--port", str(port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _wait_ready(f"http://127.0.0.1:{port}", server)
            asyncio.run(_load("127.0.0.1", port, users, WARMUP_REQUESTS, RATE))
            cpu_before = _cpu_seconds(server.pid)
            client_before = time.process_time()
            load = asyncio.run(_load("127.0.0.1", port, users, requests, RATE))
            client_cpu = time.process_time() - client_before
            cpu_after = _cpu_seconds(server.pid)
            capacity, capacity_errors = asyncio.run(
                _capacity("127.0.0.1", port, users, requests // 2)
            )
        finally:
            if server is not None:
                _stop(server)
            _drop_redis(url, prefix)
    ordered = sorted(load.latencies)
    answered = len(ordered)
    server_cpu = (
        f"{(cpu_after - cpu_before) / load.sent * 1000:.2f} ms"
        if cpu_before is not None and cpu_after is not None and load.sent
        else "n/a"
    )
    load_avg = f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"
    return [
        Row(
            AREA,
            f"GET /users/{{id}} offered {RATE}/s, {users:,} users",
            answered,
            load.wall,
            goal=f"p99 < 20 ms at {RATE}/s",
            note=(
                f"p50 {_percentile(ordered, 0.5) * 1000:.1f} ms, "
                f"p99 {_percentile(ordered, 0.99) * 1000:.1f} ms, "
                f"{answered / load.wall if load.wall else 0:.0f} req/s answered of {load.sent:,} "
                f"sent, {load.errors} errors, server CPU {server_cpu}/req, client CPU "
                f"{client_cpu / max(load.sent, 1) * 1000:.2f} ms/req, "
                f"{load.connections} connections, load avg {load_avg}"
            ),
        ),
        Row(
            AREA,
            f"GET /users/{{id}} closed loop, {CAPACITY_CONNECTIONS} clients (capacity now)",
            0,
            0.0,
            goal=f">= {RATE}/s for the goal to be measurable",
            note=f"{capacity:.0f} req/s, {capacity_errors} errors, load avg {load_avg}",
        ),
    ]
