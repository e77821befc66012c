"""``searchflow run``: the whole chain in one process, without a Prefect server.

generate (JSONL sink) -> ingest -> transform (dbt) -> the syncs, in the order of
:data:`searchflow.contract.STAGES`, each stage gated by the same write-audit-publish function the
stage commands and the served flows call (:mod:`flows.gated`). It is the developer's loop and what
the end-to-end tests drive.

A failed gate stops the chain at once: its batch is held in the ledger, and
:class:`~searchflow.errors.GateFailed` names the stage and the expectations; no later stage runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from searchflow.config import Settings
from searchflow.contract import STAGES, SYNC_NAMES
from searchflow.errors import GateFailed

Echo = Callable[[str], None]


def _gated(stage: str, echo: Echo, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one gated stage; a held batch stops the chain with the stage named."""
    try:
        summary = run()
    except GateFailed as exc:
        stopped = GateFailed(f"the chain stopped at the {stage} gate: {exc}")
        stopped.outcome = getattr(exc, "outcome", None)  # type: ignore[attr-defined]
        stopped.summary = getattr(exc, "summary", None)  # type: ignore[attr-defined]
        raise stopped from None
    return summary


def _echo_gate(echo: Echo, stage: str, summary: Mapping[str, Any]) -> None:
    gate = summary.get("gate")
    label = f"{stage}.{summary['sync']}" if "sync" in summary else stage
    if gate:
        echo(
            f"  gate     {label}: {gate['outcome']} {gate.get('evaluated', 0)} expectations "
            f"({gate.get('seconds', 0)}s)"
        )


def _brief(summary: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    return ", ".join(f"{k} {summary[k]:,}" for k in keys if isinstance(summary.get(k), int))


def run_chain(
    settings: Settings, *, echo: Echo = lambda line: None, **generator_options: Any
) -> dict[str, Any]:
    """Run every stage in order; returns one summary per stage and the total seconds.

    ``generator_options`` are those of ``searchflow generate`` (events, users, seed, rates...).
    """
    from flows.gated import gated_generate, gated_ingest, gated_sync, gated_transform
    from generator import config_from_options

    generation, ingestion, transformation, sync = STAGES
    started = time.perf_counter()
    out_dir = settings.ensure_home() / "events"
    config = config_from_options(**generator_options)
    stages: dict[str, Any] = {}

    gen = _gated(generation, echo, lambda: gated_generate(settings, config, "jsonl", out_dir))
    stages[generation] = gen
    echo(
        f"generate   {_brief(gen, ('events', 'search', 'click', 'conversion', 'malformed'))}"
        f" -> {out_dir} ({gen['seconds']}s)"
    )
    _echo_gate(echo, generation, gen)

    ing = _gated(
        ingestion,
        echo,
        lambda: gated_ingest(settings, "jsonl", out_dir, parent_batch_id=gen["batch_id"]),
    )
    stages[ingestion] = ing
    echo(
        f"ingest     {_brief(ing, ('read', 'landed', 'duplicates', 'dead_letters'))} "
        f"({ing['seconds']}s)"
    )
    _echo_gate(echo, ingestion, ing)

    tr = _gated(transformation, echo, lambda: gated_transform(settings))
    stages[transformation] = tr
    echo(f"transform  {_brief(tr, ('nodes', 'passed', 'failed', 'skipped'))} ({tr['seconds']}s)")
    _echo_gate(echo, transformation, tr)

    syncs: dict[str, Any] = {}
    for name in SYNC_NAMES:
        report = _gated(sync, echo, lambda name=name: gated_sync(settings, name))
        syncs[name] = report
        if report.get("nothing_new"):
            echo(f"sync       {name}: nothing new to publish")
            continue
        echo(
            f"sync       {name}: read {report['read']:,}, inserted {report['inserted']:,}, "
            f"updated {report['updated']:,}, unchanged {report['unchanged']:,}, "
            f"deleted {report['deleted']:,}, failed {report['failed']:,} ({report['seconds']}s)"
        )
        _echo_gate(echo, sync, report)
    stages[sync] = syncs
    return {
        "batch_id": gen["batch_id"],
        "mart_version": tr["version"],
        "stages": stages,
        "seconds": round(time.perf_counter() - started, 3),
    }
