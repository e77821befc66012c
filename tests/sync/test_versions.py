"""Syncs read the published marts and record the mart version; a version already delivered is
not written again."""

from __future__ import annotations

import duckdb
import psycopg2
import pytest

from searchflow import ledger
from searchflow.sync import run_reconcile, run_sync, run_syncs

from .marts import reco_row, segment_row

pytestmark = pytest.mark.services


def publish(settings, version: str) -> None:
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        ledger.ensure_ledger(con)
        ledger.record_publication(con, version)
    finally:
        con.close()


def runs(url: str) -> list[tuple]:
    con = psycopg2.connect(url)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT sync, status, mart_version FROM crm.sync_runs ORDER BY started_at")
            return cur.fetchall()
    finally:
        con.close()


def test_before_any_publication_the_marts_are_read_as_they_are(
    service_settings, default_marts, postgres_url
):
    first = run_sync(service_settings, "user_segments")
    assert first["mart_version"] is None and first["inserted"] == 40
    again = run_sync(service_settings, "user_segments")
    assert not again["nothing_new"] and again["unchanged"] == 40
    assert runs(postgres_url) == [("user_segments", "succeeded", None)] * 2


def test_a_version_is_synced_once(service_settings, build_marts, postgres_url, redis_url):
    build_marts(segments=[segment_row(i) for i in range(5)], recos=[reco_row(i) for i in range(5)])
    publish(service_settings, "t1")
    names = ["user_segments", "recommendations"]
    first = run_syncs(service_settings, names)
    assert not first["nothing_new"]
    assert all(r["mart_version"] == "t1" and r["inserted"] == 5 for r in first["syncs"].values())

    # The published mart moves (as if repointed) but no new version was published: nothing is
    # written; the report says which run delivered the version.
    build_marts(segments=[segment_row(i) for i in range(7)])
    dry = run_sync(service_settings, "user_segments", dry_run=True)
    assert dry["nothing_new"] and dry["inserted"] == 0
    again = run_syncs(service_settings, names)
    assert again["nothing_new"] and again["written"] == 0
    report = again["syncs"]["user_segments"]
    assert report["synced_by"] == first["syncs"]["user_segments"]["run_id"]
    assert "nothing new to publish (mart version t1 already synced" in _human(report)
    assert runs(postgres_url) == [
        ("user_segments", "succeeded", "t1"),
        ("recommendations", "succeeded", "t1"),
    ]
    assert run_reconcile(service_settings, "user_segments")["missing"] == 2

    forced = run_sync(service_settings, "user_segments", full_resync=True)
    assert not forced["nothing_new"] and forced["inserted"] == 2
    publish(service_settings, "t2")
    newer = run_sync(service_settings, "recommendations")
    assert newer["mart_version"] == "t2" and newer["unchanged"] == 5
    assert run_reconcile(service_settings, "recommendations")["mart_version"] == "t2"


def test_a_failed_run_does_not_count_as_delivered(service_settings, build_marts, postgres_url):
    build_marts(segments=[segment_row(i) for i in range(3)])
    publish(service_settings, "t1")
    broken = service_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    run_sync(service_settings, "user_segments")
    build_marts(recos=[reco_row(i) for i in range(3)])
    with pytest.raises(Exception, match="Redis"):
        run_sync(broken, "recommendations", attempts=1)
    assert runs(postgres_url)[-1] == ("recommendations", "failed", "t1")
    assert run_sync(service_settings, "recommendations")["inserted"] == 3


def _human(report: dict) -> str:
    from searchflow.sync import SyncReport

    return SyncReport(**report).human()
