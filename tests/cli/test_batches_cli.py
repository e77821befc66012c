"""``searchflow batches``: listing, the story of a batch, and one-line refusals (no gate runs here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from searchflow import ledger, warehouse
from searchflow.config import Settings


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "searchflow.cli", "batches", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SEARCHFLOW_HOME": str(home)},
        timeout=120,
    )


@pytest.fixture
def story(home: Path) -> Path:
    with warehouse.session(Settings(home=home)) as con:
        warehouse.ensure_raw_schema(con)
        ledger.record(con, "gen-1", "generation", source="jsonl", counts={"events": 10})
        ledger.judge(con, "gen-1", "passed")
        ledger.record(con, "ing-1", "ingestion", parents=["gen-1"], counts={"landed": 7})
        ledger.judge(con, "ing-1", "failed", ["dead letters 30% > 5%"])
        ledger.record(con, "t-1", "transformation", parents=["ing-1"])
        ledger.judge(con, "t-1", "passed")
        ledger.record(con, "s-1", "sync", parents=["t-1"], source="user_segments")
        ledger.judge(con, "s-1", "passed")
    return home


def test_list_and_show(story: Path) -> None:
    listed = _cli(story, "list", "--state", "held", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [b["batch_id"] for b in json.loads(listed.stdout.splitlines()[-1])["batches"]] == [
        "ing-1"
    ]
    shown = _cli(story, "show", "gen-1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    order = [ln.lstrip("* ").split()[0] for ln in lines if not ln.startswith("    ")]
    assert order == ["gen-1", "ing-1", "t-1", "s-1"]
    assert "dead letters 30% > 5%" in shown.stdout and "user_segments" in shown.stdout
    as_json = json.loads(_cli(story, "show", "s-1", "--json").stdout.splitlines()[-1])
    assert [r["stage"] for r in as_json["lineage"]] == [
        "generation",
        "ingestion",
        "transformation",
        "sync",
    ]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["show", "nope"], 1, "no batch 'nope' in the ledger"),
        (["release", "gen-1"], 2, "only a held batch can be released"),
        (["discard", "nope"], 1, "no batch 'nope'"),
        (["list", "--state", "lost"], 2, "'lost' is not one of"),
        (["list", "--stage", "loading"], 2, "unknown stage 'loading'"),
    ],
)
def test_refusals_are_one_line(story: Path, args: list[str], code: int, needle: str) -> None:
    proc = _cli(story, *args)
    assert proc.returncode == code
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_discard_a_sync_batch_marks_it(story: Path) -> None:
    proc = _cli(story, "discard", "s-1", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["state"] == "discarded"
