"""`searchflow demo` exits non-zero through the console entry point when the chain did not complete."""

from __future__ import annotations

import pytest

from deployments.demo import DemoResult
from deployments.follow import CHAIN, Chain, StageRun


def _result(outcome: str, event: str) -> DemoResult:
    runs = [StageRun(stage=s, deployment=d) for s, d in CHAIN]
    runs[1].event = event
    chain = Chain(runs, outcome, "ingest-events", "the gate failed")
    return DemoResult("http://x/api", "http://x", False, "searchflow-local", chain)


@pytest.mark.parametrize(
    ("outcome", "event", "code"),
    [
        ("failed", "searchflow.ingestion.failed", 3),
        ("timeout", "", 1),
        ("completed", "searchflow.ingestion.validated", 0),
    ],
)
def test_exit_code_follows_the_chain(monkeypatch, capsys, outcome, event, code) -> None:
    import deployments.demo
    from searchflow.cli import main

    monkeypatch.setattr(deployments.demo, "run_demo", lambda *a, **k: _result(outcome, event))
    if code == 0:
        main(["demo", "--json"])
    else:
        with pytest.raises(SystemExit) as exc:
            main(["demo", "--json"])
        assert exc.value.code == code
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("{")


def test_the_report_says_what_is_left_running_and_how_to_stop_it(monkeypatch, capsys) -> None:
    import deployments.demo
    from searchflow.cli import main

    result = _result("completed", "searchflow.ingestion.validated")
    result.left_running = {
        "server": {"pid": 11, "url": "http://127.0.0.1:4242", "log": "x"},
        "worker": {"pid": 12, "url": None, "log": "y"},
        "dashboard": {"pid": 13, "url": "http://localhost:8501", "log": "z"},
    }
    result.generation = {"events": 10, "users": 2, "seed": 3, "days": 90, "start": "2026-01-01"}
    result.services = {"postgres": "postgresql://u@h:5432/searchflow", "redis": "redis://h:6379/0"}
    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        return result

    monkeypatch.setattr(deployments.demo, "run_demo", fake)
    main(["demo"])
    out = capsys.readouterr().out
    assert seen["once"] is False  # the command leaves things running by default
    assert "pid 11 http://127.0.0.1:4242" in out and "pid 13 http://localhost:8501" in out
    assert "`make stop` or `searchflow stop`" in out
    assert "/searchflow" in out and "seed 3" in out
    main(["demo", "--once"])
    assert seen["once"] is True


def test_a_stalled_chain_says_what_to_do(monkeypatch, capsys) -> None:
    import deployments.demo
    from searchflow.cli import main

    monkeypatch.setattr(
        deployments.demo, "run_demo", lambda *a, **k: _result("stalled", "searchflow.x.failed")
    )
    with pytest.raises(SystemExit):
        main(["demo"])
    assert "without --seed" in capsys.readouterr().out
