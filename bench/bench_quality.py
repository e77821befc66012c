"""Quality gates: each gate's time next to its stage's time (goal: under 20% of the stage).

At 1M events (``--scale 1``): the generation gate on the generator's in-memory batch, next to the
generation stage as ``searchflow run`` runs it (simulate + write JSONL), and the ingestion gate on
the rows a real JSONL ingestion landed, next to that ingestion. Wall and CPU seconds are both
reported: the machine is shared, and CPU time is the steadier figure. The seed-style counterpart is the seed
documents' ``validate_data`` (``all(field in data for field in required_fields)``) called once per
record, extended faithfully to the same checks (ids unique through a set, parents looked up in a
dict), in plain Python over the event dicts.

GX's import, context build and the Data Docs template compilation are paid once per process and
reported on their own row (a warm-up gate on a small batch), as they are in a worker: the gate rows
are warm.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Row
from searchflow.events import EVENT_TYPES

AREA = "quality"


def _seed_style(frames: dict) -> float:
    """Per-record checks in Python, the seed's ProcessingService.validate_data way."""
    required = {
        "search": ["event_id", "timestamp", "session_id"],
        "click": ["event_id", "timestamp", "session_id", "search_event_id"],
        "conversion": ["event_id", "timestamp", "session_id", "click_event_id"],
    }
    records = {t: f.to_dict(orient="records") for t, f in frames.items()}  # the seed's dicts
    started = time.perf_counter()
    seen: dict[str, set] = {t: set() for t in records}
    bad = 0
    for event_type, rows in records.items():
        fields = required[event_type]
        for data in rows:
            if not all(data.get(f) is not None for f in fields):
                bad += 1
            if data["event_id"] in seen[event_type]:
                bad += 1
            seen[event_type].add(data["event_id"])
    for data in records["click"]:
        if data["search_event_id"] not in seen["search"]:
            bad += 1
    for data in records["conversion"]:
        if data["click_event_id"] not in seen["click"]:
            bad += 1
    return time.perf_counter() - started


def _timed(fn: Any) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process): the CPU figure is steadier on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _note(outcome: dict, gate: tuple[float, float], stage: tuple[float, float], name: str) -> str:
    return (
        f"{outcome['status']}; {gate[0] / stage[0]:.0%} of the {name} stage "
        f"({gate[0]:.2f}s vs {stage[0]:.1f}s wall; {gate[1]:.2f}s vs {stage[1]:.1f}s CPU)"
    )


def run(scale: float) -> list[Row]:
    import generator
    from generator.config import GeneratorConfig
    from searchflow.config import Settings
    from searchflow.quality import gate
    from searchflow.quality.context import get_context

    events = max(1000, int(1_000_000 * scale))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        settings = Settings(home=Path(tmp), probe_localhost=False, embedded_services=False)
        out = Path(tmp) / "events"

        def warm_up() -> None:
            get_context(settings)
            small, _ = generator.run(settings, GeneratorConfig(events=1000, seed=1), "jsonl", out)
            gate("generation", settings, {"batch_id": "warm-up"}, data=small)

        _, took, _ = _timed(warm_up)
        rows.append(
            Row(AREA, "GX import, context, Data Docs templates (once per process)", 0, took)
        )

        (batch, summary), *stage = _timed(
            lambda: generator.run(settings, GeneratorConfig(events=events, seed=7), "jsonl", out)
        )
        outcome, *took = _timed(
            lambda: gate("generation", settings, {"batch_id": batch.batch_id}, data=batch)
        )
        frames = {t: batch.to_pandas(t) for t in EVENT_TYPES}
        rows.append(
            Row(
                AREA,
                "generation gate (Arrow + DuckDB rule counts, GX, 2 suites)",
                events,
                took[0],
                _seed_style(frames),
                goal="<20% of stage",
                note=_note(outcome, took, stage, "generation (generate + JSONL)"),
            )
        )
        del frames

        from searchflow.ingest import run_ingestion

        summary, *stage = _timed(lambda: run_ingestion(settings, "jsonl", path=out))
        outcome, *took = _timed(lambda: gate("ingestion", settings, summary))
        rows.append(
            Row(
                AREA,
                "ingestion gate (DuckDB rule counts + GX, 1 suite)",
                events,
                took[0],
                goal="<20% of stage",
                note=_note(outcome, took, stage, "ingestion")
                + "; "
                + json.dumps(outcome["counts"], separators=(",", ":")),
            )
        )
    return rows
