"""``searchflow demo``: the served chain end to end, on a real Prefect server, and where to look."""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from typing import Any

import click

from searchflow.output import format_table, report


def _human(summary: Mapping[str, Any]) -> str:
    from deployments.follow import format_rows

    out = [format_rows(summary["runs"])]
    if summary["outcome"] == "completed":
        out.append("\nevery stage completed; the downstream runs were started by their triggers")
    else:
        out.append(
            f"\nchain {summary['outcome']} at {summary['stopped_at']}: {summary['reason']}\n"
            "nothing downstream of that stage ran"
        )
    if summary.get("hops"):
        hops = ", ".join(f"{h['to']} {h['seconds']:.1f}s" for h in summary["hops"])
        out.append(f"trigger hops (event -> next run running): {hops}")
    out.append("\nwhere to look:")
    out.append(format_table(summary["where"]))
    return "\n".join(out)


@click.command()
@click.option(
    "--events",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Events to generate.",
)
@click.option(
    "--seed", default=42, show_default=True, type=int, help="Seed of the generated batch."
)
@click.option(
    "--pool", default=None, metavar="NAME", help="Process work pool (default searchflow-local)."
)
@click.option(
    "--timeout",
    default=900.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds to wait for the chain to finish.",
)
@click.option(
    "--serve", is_flag=True, help="Keep the server and worker up afterwards (Ctrl-C stops)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
@click.pass_context
def demo(
    ctx: click.Context,
    events: int,
    seed: int,
    pool: str | None,
    timeout: float,
    serve: bool,
    as_json: bool,
) -> None:
    """Run the chain on a Prefect server: PREFECT_API_URL when set, else a local server started
    here. Creates the pool and the concurrency limit, deploys, starts a worker, runs generate-events
    and follows the triggered runs to the last sync. Exits 0 only if every stage completed."""
    from deployments.demo import Running, run_demo
    from searchflow.config import get_settings

    def progress(message: str) -> None:
        click.echo(message, err=True)

    previous = _stop_on_sigterm()
    keep = Running() if serve else None
    try:
        result = run_demo(get_settings(), events, seed, pool, timeout, progress, keep)
        summary = result.to_dict()
        report(summary, as_json, _human)
        if serve:
            _serve(result.ui_url)
    finally:
        if keep is not None:
            keep.stop()
        signal.signal(signal.SIGTERM, previous)
    if not result.chain.ok:
        failed_gate = any(r.event.endswith(".failed") for r in result.chain.runs)
        # sys.exit, not ctx.exit: the console entry point runs click with standalone_mode=False,
        # which turns ctx.exit's code into a return value that nobody reads (exit 0)
        sys.exit(3 if failed_gate else 1)


def _stop_on_sigterm() -> Any:
    """SIGTERM unwinds like Ctrl-C, so the worker and the server the demo started are stopped too
    (they run in their own sessions and would otherwise outlive a killed demo)."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _serve(ui_url: str) -> None:
    """Block until Ctrl-C, keeping the server, the worker and any embedded services alive."""
    import time

    click.echo(f"serving: Prefect UI at {ui_url}; press Ctrl-C to stop", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
