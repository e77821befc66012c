"""The quality gates' reports in the Prefect UI: one table artifact per validation.

The gate (:func:`searchflow.quality.gate`) knows nothing of Prefect; its outcome carries one row
per expectation and the Data Docs page, and the flows hand it here after the gate, passed or not.
Outside a flow or task run (a test, ``searchflow dq``) there is nowhere to attach an artifact, so
nothing is created. The key ``dq-<stage>`` (``dq-sync-<name>``) is the same for every run of a
stage, which is what makes the UI list the artifact's history.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def artifact_key(key: str) -> str:
    """Prefect keys allow lowercase letters, digits and dashes only."""
    return "dq-" + key.replace(".", "-").replace("_", "-").lower()


def in_run() -> bool:
    """True inside a Prefect flow or task run."""
    from prefect.context import get_run_context

    try:
        get_run_context()
    except Exception:  # MissingContextError, or Prefect half-configured: no run to attach to
        return False
    return True


def describe(outcome: Mapping[str, Any]) -> str:
    """The artifact's markdown description: the verdict, the failed expectations, the report."""
    failed = "; ".join(outcome.get("failed_expectations") or []) or "none"
    errored = "; ".join(outcome.get("errored_expectations") or []) or "none"
    return (
        f"**{outcome['key']}** gate **{outcome['status']}** on batch `{outcome['batch_id']}`: "
        f"{outcome['passed']} of {outcome['evaluated']} expectations passed; "
        f"failed: {failed}; errored: {errored}.  \n"
        f"Data Docs: `{outcome.get('report') or outcome.get('index')}`"
    )


def publish_gate_artifact(outcome: Mapping[str, Any] | None) -> str | None:
    """Create the gate's table artifact; returns its key, or None outside a run (or no outcome)."""
    if not outcome or not in_run():
        return None
    from prefect.artifacts import create_table_artifact

    key = artifact_key(str(outcome["key"]))
    rows = list(outcome.get("expectations") or [])
    create_table_artifact(table=rows, key=key, description=describe(outcome))
    return key
