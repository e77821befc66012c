"""The first demo's several successive batches: how the window is split, what ``demo.json``
records, and (through the gated chain every path runs, without a Prefect server) that the segment
snapshot then records users moving between segments."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from deployments.demo import (
    DEMO_DAYS,
    FIRST_DEMO_BATCHES,
    choose_batches,
    choose_generation,
    default_batches,
    demo_window,
    plan_windows,
)
from searchflow import published
from searchflow.config import Settings
from searchflow.errors import UsageError

TODAY = date(2026, 3, 1)


def test_the_windows_are_consecutive_and_share_days_and_events_exactly() -> None:
    start = date(2026, 1, 1)
    windows = plan_windows(start, days=90, events=10_000, batches=3)
    assert [(w[1], w[2]) for w in windows] == [(30, 3333), (30, 3333), (30, 3334)]
    for (first, days, _), (following, _, _) in zip(windows, windows[1:], strict=False):
        assert first + timedelta(days=days) == following  # no gap, no overlap
    odd = plan_windows(start, days=7, events=10, batches=4)
    assert sum(d for _, d, _ in odd) == 7 and sum(n for _, _, n in odd) == 10
    assert all(d >= 1 and n >= 1 for _, d, n in odd)
    assert plan_windows(start, days=90, events=5, batches=1) == [(start, 90, 5)]


@pytest.mark.parametrize("batches", [0, 91])
def test_more_batches_than_days_is_refused(batches: int) -> None:
    with pytest.raises(UsageError, match="--batches must be between 1 and 90"):
        plan_windows(date(2026, 1, 1), days=90, events=10_000, batches=batches)


def test_the_first_demo_runs_several_batches_then_one_each(home: Path) -> None:
    assert default_batches(home) == FIRST_DEMO_BATCHES
    chosen = choose_batches(home, events=900, users=60, today=TODAY, batches=3)
    start, days = demo_window(TODAY)
    assert [c["seed"] for c in chosen] == [1, 2, 3]  # a seed each: event ids come from the seed
    assert chosen[0]["start"] == start.isoformat() and sum(c["days"] for c in chosen) == days
    assert sum(c["events"] for c in chosen) == 900
    assert default_batches(home) == 1
    later = choose_generation(home, events=900, users=60, today=TODAY)
    assert (later["seed"], later["days"]) == (4, DEMO_DAYS)
    recorded = json.loads((home / "demo.json").read_text())
    assert [r["batch"] for r in recorded["runs"]] == ["1/3", "2/3", "3/3", "1/1"]
    assert recorded["last_demo"] == [later] and recorded["last"] == later


def test_each_batch_is_reproducible_from_what_demo_json_records(home: Path) -> None:
    from generator import build, config_from_options

    choose_batches(home, events=600, users=40, today=TODAY, batches=2)
    recorded = json.loads((home / "demo.json").read_text())["last_demo"]
    first, again = (build(config_from_options(**recorded[0])) for _ in range(2))
    assert first.batch_id == again.batch_id
    assert first.to_arrow("search").equals(again.to_arrow("search"))
    second = build(config_from_options(**recorded[1]))
    assert second.batch_id != first.batch_id
    ids = set(first.to_arrow("search").column("event_id").to_pylist())
    assert ids.isdisjoint(second.to_arrow("search").column("event_id").to_pylist())


@pytest.mark.services
@pytest.mark.slow
def test_successive_batches_leave_segment_transitions(service_settings: Settings) -> None:
    """The demo's batches, each through generate -> ingest -> transform -> syncs (the gated
    functions the served flows call), leave users who changed segment in the published
    transition mart, and a snapshot build per batch in the history."""
    from flows.chain import run_chain

    home = service_settings.ensure_home()
    planned = choose_batches(home, events=4000, users=300, batches=2)
    for chosen in planned:
        run_chain(service_settings, **chosen)
    version = published.current_version(home)
    transitions = published.mart_path(home, "marketing.mart_segment_transitions", version)
    history = published.mart_path(home, "marketing.mart_segment_history", version)
    con = duckdb.connect()
    moved = con.execute(
        "SELECT count(*) FROM read_parquet(?) "
        "WHERE from_segment <> '(new)' AND from_segment <> to_segment",
        [str(transitions)],
    ).fetchone()[0]
    builds = con.execute(
        "SELECT count(DISTINCT as_of) FROM read_parquet(?)", [str(history)]
    ).fetchone()[0]
    assert moved > 0
    assert builds == len(planned)


def test_the_command_runs_several_batches_only_on_a_fresh_data_folder(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import deployments.demo
    from deployments.follow import CHAIN, Chain, StageRun
    from searchflow.cli import main

    asked: list[int] = []

    def fake(settings, *args, **kwargs) -> deployments.demo.DemoResult:
        asked.append(kwargs["batches"])
        chosen = choose_batches(settings.home_path, 90, 9, batches=kwargs["batches"])
        chain = Chain([StageRun(stage=s, deployment=d) for s, d in CHAIN], "completed")
        result = deployments.demo.DemoResult("http://x/api", "http://x", False, "pool", chain)
        result.batches = [{**c, "outcome": "completed", "seconds": 1.0} for c in chosen]
        return result

    monkeypatch.setenv("SEARCHFLOW_HOME", str(home))
    monkeypatch.setattr(deployments.demo, "run_demo", fake)
    main(["demo", "--once"])
    assert "batch 3/3: 30 events, 9 users, seed 3" in capsys.readouterr().out
    main(["demo", "--once"])
    main(["demo", "--once", "--batches", "2"])
    assert asked == [FIRST_DEMO_BATCHES, 1, 2]
