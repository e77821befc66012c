"""A Prefect artifact per validation, so the Prefect UI shows what passed and what did not.

Only inside a flow or task run: outside one (a test, ``searchflow dq``) there is nowhere to attach
it and the gate must not need a Prefect server. The key ``dq-<stage>`` (``dq-sync-<name>``) is the
same for every run of a stage, which is what makes the UI list the artifact's history.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any


def artifact_key(key: str) -> str:
    """Prefect keys allow lowercase letters, digits and dashes only."""
    return "dq-" + key.replace(".", "-").replace("_", "-").lower()


def in_run() -> bool:
    """True inside a Prefect flow or task run (never imports Prefect just to find out)."""
    if "prefect" not in sys.modules:
        return False
    try:
        from prefect.context import get_run_context

        get_run_context()
    except Exception:  # MissingContextError, or Prefect half-configured: no run to attach to
        return False
    return True


def publish(outcome: Mapping[str, Any], rows: list[dict[str, Any]]) -> str | None:
    """Create the table artifact; returns its key, or None outside a run."""
    if not in_run():
        return None
    from prefect.artifacts import create_table_artifact

    key = artifact_key(str(outcome["key"]))
    failed = ", ".join(outcome.get("failed_expectations") or []) or "none"
    errored = ", ".join(outcome.get("errored_expectations") or []) or "none"
    description = (
        f"**{outcome['key']}** gate **{outcome['status']}** on batch `{outcome['batch_id']}`: "
        f"{outcome['passed']} of {outcome['evaluated']} expectations passed; "
        f"failed: {failed}; errored: {errored}.  \n"
        f"Data Docs: `{outcome.get('report') or outcome.get('index')}`"
    )
    create_table_artifact(table=rows, key=key, description=description)
    return key
