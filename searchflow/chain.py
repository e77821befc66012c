"""``searchflow run``: the whole chain in one process, without a Prefect server.

generate (JSONL sink) -> gate -> ingest -> gate -> transform (dbt) -> gate -> the three syncs, each
followed by its gate. It is the developer's loop and what the end-to-end tests drive; the served
chain (deployments and event triggers) runs the same stage functions.

A failed gate stops the chain at once: :class:`~searchflow.errors.GateFailed` names the stage and
the expectations, and no later stage runs on that batch.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from searchflow.config import Settings
from searchflow.errors import GateFailed, SearchflowError

Echo = Callable[[str], None]


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a stage function with the keyword arguments it accepts (stages evolve separately)."""
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(*args, **kwargs)


def _split(result: Any) -> tuple[dict[str, Any], Any]:
    """A stage may return its summary, or (summary, batch); the batch is what the gate validates."""
    if isinstance(result, tuple) and len(result) == 2:
        if isinstance(result[0], Mapping):
            return dict(result[0]), result[1]
        if isinstance(result[1], Mapping):
            return dict(result[1]), result[0]
    if isinstance(result, Mapping):
        return dict(result), None
    summary = getattr(result, "summary", None) or getattr(result, "counts", None)
    if callable(summary):
        summary = summary()
    return dict(summary or {}), result


def _gate(stage: str, settings: Settings, summary: Mapping[str, Any], data: Any = None) -> None:
    from searchflow.quality import gate

    try:
        gate(stage, settings, summary, data=data)
    except GateFailed as exc:
        raise GateFailed(f"the chain stopped at the {stage} gate: {exc}") from None


def _brief(summary: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    parts = [f"{k} {summary[k]:,}" for k in keys if isinstance(summary.get(k), int)]
    return ", ".join(parts)


def run_chain(
    settings: Settings,
    *,
    events: int = 10_000,
    users: int | None = None,
    seed: int = 42,
    echo: Echo = lambda line: None,
    **generator_options: Any,
) -> dict[str, Any]:
    """Run every stage in order; returns one summary per stage and the total seconds."""
    from searchflow.sync import SYNC_NAMES, run_sync

    try:
        import generator
        from searchflow.ingest import run_ingestion
        from searchflow.transform import run_transform
    except ImportError as exc:
        raise SearchflowError(
            f"this installation lacks a stage of the chain ({exc}); reinstall searchflow"
        ) from None

    started = time.perf_counter()
    settings.ensure_home()
    out_dir = settings.home_path / "events"
    stages: dict[str, Any] = {}

    options = {"events": events, "seed": seed, **generator_options}
    if users is not None:
        options["users"] = users
    t0 = time.perf_counter()
    if hasattr(generator, "run") and hasattr(generator, "config_from_options"):
        # (batch, summary): the generation gate validates the in-memory batch.
        batch, gen = generator.run(
            settings, generator.config_from_options(**options), "jsonl", out_dir
        )
        gen = dict(gen)
    else:
        gen, batch = _split(
            generator.run_generation(settings, sink="jsonl", out=out_dir, **options)
        )
    gen.setdefault("seconds", round(time.perf_counter() - t0, 3))
    _gate("generation", settings, gen, data=batch)
    stages["generation"] = gen
    echo(
        f"generate   {_brief(gen, ('events', 'emitted', 'search', 'click', 'conversion', 'malformed'))}"
        f" -> {out_dir} ({gen['seconds']}s)"
    )

    t0 = time.perf_counter()
    ing, ing_batch = _split(_call(run_ingestion, settings, source="jsonl", path=Path(out_dir)))
    ing.setdefault("seconds", round(time.perf_counter() - t0, 3))
    _gate("ingestion", settings, ing, data=ing_batch)
    stages["ingestion"] = ing
    echo(
        f"ingest     {_brief(ing, ('read', 'landed', 'duplicates', 'dead_letters'))} "
        f"({ing['seconds']}s)"
    )

    t0 = time.perf_counter()
    tr, _ = _split(run_transform(settings))
    tr.setdefault("seconds", round(time.perf_counter() - t0, 3))
    _gate("transformation", settings, tr)
    stages["transformation"] = tr
    echo(f"transform  {_brief(tr, ('passed', 'failed', 'skipped'))} ({tr['seconds']}s)")

    batch_id = str(tr.get("batch_id") or ing.get("batch_id") or gen.get("batch_id") or "") or None
    syncs: dict[str, Any] = {}
    for name in SYNC_NAMES:
        report = run_sync(settings, name, batch_id=batch_id)
        _gate("sync", settings, report)
        syncs[name] = report
        echo(
            f"sync       {name}: read {report['read']:,}, inserted {report['inserted']:,}, "
            f"updated {report['updated']:,}, unchanged {report['unchanged']:,}, "
            f"deleted {report['deleted']:,}, failed {report['failed']:,} ({report['seconds']}s)"
        )
    stages["sync"] = syncs
    return {
        "batch_id": batch_id,
        "stages": stages,
        "seconds": round(time.perf_counter() - started, 3),
    }
