"""The gates' own record: one JSON line per validation, for ``searchflow dq report``.

GX keeps the full validation results (``$SEARCHFLOW_HOME/quality/validations``); this file keeps
the outcome the gate decided (status, counts, the failed and errored expectations, the Data Docs
page), which is what a person asks for first and what GX's results do not say in one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from searchflow.config import Settings
from searchflow.contract import STAGES, SYNC_NAMES
from searchflow.output import to_json

# The gate keys in pipeline order: each sync is gated on its own (``sync.<name>``).
STAGE_KEYS: tuple[str, ...] = tuple(
    key
    for stage in STAGES
    for key in ([f"sync.{n}" for n in SYNC_NAMES] if stage == "sync" else [stage])
)


def history_path(settings: Settings) -> Path:
    from searchflow.quality.context import quality_home

    return quality_home(settings) / "history.jsonl"


def record(settings: Settings, outcome: Mapping[str, Any]) -> None:
    """Append one outcome (a single write of one line, so concurrent gates do not interleave)."""
    line = to_json(outcome) + "\n"
    with history_path(settings).open("a", encoding="utf-8") as fh:
        fh.write(line)


def read_all(settings: Settings) -> list[dict[str, Any]]:
    path = history_path(settings)
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash: skip it, keep the rest
    return out


def latest(settings: Settings, stage: str | None = None) -> list[dict[str, Any]]:
    """The latest outcome of each stage (each sync apart), in pipeline order.

    ``stage`` filters: ``sync`` gives the three syncs, ``sync.recommendations`` one of them.
    """
    last: dict[str, dict[str, Any]] = {}
    for outcome in read_all(settings):
        last[str(outcome.get("key", outcome.get("stage")))] = outcome
    keys = [k for k in STAGE_KEYS if k in last] + sorted(set(last) - set(STAGE_KEYS))
    if stage:
        keys = [k for k in keys if k == stage or k.startswith(f"{stage}.")]
    return [last[k] for k in keys]
