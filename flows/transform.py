"""The ``transform`` flow: build a mart candidate through prefect-dbt, gate it, publish it.

Thin by design: the logic is the dbt project and :mod:`searchflow.transform`, whose
``build_candidate`` and ``publish`` this flow calls exactly as the in-process path does, with one
difference: dbt runs through prefect-dbt's ``PrefectDbtRunner`` (:func:`prefect_invoke`), so every
dbt node (model, test, snapshot) is a task run in the Prefect UI. The runner lives here, on the
orchestration floor, so the stage itself never imports Prefect. The warehouse slot is held while
dbt, the gate or the publication use the file (DuckDB has one writer); the write-audit-publish and
the ledger row are :func:`flows.gated.gated_transform`'s, as for every other way of running it.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow

from flows.common import current_flow_run_id, run_and_signal, stage_task, warehouse_slot


def prefect_invoke(
    settings: Any,
    command: str,
    *,
    target: str = "dev",
    postgres_url: str | None = None,
    full_refresh: bool = False,
    select: str | None = None,
    exclude: str | None = None,
    version: str | None = None,
) -> tuple[list[Any], float]:
    """Run one dbt command through prefect-dbt; an :data:`searchflow.transform.Invoker`.

    Same arguments and environment as the in-process runner (:func:`searchflow.transform.build_args`,
    :func:`~searchflow.transform.dbt_env`); returns (node results, seconds), raises one line.
    """
    from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

    from searchflow.compat.dbt_duckdb import release_warehouse
    from searchflow.errors import SearchflowError
    from searchflow.transform import (
        build_args,
        dbt_env,
        environment,
        failure_message,
        project_dir,
        target_dir,
    )

    args = build_args(
        command,
        settings=settings,
        target=target,
        full_refresh=full_refresh,
        select=select,
        exclude=exclude,
        version=version,
    )
    started = time.perf_counter()
    with environment(dbt_env(settings, target, postgres_url)):
        runner = PrefectDbtRunner(
            settings=PrefectDbtSettings(
                project_dir=project_dir(),
                profiles_dir=project_dir(),
                target_path=target_dir(settings, target),
            ),
            raise_on_failure=False,
        )
        try:
            result = runner.invoke(args)
        except ValueError as exc:  # prefect-dbt raises ValueError when dbt itself cannot run
            message = " ".join(str(exc).split())[:400]
            raise SearchflowError(
                f"dbt {command} could not run: {message}; check the warehouse and the project"
            ) from None
        finally:
            release_warehouse()
    nodes = list(getattr(result.result, "results", None) or [])
    if not result.success:
        raise SearchflowError(f"dbt {command} failed: {failure_message(nodes)}")
    return nodes, time.perf_counter() - started


def _build_gate_publish(
    full_refresh: bool, select: str | None, parent_batch_id: str, flow_run_id: str | None
) -> dict[str, Any]:
    from flows.gated import gated_transform
    from flows.reports import publish_gate_artifact
    from searchflow.config import get_settings

    return gated_transform(
        get_settings(),
        full_refresh=full_refresh,
        select=select,
        flow_run_id=flow_run_id,
        parent_batch_id=parent_batch_id,
        invoke=prefect_invoke,
        warehouse_guard=warehouse_slot,
        on_gate=publish_gate_artifact,
    )


@flow(name="transform", log_prints=True)
def transform(
    full_refresh: bool = False, select: str | None = None, parent_batch_id: str = ""
) -> dict[str, Any]:
    """Build a candidate, gate it, publish it and signal the sync stage
    (:func:`flows.gated.gated_transform`, retried on transient failures). A failed gate holds the
    candidate (``searchflow batches release`` can publish it) and the previously published
    version keeps serving. ``parent_batch_id``: the ingestion batch whose event woke this run."""
    task = stage_task("transformation", _build_gate_publish, "build-gate-publish")
    summary = run_and_signal(
        "transformation",
        lambda: task(full_refresh, select, parent_batch_id, current_flow_run_id()),
    )
    print(
        f"published mart version {summary['version']}: {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['skipped']} skipped (as of {summary['as_of']})"
    )
    return summary
