"""``searchflow dq``: what the quality gates decided, and where the Data Docs are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from searchflow.contract import STAGES, SYNC_NAMES
from searchflow.output import report

# Each sync is gated on its own, under ``sync.<name>``.
SYNC_KEYS = tuple(f"{STAGES[-1]}.{name}" for name in SYNC_NAMES)
STAGE_CHOICES = (*STAGES, *SYNC_KEYS)


@click.group()
def dq() -> None:
    """Data-quality reports of the gates (Great Expectations)."""


def _human(summary: Mapping[str, Any]) -> str:
    stages = summary["stages"]
    if not stages:
        return f"no validation yet under {summary['home']}; run a stage (e.g. `searchflow run`)"
    lines = [f"{'stage':<22} {'status':<8} {'passed':>6} {'failed':>6} {'errored':>7}  batch"]
    for s in stages:
        lines.append(
            f"{s['key']:<22} {s['status']:<8} {s['passed']:>6} {s['failed']:>6} "
            f"{s['errored']:>7}  {s['batch_id']}"
        )
        for name in s.get("failed_expectations") or []:
            lines.append(f"    failed:  {name}")
        for name in s.get("errored_expectations") or []:
            lines.append(f"    errored: {name}")
        if s.get("quarantined"):
            lines.append(f"    quarantined {s['quarantined']} rows in {s['quarantine']}")
        lines.append(f"    report: {s.get('report') or s.get('index')}")
    lines.append(f"Data Docs: {summary['data_docs']}")
    return "\n".join(lines)


@dq.command("report")
@click.option(
    "--stage", type=click.Choice(STAGE_CHOICES), help="Only this stage (sync: all three)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def report_cmd(stage: str | None, as_json: bool) -> None:
    """The latest validation of each stage: status, counts and the report path."""
    from searchflow.config import get_settings
    from searchflow.quality.context import data_docs_dir
    from searchflow.quality.history import latest

    settings = get_settings()
    keep = (
        "key", "stage", "status", "batch_id", "evaluated", "passed", "failed", "errored",
        "failed_expectations", "errored_expectations", "quarantined", "quarantine", "counts",
        "report", "index", "results", "validated_at", "seconds",
    )  # fmt: skip
    stages = [{k: s.get(k) for k in keep} for s in latest(settings, stage)]
    summary = {
        "home": str(settings.home_path),
        "data_docs": str(data_docs_dir(settings) / "index.html"),
        "stages": stages,
    }
    report(summary, as_json, _human)


@dq.command("docs")
@click.option("--no-open", is_flag=True, help="Only print the path, never start a browser.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object as the last line (no browser)."
)
def docs_cmd(no_open: bool, as_json: bool) -> None:
    """Print the Data Docs index path (and open it where a browser exists)."""
    import os
    import sys

    from searchflow.config import get_settings
    from searchflow.errors import SearchflowError
    from searchflow.quality.context import data_docs_dir

    index = data_docs_dir(get_settings()) / "index.html"
    if not index.exists():
        raise SearchflowError(
            f"no Data Docs yet at {index}; run a stage first (e.g. `searchflow run --events 3000`)"
        )
    if as_json:
        report({"data_docs": str(index), "url": index.as_uri()}, True, lambda _s: "")
        return
    click.echo(str(index))
    has_display = sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if not no_open and has_display:
        import webbrowser

        webbrowser.open(index.as_uri())


# The generation gate needs the generator's in-memory batch: it cannot be re-run here.
CHECK_CHOICES = (*STAGES[1:-1], *SYNC_KEYS)


@dq.command("check", epilog=f"STAGE is one of: {', '.join(CHECK_CHOICES)}.")
@click.argument("stage", type=click.Choice(CHECK_CHOICES), metavar="STAGE")
@click.option(
    "--batch-id", help="Ingestion: the batch to validate (default: the latest gated one)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def check_cmd(stage: str, batch_id: str | None, as_json: bool) -> None:
    """Run one gate again on what is there now (the warehouse, Postgres, Redis).

    For a stage's output changed after its run, or to see a gate fail on purpose. The generation
    gate needs the generator's in-memory batch, so it runs only inside `searchflow run`/`generate`.
    Exits 3 when the gate does not pass, like the pipeline.
    """
    from datetime import UTC, datetime

    from searchflow.config import get_settings
    from searchflow.errors import UsageError
    from searchflow.quality import gate
    from searchflow.quality.history import latest

    settings = get_settings()
    name, _, sync = stage.partition(".")
    if name == "ingestion" and not batch_id:
        last = latest(settings, "ingestion")
        if not last:
            raise UsageError("no ingestion batch gated yet; pass --batch-id (see raw.*.batch_id)")
        batch_id = str(last[0]["batch_id"])
    summary = {
        "batch_id": batch_id or f"check-{datetime.now(UTC):%Y%m%dT%H%M%S}",
        "sync": sync or None,
    }
    outcome = gate(name, settings, summary)
    keep = ("key", "status", "batch_id", "evaluated", "passed", "report")
    report({k: outcome.get(k) for k in keep}, as_json, lambda o: outcome["message"])
