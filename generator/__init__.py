"""Stage 1: simulate search, click and conversion events and send them to a sink.

Public API (stable; other stages, the gated runner and the tests use it):

- :class:`GeneratorConfig`: the run's arguments; ``config.batch_id`` is derived from them.
- :func:`build` ``(config) -> GeneratedBatch`` (also :func:`generate`): simulate and plan the
  emission, in memory; touches no file or server, so the batch can be gated before it is sent.
- :class:`GeneratedBatch`: ``batch_id``, ``lines(type)`` (Arrow strings in emission order),
  ``meta`` / ``emitted`` (per-line truth: stream, event_id, timestamps, fault, reason),
  ``clean_tables()`` / ``to_arrow(type)`` (the simulated events, typed, before any fault: what
  the generation gate judges) and ``counts()``.
- :func:`prepare_target` ``(settings, sink, out) -> Path | None``: check the sink's target first.
- :func:`write_batch` ``(settings, batch, sink, out) -> summary``: send a built batch to its sink
  (trickled when its config is live); :func:`write` ``(batch, sink, settings, out)`` is the bulk
  send alone.
- :func:`write_held` / :func:`release_held` / :func:`drop_held`: a batch that failed its gate,
  kept as JSONL under ``$SEARCHFLOW_HOME/held/generation/<batch_id>/`` until released to the sink
  it was meant for, or dropped (:mod:`generator.held`).
- :func:`run` ``(settings, config, sink, out) -> (batch, summary)`` and
  :func:`run_generation` ``(settings, **options) -> summary``: build and write in one go, ungated.
- :func:`classify` ``(line) -> reason | None``: the validation rules, per line (reference/oracle).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from generator.batch import GeneratedBatch, build, generate
from generator.config import SINKS, GeneratorConfig
from generator.faults import MALFORMED_CLASSES, classify
from generator.held import drop_held, held_path, read_manifest, release_held, write_held
from generator.sinks import appender, check_sink, prepare_target, write
from searchflow.config import Settings
from searchflow.events import EVENT_TYPES

__all__ = [
    "EVENT_TYPES",
    "MALFORMED_CLASSES",
    "SINKS",
    "GeneratedBatch",
    "GeneratorConfig",
    "build",
    "classify",
    "config_from_options",
    "drop_held",
    "generate",
    "held_path",
    "prepare_target",
    "read_manifest",
    "release_held",
    "run",
    "run_generation",
    "write",
    "write_batch",
    "write_held",
]


def write_batch(
    settings: Settings, batch: GeneratedBatch, sink: str = "jsonl", out: Path | None = None
) -> dict[str, Any]:
    """Send a built batch to ``sink`` (in real time when its config is live); the run's summary.

    A live run stopped early (Ctrl-C, SIGTERM) counts only what it sent.
    """
    started = time.perf_counter()
    target = prepare_target(settings, sink, out)
    if batch.config.live:
        from generator.live import trickle

        writer = appender(sink, settings, batch.batch_id, target)
        result: dict[str, Any] | None = trickle(batch, writer)
        where = writer.where
    else:
        result = None
        where = write(batch, sink, settings, target)["out"]
    counts = batch.counts(upto=result["sent"] if result and result["interrupted"] else None)
    summary: dict[str, Any] = {"batch_id": batch.batch_id, "sink": sink, "out": where, **counts}
    if result is not None:
        summary["live"] = True
        summary["rate"] = batch.config.rate
        summary["sent"] = result["sent"]
        summary["interrupted"] = result["interrupted"]
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def run(
    settings: Settings, config: GeneratorConfig, sink: str = "jsonl", out: Path | None = None
) -> tuple[GeneratedBatch, dict[str, Any]]:
    """Generate a batch and send it to ``sink``, ungated (the gated way is flows/gated.py)."""
    started = time.perf_counter()
    target = prepare_target(settings, sink, out)  # fail fast, before simulating anything
    batch = build(config)
    summary = write_batch(settings, batch, sink, target)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return batch, summary


def config_from_options(**options: Any) -> GeneratorConfig:
    """A config from command/flow options; None means the default."""
    values = {k: v for k, v in options.items() if v is not None}
    start = values.get("start")
    if isinstance(start, datetime):
        values["start"] = start.date()
    elif isinstance(start, str):
        try:
            values["start"] = date.fromisoformat(start)
        except ValueError:
            from searchflow.errors import UsageError

            raise UsageError(f"--start must be a date like 2025-01-31, got {start!r}") from None
    if values.get("live") and "live_start" not in values:
        values["live_start"] = datetime.now(UTC)
    return GeneratorConfig(**values)


def run_generation(
    settings: Settings,
    sink: str = "jsonl",
    out: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Generate and write with the command's options (events, users, seed, start, days, live,
    rate, click_through_rate, conversion_rate, malformed_rate, duplicate_rate, late_rate)."""
    check_sink(sink)
    config = config_from_options(**options)
    return run(settings, config, sink, Path(out) if out else None)[1]
