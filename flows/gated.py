"""Write-audit-publish for every stage, without Prefect: what every way of running a stage calls.

A stage run writes its batch, the stage's quality gate audits it, and only a passing batch is
published: the ledger (:mod:`searchflow.ledger`) moves it from ``landed`` to ``published``, or to
``held`` with the gate's reasons. The command line by hand, ``searchflow run`` and the Prefect
flows all go through these functions, so no path skips a gate. A failed gate raises
:class:`~searchflow.errors.GateFailed` AFTER the held state is recorded; the exception carries the
stage summary (``.summary``) so ``--json`` can still print it, and the gate's ``.outcome``.

What each stage holds back:
- generation: the gate judges the in-memory batch before the sink is written; a failing batch goes
  to ``$SEARCHFLOW_HOME/held/generation/<batch_id>/`` instead of its sink;
- ingestion: rows land as today; dbt reads only published ingestion batches;
- transformation: the gate validates the built marts; only a passing build is published;
- sync: reads the published marts and records the mart version it synced; a version this sync
  already delivered is not written again.

The warehouse is opened briefly for each ledger change and closed before the gate runs (the gate
opens the file itself). ``warehouse_guard`` lets a served flow hold its warehouse slot around
those opens.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from searchflow import ledger, warehouse
from searchflow.config import Settings
from searchflow.errors import GateFailed, SearchflowError, UsageError
from searchflow.events import EVENT_TYPES

Guard = Callable[[], AbstractContextManager[Any]]
Builder = Callable[..., dict[str, Any]]
# Called with the gate's full outcome, passed or not (the flows publish it as an artifact).
OnGate = Callable[[Mapping[str, Any]], Any] | None

HELD_DIR = "held"


@contextmanager
def ledger_session(
    settings: Settings, guard: Guard = nullcontext
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read-write warehouse connection with the ledger in place."""
    with guard(), warehouse.session(settings) as con:
        ledger.ensure_ledger(con)
        yield con
        _export(con, settings)


def _export(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Refresh the ledger's Parquet export for readers that never open the DuckDB file."""
    from searchflow.published import export_ops

    export_ops(con, settings.home_path)


def held_dir(settings: Settings, batch_id: str) -> Path:
    """Where a generated batch that failed its gate is kept (JSONL, the sink's layout)."""
    return settings.home_path / HELD_DIR / "generation" / batch_id


# ---------------------------------------------------------------------------------------------
# the audit


def audit(
    stage: str, settings: Settings, summary: Mapping[str, Any], data: Any = None
) -> tuple[dict[str, Any], GateFailed | None]:
    """Run the stage's gate; returns (outcome, the GateFailed when it did not pass)."""
    from searchflow.quality import gate

    try:
        return gate(stage, settings, summary, data=data), None
    except GateFailed as exc:
        return dict(
            getattr(exc, "outcome", None) or {"status": "errored", "message": str(exc)}
        ), exc


def reasons(outcome: Mapping[str, Any]) -> list[str]:
    """The gate's one-line reasons (failed and errored expectations)."""
    found = outcome.get("reasons")
    if found is None:
        found = [*outcome.get("failed_expectations", ()), *outcome.get("errored_expectations", ())]
    return [str(r) for r in found] or ([str(outcome["message"])] if outcome.get("message") else [])


def gate_brief(outcome: Mapping[str, Any], *, forced: bool = False) -> dict[str, Any]:
    """What a stage summary carries of its gate."""
    status = str(outcome.get("status", "errored"))
    return {
        "outcome": "forced" if forced and status != "passed" else status,
        "reasons": reasons(outcome) if status != "passed" else [],
        "evaluated": int(outcome.get("evaluated", 0) or 0),
        "seconds": outcome.get("seconds", 0),
        "report": outcome.get("report"),
        "message": outcome.get("message", ""),
    }


def _counts(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers of a stage summary, for the ledger (nested per-type counts included)."""
    return {
        k: v
        for k, v in summary.items()
        if isinstance(v, int | float | Mapping) and not isinstance(v, bool)
    }


def _verdict(
    settings: Settings,
    stage: str,
    summary: dict[str, Any],
    outcome: dict[str, Any],
    failure: GateFailed | None,
    guard: Guard,
    *,
    forced: bool = False,
    on_gate: OnGate = None,
) -> dict[str, Any]:
    """Write the gate's verdict to the ledger and the summary; raise a held batch's GateFailed."""
    if on_gate is not None:
        on_gate(outcome)
    status = str(outcome.get("status", "errored"))
    brief = gate_brief(outcome, forced=forced)
    summary["gate"] = brief
    with ledger_session(settings, guard) as con:
        ledger.judge(con, summary["batch_id"], status, brief["reasons"], forced=forced)
    if failure is not None and not forced:
        raise _held(stage, summary, outcome, failure)
    return summary


def _held(
    stage: str, summary: Mapping[str, Any], outcome: Mapping[str, Any], cause: Exception
) -> GateFailed:
    error = GateFailed(f"{stage} batch {summary['batch_id']} held: {cause}")
    error.outcome = outcome  # type: ignore[attr-defined]
    error.summary = summary  # type: ignore[attr-defined]
    return error


# ---------------------------------------------------------------------------------------------
# generation


def gated_generate(
    settings: Settings,
    config: Any,
    sink: str = "jsonl",
    out: Path | str | None = None,
    *,
    flow_run_id: str | None = None,
    warehouse_guard: Guard = nullcontext,
    on_gate: OnGate = None,
) -> dict[str, Any]:
    """Generate a batch, gate it in memory, then write it to ``sink`` (pass) or hold it (fail)."""
    from generator import generate
    from generator.sinks import check_sink, default_out, prepare_out

    started = time.perf_counter()
    check_sink(sink)
    target = Path(out) if out is not None else None
    if sink == "jsonl":  # fail fast, before simulating anything
        target = prepare_out(target if target is not None else default_out(settings))
    batch = generate(config)
    summary: dict[str, Any] = {
        "batch_id": batch.batch_id,
        "sink": sink,
        "out": str(target) if target is not None else "",
        **batch.counts(),
    }
    outcome, failure = audit("generation", settings, summary, data=batch)
    if failure is None:
        summary.update(_emit(settings, config, batch, sink, target))
    else:
        summary["held"] = str(_hold(settings, batch))
    summary["seconds"] = round(time.perf_counter() - started, 3)
    with ledger_session(settings, warehouse_guard) as con:
        ledger.record(
            con,
            batch.batch_id,
            "generation",
            state="landed",
            source=sink,
            counts={**_counts(summary), "out": summary["out"], "config": config.canonical()},
            flow_run_id=flow_run_id,
        )
    return _verdict(
        settings, "generation", summary, outcome, failure, warehouse_guard, on_gate=on_gate
    )


def _emit(
    settings: Settings, config: Any, batch: Any, sink: str, target: Path | None
) -> dict[str, Any]:
    """Send a passing batch to its sink (in real time when the config is live)."""
    from generator import run, write

    if config.live:
        # the trickle's own counts: an interrupted one sent only part of the batch
        _, sent = run(settings, config, sink, target)
        return {k: v for k, v in sent.items() if k != "seconds"}
    return {"out": str(write(batch, sink, settings, target)["out"])}


def _hold(settings: Settings, batch: Any) -> Path:
    from generator import write

    where = held_dir(settings, batch.batch_id)
    write(batch, "jsonl", settings, where)
    return where


def release_generation(
    settings: Settings, row: Mapping[str, Any], *, force: bool = False, guard: Guard = nullcontext
) -> dict[str, Any]:
    """Gate a held generated batch again (regenerated from its recorded config, byte for byte) and
    on pass, or with ``force``, write it to the sink it was meant for."""
    from generator import config_from_options, generate

    counts = row.get("counts") or {}
    if "config" not in counts:
        raise SearchflowError(
            f"batch {row['batch_id']} has no recorded generator config; generate it again instead"
        )
    config = config_from_options(**{**counts["config"], "live": False, "live_start": None})
    batch = generate(config)
    if batch.batch_id != row["batch_id"]:
        raise SearchflowError(
            f"regenerating batch {row['batch_id']} gave {batch.batch_id}; "
            "the generator changed since, generate it again instead"
        )
    sink = str(row.get("source") or "jsonl")
    target = Path(counts["out"]) if counts.get("out") else None
    summary: dict[str, Any] = {"batch_id": batch.batch_id, "sink": sink, **batch.counts()}
    outcome, failure = audit("generation", settings, summary, data=batch)
    if failure is None or force:
        summary.update(_emit(settings, config, batch, sink, target))
        shutil.rmtree(held_dir(settings, batch.batch_id), ignore_errors=True)
    return _verdict(settings, "generation", summary, outcome, failure, guard, forced=force)


# ---------------------------------------------------------------------------------------------
# ingestion

_UNRECORDED = """
SELECT batch_id, any_value(source) AS source FROM (
    {unions}
) WHERE batch_id NOT IN (SELECT batch_id FROM ops.batches)
GROUP BY batch_id ORDER BY batch_id
"""


def unrecorded_ingestions(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Raw batches the ledger does not know: landed by a run that died before its verdict."""
    tables = [warehouse.raw_table(t) for t in EVENT_TYPES]
    if not all(warehouse.table_exists(con, t) for t in tables):
        return []
    unions = " UNION ALL ".join(f"SELECT DISTINCT batch_id, source FROM {t}" for t in tables)
    return [(r[0], r[1]) for r in con.execute(_UNRECORDED.format(unions=unions)).fetchall()]


def recover_ingestions(settings: Settings, guard: Guard = nullcontext) -> list[dict[str, Any]]:
    """Gate every ingestion batch left ``landed`` (or unrecorded) by a run that died."""
    if not settings.warehouse_path.exists():
        return []
    with ledger_session(settings, guard) as con:
        for batch_id, source in unrecorded_ingestions(con):
            ledger.record(con, batch_id, "ingestion", source=source)
        pending = ledger.list_batches(con, state="landed", stage="ingestion")
    results = []
    for row in reversed(pending):  # oldest first
        summary = {"batch_id": row["batch_id"], "source": row["source"], "recovered": True}
        outcome, failure = audit("ingestion", settings, summary)
        try:
            results.append(_verdict(settings, "ingestion", summary, outcome, failure, guard))
        except GateFailed:
            results.append(summary)
    return results


def gated_ingest(
    settings: Settings,
    source: str,
    path: Path | str | None = None,
    *,
    consumer: str | None = None,
    flow_run_id: str | None = None,
    parent_batch_id: str = "",
    warehouse_guard: Guard = nullcontext,
    on_gate: OnGate = None,
) -> dict[str, Any]:
    """Land what is new from ``source``, gate the landed batch, publish or hold it.

    A batch that read nothing new (or only duplicates) is neither recorded nor gated. Batches a
    crashed run left behind are gated first, so their rows do not wait for a person.
    """
    from searchflow.ingest import run_ingestion

    recovered = recover_ingestions(settings, warehouse_guard)
    with warehouse_guard():
        summary = run_ingestion(settings, source, path=path, consumer=consumer)
    if recovered:
        summary["recovered"] = [
            {"batch_id": r["batch_id"], "gate": r.get("gate", {}).get("outcome")} for r in recovered
        ]
    if not summary.get("landed") and not summary.get("dead_letters"):
        summary["gate"] = None
        return summary
    parents = [*summary.get("parents", ()), *([parent_batch_id] if parent_batch_id else [])]
    with ledger_session(settings, warehouse_guard) as con:
        ledger.record(
            con,
            summary["batch_id"],
            "ingestion",
            parents=parents,
            source=source,
            counts=_counts(summary),
            flow_run_id=flow_run_id,
        )
    outcome, failure = audit("ingestion", settings, summary)
    return _verdict(
        settings, "ingestion", summary, outcome, failure, warehouse_guard, on_gate=on_gate
    )


def release_ingestion(
    settings: Settings, row: Mapping[str, Any], *, force: bool = False, guard: Guard = nullcontext
) -> dict[str, Any]:
    """Gate a held ingestion batch again; its rows become visible to the next transform on pass."""
    summary: dict[str, Any] = {"batch_id": row["batch_id"], "source": row.get("source")}
    summary.update(row.get("counts") or {})
    outcome, failure = audit("ingestion", settings, summary)
    return _verdict(settings, "ingestion", summary, outcome, failure, guard, forced=force)


def delete_ingestion_rows(con: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, int]:
    """Delete an ingestion batch's raw event rows (dead letters and quarantine stay)."""
    deleted = {}
    for event_type in EVENT_TYPES:
        table = warehouse.raw_table(event_type)
        if warehouse.table_exists(con, table):
            row = con.execute(
                f"DELETE FROM {table} WHERE batch_id = ? RETURNING 1", [batch_id]
            ).fetchall()
            deleted[event_type] = len(row)
    return deleted


# ---------------------------------------------------------------------------------------------
# transformation


def new_version() -> str:
    """A mart version: sortable by time, unique per run."""
    return datetime.now(UTC).strftime("t%Y%m%dt%H%M%S") + uuid.uuid4().hex[:4]


_PENDING_INGESTIONS = """
SELECT batch_id FROM ops.batches
WHERE stage = 'ingestion' AND state = 'published'
  AND batch_id NOT IN (
      SELECT unnest(parents) FROM ops.batches
      WHERE stage = 'transformation' AND state = 'published'
  )
ORDER BY batch_id
"""


def pending_ingestions(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Published ingestion batches no published mart version has built in yet."""
    return [r[0] for r in con.execute(_PENDING_INGESTIONS).fetchall()]


def gated_transform(
    settings: Settings,
    *,
    full_refresh: bool = False,
    select: str | None = None,
    flow_run_id: str | None = None,
    parent_batch_id: str = "",
    build: Builder | None = None,
    warehouse_guard: Guard = nullcontext,
    on_gate: OnGate = None,
) -> dict[str, Any]:
    """Build the marts, gate them, publish on pass; on fail the served version stays.

    ``build`` runs dbt (``searchflow.transform.run_transform`` by default; the Prefect flow passes
    its prefect-dbt builder). The run's batch id is its mart version; its parents are the
    published ingestion batches this build takes in for the first time.
    """
    from searchflow import transform as stage

    builder = build or stage.run_transform
    with warehouse_guard():
        summary = builder(settings, full_refresh=full_refresh, select=select)
    version = str(summary.get("version") or new_version())
    summary["version"] = version
    summary["batch_id"] = version
    with ledger_session(settings, warehouse_guard) as con:
        parents = pending_ingestions(con)
        if parent_batch_id and parent_batch_id not in parents:
            parents.append(parent_batch_id)
        ledger.record(
            con,
            version,
            "transformation",
            parents=parents,
            counts=_counts(summary),
            flow_run_id=flow_run_id,
        )
    summary["parents"] = parents
    outcome, failure = audit("transformation", settings, summary)
    return _verdict(
        settings, "transformation", summary, outcome, failure, warehouse_guard, on_gate=on_gate
    )


# ---------------------------------------------------------------------------------------------
# sync


def served_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The mart version syncs read: the latest publication, else the latest published build."""
    published = ledger.published_version(con)
    if published is not None:
        return str(published["version"])
    rows = ledger.list_batches(con, state="published", stage="transformation", limit=1)
    return rows[0]["batch_id"] if rows else None


def _already_synced(con: duckdb.DuckDBPyConnection, name: str, version: str) -> str | None:
    row = con.execute(
        "SELECT batch_id FROM ops.batches WHERE stage = 'sync' AND source = ? "
        "AND state = 'published' AND list_contains(parents, ?) ORDER BY created_at DESC LIMIT 1",
        [name, version],
    ).fetchone()
    return row[0] if row else None


def gated_sync(
    settings: Settings,
    name: str,
    *,
    flow_run_id: str | None = None,
    dry_run: bool = False,
    full_resync: bool = False,
    parent_batch_id: str = "",
    warehouse_guard: Guard = nullcontext,
    on_gate: OnGate = None,
    **sync_options: Any,
) -> dict[str, Any]:
    """Sync the served mart version to its destination, gate the destination, record it.

    A version this sync already delivered (and passed) is not written again: the summary says
    ``nothing_new`` (a full resync writes anyway). ``sync_options`` go to
    :func:`searchflow.sync.run_sync` (attempts, pg_connect).
    """
    from searchflow.sync import run_sync

    if name not in _sync_names():
        raise UsageError(f"unknown sync {name!r}; use one of {', '.join(_sync_names())}")
    with ledger_session(settings, warehouse_guard) as con:
        version = served_version(con) or parent_batch_id or None
        done = _already_synced(con, name, version) if version else None
    if done and not full_resync:
        return {
            "sync": name,
            "batch_id": done,
            "mart_version": version,
            "nothing_new": True,
            "dry_run": dry_run,
            "read": 0,
            "inserted": 0,
            "updated": 0,
            "unchanged": 0,
            "deleted": 0,
            "failed": 0,
            "seconds": 0.0,
            "gate": None,
        }
    report = run_sync(
        settings,
        name,
        dry_run,
        full_resync,
        batch_id=version,
        warehouse_guard=warehouse_guard,
        **sync_options,
    )
    summary: dict[str, Any] = {**report, "mart_version": version, "nothing_new": False}
    if dry_run:
        summary["gate"] = None
        return summary
    summary["batch_id"] = report["run_id"]
    with ledger_session(settings, warehouse_guard) as con:
        ledger.record(
            con,
            report["run_id"],
            "sync",
            parents=[version] if version else [],
            source=name,
            counts=_counts(report),
            flow_run_id=flow_run_id,
        )
    outcome, failure = audit("sync", settings, summary)
    return _verdict(settings, "sync", summary, outcome, failure, warehouse_guard, on_gate=on_gate)


def _sync_names() -> tuple[str, ...]:
    from searchflow.contract import SYNC_NAMES

    return SYNC_NAMES


def gated_syncs(
    settings: Settings, names: Sequence[str], **options: Any
) -> tuple[dict[str, Any], list[GateFailed]]:
    """Several syncs in order, each gated on its own; a held sync does not stop the next one."""
    started = time.perf_counter()
    reports: dict[str, Any] = {}
    failures: list[GateFailed] = []
    for name in names:
        try:
            reports[name] = gated_sync(settings, name, **options)
        except GateFailed as exc:
            reports[name] = getattr(exc, "summary", {"sync": name})
            failures.append(exc)
    keys = ("read", "inserted", "updated", "unchanged", "deleted", "failed")
    totals = {k: sum(int(r.get(k, 0) or 0) for r in reports.values()) for k in keys}
    summary = {
        "dry_run": bool(options.get("dry_run")),
        "full_resync": bool(options.get("full_resync")),
        "syncs": reports,
        **totals,
        "written": totals["inserted"] + totals["updated"] + totals["deleted"],
        "nothing_new": all(r.get("nothing_new") for r in reports.values()),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return summary, failures


# ---------------------------------------------------------------------------------------------
# releasing and discarding by hand


def release(
    settings: Settings, batch_id: str, *, force: bool = False, guard: Guard = nullcontext
) -> dict[str, Any]:
    """Gate a held batch again; publish it on pass or with ``force`` (recorded as forced)."""
    with ledger_session(settings, guard) as con:
        row = ledger.get(con, batch_id)
    if row is None:
        raise SearchflowError(
            f"no batch {batch_id!r} in the ledger; `searchflow batches list` shows the known ones"
        )
    if row["state"] not in ("held", "landed"):
        raise UsageError(f"batch {batch_id} is {row['state']}; only a held batch can be released")
    if row["stage"] == "generation":
        return release_generation(settings, row, force=force, guard=guard)
    if row["stage"] == "ingestion":
        return release_ingestion(settings, row, force=force, guard=guard)
    summary: dict[str, Any] = {"batch_id": batch_id, **(row.get("counts") or {})}
    if row["stage"] == "sync":
        summary["sync"] = row["source"]
    outcome, failure = audit(row["stage"], settings, summary)
    return _verdict(settings, row["stage"], summary, outcome, failure, guard, forced=force)


def discard(settings: Settings, batch_id: str, *, guard: Guard = nullcontext) -> dict[str, Any]:
    """Take a batch out of the data: a generated batch's held files, an ingestion batch's raw rows
    (dead letters and quarantine stay). The next transform rebuilds the marts without it."""
    with ledger_session(settings, guard) as con:
        row = ledger.get(con, batch_id)
        if row is None:
            raise SearchflowError(
                f"no batch {batch_id!r} in the ledger; `searchflow batches list` shows the known ones"
            )
        removed: dict[str, Any] = {}
        if row["stage"] == "ingestion":
            con.execute("BEGIN")
            try:
                removed = delete_ingestion_rows(con, batch_id)
                ledger.discard(con, batch_id)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        else:
            ledger.discard(con, batch_id)
        updated = ledger.get(con, batch_id) or {}
    if row["stage"] == "generation":
        where = held_dir(settings, batch_id)
        if where.exists():
            shutil.rmtree(where)
            removed["held"] = str(where)
    return {**updated, "removed": removed}
