"""The gates' Prefect artifacts (flows/reports.py): made from the gate's outcome, only inside a run."""

from __future__ import annotations

import json

import pytest

from flows.reports import artifact_key, describe, publish_gate_artifact
from searchflow.config import Settings
from searchflow.errors import GateFailed
from searchflow.quality import gate
from tests.quality.helpers import land_raw


def test_keys_are_what_prefect_accepts() -> None:
    assert artifact_key("sync.email_triggers") == "dq-sync-email-triggers"
    assert artifact_key("ingestion") == "dq-ingestion"


def test_outside_a_run_nothing_is_published_and_the_gate_needs_no_prefect(
    settings: Settings,
) -> None:
    land_raw(settings, searches=140, clicks=0, conversions=0, dead_letters=60)
    with pytest.raises(GateFailed) as err:
        gate("ingestion", settings, {"batch_id": "ing-1"})
    outcome = err.value.outcome
    assert publish_gate_artifact(outcome) is None
    assert publish_gate_artifact(None) is None
    text = describe(outcome)
    assert "**ingestion** gate **failed** on batch `ing-1`" in text
    assert "dead_letter_share" in text and outcome["report"] in text


@pytest.mark.prefect_server
@pytest.mark.slow
def test_inside_a_flow_run_the_outcome_becomes_a_table_artifact(settings: Settings) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.testing.utilities import prefect_test_harness

    land_raw(settings)
    outcome = gate("ingestion", settings, {"batch_id": "ing-1"})

    @flow
    def gated() -> str | None:
        return publish_gate_artifact(outcome)

    with prefect_test_harness(server_startup_timeout=300):
        assert gated() == "dq-ingestion"
        with get_client(sync_client=True) as client:
            [artifact] = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["dq-ingestion"]))
            )
    assert artifact.type == "table"
    assert "gate **passed**" in (artifact.description or "")
    rows = json.loads(artifact.data)  # a table artifact's data is its rows as JSON
    assert len(rows) == outcome["evaluated"] == 14
    assert {r["status"] for r in rows} == {"passed"}
