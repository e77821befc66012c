"""``searchflow run`` through the gates, as a user runs it: the CLI in a subprocess, real services.

A run with 30% malformed events must stop at the ingestion gate with one line naming the stage and
the expectation, and leave Postgres and Redis untouched; a clean run must pass every gate, which
``searchflow dq report --json`` then shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import redis

pytestmark = pytest.mark.services


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the CLI with the test's SEARCHFLOW_* variables (service_env exported them)."""
    return subprocess.run(
        [sys.executable, "-m", "searchflow.cli", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=timeout,
    )


def _crm_tables(postgres_url: str) -> list[str]:
    con = psycopg2.connect(postgres_url)
    try:
        with con.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'crm'"
            )
            tables = [r[0] for r in cur.fetchall()]
            counts = []
            for table in tables:
                cur.execute(f'SELECT count(*) FROM crm."{table}"')
                counts.append(f"{table}:{cur.fetchone()[0]}")
            return counts
    finally:
        con.close()


def _reco_keys(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(1 for _ in client.scan_iter(match="reco:*", count=1000))
    finally:
        client.close()


def _dq_report(*args: str) -> dict:
    proc = _cli("dq", "report", "--json", *args, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_malformed_run_stops_at_the_ingestion_gate_and_reaches_no_destination(
    service_env: dict[str, str], postgres_url: str, redis_url: str
) -> None:
    home = Path(service_env["SEARCHFLOW_HOME"])
    proc = _cli("run", "--events", "3000", "--seed", "1", "--malformed-rate", "0.3")

    assert proc.returncode == 3, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    [error] = errors
    assert "ingestion gate failed" in error
    assert "column_max_to_be_between(dead_letter_share) observed 0.3" in error

    # nothing downstream of the gate ran
    assert not any(t.split(":")[1] != "0" for t in _crm_tables(postgres_url)), _crm_tables(
        postgres_url
    )
    assert _reco_keys(redis_url) == 0

    quality = home / "quality"
    assert (quality / "data_docs" / "index.html").exists()
    failed = [
        p
        for p in (quality / "validations").rglob("*.json")
        if json.loads(p.read_text())["success"] is False
    ]
    assert failed and all("ingestion" in str(p) for p in failed)

    # dq report: the generation gate passed, the ingestion gate failed, nothing after it
    report = _dq_report()
    status = {s["key"]: s["status"] for s in report["stages"]}
    assert status == {"generation": "passed", "ingestion": "failed"}
    [ingestion] = _dq_report("--stage", "ingestion")["stages"]
    [reason] = ingestion["failed_expectations"]
    assert reason.startswith(
        "ingestion.batch: column_max_to_be_between(dead_letter_share) observed 0.3, "
        "expected between 0 and 0.05 (dead letters / lines read: lines that could not be landed"
    )
    assert Path(ingestion["report"]).exists() and ingestion["report"].endswith(".html")
    assert ingestion["counts"]["dead_letters"] == 900

    human = _cli("dq", "report", timeout=120)
    assert human.returncode == 0
    assert "ingestion" in human.stdout and "failed:  ingestion.batch" in human.stdout
    assert f"Data Docs: {quality / 'data_docs' / 'index.html'}" in human.stdout

    docs = _cli("dq", "docs", "--no-open", timeout=120)
    assert docs.returncode == 0
    assert docs.stdout.strip() == str(quality / "data_docs" / "index.html")


def test_clean_run_passes_every_gate(
    service_env: dict[str, str], postgres_url: str, redis_url: str
) -> None:
    proc = _cli("run", "--events", "3000", "--seed", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    report = _dq_report()
    status = {s["key"]: s["status"] for s in report["stages"]}
    assert status == {
        "generation": "passed",
        "ingestion": "passed",
        "transformation": "passed",
        "sync.user_segments": "passed",
        "sync.email_triggers": "passed",
        "sync.recommendations": "passed",
    }
    assert all(s["failed"] == s["errored"] == 0 and s["evaluated"] > 0 for s in report["stages"])
    assert _reco_keys(redis_url) > 0
    assert [s["key"] for s in _dq_report("--stage", "sync")["stages"]] == [
        "sync.user_segments",
        "sync.email_triggers",
        "sync.recommendations",
    ]


def test_dq_report_and_docs_before_any_validation(service_env: dict[str, str]) -> None:
    assert _dq_report()["stages"] == []
    human = _cli("dq", "report", timeout=120)
    assert human.returncode == 0 and "no validation yet" in human.stdout
    docs = _cli("dq", "docs", "--no-open", timeout=120)
    assert docs.returncode != 0
    assert docs.stderr.strip().count("\n") == 0 and "no Data Docs yet" in docs.stderr
