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
every open, the gates' reads included: DuckDB lets no process read the file while another writes
it, and the syncs run side by side.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import duckdb

from searchflow import audit as audit_log
from searchflow import ledger, warehouse
from searchflow.config import Settings
from searchflow.errors import GateFailed, SearchflowError, UsageError
from searchflow.events import EVENT_TYPES
from searchflow.output import report_progress

Guard = Callable[[], AbstractContextManager[Any]]
# Called with the gate's full outcome, passed or not (the flows publish it as an artifact).
OnGate = Callable[[Mapping[str, Any]], Any] | None


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


# ---------------------------------------------------------------------------------------------
# the audit


def audit(
    stage: str, settings: Settings, summary: Mapping[str, Any], data: Any = None
) -> tuple[dict[str, Any], GateFailed | None]:
    """Run the stage's gate; returns (outcome, the GateFailed when it did not pass)."""
    from searchflow.quality import gate

    report_progress(f"{stage} gate")
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
    forced = forced and status != "passed"  # a batch that passes needs no forcing
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
    """Build a batch, gate it in memory, then write it to ``sink`` (pass) or hold it (fail)."""
    from generator import build, prepare_target, write_batch, write_held

    started = time.perf_counter()
    target = prepare_target(settings, sink, Path(out) if out is not None else None)
    report_progress(f"simulating {config.events:,} events")
    batch = build(config)
    if sink == "jsonl" and hasattr(batch, "stage"):
        batch.stage(target)  # a batch in parts writes its files while the gate surveys it
    summary: dict[str, Any] = {
        "batch_id": batch.batch_id,
        "sink": sink,
        "out": str(target) if target is not None else "",
    }
    outcome, failure = audit("generation", settings, summary, data=batch)
    summary.update(batch.counts())  # after the gate: a batch in parts counts in the gate's pass
    if failure is None:
        report_progress(f"writing to {sink}")
        summary.update(write_batch(settings, batch, sink, target))
    else:
        summary["held"] = str(write_held(settings, batch, sink, target))
    summary["seconds"] = round(time.perf_counter() - started, 3)
    with ledger_session(settings, warehouse_guard) as con:
        ledger.record(
            con,
            batch.batch_id,
            "generation",
            source=sink,
            counts={**_counts(summary), "out": summary["out"], "config": config.canonical()},
            flow_run_id=flow_run_id,
        )
    return _verdict(
        settings, "generation", summary, outcome, failure, warehouse_guard, on_gate=on_gate
    )


def release_generation(
    settings: Settings, row: Mapping[str, Any], *, force: bool = False, guard: Guard = nullcontext
) -> dict[str, Any]:
    """Gate a held generated batch again and on pass, or with ``force``, send its held lines to
    the sink it was meant for.

    The gate judges the simulation, which the held JSONL does not carry: the batch is rebuilt from
    its recorded config (same config, same bytes) and must come out under the same id.
    """
    from generator import build, config_from_options, read_manifest, release_held

    batch_id = str(row["batch_id"])
    manifest = read_manifest(settings, batch_id)
    config = config_from_options(**{**manifest["config"], "live": False, "live_start": None})
    batch = build(config)
    if batch.batch_id != batch_id:
        raise SearchflowError(
            f"rebuilding batch {batch_id} gave {batch.batch_id} (the generator changed since); "
            "discard it and generate again"
        )
    summary: dict[str, Any] = {"batch_id": batch_id, "sink": manifest["sink"]}
    outcome, failure = audit("generation", settings, summary, data=batch)
    summary.update(batch.counts())  # after the gate: a batch in parts counts in the gate's pass
    if failure is None or force:
        summary.update(release_held(settings, batch_id))
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
    if not settings.warehouse_exists:
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
    extract: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Land what is new from ``source``, gate the landed batch, publish or hold it.

    ``extract``: the app source's options (``full``, ``since``, ``until``; see run_ingestion).

    A batch that read nothing new (or only duplicates) is neither recorded nor gated. Batches a
    crashed run left behind are gated first, so their rows do not wait for a person.
    """
    from searchflow.ingest import run_ingestion

    recovered = recover_ingestions(settings, warehouse_guard)
    with warehouse_guard():
        summary = run_ingestion(
            settings,
            source,
            path=path,
            consumer=consumer,
            flow_run_id=flow_run_id,
            **dict(extract or {}),
        )
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


# ---------------------------------------------------------------------------------------------
# transformation


def gated_transform(
    settings: Settings,
    *,
    full_refresh: bool = False,
    select: str | None = None,
    flow_run_id: str | None = None,
    parent_batch_id: str = "",
    invoke: Any = None,
    warehouse_guard: Guard = nullcontext,
    on_gate: OnGate = None,
) -> dict[str, Any]:
    """Build a candidate, gate it, publish it on pass; on fail the served version stays.

    The run's batch id is its mart version; its parents are the published ingestion batches this
    build takes in for the first time. ``invoke`` runs dbt (in-process by default; the Prefect
    flow passes prefect-dbt's). A held candidate is kept (the newest ones are) so that
    ``searchflow batches release`` can publish it later.
    """
    from searchflow import transform as stage

    with warehouse_guard():
        summary = stage.build_candidate(
            settings, full_refresh=full_refresh, select=select, invoke=invoke
        )
    version = str(summary["version"])
    summary["batch_id"] = version
    parents = sorted({*summary.get("parents", ()), *([parent_batch_id] if parent_batch_id else [])})
    summary["parents"] = parents
    with ledger_session(settings, warehouse_guard) as con:
        ledger.record(
            con,
            version,
            "transformation",
            parents=parents,
            counts=_counts(summary),
            flow_run_id=flow_run_id,
        )
    with warehouse_guard():  # the gate reads the candidate from the file
        outcome, failure = audit("transformation", settings, summary)
    if failure is None and not summary.get("complete", True):
        outcome = {
            **outcome,
            "status": "failed",
            "reasons": [
                f"candidate {version} lacks marts (a --select build before any publication); "
                "run `searchflow transform` in full to publish"
            ],
        }
        failure = GateFailed(outcome["reasons"][0])
    if failure is None:
        summary.update(_publish(settings, summary, warehouse_guard, invoke=invoke))
    return _verdict(
        settings, "transformation", summary, outcome, failure, warehouse_guard, on_gate=on_gate
    )


def _publish(
    settings: Settings,
    summary: Mapping[str, Any],
    guard: Guard,
    *,
    forced: bool = False,
    invoke: Any = None,
) -> dict[str, Any]:
    """Serve a gated candidate; the summary gains the snapshot's node counts and the Parquet."""
    from searchflow import transform as stage

    with guard():
        published = stage.publish(
            settings,
            str(summary["version"]),
            forced=forced,
            parents=summary.get("parents") or [],
            invoke=invoke,
        )
    merged = stage.merge_counts(summary, published["snapshot"])
    return {
        **{k: merged[k] for k in ("nodes", "passed", "warned", "failed", "skipped", "by_type")},
        "published": True,
        "previous": published["previous"],
        "parquet": published["parquet"],
    }


def release_transformation(
    settings: Settings, row: Mapping[str, Any], *, force: bool = False, guard: Guard = nullcontext
) -> dict[str, Any]:
    """Gate a held candidate again; publish it on pass or with ``force``."""
    from searchflow import transform as stage

    version = str(row["batch_id"])
    summary: dict[str, Any] = {
        **(row.get("counts") or {}),
        "batch_id": version,
        "version": version,
        "schemas": stage.schemas(version),
        "parents": row.get("parents") or [],
    }
    outcome, failure = audit("transformation", settings, summary)
    if failure is None or force:
        summary.update(_publish(settings, summary, guard, forced=force))
    return _verdict(settings, "transformation", summary, outcome, failure, guard, forced=force)


# ---------------------------------------------------------------------------------------------
# sync


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
    """Sync the published marts to the destination, gate the destination, record it.

    :func:`searchflow.sync.run_sync` reads the published version and skips one this sync already
    delivered (``nothing_new``: no write, no gate, no ledger row; a full resync writes anyway).
    ``sync_options`` go to it (attempts, pg_connect). The ledger row's parent is the mart version
    synced (``parent_batch_id``, the version from the trigger, when the marts had none).
    """
    from searchflow.sync import run_sync

    if name not in _sync_names():
        raise UsageError(f"unknown sync {name!r}; use one of {', '.join(_sync_names())}")
    report = run_sync(
        settings,
        name,
        dry_run,
        full_resync,
        warehouse_guard=warehouse_guard,
        **sync_options,
    )
    summary: dict[str, Any] = dict(report)
    if dry_run or summary.get("nothing_new"):
        summary["gate"] = None
        return summary
    version = summary.get("mart_version") or parent_batch_id or None
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
        audit_log.record(
            con,
            "sync",
            target=name,
            touched={
                "run_id": report["run_id"],
                "mart_version": version,
                **{k: report.get(k, 0) for k in ("inserted", "updated", "deleted")},
            },
            flow_run_id=flow_run_id,
        )
    with warehouse_guard():  # the gate counts the mart's rows in the file
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
    for done, name in enumerate(names):
        report_progress(name, done, len(names))
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
    """Gate a held batch again; publish it on pass or with ``force`` (recorded as forced).

    Audited (``ops.audit``) whatever the verdict: a release that fails its gate again is a write
    attempt too.
    """
    outcome = "failed"
    try:
        result = _release(settings, batch_id, force=force, guard=guard)
        outcome = (result.get("gate") or {}).get("outcome") or "released"
        return result
    except GateFailed:
        outcome = "held"
        raise
    finally:
        with ledger_session(settings, guard) as con:
            row = ledger.get(con, batch_id)
            if row is not None:
                touched = {"stage": row["stage"], "state": row["state"], "outcome": outcome}
                audit_log.record(con, "release", target=batch_id, touched=touched)


def _release(
    settings: Settings, batch_id: str, *, force: bool = False, guard: Guard = nullcontext
) -> dict[str, Any]:
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
    if row["stage"] == "transformation":
        return release_transformation(settings, row, force=force, guard=guard)
    # a sync: what it wrote is at the destination already; its gate checks it again
    summary: dict[str, Any] = {**(row.get("counts") or {}), "batch_id": batch_id}
    summary["sync"] = row["source"]
    outcome, failure = audit("sync", settings, summary)
    return _verdict(settings, "sync", summary, outcome, failure, guard, forced=force)


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
            from searchflow.ingest.discard import discard_ingestion_batch
            from searchflow.transform import discard_from_models

            con.execute("BEGIN")
            try:
                removed = {
                    "raw": discard_ingestion_batch(con, batch_id),
                    "models": discard_from_models(con, batch_id),
                }
                ledger.discard(con, batch_id)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        else:
            ledger.discard(con, batch_id)
        updated = ledger.get(con, batch_id) or {}
    if row["stage"] == "generation":
        from generator import drop_held, held_path

        where = held_path(settings, batch_id)
        if drop_held(settings, batch_id):
            removed["held"] = str(where)
    with ledger_session(settings, guard) as con:
        audit_log.record(
            con, "discard", target=batch_id, touched={"stage": row["stage"], **removed}
        )
    return {**updated, "removed": removed}
