"""The sweep flow on a real server: it starts the waiting stage's deployment with the batch as its
parent, once (a second sweep sees the run to come and starts nothing; the same idempotency key
returns the same run), and says when nothing waits. No worker: the run it makes stays Scheduled
and is deleted at the end, so no later test's worker picks it up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from flows.sweep import Start, sweep
from searchflow import ledger
from searchflow.published import export_ops

pytestmark = [pytest.mark.prefect_server]


def _export(home: Path, published_at: datetime) -> None:
    home.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(home / "ledger.duckdb"))
    try:
        ledger.ensure_ledger(con)
        ledger.record(con, "sweep-test-i1", "ingestion", source="jsonl")
        ledger.judge(con, "sweep-test-i1", "passed")
        con.execute(
            "UPDATE ops.batches SET published_at = ? WHERE batch_id = ?",
            [published_at.replace(tzinfo=None), "sweep-test-i1"],
        )
        export_ops(con, home)
    finally:
        con.close()


async def _delete_swept_runs() -> None:
    """Every run this test's sweeps made (their key starts ``sweep:``), whatever failed."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        for run in await client.read_flow_runs():
            if (run.idempotency_key or "").startswith("sweep:transform:sweep-test-"):
                await client.delete_flow_run(run.id)


def test_sweep_starts_the_waiting_stage_once(prefect_env, prepared, tmp_path, monkeypatch) -> None:
    from prefect.deployments import run_deployment

    from deployments.prepare import api

    home = tmp_path / "home"
    monkeypatch.setenv("SEARCHFLOW_HOME", str(home))
    with api(prefect_env):
        assert sweep(grace_seconds=0)["started"] == []  # no ledger yet: nothing waits
        _export(home, datetime.now(UTC) - timedelta(minutes=5))
        try:
            first = sweep(grace_seconds=0)
            (started,) = first["started"]
            assert started["deployment"] == "transform"
            assert started["parameters"] == {"parent_batch_id": "sweep-test-i1"}
            assert started["idempotency_key"] == "sweep:transform:sweep-test-i1"

            second = sweep(grace_seconds=0)
            assert "transform" in second["active"]  # its run is still to come: left alone
            assert second["started"] == []

            again = run_deployment(
                Start("transform", "sweep-test-i1", "transformation").full_name,
                parameters={"parent_batch_id": "sweep-test-i1"},
                timeout=0,
                idempotency_key=started["idempotency_key"],
                as_subflow=False,
            )
            assert str(again.id) == started["flow_run_id"]  # the key never starts a second run
        finally:
            asyncio.run(_delete_swept_runs())
