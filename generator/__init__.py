"""Stage 1: simulate search, click and conversion events and send them to a sink.

Public API (stable; other stages and the tests use it):

- :class:`GeneratorConfig`: the run's arguments; ``config.batch_id`` is derived from them.
- :func:`generate` ``(config) -> GeneratedBatch``: simulate and plan the emission, in memory.
- :class:`GeneratedBatch`: ``batch_id``, ``lines(type)`` (Arrow strings in emission order),
  ``meta`` / ``emitted`` (per-line truth: stream, event_id, timestamps, fault, reason),
  ``to_arrow(type)`` / ``to_pandas(type)`` (well-formed events, typed) and ``counts()``.
- :func:`write` ``(batch, sink, settings, out=None) -> dict``: send a batch to jsonl/redis/postgres.
- :func:`run` ``(settings, config, sink, out) -> (batch, summary)`` and
  :func:`run_generation` ``(settings, **options) -> summary``: what the command and the flow call.
- :func:`classify` ``(line) -> reason | None``: the validation rules, per line (reference/oracle).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from generator.batch import GeneratedBatch, generate
from generator.config import SINKS, GeneratorConfig
from generator.faults import MALFORMED_CLASSES, classify
from generator.sinks import appender, check_sink, default_out, prepare_out, write
from searchflow.config import Settings
from searchflow.events import EVENT_TYPES

__all__ = [
    "EVENT_TYPES",
    "MALFORMED_CLASSES",
    "SINKS",
    "GeneratedBatch",
    "GeneratorConfig",
    "classify",
    "config_from_options",
    "generate",
    "run",
    "run_generation",
    "write",
]


def run(
    settings: Settings, config: GeneratorConfig, sink: str = "jsonl", out: Path | None = None
) -> tuple[GeneratedBatch, dict[str, Any]]:
    """Generate a batch and send it to ``sink`` (in real time when ``config.live``)."""
    check_sink(sink)
    started = time.perf_counter()
    # Fail fast, before simulating anything: the target must be writable / answer.
    if sink == "jsonl":
        out = prepare_out(out if out is not None else default_out(settings))
    elif sink == "redis":
        from searchflow.services import redis_url

        redis_url(settings)
    else:
        from searchflow.services import postgres_url

        postgres_url(settings)
    batch = generate(config)
    if config.live:
        from generator.live import trickle

        writer = appender(sink, settings, batch.batch_id, out)
        result = trickle(batch, writer)
        where = {"out": writer.where}
    else:
        result = None
        where = write(batch, sink, settings, out)
    counts = batch.counts(upto=result["sent"] if result and result["interrupted"] else None)
    summary: dict[str, Any] = {
        "batch_id": batch.batch_id,
        "sink": sink,
        "out": where["out"],
        **counts,
    }
    if result is not None:
        summary["live"] = True
        summary["rate"] = config.rate
        summary["sent"] = result["sent"]
        summary["interrupted"] = result["interrupted"]
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
