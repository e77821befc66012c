"""The served chain end to end (``searchflow demo``): server, pool, limit, deployments, worker, one
generated batch followed to the last sync, and where to look afterwards.

Postgres and Redis are resolved once, here, and the resolved URLs are handed to the worker, so every
flow run talks to the very same servers. An auto-detected Postgres (localhost or embedded) is used
through a database of the demo's own, ``searchflow``, created when missing; a configured
``SEARCHFLOW_POSTGRES_URL`` is used as it is.

Each demo generates a new batch: a new seed per run, over the window of days ending yesterday (UTC),
recorded in ``$SEARCHFLOW_HOME/demo.json``; the same arguments still give the same bytes. The
first demo of a data folder splits its window into several consecutive batches (one seed each),
each followed through the whole chain before the next starts: the marts are then rebuilt once
per batch, so the segment snapshot records users moving between segments from the first demo on.

By default the server, the worker and the dashboards stay up after the demo
(:mod:`deployments.background` records them; ``searchflow stop`` ends them) and the next demo reuses
them; ``once`` stops what this run started, as the tests want.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from deployments import DEFAULT_POOL, PROJECT_DIR
from deployments.follow import Chain, StageRun
from searchflow.config import Settings
from searchflow.errors import SearchflowError, UsageError

GENERATE = "generate-events/generate-events"
# The demo's data: enough days for the dashboards' trends and every user segment (dormant users need
# a history longer than the casual recency), few enough events that the chain stays quick.
DEMO_EVENTS = 10_000
DEMO_USERS = 1_000
DEMO_DAYS = 90
# A booking follows its click by up to three days (generator/simulate.py), so the searches stop
# this many days before today: the batch's last booking then falls on yesterday at the latest.
SPILL_DAYS = 4
# Consecutive batches of the first demo of a data folder: each is its own generate -> sync chain,
# so the segment snapshot records a build per batch.
FIRST_DEMO_BATCHES = 3
DEMO_DATABASE = "searchflow"
DASHBOARD_PORT = 8501
DASHBOARD_START_SECONDS = 90.0


def demo_record_path(home: Path) -> Path:
    """Where the arguments of every demo run are kept (the next run picks the next seed)."""
    return home / "demo.json"


def demo_window(today: date | None = None, days: int = DEMO_DAYS) -> tuple[date, int]:
    """(first day, days) of the searches: the events they lead to end yesterday (UTC) at the
    latest, so no event is ever in the future (the ingestion gate refuses those)."""
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=days + SPILL_DAYS), days


def _recorded_runs(home: Path) -> list[dict[str, Any]]:
    try:
        runs = json.loads(demo_record_path(home).read_text()).get("runs", [])
    except (OSError, ValueError, AttributeError):
        runs = []
    return runs if isinstance(runs, list) else []


def default_batches(home: Path) -> int:
    """How many batches a demo without ``--batches`` runs: several on a data folder no demo has
    recorded a run in (its history then shows segment transitions at once), else one new batch."""
    return FIRST_DEMO_BATCHES if not _recorded_runs(home) else 1


def plan_windows(start: date, days: int, events: int, batches: int) -> list[tuple[date, int, int]]:
    """(first day, days, events) of ``batches`` consecutive windows covering ``days`` days from
    ``start``; days and events are split as evenly as whole numbers allow, summing exactly."""
    if not 1 <= batches <= min(days, events):
        raise UsageError(
            f"--batches must be between 1 and {min(days, events)} (the days and events to split), "
            f"got {batches}"
        )
    windows = []
    for i in range(batches):
        first, last = days * i // batches, days * (i + 1) // batches
        count = events * (i + 1) // batches - events * i // batches
        windows.append((start + timedelta(days=first), last - first, count))
    return windows


def choose_batches(
    home: Path,
    events: int = DEMO_EVENTS,
    users: int = DEMO_USERS,
    seed: int | None = None,
    today: date | None = None,
    batches: int = 1,
) -> list[dict[str, Any]]:
    """The ``generate-events`` arguments of each batch of this demo run, recorded in ``demo.json``.

    The batches split the demo window (see :func:`demo_window`) into consecutive windows, in order,
    and share the ``events`` between them. Each takes its own seed, counting up from ``seed``:
    without it, from the one after the last recorded, so every demo publishes new batches (the
    generator names a batch by its arguments, and its event ids by its seed: a repeated seed would
    be nothing new).
    """
    path = demo_record_path(home)
    runs = _recorded_runs(home)
    if seed is None:
        seed = max((int(r.get("seed", 0)) for r in runs), default=0) + 1
    start, days = demo_window(today)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    chosen = [
        {"events": n, "users": users, "seed": seed + i, "start": first.isoformat(), "days": length}
        for i, (first, length, n) in enumerate(plan_windows(start, days, events, batches))
    ]
    runs.extend({**c, "batch": f"{i + 1}/{len(chosen)}", "at": at} for i, c in enumerate(chosen))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    record = {"last": chosen[-1], "last_demo": chosen, "runs": runs[-100:]}
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    return chosen


def choose_generation(
    home: Path,
    events: int = DEMO_EVENTS,
    users: int = DEMO_USERS,
    seed: int | None = None,
    today: date | None = None,
) -> dict[str, Any]:
    """The arguments of a one-batch demo run over the whole window (:func:`choose_batches`)."""
    return choose_batches(home, events, users, seed, today, batches=1)[0]


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` instead of the one it names."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def create_database_hint(url: str, database: str) -> str:
    """What an administrator runs so the demo's role gets its database."""
    parts = urlsplit(url)
    role = parts.username or os.environ.get("USER", "")
    host = f"-h {parts.hostname} -p {parts.port or 5432} " if parts.hostname else ""
    return (
        f'psql {host}-d postgres -c "CREATE DATABASE {database} OWNER {role}" '
        "(as a role that may create databases)"
    )


def demo_database(url: str, database: str = DEMO_DATABASE) -> tuple[str, bool]:
    """(URL of ``database`` on the server of ``url``, whether it was created now).

    The auto-detected Postgres is the OS user's own server: the demo keeps its tables out of the
    ``postgres`` maintenance database. When the role may not create databases, the message says
    exactly what to run.
    """
    import psycopg2
    from psycopg2 import errors

    from searchflow.sync.access import create_database

    con = psycopg2.connect(url, connect_timeout=10)
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone():
                return with_database(url, database), False
            try:
                create_database(cur, database)
            except errors.DuplicateDatabase:  # another demo created it meanwhile
                return with_database(url, database), False
            except errors.InsufficientPrivilege:
                raise UsageError(
                    f"the role may not create the demo's database {database}; run "
                    f"{create_database_hint(url, database)}, or set SEARCHFLOW_POSTGRES_URL "
                    "to a database the demo may use"
                ) from None
    finally:
        con.close()
    return with_database(url, database), True


def resolve_demo_services(settings: Settings) -> tuple[Settings, dict[str, Any]]:
    """Settings with both servers pinned (the demo's own database on an auto-detected Postgres),
    and what to say about them."""
    from searchflow.services import mask_url, resolve_all

    urls = resolve_all(settings)
    postgres_url, created = urls.postgres_url, False
    if urls.postgres_origin != "configured":
        postgres_url, created = demo_database(urls.postgres_url)
    pinned = settings.model_copy(update={"postgres_url": postgres_url, "redis_url": urls.redis_url})
    note = {
        "postgres": mask_url(postgres_url),
        "postgres_origin": urls.postgres_origin,
        "database_created": created,
        "redis": mask_url(urls.redis_url),
        "redis_origin": urls.redis_origin,
    }
    return pinned, note


# The demo's Prefect server keeps its tables in a database of its own beside the demo's CRM
# database on the same PostgreSQL: ``<that database>_prefect``.
PREFECT_DATABASE_SUFFIX = "_prefect"
# Prefect's PostgreSQL schema indexes names with trigram indexes (its migrations create it).
PREFECT_EXTENSION = "pg_trgm"


def prefect_database(postgres_url: str, origin: str) -> tuple[str | None, str]:
    """(asyncpg URL of the demo's Prefect database, or None for SQLite; why, for the report).

    PostgreSQL takes the chain's concurrent writes (events, trigger buckets, run states, logs)
    without SQLite's one write lock, which is most of a hop on SQLite. It is used only where it
    outlives the demo: the embedded PostgreSQL stops with the demo process, while the server stays
    up for later demos. A role that may not create the database, or a server without Prefect's
    trigram extension, leaves the demo on SQLite and says why.
    """
    import psycopg2

    from deployments.server import DATABASE_ENV
    from searchflow.services import asyncpg_url, mask_url

    if origin == "embedded":
        return None, "the embedded PostgreSQL stops when the demo does; the server outlives it"
    base = urlsplit(postgres_url).path.lstrip("/") or "searchflow"
    name = f"{base}{PREFECT_DATABASE_SUFFIX}"
    try:
        url, _created = demo_database(postgres_url, name)
        con = psycopg2.connect(url, connect_timeout=10)
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f"CREATE EXTENSION IF NOT EXISTS {PREFECT_EXTENSION}")
        finally:
            con.close()
    except UsageError:
        return None, (
            f"the role may not create the database {name}: "
            f"{create_database_hint(postgres_url, name)}, or set {DATABASE_ENV}"
        )
    except psycopg2.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return None, f"{mask_url(with_database(postgres_url, name))}: {reason}"
    return asyncpg_url(url), f"database {name} on the demo's PostgreSQL"


@dataclass
class DemoResult:
    """What the demo did and where its output is."""

    api_url: str
    ui_url: str
    server_started: bool
    pool: str
    chain: Chain
    where: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)
    left_running: dict[str, Any] = field(default_factory=dict)
    # every batch this run followed, in order: its generation arguments, outcome and seconds
    batches: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.chain.ok,
            "api_url": self.api_url,
            "ui_url": self.ui_url,
            "server_started": self.server_started,
            "pool": self.pool,
            **self.chain.to_dict(),
            "where": self.where,
            "generation": self.generation,
            "batches": self.batches,
            "services": self.services,
            "left_running": self.left_running,
        }


@dataclass
class Running:
    """Processes the demo started; ``stop()`` ends them (worker first)."""

    server: Any = None
    worker: Any = None

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.server is not None:
            self.server.stop()
            self.server = None


def generation_parameters(
    schema: dict[str, Any], events: int, seed: int, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The demo's knobs (plus any ``extra`` ones), named as the ``generate-events`` flow names them."""
    accepted = set((schema or {}).get("properties", {}))
    wanted = {"events": events, "seed": seed, **(extra or {})}
    unknown = [k for k in wanted if accepted and k not in accepted]
    if unknown:
        raise UsageError(
            f"the generate-events deployment takes no {', '.join(unknown)} parameter; "
            "run `searchflow deploy` again from this checkout"
        )
    return wanted


def start_chain(api_url: str, events: int, seed: int, extra: dict[str, Any] | None = None) -> str:
    """Create the ``generate-events`` run (the worker picks it up); returns its id."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from deployments.prepare import api

    async def schema() -> dict[str, Any]:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(GENERATE)
            return deployment.parameter_openapi_schema or {}

    with api(api_url):
        parameters = generation_parameters(asyncio.run(schema()), events, seed, extra)
        flow_run = run_deployment(GENERATE, parameters=parameters, timeout=0)
    return str(flow_run.id)


def where_to_look(settings: Settings, ui_url: str, chain: Chain) -> dict[str, Any]:
    """Prefect UI links, the Data Docs, and what the syncs left in Postgres and Redis."""
    from searchflow.services import mask_url, postgres_connect, redis_client

    where: dict[str, Any] = {"prefect_ui": ui_url}
    root = chain.runs[0]
    if root.run_id:
        where["chain_root_run"] = f"{ui_url}/runs/flow-run/{root.run_id}"
    docs = settings.home_path / "quality" / "data_docs" / "index.html"
    with contextlib.suppress(Exception):  # the report is a pointer, never a reason to fail the demo
        from searchflow.quality.context import data_docs_dir

        docs = data_docs_dir(settings) / "index.html"
    where["data_docs"] = str(docs) if docs.exists() else f"{docs} (not written)"
    where["warehouse"] = str(settings.warehouse_path)
    tables: dict[str, Any] = {}
    try:
        con = postgres_connect(settings)
        try:
            with con.cursor() as cur:
                for table in ("crm.user_segments", "crm.email_queue", "crm.sync_runs"):
                    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
                    if cur.fetchone()[0]:
                        cur.execute(f"SELECT count(*) FROM {table}")
                        tables[table] = cur.fetchone()[0]
                    else:
                        tables[table] = "missing"
        finally:
            con.close()
    except Exception as exc:  # report, don't fail: the chain's outcome is already decided
        tables["error"] = str(exc).splitlines()[0]
    where["postgres"] = {"url": mask_url(settings.postgres_url or ""), "tables": tables}
    try:
        client = redis_client(settings)
        pattern = f"{settings.reco_prefix}*"
        count = sum(1 for _ in client.scan_iter(match=pattern, count=10_000))
        client.close()
        where["redis"] = {"url": mask_url(settings.redis_url or ""), "keys": {pattern: count}}
    except Exception as exc:
        where["redis"] = {
            "url": mask_url(settings.redis_url or ""),
            "error": str(exc).splitlines()[0],
        }
    return where


def pin_postgres_block(api_url: str, settings: Settings) -> None:
    """Point the syncs' ``searchflow-postgres`` block at the Postgres this demo resolved.

    The sync flows read their Postgres credentials from that block and create it on first use; on a
    server that outlived an earlier demo it may name another database (an embedded server moves
    ports), and three syncs starting together on a fresh server race to create it. Writing it once
    here, before any run, settles both.
    """
    from prefect_sqlalchemy import SqlAlchemyConnector

    from deployments.prepare import api
    from flows.sync import POSTGRES_BLOCK, sqlalchemy_url

    with api(api_url):
        SqlAlchemyConnector(connection_info=sqlalchemy_url(settings.postgres_url or "")).save(
            POSTGRES_BLOCK, overwrite=True
        )


def start_demo_server(
    home: Path, database: Callable[[], str | None], progress: Callable[[str], None]
) -> Any:
    """A new local server under ``home`` on the database ``database()`` chooses (None: SQLite).

    Should it not come up on the demo's PostgreSQL, it is started on SQLite instead, and the
    report says why; a database the user chose is never swapped for another.
    """
    from deployments.server import SQLITE, start_server

    url = database()
    try:
        return start_server(home, database_url=url)
    except SearchflowError as exc:
        if url is None:
            raise
        progress(f"the Prefect server did not start on PostgreSQL ({exc}); starting it on SQLite")
        return start_server(home, database_url=SQLITE)


def background_server(
    home: Path,
    progress: Callable[[str], None],
    database: Callable[[], str | None] = lambda: None,
) -> Any:
    """The Prefect server to use, left running: the configured API (never recorded, not ours to
    stop), else the one an earlier demo left that still answers (whatever its database: a running
    server is never restarted behind the user's back, the report says which database it uses),
    else a new one on ``database()``, recorded."""
    from deployments import background
    from deployments.server import (
        PrefectServer,
        api_healthy,
        configured_api_url,
        find_or_start_server,
        process_database,
    )

    if configured_api_url():
        return find_or_start_server(home / "prefect")
    kept = background.reusable(home, "server", lambda e: api_healthy(e.get("api_url", "")))
    if kept:
        used = kept.get("database") or process_database(int(kept["pid"])) or "unknown"
        progress(f"reusing the Prefect server left running (pid {kept['pid']}, database {used})")
        if used.startswith("SQLite"):
            progress(
                "  it runs on SQLite, where trigger hops wait on the write lock; `searchflow stop` "
                "and run the demo again to start it on the demo's PostgreSQL"
            )
        return PrefectServer(api_url=kept["api_url"], database=used)
    stale = background.load(home).get("server")
    if stale:  # recorded but dead or deaf: end what is left of it before starting another
        background.stop_group(int(stale.get("pid", 0)))
        background.forget(home, "server")
    server = start_demo_server(home / "prefect", database, progress)
    background.record(
        home,
        "server",
        server.process.pid,
        api_url=server.api_url,
        url=server.ui_url,
        log=str(server.log_path),
        database=server.database,
    )
    server.process = None  # left running: ``searchflow stop`` ends it by its recorded pid
    return server


def _env_digest(env: dict[str, str]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:16]


def background_worker(
    home: Path,
    api_url: str,
    settings_env: dict[str, str],
    pool: str,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """A worker on ``pool`` left running; an earlier demo's worker is reused when it is alive and
    was started for the same server, pool and settings (flow runs inherit its environment)."""
    from deployments import background
    from deployments.worker import start_worker

    digest = _env_digest(settings_env)

    def same(entry: dict[str, Any]) -> bool:
        return (entry.get("api_url"), entry.get("pool"), entry.get("settings")) == (
            api_url,
            pool,
            digest,
        )

    kept = background.reusable(home, "worker", same)
    if kept:
        progress(f"reusing the worker left running (pid {kept['pid']})")
        return kept
    stale = background.load(home).get("worker")
    if stale:
        progress(f"stopping the earlier worker (pid {stale.get('pid')}): other server or settings")
        background.stop_group(int(stale.get("pid", 0)))
        background.forget(home, "worker")
    progress("starting a worker")
    worker = start_worker(api_url, settings_env, home / "prefect" / "logs", pool)
    background.record(
        home,
        "worker",
        worker.process.pid,
        api_url=api_url,
        pool=pool,
        settings=digest,
        name=worker.name,
        log=str(worker.log_path),
    )
    return background.load(home)["worker"]


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def background_dashboard(
    home: Path, settings_env: dict[str, str], progress: Callable[[str], None]
) -> dict[str, Any]:
    """``searchflow dashboard`` left running (port 8501 when free), or the one left earlier."""
    from deployments import background
    from deployments.server import free_port

    kept = background.reusable(home, "dashboard", lambda e: background.url_answers(e["url"]))
    if kept:
        progress(f"reusing the dashboards left running (pid {kept['pid']})")
        return kept
    stale = background.load(home).get("dashboard")
    if stale:
        background.stop_group(int(stale.get("pid", 0)))
        background.forget(home, "dashboard")
    port = DASHBOARD_PORT if _port_free(DASHBOARD_PORT) else free_port()
    url = f"http://localhost:{port}"
    log_path = home / "logs" / "dashboard.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    progress(f"starting the dashboards on {url}")
    env = {**os.environ, **settings_env}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "searchflow.cli", "dashboard", "--port", str(port)],
            env=env,
            cwd=PROJECT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    background.record(home, "dashboard", process.pid, url=url, log=str(log_path))
    deadline = time.monotonic() + DASHBOARD_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            background.forget(home, "dashboard")
            raise SearchflowError(
                f"the dashboards exited with code {process.returncode}; see {log_path}"
            )
        if background.url_answers(f"{url}/_stcore/health"):
            break
        time.sleep(0.5)
    else:
        progress(f"the dashboards did not answer within {DASHBOARD_START_SECONDS:.0f} s yet")
    return background.load(home)["dashboard"]


def run_demo(
    settings: Settings,
    events: int = DEMO_EVENTS,
    seed: int | None = None,
    pool: str | None = None,
    timeout: float = 900.0,
    progress: Callable[[str], None] = lambda _msg: None,
    keep: Running | None = None,
    generation: dict[str, Any] | None = None,
    *,
    once: bool = True,
    users: int = DEMO_USERS,
    batches: int = 1,
) -> DemoResult:
    """Run the served chain on ``batches`` new consecutive batches (see :func:`choose_batches`),
    one after the other: each batch's chain is followed to its last sync (at most ``timeout``
    seconds) before the next batch is generated, and the first chain that does not complete ends
    the run. The result's ``chain`` is the last one followed.

    With ``once`` (the default for callers in Python, e.g. the tests) this run stops what it
    started, unless ``keep`` is given: then the caller owns the processes in ``keep``. Without it
    (``searchflow demo``) the server, the worker and the dashboards stay up afterwards, recorded
    for ``searchflow stop``, and an earlier demo's are reused.
    ``generation`` adds parameters of the ``generate-events`` runs (e.g. a malformed rate, to see a
    gate stop the chain)."""
    from deployments.follow import follow
    from deployments.prepare import prepare
    from deployments.server import configured_api_url, configured_database, find_or_start_server
    from deployments.worker import start_worker

    pool = pool or DEFAULT_POOL
    home = settings.ensure_home()
    progress("resolving Postgres and Redis")
    pinned, services = resolve_demo_services(settings)
    progress(
        f"Postgres: {services['postgres']} ({services['postgres_origin']}"
        + (", database created now" if services["database_created"] else "")
        + f"); Redis: {services['redis']} ({services['redis_origin']})"
    )
    planned = choose_batches(home, events, users, seed, batches=batches)
    running = keep if keep is not None else Running()
    dashboards = ""

    def database() -> str | None:
        """The new server's database: the user's choice, else the demo's PostgreSQL."""
        if configured_database():
            services["prefect_database_why"] = "configured"
            return None
        url, why = prefect_database(pinned.postgres_url or "", services["postgres_origin"])
        services["prefect_database_why"] = why
        progress(f"the Prefect server's database: {why}")
        return url

    try:
        progress("finding or starting a Prefect server")
        if once:
            running.server = server = (
                find_or_start_server(home / "prefect")
                if configured_api_url()
                else start_demo_server(home / "prefect", database, progress)
            )
        else:
            server = background_server(home, progress, database)
        services["prefect_database"] = server.database or "unknown: a server of PREFECT_API_URL"
        progress(f"Prefect: {server.api_url}, database {services['prefect_database']}")
        progress(f"preparing {server.api_url}: pool {pool}, warehouse limit, deployments")
        prepared = prepare(server.api_url, pool)
        if prepared.pool_type != "process":
            raise UsageError(
                f"pool {pool} is a {prepared.pool_type} pool; the demo starts a process worker, so "
                f"use a process pool or start a {prepared.pool_type} worker yourself"
            )
        pin_postgres_block(server.api_url, pinned)
        if once:
            progress("starting a worker")
            running.worker = start_worker(
                server.api_url, pinned.as_env(), home / "prefect" / "logs", pool
            )
        else:
            background_worker(home, server.api_url, pinned.as_env(), pool, progress)

        def on_change(runs: list[StageRun]) -> None:
            progress(
                "  " + "  ".join(f"{r.deployment}={r.state}" for r in runs if r.run_id is not None)
            )

        followed: list[dict[str, Any]] = []
        for number, chosen in enumerate(planned, start=1):
            extra = {k: v for k, v in chosen.items() if k not in ("events", "seed")}
            extra.update(generation or {})
            progress(
                f"batch {number}/{len(planned)}: generate-events ({chosen['events']:,} events, "
                f"{chosen['users']:,} users, seed {chosen['seed']}, {chosen['days']} days from "
                f"{chosen['start']})"
            )
            root_id = start_chain(server.api_url, chosen["events"], chosen["seed"], extra)
            chain = follow(
                server.api_url, root_id, prepared.deployments, timeout=timeout, on_change=on_change
            )
            followed.append(
                {**chosen, "outcome": chain.outcome, "seconds": round(chain.seconds, 2)}
            )
            if not chain.ok:
                break
        if not once:
            with contextlib.suppress(SearchflowError):  # the chain's outcome is decided; report it
                dashboards = background_dashboard(home, pinned.as_env(), progress)["url"]
        where = where_to_look(pinned, server.ui_url, chain)
        if dashboards:
            where["dashboards"] = dashboards
        return DemoResult(
            api_url=server.api_url,
            ui_url=server.ui_url,
            server_started=server.started_here,
            pool=pool,
            chain=chain,
            where=where,
            generation=chosen,
            services=services,
            left_running=_recorded(home) if not once else {},
            batches=followed,
        )
    finally:
        if once and keep is None:
            running.stop()


def _recorded(home: Path) -> dict[str, Any]:
    """What the demo left running, as the report shows it (role -> pid and address)."""
    from deployments import background

    return {
        role: {"pid": entry.get("pid"), "url": entry.get("url"), "log": entry.get("log")}
        for role, entry in background.load(home).items()
    }
