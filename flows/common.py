"""What every SearchFlow flow shares: the warehouse slot and the stage events.

The warehouse is one DuckDB file and DuckDB allows one writer process, so every flow that opens it
holds the ``searchflow-warehouse`` global concurrency slot (strict: a missing limit is an error, not
a silent free-for-all). Stages are chained by the events emitted here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

WAREHOUSE_LIMIT = "searchflow-warehouse"
EVENT_PREFIX = "searchflow"
STAGES = ("generation", "ingestion", "transformation", "sync")


@contextmanager
def warehouse_slot(strict: bool = True) -> Iterator[None]:
    """Hold the one global slot that guards the DuckDB file for the duration of the block."""
    from prefect.concurrency.sync import concurrency

    with concurrency(WAREHOUSE_LIMIT, occupy=1, strict=strict):
        yield


def event_name(stage: str, outcome: str) -> str:
    """``searchflow.<stage>.<outcome>``, outcome being ``validated`` or ``failed``."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    return f"{EVENT_PREFIX}.{stage}.{outcome}"


def flat_payload(payload: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """Payload values as strings and numbers only (a UUID or datetime breaks trigger templating)."""
    out: dict[str, str | int | float | bool] = {}
    for key, value in payload.items():
        if isinstance(value, bool | int | float | str):
            out[key] = value
        elif value is None:
            out[key] = ""
        else:
            out[key] = str(value)
    return out


def emit_stage_event(stage: str, outcome: str, batch_id: str, payload: Mapping[str, Any]) -> None:
    """Emit ``searchflow.<stage>.<outcome>`` about one batch; deployment triggers listen for it."""
    from prefect.events import emit_event

    emit_event(
        event=event_name(stage, outcome),
        resource={
            "prefect.resource.id": f"searchflow.batch.{batch_id}",
            "prefect.resource.name": f"{stage} batch {batch_id}",
            "searchflow.stage": stage,
        },
        payload=flat_payload({"batch_id": batch_id, **payload}),
    )


def gate_and_signal(
    stage: str,
    settings: Any,
    summary: Mapping[str, Any],
    data: Any = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run the stage's quality gate and emit the event that chains (or stops) the next stage.

    Pass: ``searchflow.<stage>.validated`` with the batch id and counts. Fail or error: the
    ``searchflow.<stage>.failed`` event names the expectations, and the GateFailed propagates so the
    flow run fails and nothing downstream runs on the batch. ``labels`` are string fields added to
    the payload for the next stage's trigger (e.g. the generation's sink, which ingestion reads).
    """
    from searchflow.errors import GateFailed
    from searchflow.quality import gate

    batch_id = str(summary.get("batch_id", ""))
    counts = {k: v for k, v in summary.items() if isinstance(v, int | float) and k != "batch_id"}
    counts.update(labels or {})
    try:
        outcome = gate(stage, settings, summary, data=data)
    except GateFailed as exc:
        emit_stage_event(stage, "failed", batch_id, {**counts, "reason": str(exc)})
        raise
    emit_stage_event(stage, "validated", batch_id, counts)
    return outcome
