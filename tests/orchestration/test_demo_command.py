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
