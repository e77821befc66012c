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


def run_in_process(args, env, monkeypatch, capsys):
    """The same entry point as the console script, without paying a process start per case."""
    from searchflow.cli import main

    for key, value in env.items():
        if key.startswith("SEARCHFLOW_"):
            monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exited:
        main(["generate", *args])
    captured = capsys.readouterr()
    return exited.value.code, captured.err


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
    assert (home / "events" / "search" / f"{summary['batch_id']}.jsonl").exists()


def test_batch_id_is_derived_from_the_arguments(env, monkeypatch, capsys):
    from searchflow.cli import main

    monkeypatch.setenv("SEARCHFLOW_HOME", env["SEARCHFLOW_HOME"])
    ids = []
    for seed in ("4", "4", "5"):
        main(["generate", "--events", "300", "--seed", seed, "--json"])
        ids.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["batch_id"])
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--malformed-rate", "1.5"], "--malformed-rate"),
        (["--click-through-rate", "-0.1"], "--click-through-rate"),
        (["--sink", "kafka"], "invalid value for '--sink': 'kafka' is not one of"),
        (["--out", "/proc/not-here"], "cannot write events to /proc/not-here"),
        (["--events", "-5"], "invalid value for '--events': -5 is not in the range x>=1"),
        (["--events", "0"], "invalid value for '--events': 0 is not in the range x>=1"),
        (["--events", "3000000000"], "--events is at most 2,000,000,000 per batch"),
        (["--live", "--events", "6000000"], "--live sends at most 5,000,000 events per run"),
        (["--start", "2025-02-30"], "--start must be a date"),
        (["--live", "--rate", "0"], "invalid value for '--rate': 0.0 is not in the range x>0"),
    ],
)
def test_bad_input_is_one_clear_line(env, args, expected, monkeypatch, capsys):
    code, stderr = run_in_process(args, env, monkeypatch, capsys)
    assert code != 0
    assert "Traceback" not in stderr
    assert expected in stderr
    assert len([line for line in stderr.splitlines() if line.startswith(("error", "Error"))]) == 1


def test_bad_input_in_a_real_process(env):
    result = run(["--sink", "kafka"], env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: invalid value for '--sink': 'kafka' is not one of 'jsonl', 'redis', 'postgres' "
        "(see 'searchflow generate --help')"
    )


def test_unwritable_home_is_one_line(env, monkeypatch, capsys):
    code, stderr = run_in_process(
        ["--events", "10"], {**env, "SEARCHFLOW_HOME": "/proc/no-home"}, monkeypatch, capsys
    )
    assert code != 0
    assert "Traceback" not in stderr
    assert "SEARCHFLOW_HOME /proc/no-home is not writable" in stderr


@pytest.mark.parametrize(
    "sink, variable, url, expected",
    [
        ("redis", "SEARCHFLOW_REDIS_URL", "redis://127.0.0.1:1/0", "cannot connect to Redis at"),
        (
            "postgres",
            "SEARCHFLOW_POSTGRES_URL",
            "postgresql://someone:secret@127.0.0.1:1/db",
            "cannot connect to PostgreSQL at postgresql://someone:***@127.0.0.1:1/db",
        ),
    ],
)
def test_unreachable_server_is_one_line(env, monkeypatch, capsys, sink, variable, url, expected):
    code, stderr = run_in_process(
        ["--events", "10", "--sink", sink], {**env, variable: url}, monkeypatch, capsys
    )
    assert code != 0
    assert "Traceback" not in stderr and "secret" not in stderr
    assert expected in stderr


def test_live_mode_stops_cleanly_on_ctrl_c(env, home):
    import signal
    import time

    process = subprocess.Popen(
        [*SEARCHFLOW, "generate", "--live", "--rate", "20", "--events", "100000", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A test run started in the background of a non-interactive shell inherits SIGINT
        # ignored, and Python then installs no Ctrl-C handler: give the child a terminal's default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    search = home / "events" / "search"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        files = list(search.glob("*.jsonl")) if search.exists() else []
        if files and files[0].stat().st_size > 0:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["interrupted"] is True
    assert 0 < summary["sent"] == summary["events"] < 100_000
    assert summary["search"] + summary["click"] + summary["conversion"] == summary["sent"]
    written = sum(
        len((home / "events" / t / f"{summary['batch_id']}.jsonl").read_text().splitlines())
        for t in ("search", "click", "conversion")
    )
    assert written == summary["sent"]
