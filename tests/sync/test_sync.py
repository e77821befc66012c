"""The syncs on the real Postgres and Redis: contents, idempotence, propagation, dry runs, drift."""

from __future__ import annotations

import json

import psycopg2
import pytest
import redis

from searchflow.errors import SearchflowError
from searchflow.sync import run_reconcile, run_sync, run_syncs

from .marts import AS_OF, reco_row, segment_row, trigger_row

pytestmark = pytest.mark.services


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    con = psycopg2.connect(url)
    try:
        with con.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        con.commit()
        con.close()


def execute(url: str, sql: str, params: tuple = ()) -> None:
    query(url, sql, params)


def reco_keys(r: redis.Redis) -> set[str]:
    return {k.decode() for k in r.scan_iter(match="reco:*", count=1000)}


@pytest.fixture
def rds(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_destinations_hold_exactly_the_marts(service_settings, default_marts, postgres_url, rds):
    summary = run_syncs(service_settings, ["user_segments", "email_triggers", "recommendations"])
    assert summary["inserted"] == 40 + 12 + 40 and summary["failed"] == 0

    rows = query(
        postgres_url,
        "SELECT user_id, segment, total_searches, total_clicks, total_conversions, "
        "lifetime_value::float8, first_seen_at AT TIME ZONE 'UTC', as_of AT TIME ZONE 'UTC' "
        "FROM crm.user_segments ORDER BY user_id",
    )
    expected = sorted(
        (r[0], r[1], r[2], r[3], r[4], float(r[5]), r[6], r[8]) for r in default_marts["segments"]
    )
    assert rows == expected

    queue = query(postgres_url, "SELECT trigger_id, user_id, status FROM crm.email_queue")
    assert sorted(queue) == sorted((t[0], t[1], "queued") for t in default_marts["triggers"])

    assert reco_keys(rds) == {f"reco:user_{i}" for i in range(40)}
    for row in default_marts["recos"]:
        key = f"reco:{row[0]}"
        value = json.loads(rds.get(key))
        assert list(value) == ["destinations", "score", "generated_at", "sync_run_id"]
        assert value["destinations"] == [d for d in row[1:4] if d is not None]
        assert value["score"] == row[4]
        assert value["generated_at"] == AS_OF.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert 0 < rds.ttl(key) <= 86400

    runs = query(postgres_url, "SELECT sync, status, read, inserted FROM crm.sync_runs")
    assert sorted(runs) == [
        ("email_triggers", "succeeded", 12, 12),
        ("recommendations", "succeeded", 40, 40),
        ("user_segments", "succeeded", 40, 40),
    ]


def test_second_sync_writes_nothing_and_refreshes_ttl(service_settings, default_marts, rds):
    names = ["user_segments", "email_triggers", "recommendations"]
    run_syncs(service_settings, names)
    before = rds.get("reco:user_3")
    rds.expire("reco:user_3", 100)
    again = run_syncs(service_settings, names)
    assert again["written"] == 0
    assert again["unchanged"] == 40 + 12 + 40
    for report in again["syncs"].values():
        assert report["inserted"] == report["updated"] == report["deleted"] == 0
    assert rds.get("reco:user_3") == before
    assert rds.ttl("reco:user_3") > 86000


def test_changes_and_removals_propagate(
    service_settings, build_marts, default_marts, postgres_url, rds
):
    run_syncs(service_settings, ["user_segments", "recommendations"])
    segments = [segment_row(i) for i in range(1, 40)] + [segment_row(99)]
    segments[0] = segment_row(1, segment="power", searches=1000)
    recos = [reco_row(i, n=1 + i % 3) for i in range(1, 40)] + [reco_row(99)]
    recos[1] = reco_row(2, score=0.99)
    build_marts(segments=segments, recos=recos)

    seg = run_sync(service_settings, "user_segments")
    assert (seg["inserted"], seg["updated"], seg["deleted"], seg["unchanged"]) == (1, 1, 1, 38)
    assert query(
        postgres_url,
        "SELECT segment, total_searches FROM crm.user_segments WHERE user_id = 'user_1'",
    ) == [("power", 1000)]
    assert query(
        postgres_url, "SELECT count(*) FROM crm.user_segments WHERE user_id = 'user_0'"
    ) == [(0,)]

    reco = run_sync(service_settings, "recommendations")
    assert (reco["inserted"], reco["updated"], reco["deleted"], reco["unchanged"]) == (1, 1, 1, 38)
    assert json.loads(rds.get("reco:user_2"))["score"] == 0.99
    assert rds.get("reco:user_0") is None and rds.get("reco:user_99") is not None


def test_keep_removed_users(service_settings, build_marts, default_marts, postgres_url):
    settings = service_settings.model_copy(update={"sync_keep_removed": True})
    run_sync(settings, "user_segments")
    build_marts(segments=[segment_row(i) for i in range(10)])
    report = run_sync(settings, "user_segments")
    assert report["deleted"] == 0
    assert query(postgres_url, "SELECT count(*) FROM crm.user_segments") == [(40,)]


def test_email_queue_rows_are_never_touched(
    service_settings, build_marts, default_marts, postgres_url
):
    run_sync(service_settings, "email_triggers")
    execute(
        postgres_url,
        "UPDATE crm.email_queue SET status = 'sent', sent_at = now() WHERE trigger_id = 'trg_0001'",
    )
    triggers = [trigger_row(i) for i in range(1, 15)]
    triggers[0] = (
        "trg_0001",
        "user_1",
        "sess_1",
        "abandoned_search",
        "Elsewhere",
        9,
        *trigger_row(1)[6:],
    )
    build_marts(triggers=triggers)
    report = run_sync(service_settings, "email_triggers")
    assert (report["inserted"], report["updated"], report["deleted"]) == (3, 0, 0)
    assert query(
        postgres_url,
        "SELECT status, destination FROM crm.email_queue WHERE trigger_id = 'trg_0001'",
    ) == [("sent", "Rome")]
    assert query(postgres_url, "SELECT count(*) FROM crm.email_queue") == [(15,)]  # trg_0000 stays


def test_dry_run_writes_nothing_and_reports_the_same(
    service_settings, default_marts, postgres_url, rds
):
    names = ["user_segments", "email_triggers", "recommendations"]
    dry = run_syncs(service_settings, names, dry_run=True)
    assert query(postgres_url, "SELECT to_regclass('crm.sync_runs')") == [(None,)]
    assert reco_keys(rds) == set()
    real = run_syncs(service_settings, names)
    for name in names:
        for field in ("read", "inserted", "updated", "unchanged", "deleted", "failed"):
            assert dry["syncs"][name][field] == real["syncs"][name][field], (name, field)


def test_tampered_destination_survives_dry_run_and_is_repaired(
    service_settings, default_marts, postgres_url, rds
):
    names = ["user_segments", "email_triggers", "recommendations"]
    run_syncs(service_settings, names)
    execute(
        postgres_url, "UPDATE crm.user_segments SET segment = 'tampered' WHERE user_id = 'user_5'"
    )
    execute(postgres_url, "INSERT INTO crm.user_segments (user_id, segment) VALUES ('ghost', 'x')")
    rds.set("reco:user_7", "not json")
    # Another application's key under the same prefix: not the sync's to report or delete.
    rds.set("reco:ghost", json.dumps({"destinations": ["X"], "score": 1, "generated_at": "y"}))
    rds.delete("reco:user_8")

    drift = run_reconcile(service_settings, "user_segments")
    assert (drift["missing"], drift["extra"], drift["different"]) == (0, 1, 1)
    assert drift["different_sample"] == ["user_5"] and drift["extra_sample"] == ["ghost"]
    drift = run_reconcile(service_settings, "recommendations")
    assert (drift["missing"], drift["extra"], drift["different"]) == (1, 0, 1)
    assert drift["missing_sample"] == ["user_8"] and drift["different_sample"] == ["user_7"]
    assert not drift["in_sync"]

    dry = run_syncs(service_settings, names, dry_run=True)
    assert dry["syncs"]["user_segments"]["updated"] == 1
    assert dry["syncs"]["recommendations"]["updated"] == 1
    assert query(
        postgres_url, "SELECT segment FROM crm.user_segments WHERE user_id = 'user_5'"
    ) == [("tampered",)]
    assert rds.get("reco:user_7") == b"not json"

    real = run_syncs(service_settings, names)
    assert real["syncs"]["user_segments"]["deleted"] == 1
    assert real["syncs"]["recommendations"]["deleted"] == 0
    assert real["syncs"]["recommendations"]["inserted"] == 1
    for name in names:
        assert run_reconcile(service_settings, name)["in_sync"], name
    assert json.loads(rds.get("reco:user_7"))["destinations"]
    assert json.loads(rds.get("reco:ghost"))["destinations"] == ["X"]


def test_null_and_duplicate_keys_are_rejects(service_settings, build_marts, postgres_url, rds):
    segments = [segment_row(i) for i in range(5)]
    segments += [(None, *segment_row(50)[1:]), segment_row(3, segment="power")]
    recos = [reco_row(i) for i in range(5)] + [(None, "Paris", None, None, 0.5, AS_OF)]
    recos.append(("user_9", None, None, None, 0.5, AS_OF))
    build_marts(segments=segments, triggers=[], recos=recos)

    report = run_sync(service_settings, "user_segments")
    assert report["failed"] == 3 and report["inserted"] == 4 and report["read"] == 7
    assert report["reject_reasons"] == {"null_key": 1, "duplicate_key": 2}
    rejects = query(
        postgres_url,
        "SELECT key, reason, row_data->>'segment' FROM crm.sync_rejects "
        "ORDER BY key NULLS FIRST, row_data->>'segment'",
    )
    assert rejects[0][:2] == (None, "null_key")
    assert [r[:2] for r in rejects[1:]] == [("user_3", "duplicate_key")] * 2

    reco = run_sync(service_settings, "recommendations")
    assert reco["reject_reasons"] == {"null_key": 1, "missing_value": 1}
    assert reco_keys(rds) == {f"reco:user_{i}" for i in range(5)}


def test_duplicated_key_keeps_its_destination_row(service_settings, build_marts, postgres_url):
    build_marts(segments=[segment_row(i) for i in range(5)])
    run_sync(service_settings, "user_segments")
    build_marts(segments=[segment_row(i) for i in range(5)] + [segment_row(2, segment="power")])
    report = run_sync(service_settings, "user_segments")
    assert report["deleted"] == 0 and report["failed"] == 2
    assert query(postgres_url, "SELECT count(*) FROM crm.user_segments") == [(5,)]


def test_missing_mart_names_the_way_out(service_settings, build_marts):
    with pytest.raises(SearchflowError, match="run `searchflow transform`"):
        run_sync(service_settings, "user_segments")
    build_marts(segments=[segment_row(1)], drop=("marketing.mart_recommendations",))
    with pytest.raises(SearchflowError, match="mart_recommendations.*searchflow transform"):
        run_sync(service_settings, "recommendations")


def test_empty_mart_does_not_wipe_the_destination(service_settings, build_marts, postgres_url):
    build_marts(segments=[segment_row(i) for i in range(5)])
    run_sync(service_settings, "user_segments")
    build_marts(segments=[])
    with pytest.raises(SearchflowError, match="refusing to delete all 5 rows"):
        run_sync(service_settings, "user_segments")
    assert query(postgres_url, "SELECT count(*) FROM crm.user_segments") == [(5,)]
    assert run_sync(service_settings, "user_segments", full_resync=True)["deleted"] == 5


def test_full_resync_rewrites_everything(service_settings, default_marts):
    names = ["user_segments", "recommendations"]
    run_syncs(service_settings, names)
    again = run_syncs(service_settings, names, full_resync=True)
    assert again["syncs"]["user_segments"]["updated"] == 40
    assert again["syncs"]["recommendations"]["updated"] == 40


def test_failed_run_leaves_destination_as_it_was(
    service_settings, build_marts, default_marts, postgres_url, monkeypatch
):
    from searchflow.sync import postgres_sync

    run_sync(service_settings, "user_segments")
    build_marts(segments=[segment_row(i, segment="power") for i in range(20)])

    def broken(*args):
        raise psycopg2.errors.CheckViolation("violates check constraint")

    monkeypatch.setattr(postgres_sync, "mirror_delete", broken)
    with pytest.raises(SearchflowError, match="rolled back"):
        run_sync(service_settings, "user_segments")
    assert query(
        postgres_url,
        "SELECT count(*), count(*) FILTER (WHERE segment = 'power') FROM crm.user_segments",
    ) == [(40, 8)]
    assert query(
        postgres_url, "SELECT status, error IS NOT NULL FROM crm.sync_runs ORDER BY started_at"
    ) == [("succeeded", False), ("failed", True)]
