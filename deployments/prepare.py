"""Prepare a Prefect server for SearchFlow in one idempotent step (``searchflow deploy``).

1. the work pool (a process pool ``searchflow-local`` unless told otherwise; an existing pool of any
   type is used as it is, so a Docker or Kubernetes pool made from ``infra/`` works too);
2. the global concurrency limit ``searchflow-warehouse`` with one slot: every flow that opens the
   DuckDB file holds it (strict), so it must exist before any run;
3. every deployment of ``prefect.yaml``, by Prefect's own public ``prefect deploy --all`` command
   (deployments are upserted; each deployment's automations are deleted and recreated, so running
   this twice leaves exactly one trigger per deployment);
4. the automation that marks a flow run Crashed when its heartbeats stop
   (:mod:`deployments.resilience`);
5. the alerts: a webhook notification block and the automations that post to it, when
   ``SEARCHFLOW_ALERT_WEBHOOK_URL`` is set (:mod:`deployments.alerts`).

``prefect deploy --all`` ignores ``--pool``: this module writes the deployment file it deploys, a
copy of ``prefect.yaml`` with the pool filled in, so one flag points every deployment at another
pool without editing the file.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployments import DEFAULT_POOL, PREFECT_YAML, PROJECT_DIR
from deployments.alerts import ensure_alerts
from deployments.resilience import FLOW_RUN_ENV, ensure_crash_automation
from searchflow.contract import WAREHOUSE_LIMIT
from searchflow.errors import SearchflowError, UsageError

WAREHOUSE_SLOTS = 1
# The scheduled deployment of flows/sweep.py (flow/deployment), paused by prepare(sweeper=False).
SWEEPER = "sweep/sweep"
# The scheduled deployment of flows/reconcile.py: paused with the sweeper (a test's chain must not
# see its runs), never resumed by prepare (a new deployment starts active).
RECONCILER = "reconcile/reconcile"


@dataclass
class Prepared:
    """What :func:`prepare` left on the server."""

    api_url: str
    pool: str
    pool_type: str
    pool_created: bool
    limit: str
    limit_created: bool
    deployments: dict[str, str] = field(default_factory=dict)  # "flow/deployment" -> id
    automations: dict[str, list[str]] = field(default_factory=dict)  # deployment -> trigger names
    crash_automation: str = ""  # id of the automation that marks heartbeat-less runs Crashed
    alerts: dict[str, Any] = field(default_factory=dict)  # deployments.alerts.ensure_alerts

    def to_dict(self) -> dict[str, Any]:
        return {
            "api_url": self.api_url,
            "pool": self.pool,
            "pool_type": self.pool_type,
            "pool_created": self.pool_created,
            "concurrency_limit": self.limit,
            "limit_created": self.limit_created,
            "deployments": self.deployments,
            "automations": self.automations,
            "crash_automation": self.crash_automation,
            "alerts": self.alerts,
        }


def load_project(path: Path = PREFECT_YAML) -> dict[str, Any]:
    """``prefect.yaml`` as a dict (anchors and merge keys resolved)."""
    try:
        with path.open() as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise UsageError(f"{path} not found; run from a SearchFlow checkout") from None


def deployment_configs(project: dict[str, Any], pool: str | None = None) -> list[dict[str, Any]]:
    """The ``deployments:`` entries, each pointed at ``pool`` when one is given."""
    configs = deepcopy(project.get("deployments") or [])
    if pool:
        for config in configs:
            config.setdefault("work_pool", {})
            config["work_pool"] = {**config["work_pool"], "name": pool}
    return configs


def full_name(config: dict[str, Any]) -> str:
    """``<flow name>/<deployment name>``; every SearchFlow deployment is named after its flow."""
    return f"{config['name']}/{config['name']}"


@contextmanager
def api(api_url: str) -> Iterator[None]:
    """Point every Prefect client made in the block at ``api_url``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


async def ensure_work_pool(client: Any, name: str, pool_type: str = "process") -> tuple[str, bool]:
    """Create the pool if missing; returns (type, created). An existing pool is left as it is."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        pool = await client.read_work_pool(name)
        return pool.type, False
    except ObjectNotFound:
        pass
    template = _default_template(pool_type)
    try:
        await client.create_work_pool(
            WorkPoolCreate(name=name, type=pool_type, base_job_template=template)
        )
    except ObjectAlreadyExists:  # created concurrently by someone else: fine
        return (await client.read_work_pool(name)).type, False
    return pool_type, True


def _default_template(pool_type: str) -> dict[str, Any]:
    if pool_type == "process":
        from prefect.workers.process import ProcessWorker

        return ProcessWorker.get_default_base_job_template()
    template = Path(
        PROJECT_DIR, "infra", f"{ {'kubernetes': 'k8s'}.get(pool_type, pool_type) }-pool.json"
    )
    if template.is_file():
        import json

        return json.loads(template.read_text())
    raise UsageError(
        f"no base job template for pool type {pool_type!r}; use process, docker or kubernetes"
    )


async def ensure_concurrency_limit(
    client: Any, name: str = WAREHOUSE_LIMIT, slots: int = WAREHOUSE_SLOTS
) -> bool:
    """The global limit that guards the DuckDB file, active with ``slots`` slots; True if created."""
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        limit = await client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        try:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=slots, active=True)
            )
            return True
        except ObjectAlreadyExists:
            limit = await client.read_global_concurrency_limit_by_name(name)
    if limit.limit != slots or not limit.active:
        await client.update_global_concurrency_limit(
            name, GlobalConcurrencyLimitUpdate(limit=slots, active=True)
        )
    return False


def deployment_file(project: Mapping[str, Any], pool: str | None = None) -> dict[str, Any]:
    """What ``prefect deploy --all`` reads: ``project`` with every deployment pointed at ``pool``
    (anchors already resolved, so the ``definitions:`` block is left out)."""
    out = {k: deepcopy(v) for k, v in project.items() if k not in ("definitions", "deployments")}
    out["deployments"] = deployment_configs(dict(project), pool)
    return out


# How long one ``prefect deploy --all`` may take: it imports every flow to read its parameters.
DEPLOY_TIMEOUT = 900.0


def deploy_env(api_url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the ``prefect deploy`` process: this API, no prompts, no telemetry."""
    env = dict(os.environ if base is None else base)
    env.update(FLOW_RUN_ENV)
    env.update({"PREFECT_API_URL": api_url, "PREFECT_CLI_PROMPT": "false"})
    return env


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_prefect_deploy(
    api_url: str, file: Path, project_dir: Path, timeout: float = DEPLOY_TIMEOUT
) -> None:
    """``prefect --no-prompt deploy --all --prefect-file FILE`` from the project folder (entrypoints
    are relative to it); a failure is one line with Prefect's last word."""
    from deployments.server import prefect_command

    command = prefect_command("--no-prompt", "deploy", "--all", "--prefect-file", str(file))
    try:
        done = subprocess.run(
            command,
            cwd=project_dir,
            env=deploy_env(api_url),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise SearchflowError(
            f"prefect deploy did not finish within {timeout:.0f} s; check that {api_url} answers"
        ) from None
    if done.returncode != 0:
        detail = _last_line(done.stderr) or _last_line(done.stdout) or f"exit {done.returncode}"
        raise SearchflowError(
            f"prefect deploy failed: {detail}; check the flows' imports and that the pool exists"
        )


def deploy_all(
    api_url: str, project: Mapping[str, Any], pool: str | None, project_dir: Path
) -> None:
    """Apply every deployment of ``project`` (pointed at ``pool``) with ``prefect deploy --all``."""
    with tempfile.TemporaryDirectory(prefix="searchflow-deploy-") as tmp:
        file = Path(tmp) / "prefect.yaml"
        file.write_text(yaml.safe_dump(deployment_file(project, pool), sort_keys=False))
        run_prefect_deploy(api_url, file, project_dir)


async def read_deployment_ids(client: Any, configs: list[dict[str, Any]]) -> dict[str, str]:
    """``flow/deployment`` -> id of every deployment in ``configs``."""
    from prefect.exceptions import ObjectNotFound

    out: dict[str, str] = {}
    for config in configs:
        try:
            deployment = await client.read_deployment_by_name(full_name(config))
        except ObjectNotFound:
            raise SearchflowError(
                f"prefect deploy left no deployment {full_name(config)!r}; run it by hand to see why"
            ) from None
        out[full_name(config)] = str(deployment.id)
    return out


async def read_automations(client: Any, deployment_ids: dict[str, str]) -> dict[str, list[str]]:
    """Automation names owned by each deployment (the triggers ``prefect deploy`` created)."""
    out: dict[str, list[str]] = {}
    for name, deployment_id in deployment_ids.items():
        related = await client.read_resource_related_automations(
            f"prefect.deployment.{deployment_id}"
        )
        out[name] = sorted(a.name for a in related)
    return out


async def _server_side(pool: str) -> tuple[str, bool, bool]:
    """The pool and the warehouse limit, before any deployment points at them."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        pool_type, pool_created = await ensure_work_pool(client, pool)
        limit_created = await ensure_concurrency_limit(client)
    return pool_type, pool_created, limit_created


async def _after_deploy(
    configs: list[dict[str, Any]], webhook_url: str | None, sweeper: bool | None = None
) -> tuple[dict[str, str], dict[str, list[str]], str, dict[str, Any]]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployed = await read_deployment_ids(client, configs)
        for name, deployment_id in deployed.items():
            if name == SWEEPER and sweeper is not None:
                if sweeper:
                    await client.resume_deployment(deployment_id)
                else:
                    await client.pause_deployment(deployment_id)
            elif name == RECONCILER and sweeper is False:
                await client.pause_deployment(deployment_id)
        automations = await read_automations(client, deployed)
        crash = await ensure_crash_automation(client)
        alerts = await ensure_alerts(client, webhook_url)
    return deployed, automations, crash, alerts


def prepare(
    api_url: str,
    pool: str = DEFAULT_POOL,
    project_dir: Path = PROJECT_DIR,
    alert_webhook_url: str | None = None,
    sweeper: bool | None = None,
) -> Prepared:
    """Work pool, warehouse limit, every deployment, crash detection and the alerts on the server
    at ``api_url``; idempotent. ``alert_webhook_url`` defaults to SEARCHFLOW_ALERT_WEBHOOK_URL.

    ``sweeper=False`` pauses the scheduled ``sweep`` deployment (for tests that follow one chain
    and must not see runs the sweeper starts, or a later test's worker pick them up), and the
    scheduled ``reconcile`` with it; True resumes the sweeper, None leaves both as they are (a new
    deployment starts active)."""
    from searchflow.config import get_settings

    webhook_url = alert_webhook_url or get_settings().alert_webhook_url
    project = load_project(project_dir / "prefect.yaml")
    configs = deployment_configs(project, pool)
    with api(api_url):
        pool_type, pool_created, limit_created = asyncio.run(_server_side(pool))
        deploy_all(api_url, project, pool, project_dir)
        deployed, automations, crash, alerts = asyncio.run(
            _after_deploy(configs, webhook_url, sweeper)
        )
    return Prepared(
        api_url=api_url,
        pool=pool,
        pool_type=pool_type,
        pool_created=pool_created,
        limit=WAREHOUSE_LIMIT,
        limit_created=limit_created,
        deployments=deployed,
        automations=automations,
        crash_automation=crash,
        alerts=alerts,
    )
