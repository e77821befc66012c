"""The API's clients of Postgres, Redis and the Prefect API, opened once per process in the app's
lifespan. Each call is bounded by a short timeout, so a dead dependency makes one answer say so
instead of hanging the server.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from searchflow.config import Settings
from searchflow.errors import ServiceUnavailable
from searchflow.services import mask_url, resolve_postgres, resolve_redis

CONNECT_TIMEOUT_SECONDS = 3
STATEMENT_TIMEOUT_MS = 5000
REDIS_TIMEOUT_SECONDS = 2.0
POOL_SIZE = 8


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Postgres:
    """A small thread-safe pool of read-only sessions; connects on first use, so the API starts
    (and ``/health`` answers 503) while Postgres is down."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: Any = None
        self._lock = threading.Lock()

    def _get_pool(self) -> Any:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    from psycopg2.pool import ThreadedConnectionPool

                    url, _ = resolve_postgres(self._settings)
                    self._pool = ThreadedConnectionPool(
                        1,
                        POOL_SIZE,
                        url,
                        connect_timeout=CONNECT_TIMEOUT_SECONDS,
                        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c TimeZone=UTC",
                        application_name="searchflow-api",
                    )
        return self._pool

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        """A cursor in a read-only transaction; ServiceUnavailable (one line) if Postgres fails."""
        import psycopg2

        try:
            pool = self._get_pool()
            con = pool.getconn()
        except (psycopg2.Error, ServiceUnavailable) as exc:
            raise ServiceUnavailable(f"PostgreSQL: {_first_line(exc)}") from None
        broken = False
        try:
            con.set_session(readonly=True, autocommit=False)
            with con.cursor() as cur:
                yield cur
            con.rollback()
        except psycopg2.Error as exc:
            broken = True
            raise ServiceUnavailable(f"PostgreSQL: {_first_line(exc)}") from None
        finally:
            pool.putconn(con, close=broken or bool(con.closed))

    def ping(self) -> None:
        with self.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.closeall()
            self._pool = None


class Redis:
    """One redis-py client (it pools its own connections) with short socket timeouts, and its
    asyncio twin for the routes that run on the event loop (no thread hop per request)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None
        self._async: Any = None
        self._lock = threading.Lock()

    def _url(self) -> str:
        try:
            url, _ = resolve_redis(self._settings)
        except ServiceUnavailable as exc:
            raise ServiceUnavailable(f"Redis: {exc}") from None
        return url

    def _unavailable(self, exc: BaseException) -> ServiceUnavailable:
        url = self._settings.redis_url or "redis"
        return ServiceUnavailable(f"Redis at {mask_url(url)}: {_first_line(exc)}")

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import redis

                    self._client = redis.Redis.from_url(
                        self._url(),
                        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                        socket_timeout=REDIS_TIMEOUT_SECONDS,
                        decode_responses=True,
                    )
        return self._client

    def _async_client(self) -> Any:
        """Made on first use inside the event loop that serves the app (one loop per process)."""
        if self._async is None:
            from redis import asyncio as aioredis

            self._async = aioredis.Redis.from_url(
                self._url(),
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                decode_responses=True,
            )
        return self._async

    async def acall(self, fn: Any) -> Any:
        """``await fn(async_client)``, a Redis failure turned into one-line ServiceUnavailable."""
        import redis

        try:
            return await fn(self._async_client())
        except (redis.RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    def call(self, fn: Any) -> Any:
        """``fn(client)``, a Redis failure turned into one-line ServiceUnavailable."""
        import redis

        try:
            return fn(self.client)
        except (redis.RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    def ping(self) -> None:
        self.call(lambda c: c.ping())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None


def timed(fn: Any) -> tuple[bool, float, str]:
    """Run a check; (ready, milliseconds, one-line reason when not ready)."""
    start = time.perf_counter()
    try:
        detail = fn() or ""
        ok = True
    except Exception as exc:  # a check reports any failure; it never raises into the route
        ok, detail = False, _first_line(exc)
    return ok, round((time.perf_counter() - start) * 1000, 3), str(detail)
