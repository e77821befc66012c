"""``dbt source freshness`` on the raw layer, run by the transformation stage; it reports, it never
blocks.

The raw sources declare their thresholds (``dbt/models/staging/_sources.yml``: warn after 24 h,
error after 72 h since the newest ``ingested_at``). Stale data is worth a warning in the stage's
summary and ledger row, and the alerts of issue 13 watch ingestion itself; but a transform over
old data is still correct, so a stale source never fails the build.
"""

from __future__ import annotations

from typing import Any

from searchflow.config import Settings
from searchflow.errors import SearchflowError
from searchflow.transform import runner

SELECT = "source:raw"
# Worst first: the summary's status is the worst of its sources.
_ORDER = ("runtime error", "error", "warn", "pass")


def _status(value: object) -> str:
    return str(getattr(value, "value", value)).lower()


def summarize(results: list[Any]) -> dict[str, Any]:
    """Per raw table: status, newest ``ingested_at`` and its age; plus the worst status (pure)."""
    sources: dict[str, dict[str, Any]] = {}
    for result in results:
        loaded = getattr(result, "max_loaded_at", None)
        age = getattr(result, "age", None)
        sources[result.node.name] = {
            "status": _status(result.status),
            "max_loaded_at": loaded.isoformat() if loaded is not None else None,
            "age_seconds": None if age is None else round(float(age), 3),
        }
    statuses = {s["status"] for s in sources.values()}
    worst = next((s for s in _ORDER if s in statuses), "pass")
    return {"status": worst, "sources": sources}


def source_freshness(settings: Settings) -> dict[str, Any]:
    """Run ``dbt source freshness --select source:raw``; returns the summary, never raises for
    stale data (an error-level source or a freshness query that could not run is reported with
    its one-line message instead)."""
    try:
        result, seconds = runner.invoke(settings, "source freshness", extra=("--select", SELECT))
    except SearchflowError as exc:
        status = "runtime error" if "could not run" in str(exc) else "error"
        return {"status": status, "sources": {}, "message": str(exc)}
    summary = summarize(list(getattr(result.result, "results", None) or []))
    summary["seconds"] = round(seconds, 3)
    return summary
