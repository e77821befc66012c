"""Find the Prefect API to use, or start a local ``prefect server start`` and stop it afterwards.

Triggers are evaluated only by a real server (the in-process ephemeral API never fires a deployment
trigger), so the served chain always talks to one: the configured ``PREFECT_API_URL`` when set,
otherwise a server started here on a free port with its own ``PREFECT_HOME``. Readiness is polled on
``/api/health``; nothing sleeps blindly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from searchflow.errors import ServiceUnavailable

# A loaded 2-core machine took ~50 s to answer the first health check; leave room.
DEFAULT_START_TIMEOUT = 180.0


def prefect_executable() -> str:
    """The ``prefect`` script of this interpreter's environment (falls back to ``python -m prefect``)."""
    candidate = Path(sys.executable).with_name("prefect")
    return str(candidate) if candidate.exists() else ""


def prefect_command(*args: str) -> list[str]:
    exe = prefect_executable()
    return [exe, *args] if exe else [sys.executable, "-m", "prefect", *args]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def api_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True when ``<api_url>/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def ui_url(api_url: str) -> str:
    """The UI's address for an API URL (same host, without ``/api``)."""
    return api_url.rstrip("/").removesuffix("/api")


LEASE_STORAGE = "prefect.server.concurrency.lease_storage.filesystem"
# The local server's database, chosen by the user; it wins over the demo's choice. A PostgreSQL URL
# (``postgresql+asyncpg://...``) takes concurrent writes (events, logs, trigger buckets, run
# states) without SQLite's single write lock, which a busy chain waits on; ``sqlite`` keeps
# Prefect's SQLite file under PREFECT_HOME.
DATABASE_ENV = "SEARCHFLOW_PREFECT_DATABASE_URL"
SQLITE = "sqlite"
# Prefect's own names for the server's database URL, in the order Prefect reads them.
PREFECT_DATABASE_SETTINGS = (
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
)


def configured_database(env: dict[str, str] | None = None) -> str | None:
    """The database the user chose for a local server: ``SEARCHFLOW_PREFECT_DATABASE_URL``, else
    Prefect's own setting; None when nobody chose (the caller may then pick one)."""
    env = dict(os.environ if env is None else env)
    for name in (DATABASE_ENV, *PREFECT_DATABASE_SETTINGS):
        if env.get(name):
            return env[name]
    return None


def describe_database(env: dict[str, str]) -> str:
    """Which database a server started with ``env`` uses, for messages (password masked)."""
    from searchflow.services import mask_url

    for name in PREFECT_DATABASE_SETTINGS:
        if env.get(name):
            url = env[name]
            return f"SQLite {url}" if url.startswith("sqlite") else f"PostgreSQL {mask_url(url)}"
    return f"SQLite {Path(env.get('PREFECT_HOME', '~/.prefect')) / 'prefect.db'}"


def process_database(pid: int) -> str | None:
    """Which database the running server ``pid`` uses, read from its environment (Linux's
    ``/proc``); None when that cannot be read. For servers recorded before the record said."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env = dict(
        item.partition("=")[::2] for item in raw.decode(errors="replace").split("\0") if item
    )
    return describe_database(env) if "PREFECT_HOME" in env else None


def server_env(
    home: Path, base: dict[str, str] | None = None, database_url: str | None = None
) -> dict[str, str]:
    """Environment for a local server: its own PREFECT_HOME, no analytics, no inherited API URL.

    The database is the user's choice (:func:`configured_database`) when there is one, else
    ``database_url`` (the demo's PostgreSQL), else Prefect's SQLite file under ``home``.
    """
    env = dict(os.environ if base is None else base)
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_API_KEY", None)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_LEVEL": env.get("PREFECT_LOGGING_LEVEL", "WARNING"),
            # Concurrency leases in files under PREFECT_HOME, not in the server's memory: after a
            # restart the warehouse slot's holder can still renew and release its lease, and an
            # abandoned lease still expires (in memory it vanished while its slot stayed taken).
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": LEASE_STORAGE,
        }
    )
    chosen = configured_database(env) or database_url
    for name in PREFECT_DATABASE_SETTINGS:
        env.pop(name, None)
    if chosen and chosen != SQLITE:
        env[PREFECT_DATABASE_SETTINGS[0]] = chosen
    return env


@dataclass
class PrefectServer:
    """A Prefect API; ``process`` is set only when this code started the server (and must stop it)."""

    api_url: str
    process: subprocess.Popen | None = None
    home: Path | None = None
    log_path: Path | None = None
    # which database the server uses, when known (a server started here, or recorded by a demo)
    database: str | None = None
    started_here: bool = field(init=False)

    def __post_init__(self) -> None:
        self.started_here = self.process is not None

    @property
    def ui_url(self) -> str:
        return ui_url(self.api_url)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server this code started (its whole process group); a no-op otherwise."""
        if self.process is not None:
            stop_process_group(self.process, timeout)
            self.process = None

    def __enter__(self) -> PrefectServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_process_group(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the group a child leads (it was started with its own session), then SIGKILL if needed."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        process.wait(timeout=10)


def wait_healthy(
    api_url: str,
    timeout: float,
    process: subprocess.Popen | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll the health endpoint until it answers; fail early if the server process died."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while time.monotonic() < deadline:
        if api_healthy(api_url):
            return
        if process is not None and process.poll() is not None:
            raise ServiceUnavailable(
                f"the Prefect server exited with code {process.returncode} before answering; "
                f"see {log_path}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    raise ServiceUnavailable(
        f"the Prefect server at {api_url} did not answer within {timeout:.0f} s"
        + (f"; see {log_path}" if log_path else "; check that it is running")
    )


def start_server(
    home: Path,
    port: int | None = None,
    host: str = "127.0.0.1",
    ui: bool = True,
    timeout: float = DEFAULT_START_TIMEOUT,
    database_url: str | None = None,
) -> PrefectServer:
    """Start ``prefect server start`` on a free port under ``home`` and wait until it is healthy
    (on ``database_url`` unless the user chose a database: :func:`server_env`)."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    env = server_env(home, database_url=database_url)
    env["PREFECT_UI_ENABLED"] = "true" if ui else "false"
    log_path = home / "server.log"
    api_url = f"http://{host}:{port}/api"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            prefect_command("server", "start", "--host", host, "--port", str(port)),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = PrefectServer(
        api_url=api_url,
        process=process,
        home=home,
        log_path=log_path,
        database=describe_database(env),
    )
    try:
        wait_healthy(api_url, timeout, process, log_path)
    except BaseException:
        server.stop()
        raise
    return server


def configured_api_url() -> str | None:
    """``PREFECT_API_URL`` from the environment or the active Prefect profile, if any."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import get_current_settings

    value = get_current_settings().api.url
    return str(value) if value else None


def find_or_start_server(
    home: Path,
    ui: bool = True,
    timeout: float = DEFAULT_START_TIMEOUT,
) -> PrefectServer:
    """The configured API when there is one (it must answer), else a local server under ``home``."""
    api_url = configured_api_url()
    if api_url:
        if not api_healthy(api_url, timeout=10):
            raise ServiceUnavailable(
                f"PREFECT_API_URL={api_url} does not answer; start that server "
                "(prefect server start) or unset PREFECT_API_URL to let searchflow start one"
            )
        return PrefectServer(api_url=api_url)
    return start_server(home, ui=ui, timeout=timeout)
