"""Every destination row names the sync run that last wrote it, and that id is never a change."""

from __future__ import annotations

import json

import pytest
import redis

from searchflow.sync import run_sync

from .marts import reco_row, segment_row, trigger_row
from .test_sync import execute, query

pytestmark = pytest.mark.services


@pytest.fixture
def rds(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_postgres_rows_carry_the_run_that_last_wrote_them(
    service_settings, build_marts, postgres_url
):
    build_marts(segments=[segment_row(i) for i in range(5)], triggers=[trigger_row(0)])
    first = run_sync(service_settings, "user_segments")
    queued = run_sync(service_settings, "email_triggers")
    ids = query(postgres_url, "SELECT DISTINCT sync_run_id FROM crm.user_segments")
    assert ids == [(first["run_id"],)]
    assert query(postgres_url, "SELECT sync_run_id FROM crm.email_queue") == [(queued["run_id"],)]

    # The id is not compared: an unchanged re-sync (a new mart version) writes nothing.
    build_marts(segments=[segment_row(i) for i in range(5)])
    again = run_sync(service_settings, "user_segments")
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 5)
    assert query(postgres_url, "SELECT DISTINCT sync_run_id FROM crm.user_segments") == ids

    # A changed row gets the id of the run that changed it; the others keep theirs.
    build_marts(segments=[segment_row(i, searches=99 if i == 2 else None) for i in range(5)])
    third = run_sync(service_settings, "user_segments")
    assert third["updated"] == 1
    rows = dict(query(postgres_url, "SELECT user_id, sync_run_id FROM crm.user_segments"))
    assert rows["user_2"] == third["run_id"]
    assert {rows[f"user_{i}"] for i in (0, 1, 3, 4)} == {first["run_id"]}

    # A row edited behind the sync's back is repaired, and then names the repairing run.
    execute(postgres_url, "UPDATE crm.user_segments SET segment = 'x' WHERE user_id = 'user_0'")
    build_marts(segments=[segment_row(i, searches=99 if i == 2 else None) for i in range(5)])
    fourth = run_sync(service_settings, "user_segments")
    rows = dict(query(postgres_url, "SELECT user_id, sync_run_id FROM crm.user_segments"))
    assert rows["user_0"] == fourth["run_id"] and rows["user_1"] == first["run_id"]


def test_redis_values_carry_the_run_that_last_wrote_them(service_settings, build_marts, rds):
    build_marts(recos=[reco_row(i) for i in range(4)])
    first = run_sync(service_settings, "recommendations")
    assert {json.loads(rds.get(f"reco:user_{i}"))["sync_run_id"] for i in range(4)} == {
        first["run_id"]
    }
    build_marts(recos=[reco_row(i, score=0.99 if i == 1 else None) for i in range(4)])
    second = run_sync(service_settings, "recommendations")
    assert (second["updated"], second["unchanged"]) == (1, 3)
    assert json.loads(rds.get("reco:user_1"))["sync_run_id"] == second["run_id"]
    assert json.loads(rds.get("reco:user_0"))["sync_run_id"] == first["run_id"]
    # A value without the field (written before the audit existed) is rewritten once.
    rds.set("reco:user_3", rds.get("reco:user_3").decode().replace(',"sync_run_id":', ',"x":'))
    build_marts(recos=[reco_row(i, score=0.99 if i == 1 else None) for i in range(4)])
    third = run_sync(service_settings, "recommendations")
    assert (third["updated"], third["unchanged"]) == (1, 3)
    assert json.loads(rds.get("reco:user_3"))["sync_run_id"] == third["run_id"]
