"""``searchflow transform``: build the dbt models (staging to marts), or generate their docs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from searchflow.cli.gating import gate_line, run_and_report
from searchflow.config import get_settings
from searchflow.output import format_table, report


def _human(summary: Mapping[str, Any]) -> str:
    if "docs" in summary:
        return f"dbt docs written; open {summary['docs']}"
    head = {
        k: summary[k]
        for k in ("nodes", "passed", "warned", "failed", "skipped", "seconds", "as_of", "version")
        if k in summary
    }
    per_type = {
        kind: f"{c['run']} run, {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"
        for kind, c in summary.get("by_type", {}).items()
    }
    return format_table({**head, "by type": per_type}) + "\n" + gate_line(summary)


@click.command()
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from scratch.")
@click.option(
    "--select", "select", default=None, metavar="SELECTOR", help="dbt selector, e.g. marts+."
)
@click.option("--docs", is_flag=True, help="Run `dbt docs generate` and print the index.html path.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def transform(full_refresh: bool, select: str | None, docs: bool, as_json: bool) -> None:
    """Build the dbt project: staging views, intermediate tables, marts, snapshot and tests.

    The transformation gate then judges the built marts; only a passing build is published (a
    failing one exits 3 and the previous publication keeps serving).
    """
    from searchflow import transform as stage

    settings = get_settings()
    if docs:
        index = stage.generate_docs(settings)
        report({"docs": str(index)}, as_json, _human)
        return
    from flows.gated import gated_transform

    run_and_report(
        lambda: gated_transform(settings, full_refresh=full_refresh, select=select),
        as_json,
        _human,
    )
