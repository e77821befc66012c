"""``searchflow stop``: stop what ``searchflow demo`` left running, and nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from searchflow.output import report


def _human(summary: Mapping[str, Any]) -> str:
    stopped = summary["stopped"]
    if not stopped:
        return f"nothing to stop: the demo left nothing running under {summary['home']}"
    lines = [
        f"{role:<10} pid {entry['pid']}: {entry['outcome']}" for role, entry in stopped.items()
    ]
    return "\n".join(lines)


@click.command()
@click.option(
    "--grace",
    default=20.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds each process group gets after SIGTERM before SIGKILL.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def stop(grace: float, as_json: bool) -> None:
    """Stop the Prefect server, the worker and the dashboards that `searchflow demo` left running.

    Only the process groups the demo recorded in $SEARCHFLOW_HOME/demo/processes.json are signalled
    (SIGTERM, then SIGKILL after --grace seconds); a server or worker started by hand is left alone.
    """
    from deployments.background import stop_all
    from searchflow.config import get_settings

    home = get_settings().home_path
    report({"home": str(home), "stopped": stop_all(home, grace)}, as_json, _human)
