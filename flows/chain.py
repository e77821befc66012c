"""``searchflow run``: the whole chain in one process, without a Prefect server.

generate (JSONL sink) -> gate -> ingest -> gate -> transform (dbt) -> gate -> the three syncs, each
followed by its gate. It is the developer's loop and what the end-to-end tests drive; the served
chain (deployments and event triggers) runs the same stage functions.

A failed gate stops the chain at once: :class:`~searchflow.errors.GateFailed` names the stage and
the expectations, and no later stage runs on that batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from searchflow.config import Settings
from searchflow.errors import GateFailed

Echo = Callable[[str], None]


def _gate(
    stage: str, settings: Settings, summary: Mapping[str, Any], echo: Echo, data: Any = None
) -> None:
    from searchflow.quality import gate

    try:
        outcome = gate(stage, settings, summary, data=data)
        label = f"{stage}.{summary['sync']}" if "sync" in summary else stage
        echo(
            f"  gate     {label}: passed {outcome.get('evaluated', 0)} expectations "
            f"({outcome.get('seconds', 0)}s)"
        )
    except GateFailed as exc:
        stopped = GateFailed(f"the chain stopped at the {stage} gate: {exc}")
        stopped.outcome = getattr(exc, "outcome", None)
        raise stopped from None


def _brief(summary: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    return ", ".join(f"{k} {summary[k]:,}" for k in keys if isinstance(summary.get(k), int))


def run_chain(
    settings: Settings, *, echo: Echo = lambda line: None, **generator_options: Any
) -> dict[str, Any]:
    """Run every stage in order; returns one summary per stage and the total seconds.

    ``generator_options`` are those of ``searchflow generate`` (events, users, seed, rates...).
    """
    import generator
    from searchflow.ingest import run_ingestion
    from searchflow.sync import SYNC_NAMES, run_sync
    from searchflow.transform import run_transform

    started = time.perf_counter()
    out_dir = settings.ensure_home() / "events"
    stages: dict[str, Any] = {}

    batch, gen = generator.run(
        settings, generator.config_from_options(**generator_options), "jsonl", out_dir
    )
    stages["generation"] = gen
    echo(
        f"generate   {_brief(gen, ('events', 'search', 'click', 'conversion', 'malformed'))}"
        f" -> {out_dir} ({gen['seconds']}s)"
    )
    _gate("generation", settings, gen, echo, data=batch)

    ing = run_ingestion(settings, source="jsonl", path=out_dir)
    stages["ingestion"] = ing
    echo(
        f"ingest     {_brief(ing, ('read', 'landed', 'duplicates', 'dead_letters'))} "
        f"({ing['seconds']}s)"
    )
    _gate("ingestion", settings, ing, echo)

    tr = run_transform(settings)
    stages["transformation"] = tr
    echo(f"transform  {_brief(tr, ('nodes', 'passed', 'failed', 'skipped'))} ({tr['seconds']}s)")
    _gate("transformation", settings, tr, echo)

    batch_id = str(tr.get("batch_id") or ing.get("batch_id") or gen["batch_id"])
    syncs: dict[str, Any] = {}
    for name in SYNC_NAMES:
        report = run_sync(settings, name, batch_id=batch_id)
        syncs[name] = report
        echo(
            f"sync       {name}: read {report['read']:,}, inserted {report['inserted']:,}, "
            f"updated {report['updated']:,}, unchanged {report['unchanged']:,}, "
            f"deleted {report['deleted']:,}, failed {report['failed']:,} ({report['seconds']}s)"
        )
        _gate("sync", settings, report, echo)
    stages["sync"] = syncs
    return {
        "batch_id": batch_id,
        "stages": stages,
        "seconds": round(time.perf_counter() - started, 3),
    }
