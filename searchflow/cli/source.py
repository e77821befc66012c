"""``searchflow source``: the application database as a source system (reconciliation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from searchflow.config import get_settings
from searchflow.output import format_table, report


def _human(summary: Mapping[str, Any]) -> str:
    verdict = "meets" if summary["ok"] else "is below"
    lines = [
        f"accuracy {summary['accuracy']:.6f} ({summary['matching_rows']:,} of "
        f"{summary['source_rows']:,} source rows match) {verdict} the goal {summary['goal']}",
    ]
    for detail in summary["tables"].values():
        rows = {
            level: f"{lv['matching_rows']:,} of {lv['source_rows']:,} match, "
            f"{lv['mismatching']:,} keys differ, {len(lv['days_differing'])} days differ"
            for level, lv in detail["levels"].items()
        }
        if detail["not_built"]:
            rows["not built yet"] = ", ".join(detail["not_built"])
        lines.append(f"{detail['table']}:\n" + format_table(rows))
        for level, lv in detail["levels"].items():
            for miss in lv["mismatching_keys"][:10]:
                lines.append(f"  {level}: {miss['key']}: {miss['problem']}")
    return "\n".join(lines)


@click.group()
def source() -> None:
    """The application database (app.users, app.bookings), read through SEARCHFLOW_SOURCE_URL."""


@source.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def reconcile(as_json: bool) -> None:
    """Compare the source's rows and amounts, per table and day, with the warehouse (raw, staging
    and the SCD2 history): mismatching keys and the accuracy (goal 0.999). Exit 1 below the goal.
    """
    from searchflow.source import reconcile as run

    summary = run(get_settings())
    report(summary, as_json, _human)
    if not summary["ok"]:
        raise SystemExit(1)
