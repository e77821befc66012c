"""``searchflow batches``: the batch ledger by hand (list, show, release, discard).

Every stage run is one batch in ``ops.batches``; a batch whose gate failed is ``held``. These
commands show the story of a batch from generation to the destinations, run a held batch's gate
again (or publish it anyway with ``--force``, recorded as forced), and take a batch out of the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from searchflow.config import get_settings
from searchflow.ledger import STATES
from searchflow.output import report


def _when(value: Any) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value else "-"


def _numbers(counts: Mapping[str, Any] | None) -> str:
    shown = ("events", "read", "landed", "dead_letters", "nodes", "inserted", "updated", "deleted")
    parts = [f"{k} {counts[k]:,}" for k in shown if isinstance((counts or {}).get(k), int)]
    return ", ".join(parts)


def _line(row: Mapping[str, Any]) -> str:
    gate = row.get("gate_outcome") or "not gated"
    where = f" {row['source']}" if row.get("source") else ""
    return (
        f"{row['batch_id']:<36} {row['stage']:<14} {row['state']:<9} gate {gate:<8}{where}"
        f"  {_numbers(row.get('counts'))}"
    )


def _human_list(summary: Mapping[str, Any]) -> str:
    if not summary["batches"]:
        return "no batches" + (f" in state {summary['state']}" if summary["state"] else "")
    return "\n".join(_line(row) for row in summary["batches"])


def _human_show(summary: Mapping[str, Any]) -> str:
    lines = []
    for row in summary["lineage"]:
        mark = "*" if row["batch_id"] == summary["batch_id"] else " "
        lines.append(f"{mark} {_line(row)}")
        lines.append(
            f"    created {_when(row['created_at'])}, published {_when(row['published_at'])}"
            + (", FORCED" if row["forced"] else "")
            + (f", discarded {_when(row['discarded_at'])}" if row["discarded_at"] else "")
            + (f", flow run {row['flow_run_id']}" if row.get("flow_run_id") else "")
        )
        if row["parents"]:
            lines.append(f"    parents {', '.join(row['parents'])}")
        for reason in row.get("gate_reasons") or ():
            lines.append(f"    - {reason}")
    return "\n".join(lines)


def _open(settings: Any):
    from flows.gated import ledger_session

    return ledger_session(settings)


@click.group()
def batches() -> None:
    """The batch ledger: what each stage run produced and whether its gate published it."""


@batches.command("list")
@click.option(
    "--state", type=click.Choice(STATES), default=None, help="Only batches in this state."
)
@click.option("--stage", default=None, help="Only batches of this stage.")
@click.option("--limit", type=int, default=50, show_default=True, help="Newest first, at most.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def list_(state: str | None, stage: str | None, limit: int, as_json: bool) -> None:
    """The batches, newest first."""
    from searchflow import ledger
    from searchflow.contract import STAGES
    from searchflow.errors import UsageError

    if stage is not None and stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}")
    with _open(get_settings()) as con:
        rows = ledger.list_batches(con, state=state, stage=stage, limit=limit)
    report({"state": state, "batches": rows}, as_json, _human_list)


@batches.command()
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def show(batch_id: str, as_json: bool) -> None:
    """The whole story of a batch: its ancestors and descendants, with counts and gate outcomes
    at each step (generated, landed, published, in which mart version, synced where)."""
    from searchflow import ledger
    from searchflow.errors import SearchflowError

    with _open(get_settings()) as con:
        row = ledger.get(con, batch_id)
        if row is None:
            raise SearchflowError(
                f"no batch {batch_id!r} in the ledger; `searchflow batches list` shows the known ones"
            )
        story = ledger.lineage(con, batch_id)
    report({"batch_id": batch_id, "batch": row, "lineage": story}, as_json, _human_show)


@batches.command()
@click.argument("batch_id")
@click.option("--force", is_flag=True, help="Publish even if the gate fails (recorded as forced).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def release(batch_id: str, force: bool, as_json: bool) -> None:
    """Run a held batch's gate again; publish it on pass (exit 3 when it still fails)."""
    from flows.gated import release as release_batch
    from searchflow.cli.gating import gate_line, run_and_report

    run_and_report(
        lambda: release_batch(get_settings(), batch_id, force=force),
        as_json,
        lambda s: (
            f"batch {s['batch_id']}: "
            + gate_line(s).removeprefix("gate     ")
            + ("\npublished (forced)" if force and s["gate"]["outcome"] == "forced" else "")
        ),
    )


@batches.command()
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def discard(batch_id: str, as_json: bool) -> None:
    """Take a batch out of the data (raw rows of an ingestion batch, a generated batch's held
    files); dead letters and quarantine stay. The next transform rebuilds the marts without it."""
    from flows.gated import discard as discard_batch

    summary = discard_batch(get_settings(), batch_id)
    report(summary, as_json, _human_discard)


def _human_discard(summary: Mapping[str, Any]) -> str:
    removed = summary["removed"]
    raw = removed.get("raw") or {}
    line = f"batch {summary['batch_id']} discarded"
    if raw:
        line += f": {sum(raw.values()):,} raw rows removed (dead letters and quarantine kept)"
        line += "; run `searchflow transform` to rebuild the marts without it"
    if removed.get("held"):
        line += f": held files {removed['held']} removed"
    return line
