"""``searchflow generate`` from the outside: --json summary and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SEARCHFLOW = [sys.executable, "-m", "searchflow.cli"]


def run(args, env):
    return subprocess.run(
        [*SEARCHFLOW, "generate", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def env(home):
    return {**os.environ, "SEARCHFLOW_HOME": str(home)}


def test_json_summary_is_the_last_line(env, home):
    result = run(["--events", "800", "--seed", "4", "--malformed-rate", "0.05", "--json"], env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["events"] == 800
    assert summary["malformed"] == 40
    for key in ("batch_id", "sink", "out", "search", "click", "conversion", "duplicates", "late",
                "seconds"):  # fmt: skip
        assert key in summary
    again = run(["--events", "800", "--seed", "4", "--malformed-rate", "0.05", "--json"], env)
    assert json.loads(again.stdout.strip().splitlines()[-1])["batch_id"] == summary["batch_id"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--malformed-rate", "1.5"], "--malformed-rate"),
        (["--click-through-rate", "-0.1"], "--click-through-rate"),
        (["--sink", "kafka"], "unknown sink 'kafka'"),
        (["--out", "/proc/not-here"], "cannot write events to /proc/not-here"),
        (["--events", "-5"], "--events must be 0 or more"),
        (["--start", "2025-02-30"], "--start must be a date"),
        (["--live", "--rate", "0"], "--rate must be above 0"),
    ],
)
def test_bad_input_is_one_clear_line(env, args, expected):
    result = run(args, env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith(("error", "Error"))]


def test_unwritable_home_is_one_line(env):
    result = run(["--events", "10"], {**env, "SEARCHFLOW_HOME": "/proc/no-home"})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "SEARCHFLOW_HOME" in result.stderr


def test_unreachable_redis_is_one_line(env):
    result = run(
        ["--events", "10", "--sink", "redis"],
        {**env, "SEARCHFLOW_REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "cannot connect to Redis at redis://127.0.0.1:1/0" in result.stderr
