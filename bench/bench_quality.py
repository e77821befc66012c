"""Quality gates: each gate's time next to its stage's time (goal: under 20% of the stage).

At 1M events (``--scale 1``): the generation gate on the generator's in-memory batch, and the
ingestion gate on the rows a real JSONL ingestion landed. The seed-style counterpart is the seed
documents' ``validate_data`` (``all(field in data for field in required_fields)``) called once per
record, extended faithfully to the same checks (ids unique through a set, parents looked up in a
dict), in plain Python over the event dicts.

GX's import and context build are paid once per process and reported on their own row, as they
are in a worker: the gate rows are warm.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from bench import Row

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


def run(scale: float) -> list[Row]:
    from generator.batch import generate
    from generator.config import GeneratorConfig
    from searchflow.config import Settings
    from searchflow.quality import gate
    from searchflow.quality.context import get_context

    events = max(1000, int(1_000_000 * scale))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        settings = Settings(home=Path(tmp), probe_localhost=False, embedded_services=False)

        started = time.perf_counter()
        get_context(settings)
        rows.append(
            Row(AREA, "GX import + context (once per process)", 0, time.perf_counter() - started)
        )

        started = time.perf_counter()
        batch = generate(GeneratorConfig(events=events, seed=7))
        stage = time.perf_counter() - started
        started = time.perf_counter()
        outcome = gate("generation", settings, {"batch_id": batch.batch_id}, data=batch)
        took = time.perf_counter() - started
        frames = {t: batch.to_pandas(t) for t in ("search", "click", "conversion")}
        rows.append(
            Row(
                AREA,
                "generation gate (GX, 4 suites)",
                events,
                took,
                _seed_style(frames),
                goal="<20% of stage",
                note=f"{outcome['status']}; {took / stage:.0%} of generate() {stage:.1f}s",
            )
        )

        try:
            from generator.sinks import write_jsonl
            from searchflow.ingest import run_ingestion
        except ImportError:
            return rows
        out = Path(tmp) / "events"
        write_jsonl(batch, out)
        started = time.perf_counter()
        summary = run_ingestion(settings, "jsonl", path=out)
        stage = time.perf_counter() - started
        started = time.perf_counter()
        outcome = gate("ingestion", settings, summary)
        took = time.perf_counter() - started
        rows.append(
            Row(
                AREA,
                "ingestion gate (DuckDB reads + GX, 4 suites)",
                events,
                took,
                goal="<20% of stage",
                note=f"{outcome['status']}; {took / stage:.0%} of ingest {stage:.1f}s; "
                + json.dumps(outcome["counts"], separators=(",", ":")),
            )
        )
    return rows
