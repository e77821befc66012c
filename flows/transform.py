"""The ``transform`` flow: ``dbt build`` through prefect-dbt, then the transformation gate.

Thin by design: the logic is the dbt project and :mod:`searchflow.transform`. PrefectDbtRunner makes
every dbt node (model, test, snapshot) a task run in the Prefect UI; a failing node fails the flow
with dbt's message. The warehouse slot is held for the whole build (DuckDB has one writer).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import gate_and_signal, warehouse_slot


@flow(name="transform", log_prints=True)
def transform(full_refresh: bool = False, select: str | None = None) -> dict[str, Any]:
    """Build the marts from the raw layer and signal the sync stage through the gate."""
    from searchflow.config import get_settings
    from searchflow.transform import prefect_build

    settings = get_settings()
    with warehouse_slot():
        summary = prefect_build(settings, full_refresh=full_refresh, select=select)
    print(
        f"dbt build: {summary['passed']} passed, {summary['failed']} failed, "
        f"{summary['skipped']} skipped in {summary['seconds']}s (as of {summary['as_of']})"
    )
    gate_and_signal("transformation", settings, summary)
    return summary
