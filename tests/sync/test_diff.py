"""The diff against the destination's real values: type round trips, tampering, races, other keys."""

from __future__ import annotations

import json

import psycopg2
import pytest
import redis

from searchflow.sync import postgres_sync, redis_sync, run_reconcile, run_sync

from .marts import AS_OF, reco_row, trigger_row

pytestmark = pytest.mark.services


def execute(url: str, sql: str) -> list[tuple]:
    con = psycopg2.connect(url)
    try:
        with con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        con.commit()
        con.close()


@pytest.fixture
def rds(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_awkward_values_round_trip_without_false_changes(service_settings, build_marts):
    """Text CSV can garble (quotes, commas, newlines, '' vs NULL, fractions of seconds, cents)."""
    weird = [
        ("user,1", 'say "hi"', 1, None, 0, 0.01, AS_OF.replace(microsecond=123456), None, AS_OF)
        + (None, "we,b", None),
        ('user"2', "multi\nline", None, 2, None, None, None, AS_OF.replace(microsecond=1), AS_OF)
        + (3, "", 'F"R'),
        ("user 3", " ", 0, 0, 0, 99999999.99, AS_OF, AS_OF, AS_OF) + (0, None, "US"),
        ("ünïcødé", "ß", -1, 1, 1, -12.5, AS_OF, AS_OF, AS_OF) + (7, "ïos", "ñ"),
    ]
    triggers = [("t,1", "user,1", "", "abandoned_search", None, 2, AS_OF, AS_OF, AS_OF)]
    build_marts(segments=weird, triggers=triggers)
    first = run_sync(service_settings, "user_segments")
    assert first["inserted"] == 4
    again = run_sync(service_settings, "user_segments")
    assert (again["inserted"], again["updated"], again["deleted"], again["unchanged"]) == (
        0,
        0,
        0,
        4,
    )
    assert run_reconcile(service_settings, "user_segments")["in_sync"]
    assert run_sync(service_settings, "email_triggers")["inserted"] == 1
    assert run_sync(service_settings, "email_triggers")["inserted"] == 0
    assert run_reconcile(service_settings, "email_triggers")["in_sync"]


def test_tampering_any_compared_column_is_found_and_repaired(
    service_settings, default_marts, postgres_url
):
    run_sync(service_settings, "user_segments")
    execute(
        postgres_url,
        """
        UPDATE crm.user_segments SET last_seen_at = last_seen_at + interval '1 microsecond'
            WHERE user_id = 'user_1';
        UPDATE crm.user_segments SET lifetime_value = lifetime_value + 0.01 WHERE user_id = 'user_2';
        UPDATE crm.user_segments SET total_clicks = NULL WHERE user_id = 'user_3';
        DELETE FROM crm.user_segments WHERE user_id = 'user_4';
        """,
    )
    drift = run_reconcile(service_settings, "user_segments")
    assert (drift["missing"], drift["extra"], drift["different"]) == (1, 0, 3)
    assert drift["different_sample"] == ["user_1", "user_2", "user_3"]
    report = run_sync(service_settings, "user_segments")
    assert (report["inserted"], report["updated"], report["deleted"]) == (1, 3, 0)
    assert run_reconcile(service_settings, "user_segments")["in_sync"]


def test_rows_written_behind_the_plan_fall_back_to_the_upsert(
    service_settings, default_marts, postgres_url, monkeypatch
):
    """A key that appears between the diff and the COPY is upserted, not a unique violation."""
    run_sync(service_settings, "user_segments")
    run_sync(service_settings, "email_triggers")
    execute(postgres_url, "UPDATE crm.user_segments SET segment = 'x' WHERE user_id = 'user_9'")
    real = postgres_sync.snapshot

    def blind(cur, target, columns, schema):  # the destination looks empty to the plan
        return real(cur, target, columns, schema).slice(0, 0)

    monkeypatch.setattr(postgres_sync, "snapshot", blind)
    seg = run_sync(service_settings, "user_segments")
    assert (seg["inserted"], seg["updated"], seg["deleted"]) == (0, 1, 0)
    queue = run_sync(service_settings, "email_triggers")
    assert queue["inserted"] == 0
    monkeypatch.undo()
    assert run_reconcile(service_settings, "user_segments")["in_sync"]


def test_keys_of_other_applications_are_left_alone(service_settings, build_marts, rds):
    """A mirror deletes only what it wrote: another application's keys, under the same prefix or
    not, survive every sync, a full resync included, and reconcile does not call them extra."""
    build_marts(recos=[reco_row(i) for i in range(6)])
    rds.set("other:app", "keep")
    rds.xadd("events", {"a": "1"})
    theirs = {f"reco:theirs_{i}": json.dumps({"destinations": [], "score": i}) for i in range(50)}
    rds.mset(theirs)
    first = run_sync(service_settings, "recommendations")
    assert (first["inserted"], first["deleted"]) == (6, 0)
    build_marts(recos=[reco_row(i) for i in range(4)])  # two of our users leave the mart
    drift = run_reconcile(service_settings, "recommendations")
    assert (drift["extra"], drift["extra_sample"]) == (2, ["user_4", "user_5"])
    again = run_sync(service_settings, "recommendations")
    assert (again["inserted"], again["updated"], again["deleted"], again["unchanged"]) == (
        0,
        0,
        2,
        4,
    )
    assert run_sync(service_settings, "recommendations", full_resync=True)["deleted"] == 0
    assert rds.get("reco:user_4") is None and rds.get("reco:user_5") is None
    assert rds.get("other:app") == b"keep" and rds.xlen("events") == 1
    assert {k: v.decode() for k, v in zip(theirs, rds.mget(list(theirs)), strict=True)} == theirs
    assert run_reconcile(service_settings, "recommendations")["in_sync"]
    owned = redis_sync.owned_keys(rds).to_pylist()
    assert sorted(owned) == [f"reco:user_{i}" for i in range(4)]


def test_an_unchanged_sync_claims_nothing_and_reads_no_owned_keys(
    service_settings, build_marts, rds, monkeypatch
):
    build_marts(recos=[reco_row(i) for i in range(5)])
    run_sync(service_settings, "recommendations")
    calls: list[str] = []
    for name in ("owned_keys", "_replace_owned"):
        original = getattr(redis_sync, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(redis_sync, name, spy)
    assert run_sync(service_settings, "recommendations")["unchanged"] == 5
    assert calls == []  # the owned list holds exactly the mart's keys (its state says so)
    build_marts(recos=[reco_row(i) for i in range(3)])
    report = run_sync(service_settings, "recommendations")
    assert (report["deleted"], report["unchanged"]) == (2, 3)
    assert calls == ["owned_keys", "_replace_owned", "_replace_owned"]  # read, claim, settle
    calls.clear()
    assert run_sync(service_settings, "recommendations")["unchanged"] == 3 and calls == []
    # A crash between the claim and the end of a run leaves the list claiming, with a key the
    # mart no longer has: the next run reads the list and deletes it.
    rds.delete(redis_sync.owned_list())
    rds.rpush(redis_sync.owned_list(), "claiming", json.dumps(["reco:user_4", "reco:user_0"]))
    rds.set("reco:user_4", "ours, left behind")
    assert run_sync(service_settings, "recommendations")["deleted"] == 1
    assert rds.get("reco:user_4") is None


def test_an_expired_owned_key_leaves_the_set_without_counting_as_deleted(
    service_settings, build_marts, rds
):
    build_marts(recos=[reco_row(i) for i in range(3)])
    run_sync(service_settings, "recommendations")
    rds.delete("reco:user_2")  # as if its TTL ran out
    build_marts(recos=[reco_row(i) for i in range(2)])
    assert run_reconcile(service_settings, "recommendations")["extra"] == 0
    report = run_sync(service_settings, "recommendations")
    assert (report["deleted"], report["unchanged"]) == (0, 2)
    assert sorted(redis_sync.owned_keys(rds).to_pylist()) == ["reco:user_0", "reco:user_1"]


def test_the_key_prefix_is_configurable(service_settings, build_marts, rds):
    build_marts(recos=[reco_row(i) for i in range(3)])
    rds.set("reco:user_0", "another application's")
    settings = service_settings.model_copy(update={"reco_prefix": "sf:reco:"})
    report = run_sync(settings, "recommendations")
    assert report["inserted"] == 3 and report["destination"] == "redis sf:reco:{user_id}"
    assert json.loads(rds.get("sf:reco:user_1"))["destinations"]
    assert rds.get("reco:user_0") == b"another application's"
    assert len(redis_sync.owned_keys(rds, "sf:reco:")) == 3 and not rds.exists(
        "searchflow:owned:reco:"
    )
    assert run_reconcile(settings, "recommendations")["in_sync"]


def test_value_with_extra_fields_or_other_spelling_is_rewritten(service_settings, build_marts, rds):
    build_marts(recos=[reco_row(1)])
    run_sync(service_settings, "recommendations")
    value = json.loads(rds.get("reco:user_1"))
    rds.set("reco:user_1", json.dumps(value, indent=1))  # same content, other spelling
    report = run_sync(service_settings, "recommendations")
    assert report["updated"] == 1
    assert json.loads(rds.get("reco:user_1")) == {**value, "sync_run_id": report["run_id"]}
    assert run_sync(service_settings, "recommendations")["unchanged"] == 1


def test_trigger_rows_in_mart_round_trip(service_settings, build_marts):
    build_marts(triggers=[trigger_row(i) for i in range(3)])
    assert run_sync(service_settings, "email_triggers", dry_run=True)["inserted"] == 3
    assert run_sync(service_settings, "email_triggers")["inserted"] == 3


def test_awkward_recommendations_round_trip_as_json(service_settings, build_marts, rds):
    """Multi-byte text, quotes and backslashes: RESP lengths are bytes, the JSON is escaped."""
    recos = [
        ("ünïcødé 1", "Zürich", 'Say "Hi"', "back\\slash", 0.5, AS_OF),
        ("東京", "東京", None, None, 1.0, AS_OF.replace(microsecond=7)),
        ("tab\tuser", "São Paulo", "Kraków", None, 0.0001, AS_OF),
    ]
    build_marts(recos=recos)
    first = run_sync(service_settings, "recommendations")
    assert (first["inserted"], first["failed"]) == (3, 0)
    for user, d1, d2, d3, score, generated_at in recos:
        value = json.loads(rds.get(f"reco:{user}"))
        assert value == {
            "destinations": [d for d in (d1, d2, d3) if d is not None],
            "score": score,
            "generated_at": generated_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "sync_run_id": first["run_id"],
        }
        assert 86000 < rds.ttl(f"reco:{user}") <= 86400
    again = run_sync(service_settings, "recommendations")
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert run_reconcile(service_settings, "recommendations")["in_sync"]


def test_dry_run_and_reconcile_leave_ttls_alone(service_settings, build_marts, rds):
    """A real run refreshes every unchanged key's TTL while it reads them; a dry run must not."""
    build_marts(recos=[reco_row(i) for i in range(4)])
    run_sync(service_settings, "recommendations")
    rds.expire("reco:user_1", 100)
    assert run_sync(service_settings, "recommendations", dry_run=True)["unchanged"] == 4
    run_reconcile(service_settings, "recommendations")
    assert 0 < rds.ttl("reco:user_1") <= 100
    rds.set("reco:user_2", "changed", ex=50)
    report = run_sync(service_settings, "recommendations")
    assert (report["updated"], report["unchanged"]) == (1, 3)
    assert rds.ttl("reco:user_1") > 86000 and rds.ttl("reco:user_2") > 86000
    assert json.loads(rds.get("reco:user_2"))["destinations"] == list(reco_row(2)[1:4])
