"""How a stage command reports a gated run: the summary always, then the gate's verdict.

The gated functions raise :class:`~searchflow.errors.GateFailed` after recording a held batch and
attach the stage summary to it; the command still prints that summary (with ``--json`` as the last
stdout line), then the error line on stderr and exit code 3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click

from searchflow.errors import GateFailed
from searchflow.output import progress_display, report

Human = Callable[[Mapping[str, Any]], str]


def gate_line(summary: Mapping[str, Any]) -> str:
    """One line on the batch's gate, for the human summary."""
    gate = summary.get("gate")
    if not gate:
        return "gate     not run (nothing new)"
    head = f"gate     {gate['outcome']}"
    if gate.get("evaluated"):
        head += f" ({gate['evaluated']} expectations)"
    for reason in gate.get("reasons") or ():
        head += f"\n  - {reason}"
    return head


def run_and_report(run: Callable[[], dict[str, Any]], as_json: bool, human: Human) -> None:
    """Run a gated stage and report its summary, even when its gate held the batch. On a terminal
    (and without ``--json``) a progress display shows what the stage reports meanwhile."""
    ctx = click.get_current_context(silent=True)
    label = ctx.command_path.removeprefix("searchflow ") if ctx is not None else "working"
    try:
        with progress_display(label, as_json):
            summary = run()
    except GateFailed as exc:
        summary = getattr(exc, "summary", None)
        if summary is not None:
            report(summary, as_json, human)
        raise
    report(summary, as_json, human)
