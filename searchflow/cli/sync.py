"""``searchflow sync`` and ``searchflow reconcile``: reverse ETL by hand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from searchflow.config import get_settings
from searchflow.contract import SYNC_NAMES
from searchflow.errors import GateFailed
from searchflow.output import progress_display, report

CHOICES = [*SYNC_NAMES, "all"]


def _human_syncs(summary: Mapping[str, Any]) -> str:
    from searchflow.cli.gating import gate_line
    from searchflow.sync.report import SyncReport

    lines = []
    for data in summary["syncs"].values():
        if data.get("nothing_new"):
            lines.append(
                f"{data['sync']}: nothing new to publish (mart version {data['mart_version']} "
                f"already synced by run {data.get('synced_by')})"
            )
            continue
        fields = {k: v for k, v in data.items() if k in SyncReport.__dataclass_fields__}
        lines.append(SyncReport(**fields).human())
        if "gate" in data and not summary["dry_run"]:
            lines.append(gate_line(data))
    verdict = (
        "dry run: nothing was written"
        if summary["dry_run"]
        else "nothing new to publish: the served marts were already synced"
        if summary.get("nothing_new")
        else (
            "nothing to write: destinations already match the marts"
            if not summary["written"]
            else f"{summary['written']:,} rows/keys written"
        )
    )
    lines.append(f"{verdict} ({summary['seconds']:.2f}s)")
    return "\n".join(lines)


@click.command()
@click.argument("name", type=click.Choice(CHOICES), default="all")
@click.option("--dry-run", is_flag=True, help="Compute the same report, write nothing.")
@click.option("--full-resync", is_flag=True, help="Rewrite every row and key, changed or not.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def sync(name: str, dry_run: bool, full_resync: bool, as_json: bool) -> None:
    """Push marts to Postgres (crm.user_segments, crm.email_queue) and Redis (reco:{user_id}).

    Incremental: only new, changed and removed rows are written; a second sync of an unchanged
    mart writes nothing. Each run is recorded in crm.sync_runs, bad mart rows in crm.sync_rejects.
    Syncs read only the published marts; each destination is then gated (exit code 3 when a gate
    fails), and a mart version a sync already delivered is not written again.
    """
    from flows.gated import gated_syncs

    names = list(SYNC_NAMES) if name == "all" else [name]
    with progress_display("sync", as_json):
        summary, failures = gated_syncs(
            get_settings(), names, dry_run=dry_run, full_resync=full_resync
        )
    report(summary, as_json, _human_syncs)
    if failures:
        error = GateFailed("; ".join(str(f) for f in failures))
        error.outcome = getattr(failures[0], "outcome", None)  # type: ignore[attr-defined]
        raise error


def _human_reconcile(summary: Mapping[str, Any]) -> str:
    lines = []
    for r in summary["syncs"].values():
        state = "in sync" if r["in_sync"] else "DRIFT"
        line = (
            f"{r['sync']:<16} {state:<8} mart {r['mart_rows']:,} rows ({r['rejected']} rejected) | "
            f"missing {r['missing']:,}, extra {r['extra']:,}, different {r['different']:,}"
        )
        for kind in ("missing", "extra", "different"):
            if r[f"{kind}_sample"]:
                line += f"\n{'':<16}   {kind}: {', '.join(map(str, r[kind + '_sample']))}"
        lines.append(line)
    if not summary["in_sync"]:
        lines.append("run `searchflow sync` to repair the drift")
    return "\n".join(lines)


@click.command()
@click.argument("name", type=click.Choice(CHOICES), default="all")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def reconcile(name: str, as_json: bool) -> None:
    """Compare each mart with its destination: missing, extra and different rows (writes nothing)."""
    from searchflow.sync import run_reconcile

    settings = get_settings()
    names = list(SYNC_NAMES) if name == "all" else [name]
    results = {n: run_reconcile(settings, n) for n in names}
    summary = {"syncs": results, "in_sync": all(r["in_sync"] for r in results.values())}
    report(summary, as_json, _human_reconcile)
