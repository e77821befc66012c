"""Retention: ages against the latest event time (never the clock), set-based, audited."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner

from searchflow import audit, retention, warehouse
from searchflow.cli import cli
from searchflow.config import Settings
from searchflow.quality.quarantine import DDL as QUARANTINE_DDL

# A warehouse of history that ended long ago: the wall clock must not age it.
LATEST = datetime(2021, 3, 1, 12, 0, 0)


def _event(con, table: str, event_id: str, at: datetime) -> None:
    con.execute(
        f"INSERT INTO {table} VALUES (?, ?, '{{}}', 'jsonl', NULL, 'b1', ?)", [event_id, at, at]
    )


def _populate(settings: Settings) -> None:
    """Events 0..500 days before LATEST, dead letters and quarantine 0..200 days before it."""
    with warehouse.session(settings) as con:
        warehouse.ensure_raw_schema(con)
        for statement in QUARANTINE_DDL:
            con.execute(statement)
        for days in (0, 100, 399, 401, 500):
            _event(con, "raw.search_events", f"s{days}", LATEST - timedelta(days=days))
        _event(con, "raw.click_events", "c0", LATEST - timedelta(days=450))
        for days in (10, 89, 91, 200):
            con.execute(
                "INSERT INTO raw.dead_letter_events VALUES (?, 'x', 'malformed', NULL, NULL, "
                "'jsonl', NULL, 'b1', ?)",
                [f"d{days}", LATEST - timedelta(days=days)],
            )
            con.execute(
                "INSERT INTO quality.quarantine VALUES ('ingestion', 'b1', 's', 'e', 'r', '{}', ?)",
                [LATEST - timedelta(days=days)],
            )


def _ids(settings: Settings, sql: str) -> set:
    with warehouse.session(settings, read_only=True) as con:
        return {r[0] for r in con.execute(sql).fetchall()}


def test_policy_removes_what_is_older_than_its_limits(settings: Settings) -> None:
    _populate(settings)
    with warehouse.session(settings) as con:
        dry = retention.apply(con, settings, dry_run=True)
    assert dry["as_of"] == LATEST.isoformat(sep=" ")
    assert dry["tables"]["raw.search_events"]["removed"] == 2
    assert dry["tables"]["raw.click_events"]["removed"] == 1
    assert dry["tables"]["raw.dead_letter_events"]["removed"] == 2
    assert dry["tables"]["quality.quarantine"]["removed"] == 1
    assert _ids(settings, "SELECT event_id FROM raw.search_events") == {
        "s0",
        "s100",
        "s399",
        "s401",
        "s500",
    }  # a dry run removes nothing

    with warehouse.session(settings) as con:
        done = retention.apply(con, settings)
        log = audit.entries(con, command="retention")
    assert done["removed"] == dry["removed"] == 6
    assert _ids(settings, "SELECT event_id FROM raw.search_events") == {"s0", "s100", "s399"}
    assert _ids(settings, "SELECT event_id FROM raw.click_events") == set()
    assert _ids(settings, "SELECT dead_letter_id FROM raw.dead_letter_events") == {"d10", "d89"}
    assert len(_ids(settings, "SELECT quarantined_at FROM quality.quarantine")) == 3
    assert len(log) == 1 and log[0]["touched"]["raw.search_events"] == 2

    with warehouse.session(settings) as con:  # applying again finds nothing more
        assert retention.apply(con, settings)["removed"] == 0


def test_limits_come_from_configuration(settings: Settings) -> None:
    _populate(settings)
    strict = settings.model_copy(update={"retention_raw_days": 50})
    with warehouse.session(settings) as con:
        summary = retention.apply(con, strict, dry_run=True)
    assert summary["tables"]["raw.search_events"]["removed"] == 4


def test_command_line(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in settings.as_env().items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    empty = runner.invoke(cli, ["retention", "apply", "--dry-run"])
    assert empty.exit_code == 0 and "nothing has an age" in empty.output
    _populate(settings)
    result = runner.invoke(cli, ["retention", "apply", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["removed"] == 6
