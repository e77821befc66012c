"""``searchflow deploy``: prepare the Prefect server in one step (pool, warehouse limit, deployments)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from searchflow.output import format_table, report


def _human(summary: Mapping[str, Any]) -> str:
    pool = f"{summary['pool']} ({summary['pool_type']}{', created' if summary['pool_created'] else ''})"
    limit = (
        f"{summary['concurrency_limit']} (1 slot{', created' if summary['limit_created'] else ''})"
    )
    deployments = {
        name: ", ".join(summary["automations"].get(name, [])) or "no trigger (starts the chain)"
        for name in summary["deployments"]
    }
    return format_table(
        {
            "prefect api": summary["api_url"],
            "work pool": pool,
            "concurrency limit": limit,
            "deployments (triggers)": deployments,
            "alerts": _alerts(summary.get("alerts") or {}),
            "next": f"start a worker: prefect worker start --pool {summary['pool']}",
        }
    )


def _alerts(alerts: Mapping[str, Any]) -> str:
    if not alerts.get("created"):
        return alerts.get("reason", "none")
    return f"webhook block {alerts['block']}; " + ", ".join(alerts["automations"])


@click.command()
@click.option(
    "--pool",
    default=None,
    metavar="NAME",
    help="Work pool for every deployment (default searchflow-local; created as a process pool if missing).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def deploy(pool: str | None, as_json: bool) -> None:
    """Create the work pool and the warehouse concurrency limit, then apply every deployment of
    prefect.yaml with its triggers. Idempotent; needs PREFECT_API_URL pointing at a running server."""
    from deployments import DEFAULT_POOL
    from deployments.prepare import prepare
    from deployments.server import api_healthy, configured_api_url
    from searchflow.errors import ServiceUnavailable

    api_url = configured_api_url()
    if not api_url:
        raise ServiceUnavailable(
            "no Prefect server configured; start one (prefect server start) and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api, or run `searchflow demo`, which starts its own"
        )
    if not api_healthy(api_url, timeout=10):
        raise ServiceUnavailable(
            f"PREFECT_API_URL={api_url} does not answer; start that server or fix the URL"
        )
    prepared = prepare(api_url, pool or DEFAULT_POOL)
    report(prepared.to_dict(), as_json, _human)
