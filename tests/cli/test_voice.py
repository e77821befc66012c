"""One voice in the command line, through the real ``searchflow`` process: usage errors in one
style with exit code 2, ``--json`` everywhere, help texts, messages that name the problem and the
way out, and a progress display only on a terminal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from searchflow.cli import COMMANDS


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "searchflow.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHFLOW_")}
    return {**clean, "SEARCHFLOW_HOME": str(home)}


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("ingest", "--source", "kafka"), "--source"),
        (("generate", "--sink", "kafka"), "--sink"),
        (("generate", "--events", "-5"), "--events"),
        (("generate", "--events", "0"), "--events"),
        (("demo", "--events", "-5"), "--events"),
        (("run", "--events", "-5"), "--events"),
        (("generate", "--click-through-rate", "2"), "--click-through-rate"),
    ],
)
def test_usage_errors_speak_in_one_style(env, args, option) -> None:
    result = _cli(env, *args)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: invalid value for '{option}'") or lines[0].startswith(
        f"error: invalid value for {option}"
    ), lines[0]
    assert f"(see 'searchflow {args[0]} --help')" in lines[0]
    assert "Usage:" not in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_project_usage_errors_share_the_style_and_exit_code(env) -> None:
    """A UsageError raised by the project's own code (not click) looks the same: one line, 2."""
    result = _cli(env, "generate", "--start", "not-a-date", "--events", "10")
    assert result.returncode == 2, result
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "--start" in line


def _leaf_commands() -> list[tuple[str, ...]]:
    import click

    from searchflow.cli import cli

    ctx = click.Context(cli)
    out: list[tuple[str, ...]] = []
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        if isinstance(command, click.Group):
            out.extend((name, sub) for sub in command.commands)
        else:
            out.append((name,))
    return out


@pytest.mark.parametrize("path", _leaf_commands(), ids=" ".join)
def test_every_command_takes_json(path) -> None:
    import click

    from searchflow.cli import cli

    command: click.Command = cli
    ctx = click.Context(cli)
    for name in path:
        command = command.get_command(ctx, name)  # type: ignore[union-attr]
    assert "--json" in {opt for p in command.params for opt in getattr(p, "opts", [])}, path


def test_dq_docs_json_prints_the_path_last(env, home: Path) -> None:
    docs = home / "quality" / "data_docs"
    docs.mkdir(parents=True)
    (docs / "index.html").write_text("<html></html>")
    result = _cli(env, "dq", "docs", "--json")
    assert result.returncode == 0, result.stderr
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["data_docs"] == str(docs / "index.html")


def test_fault_rates_have_help_and_check_usage_does_not_break_mid_word(env) -> None:
    help_text = " ".join(_cli(env, "generate", "--help").stdout.split())
    for option in ("--click-through-rate", "--malformed-rate", "--duplicate-rate", "--late-rate"):
        after = help_text.split(option, 1)[1].split("[default", 1)[0]
        assert len(after.split()) > 2, f"{option} has no help text: {after!r}"
    usage = _cli(env, "dq", "check", "--help").stdout.splitlines()[0]
    assert usage.strip() == "Usage: searchflow dq check [OPTIONS] STAGE"


def test_a_refusing_postgres_is_not_told_to_start(env) -> None:
    env = {**env, "SEARCHFLOW_POSTGRES_URL": "postgresql://nosuchuser@127.0.0.1:5432/postgres"}
    result = _cli(env, "services")
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert 'role "nosuchuser" does not exist' in line
    assert "start the server" not in line
    assert "SEARCHFLOW_POSTGRES_URL" in line


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("SEARCHFLOW_POSTGRES_URL", "postgresql://u:secret@127.0.0.1:abc/postgres"),
        ("SEARCHFLOW_REDIS_URL", "redis://:secret@127.0.0.1:abc/0"),
    ],
)
def test_a_non_numeric_port_names_the_setting(env, variable, url) -> None:
    result = _cli({**env, variable: url}, "services")
    assert result.returncode == 2, result
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {variable}=") and "not a number" in line, line
    assert "unexpected" not in line and "secret" not in line


@pytest.mark.slow
def test_a_transform_that_loses_the_warehouse_lock_says_the_projects_line(settings) -> None:
    """dbt connects after the stage released the file; another process holding it then must give
    the project's one line, not DuckDB's wording through dbt."""
    from searchflow import warehouse
    from searchflow.errors import SearchflowError
    from searchflow.transform.runner import invoke

    with warehouse.session(settings) as con:
        warehouse.ensure_raw_schema(con)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
            "time.sleep(120)",
            str(settings.warehouse_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SearchflowError) as exc:
            invoke(settings, "build")
    finally:
        holder.kill()
        holder.wait()
    message = str(exc.value)
    assert message == str(warehouse.lock_error(settings.warehouse_path)), message
    assert "Conflicting lock" not in message and "IO Error" not in message


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a pty")
def test_progress_shows_on_a_terminal_only(env, home: Path) -> None:
    args = [sys.executable, "-m", "searchflow.cli", "generate", "--events", "2000"]
    piped = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert "\x1b[" not in piped.stdout + piped.stderr  # no display without a terminal
    assert "simulating" not in piped.stdout + piped.stderr

    as_json = subprocess.run(
        ["script", "-qec", " ".join([*args, "--seed", "2", "--json"]), "/dev/null"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert as_json.returncode == 0, as_json.stdout
    assert "simulating" not in as_json.stdout  # --json stays quiet on a terminal too

    started = time.monotonic()
    tty = subprocess.run(
        ["script", "-qec", " ".join([*args, "--seed", "3"]), "/dev/null"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert tty.returncode == 0, tty.stdout
    assert "generate: simulating 2,000 events" in tty.stdout, tty.stdout[-2000:]
    assert time.monotonic() - started < 300
