"""Quality gates: a Great Expectations suite in front of every next stage.

Stages call :func:`gate` with what they just produced; it validates that batch and returns the
outcome, or raises :class:`~searchflow.errors.GateFailed` naming the failed expectations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from searchflow.config import Settings


def gate(
    stage: str, settings: Settings, summary: Mapping[str, Any], data: Any = None
) -> dict[str, Any]:
    """Validate the batch a stage just produced.

    ``stage`` is generation, ingestion, transformation or sync; ``summary`` is the stage's summary
    (it carries ``batch_id`` and, for a sync, ``sync``); ``data`` is the in-memory batch where the
    stage has one (the generator's). Returns the outcome (status, counts, report path).
    """
    # Placeholder until the GX suites land (issue 5): every batch passes, nothing is validated.
    return {"stage": stage, "status": "passed", "evaluated": 0, "report": None}
