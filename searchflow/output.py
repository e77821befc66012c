"""How commands report: a human summary, and with ``--json`` one JSON object as the last stdout line."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

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
