"""Quality gates: a Great Expectations suite in front of every next stage.

Stages call :func:`gate` with what they just produced; it validates that batch and returns the
outcome, or raises :class:`~searchflow.errors.GateFailed` naming the failed expectations. The
suites live in the committed ``expectations/`` project; see ``docs/quality.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from searchflow.config import Settings
from searchflow.errors import GateFailed


def gate(
    stage: str, settings: Settings, summary: Mapping[str, Any], data: Any = None
) -> dict[str, Any]:
    """Validate the batch a stage just produced.

    ``stage`` is generation, ingestion, transformation or sync; ``summary`` is the stage's summary
    (it carries ``batch_id`` and, for a sync, ``sync``); ``data`` is the in-memory batch where the
    stage has one (the generator's). Returns the outcome (status, counts, report path). A failed or
    errored outcome raises :class:`GateFailed` with one line naming the expectations; the outcome
    is on the exception as ``.outcome``.
    """
    from searchflow.quality.runner import run_gate

    outcome = run_gate(stage, settings, summary, data)
    if outcome["status"] != "passed":
        error = GateFailed(outcome["message"])
        error.outcome = outcome  # type: ignore[attr-defined]
        raise error
    return outcome
