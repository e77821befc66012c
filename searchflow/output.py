"""How commands report: a human summary, and with ``--json`` one JSON object as the last stdout line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import click


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(summary: Mapping[str, Any]) -> str:
    """One line of JSON, keys in insertion order."""
    return json.dumps(summary, default=_default, separators=(",", ":"))


def report(
    summary: Mapping[str, Any],
    as_json: bool,
    human: Callable[[Mapping[str, Any]], str] | None = None,
) -> None:
    """Print the human summary (to stderr when --json, so stdout's last line stays the object)."""
    text = human(summary) if human else format_table(summary)
    if as_json:
        if text:
            click.echo(text, err=True)
        click.echo(to_json(summary))
    else:
        click.echo(text)


def format_table(rows: Mapping[str, Any], indent: str = "  ") -> str:
    """``key  value`` lines, aligned; nested mappings are indented below their key."""
    width = max((len(str(k)) for k in rows), default=0)
    lines: list[str] = []
    for key, value in rows.items():
        if isinstance(value, Mapping):
            lines.append(f"{key}:")
            lines.extend(indent + line for line in format_table(value, indent).splitlines())
        else:
            lines.append(f"{str(key).ljust(width)}  {value}")
    return "\n".join(lines)


def check_rate(name: str, value: float | None) -> float | None:
    """Validate a rate option in [0, 1] as a usage error naming the option."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise click.BadParameter(f"must be between 0 and 1, got {value}", param_hint=f"--{name}")
    return value


# Progress of a long stage. Stage code reports through :func:`report_progress` (a plain call, no
# display library); the command line decides whether anyone shows it.
ProgressCallback = Callable[[str, int | None, int | None], None]
_PROGRESS: ContextVar[ProgressCallback | None] = ContextVar("searchflow_progress", default=None)


def report_progress(message: str, done: int | None = None, total: int | None = None) -> None:
    """Say how far a long stage is (``done`` of ``total`` when countable); a no-op unless a
    command shows progress in this context."""
    callback = _PROGRESS.get()
    if callback is not None:
        callback(message, done, total)


def progress_reporter() -> ProgressCallback:
    """:func:`report_progress` bound to this context, for code that reports from other threads
    (dbt runs nodes in a thread pool, where the context's display is not visible)."""
    callback = _PROGRESS.get()
    return callback if callback is not None else (lambda _message, _done, _total: None)


@contextmanager
def progress_display(label: str, as_json: bool, stream: IO[str] | None = None) -> Iterator[None]:
    """Show the progress the stage reports (a rich display on stderr) while the block runs, only
    when stderr is a terminal and ``--json`` is off: piped or machine-read output stays as it was."""
    stream = stream if stream is not None else sys.stderr
    if as_json or not stream.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=stream),
        transient=True,
    ) as display:
        task = display.add_task(label, total=None)

        def update(message: str, done: int | None, total: int | None) -> None:
            display.update(
                task, description=f"{label}: {message}", completed=done or 0, total=total
            )

        token = _PROGRESS.set(update)
        try:
            yield
        finally:
            _PROGRESS.reset(token)
