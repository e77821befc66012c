"""Prepare a Prefect server for SearchFlow in one idempotent step (``searchflow deploy``).

1. the work pool (a process pool ``searchflow-local`` unless told otherwise; an existing pool of any
   type is used as it is, so a Docker or Kubernetes pool made from ``infra/`` works too);
2. the global concurrency limit ``searchflow-warehouse`` with one slot: every flow that opens the
   DuckDB file holds it (strict), so it must exist before any run;
3. every deployment of ``prefect.yaml``, through the same code path as ``prefect deploy --all``
   (deployments are upserted; each deployment's automations are deleted and recreated, so running
   this twice leaves exactly one trigger per deployment).

``prefect deploy --all`` ignores ``--pool``; this module reads ``prefect.yaml`` itself so that one
flag points every deployment at another pool without editing the file.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployments import DEFAULT_POOL, PREFECT_YAML, PROJECT_DIR
from flows.common import WAREHOUSE_LIMIT
from searchflow.errors import SearchflowError, UsageError

WAREHOUSE_SLOTS = 1


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
def _in_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


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


async def deploy_all(
    client: Any, configs: list[dict[str, Any]], project: dict[str, Any], project_dir: Path
) -> dict[str, str]:
    """Apply every deployment with Prefect's own ``prefect deploy`` code path; name -> id."""
    from prefect.cli.deploy._core import _run_single_deploy
    from rich.console import Console

    actions = {key: project.get(key) for key in ("build", "push", "pull")}
    out = io.StringIO()
    console = Console(file=out, width=200, soft_wrap=True)
    deployed: dict[str, str] = {}
    with _in_directory(project_dir):
        for config in configs:
            try:
                await _run_single_deploy(
                    config,
                    actions,
                    client=client,
                    prefect_file=project_dir / "prefect.yaml",
                    console=console,
                    is_interactive=lambda: False,
                )
            except (Exception, SystemExit) as exc:
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                tail = out.getvalue().strip().splitlines()[-1:] or [""]
                raise SearchflowError(
                    f"deploying {config.get('name')!r} failed: {detail or tail[0] or type(exc).__name__}; "
                    f"check {config.get('entrypoint')} imports and the pool exists"
                ) from None
            deployment = await client.read_deployment_by_name(full_name(config))
            deployed[full_name(config)] = str(deployment.id)
    return deployed


async def read_automations(client: Any, deployment_ids: dict[str, str]) -> dict[str, list[str]]:
    """Automation names owned by each deployment (the triggers ``prefect deploy`` created)."""
    out: dict[str, list[str]] = {}
    for name, deployment_id in deployment_ids.items():
        related = await client.read_resource_related_automations(
            f"prefect.deployment.{deployment_id}"
        )
        out[name] = sorted(a.name for a in related)
    return out


async def _prepare(api_url: str, pool: str, project_dir: Path) -> Prepared:
    from prefect.client.orchestration import get_client

    project = load_project(project_dir / "prefect.yaml")
    configs = deployment_configs(project, pool)
    async with get_client() as client:
        pool_type, pool_created = await ensure_work_pool(client, pool)
        limit_created = await ensure_concurrency_limit(client)
        deployed = await deploy_all(client, configs, project, project_dir)
        automations = await read_automations(client, deployed)
    return Prepared(
        api_url=api_url,
        pool=pool,
        pool_type=pool_type,
        pool_created=pool_created,
        limit=WAREHOUSE_LIMIT,
        limit_created=limit_created,
        deployments=deployed,
        automations=automations,
    )


def prepare(api_url: str, pool: str = DEFAULT_POOL, project_dir: Path = PROJECT_DIR) -> Prepared:
    """Work pool, warehouse limit and every deployment on the server at ``api_url``; idempotent."""
    with api(api_url):
        return asyncio.run(_prepare(api_url, pool, project_dir))
