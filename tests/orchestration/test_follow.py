"""How a followed chain is judged, from snapshots (no server): completed, failed, stalled, running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deployments.follow import CHAIN, STALL_GRACE_SECONDS, Chain, StageRun, format_rows, judge

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)


def _runs(states: dict[str, str], events: dict[str, str] | None = None) -> list[StageRun]:
    runs = []
    for stage, deployment in CHAIN:
        run = StageRun(stage=stage, deployment=deployment)
        if deployment in states:
            run.run_id = f"id-{deployment}"
            run.state_type = states[deployment]
            run.state = states[deployment].title()
            run.started = NOW - timedelta(seconds=30)
            run.ended = NOW - timedelta(seconds=10)
            run.created_by = "" if deployment == "generate-events" else "automation:x"
            run.event = (events or {}).get(deployment, "")
        runs.append(run)
    return runs


ALL = {d: "COMPLETED" for _, d in CHAIN}


def test_every_stage_completed() -> None:
    assert judge(_runs(ALL), NOW) == ("completed", None, None)


def test_failure_waits_for_running_siblings_then_names_the_stage() -> None:
    states = {**ALL, "sync-email-triggers": "FAILED", "sync-recommendations": "RUNNING"}
    assert judge(_runs(states), NOW)[0] == "running"
    states["sync-recommendations"] = "COMPLETED"
    runs = _runs(states)
    runs[4].message = "expectation x failed"
    assert judge(runs, NOW) == ("failed", "sync-email-triggers", "expectation x failed")


def test_gate_failure_stops_the_chain() -> None:
    runs = _runs({"generate-events": "COMPLETED", "ingest-events": "FAILED"})
    outcome, stopped_at, _ = judge(runs, NOW)
    assert (outcome, stopped_at) == ("failed", "ingest-events")


def test_validated_event_means_the_trigger_is_on_its_way() -> None:
    runs = _runs(
        {"generate-events": "COMPLETED"},
        events={"generate-events": "searchflow.generation.validated"},
    )
    runs[0].ended = NOW - timedelta(seconds=STALL_GRACE_SECONDS * 2)
    assert judge(runs, NOW)[0] == "running"


def test_completed_without_event_stalls_after_the_grace() -> None:
    runs = _runs({"generate-events": "COMPLETED", "ingest-events": "COMPLETED"})
    assert judge(runs, NOW)[0] == "running"  # the event may still be in flight
    runs[1].ended = NOW - timedelta(seconds=STALL_GRACE_SECONDS + 1)
    outcome, stopped_at, reason = judge(runs, NOW)
    assert (outcome, stopped_at) == ("stalled", "ingest-events")
    assert "searchflow.ingestion.validated" in reason


def test_table_and_hops() -> None:
    runs = _runs(ALL)
    for r in runs:
        r.event_at = r.ended
    chain = Chain(runs, "completed")
    text = format_rows(chain.to_dict()["runs"])
    assert text.splitlines()[0].split() == [
        "stage",
        "deployment",
        "run",
        "state",
        "seconds",
        "rows",
        "started",
        "by",
    ]
    assert len(text.splitlines()) == 2 + len(CHAIN)
    assert {h["to"] for h in chain.hops()} == {d for _, d in CHAIN[1:]}


def test_row_keys_are_fields_of_the_real_stage_summaries() -> None:
    """The rows column reads what each stage's gate event really carries (numeric summary fields)."""
    from deployments.follow import ROW_KEYS
    from generator import config_from_options, generate
    from searchflow.ingest.land import empty_counts, summarize
    from searchflow.sync.report import SyncReport
    from searchflow.transform import summarize as transform_summary

    generation = generate(config_from_options(events=200, seed=1)).counts()
    ingestion = summarize("b", "jsonl", empty_counts(), 0.0)
    transformation = transform_summary([], 0.0)
    sync_fields = SyncReport.__dataclass_fields__
    assert isinstance(generation[ROW_KEYS["generation"]], int)
    assert isinstance(ingestion[ROW_KEYS["ingestion"]], int)
    assert isinstance(transformation[ROW_KEYS["transformation"]], int)
    assert sync_fields[ROW_KEYS["sync"]].type in (int, "int")
