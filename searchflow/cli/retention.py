"""``searchflow retention``: enforce the retention policy on the warehouse."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from searchflow.config import get_settings
from searchflow.output import format_table, report


def _human(summary: Mapping[str, Any]) -> str:
    if summary["as_of"] is None:
        return "no events in the warehouse yet: nothing has an age"
    verb = "would remove" if summary["dry_run"] else "removed"
    rows = {
        table: f"{v['removed']:,} rows older than {v['days']} days (before {v['cutoff']})"
        for table, v in summary["tables"].items()
    }
    return (
        f"as of {summary['as_of']} (the latest event time): {verb} {summary['removed']:,} rows\n"
        + format_table(rows)
    )


@click.group()
def retention() -> None:
    """The retention policy (SEARCHFLOW_RETENTION_*_DAYS), measured against the latest event."""


@retention.command()
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def apply(dry_run: bool, as_json: bool) -> None:
    """Delete raw events, dead letters and quarantined rows older than the policy keeps; the
    removal is recorded in ops.audit."""
    from searchflow import retention as policy
    from searchflow import warehouse

    settings = get_settings()
    with warehouse.session(settings) as con:
        warehouse.ensure_raw_schema(con)
        summary = policy.apply(con, settings, dry_run=dry_run)
    report(summary, as_json, _human)
