"""``searchflow forget USER_ID``: the right to be forgotten."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from searchflow.config import get_settings
from searchflow.output import format_table, report


def _human(summary: Mapping[str, Any]) -> str:
    rows = {k: v for k, v in summary.items() if k not in ("user_hash", "audit_id")}
    return (
        f"forgotten; kept only as hash {summary['user_hash'][:16]}... in ops.suppressed_users "
        f"(audit {summary['audit_id']})\n" + format_table(rows)
    )


@click.command()
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def forget(user_id: str, as_json: bool) -> None:
    """Erase USER_ID (and their email addresses) from the warehouse, crm.*, Redis, the data
    folder's files and the published Parquet; later ingestion drops the user's records. Recorded
    in ops.audit under the id's keyed hash (SEARCHFLOW_PII_KEY), never the id."""
    from flows.forget import forget_user

    report(forget_user(get_settings(), user_id), as_json, _human)
