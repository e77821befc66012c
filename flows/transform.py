"""The ``transform`` flow: build a mart candidate through prefect-dbt, gate it, publish it.

Thin by design: the logic is the dbt project and :mod:`searchflow.transform`, whose
``build_candidate`` and ``publish`` this flow calls exactly as the in-process path does, with one
difference: dbt runs through prefect-dbt's ``PrefectDbtRunner`` (:func:`prefect_invoke`), so every
dbt node (model, test, snapshot) is a task run in the Prefect UI. The runner lives here, on the
orchestration floor, so the stage itself never imports Prefect. The warehouse slot is held while
dbt or the publication writes (DuckDB has one writer); the gate reads the candidate in between.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow

from flows.common import emit_stage_event, warehouse_slot


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


@flow(name="transform", log_prints=True)
def transform(full_refresh: bool = False, select: str | None = None) -> dict[str, Any]:
    """Build a candidate, gate it, publish it and signal the sync stage; a failed gate rejects
    the candidate and the previously published version keeps serving."""
    from flows.reports import publish_gate_artifact
    from searchflow.config import get_settings
    from searchflow.errors import GateFailed
    from searchflow.quality import gate
    from searchflow.transform import build_candidate, publish, reject

    settings = get_settings()
    with warehouse_slot():
        summary = build_candidate(
            settings, full_refresh=full_refresh, select=select, invoke=prefect_invoke
        )
    print(
        f"dbt build of candidate {summary['version']}: {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['skipped']} skipped in {summary['seconds']}s "
        f"(as of {summary['as_of']})"
    )
    counts = {k: v for k, v in summary.items() if isinstance(v, int | float) and k != "batch_id"}
    try:
        outcome = gate("transformation", settings, summary)
    except GateFailed as exc:
        publish_gate_artifact(getattr(exc, "outcome", None))
        with warehouse_slot():
            reject(settings, summary["version"])
        emit_stage_event(
            "transformation", "failed", summary["version"], {**counts, "reason": str(exc)}
        )
        raise
    publish_gate_artifact(outcome)
    with warehouse_slot():
        published = publish(
            settings, summary["version"], parents=summary["parents"], invoke=prefect_invoke
        )
    print(f"published mart version {published['version']} ({published['parquet']})")
    emit_stage_event("transformation", "validated", summary["version"], counts)
    return {**summary, "published": True, "parquet": published["parquet"]}
