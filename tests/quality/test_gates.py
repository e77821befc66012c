"""Each gate passes a clean batch and blocks a bad one, on the real DuckDB, Postgres and Redis."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
import redis

from searchflow.config import Settings
from searchflow.contract import reco_owned_list
from searchflow.errors import GateFailed
from searchflow.quality import gate
from searchflow.quality.history import latest
from tests.quality.helpers import build_marts, land_raw, quarantine_rows


def _frames(n: int = 300) -> dict[str, pd.DataFrame]:
    ts = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(range(n), unit="s")
    search = pd.DataFrame(
        {
            "event_id": [f"s{i}" for i in range(n)],
            "event_type": "search",
            "timestamp": ts,
            "user_id": None,
            "session_id": [f"x{i}" for i in range(n)],
            "query": "hotels in Paris",
            "destination": "Paris",
            "results_count": pd.Series(range(n), dtype="int64"),
            "page": 1,
            "platform": "web",
            "device_type": "desktop",
            "geo_country": "FR",
            "geo_city": "Paris",
            "utm_source": None,
            "utm_campaign": None,
        }
    )
    k = n * 3 // 10
    click = pd.DataFrame(
        {
            "event_id": [f"c{i}" for i in range(k)],
            "event_type": "click",
            "timestamp": ts[:k],
            "user_id": None,
            "session_id": [f"x{i}" for i in range(k)],
            "search_event_id": [f"s{i}" for i in range(k)],
            "result_id": "h_1",
            "result_position": 1,
            "result_type": "hotel",
            "result_price": 100.0,
            "result_destination": "Paris",
            "result_provider": "Booking",
        }
    )
    m = k // 10
    conversion = pd.DataFrame(
        {
            "event_id": [f"v{i}" for i in range(m)],
            "event_type": "conversion",
            "timestamp": ts[:m],
            "user_id": None,
            "session_id": [f"x{i}" for i in range(m)],
            "click_event_id": [f"c{i}" for i in range(m)],
            "booking_value": 250.0,
            "commission": 25.0,
            "currency": "USD",
            "product_type": "hotel",
            "provider": "Booking",
        }
    )
    return {"search": search, "click": click, "conversion": conversion}


def _failed_results(settings: Settings) -> list[Path]:
    return [
        p
        for p in (settings.home_path / "quality" / "validations").rglob("*.json")
        if json.loads(p.read_text())["success"] is False
    ]


def test_generation_passes_on_the_generators_batch(settings: Settings) -> None:
    from generator.batch import generate
    from generator.config import GeneratorConfig

    # injected faults are input for the later stages: the generation gate judges the simulation
    config = GeneratorConfig(
        events=2000, seed=3, malformed_rate=0.3, duplicate_rate=0.2, late_rate=0.2
    )
    batch = generate(config)
    outcome = gate("generation", settings, {"batch_id": batch.batch_id}, data=batch)
    assert outcome["status"] == "passed"
    assert outcome["evaluated"] == 20 and outcome["failed"] == outcome["errored"] == 0
    assert Path(outcome["report"]).exists()


def test_generation_fails_on_duplicate_ids_and_quarantines_them(settings: Settings) -> None:
    frames = _frames()
    frames["search"].loc[[5, 6], "event_id"] = "s0"
    with pytest.raises(GateFailed) as err:
        gate("generation", settings, {"batch_id": "gen-dup"}, data=frames)
    message = str(err.value)
    assert "\n" not in message
    assert "generation.batch: column_max_to_be_between(search_duplicate_ids) observed 3" in message
    # the reason points at the rows: a few of their ids
    [reason] = err.value.outcome["reasons"]
    assert reason.endswith("; e.g. event_id s0, s0, s0"), reason
    rows = quarantine_rows(settings)
    assert set(rows["reason"]) == {"event_id is not unique"}
    assert len(rows) == 3 and set(rows["batch_id"]) == {"gen-dup"}
    assert json.loads(rows["row"][0])["event_id"] == "s0"


def test_generation_fails_on_numbers_out_of_their_bounds(settings: Settings) -> None:
    frames = _frames()
    frames["conversion"].loc[[0, 1], "booking_value"] = [-5.0, 1e17]
    frames["search"].loc[7, "page"] = 0
    with pytest.raises(GateFailed) as err:
        gate("generation", settings, {"batch_id": "gen-bounds"}, data=frames)
    reasons = err.value.outcome["reasons"]
    assert len(reasons) == 2
    assert reasons[0].startswith(
        "generation.batch: column_max_to_be_between(search_out_of_bounds) observed 1, expected at "
        "most 0 (search events with results_count outside [0, 2^31) or page outside [1, 2^31)); "
        "e.g. event_id s7"
    ), reasons
    assert "column_max_to_be_between(conversion_out_of_bounds) observed 2" in reasons[1]
    assert reasons[1].endswith("e.g. event_id v0, v1")
    rows = quarantine_rows(settings)
    assert set(rows["reason"]) == {
        "results_count outside [0, 2.14748e+09) or page outside [1, 2.14748e+09)",
        "booking_value outside [0.01, 1e+16) or commission outside [0, 1e+16)",
    }


def test_generation_fails_on_a_platform_outside_the_vocabulary(settings: Settings) -> None:
    frames = _frames()
    frames["search"].loc[[3, 4], "platform"] = "windows-phone"
    with pytest.raises(GateFailed) as err:
        gate("generation", settings, {"batch_id": "gen-vocab"}, data=frames)
    [reason] = err.value.outcome["reasons"]
    assert reason.startswith(
        "generation.batch: column_max_to_be_between(search_not_in_vocabulary) observed 2"
    )
    assert reason.endswith("; e.g. event_id s3, s4"), reason
    assert set(quarantine_rows(settings)["reason"]) == {
        "platform not one of web, ios, android or device_type not one of desktop, mobile, tablet"
    }


def test_generation_fails_when_the_click_through_rate_leaves_its_band(settings: Settings) -> None:
    frames = _frames()
    frames["click"] = frames["click"].head(3)
    frames["conversion"] = frames["conversion"].head(0)
    with pytest.raises(GateFailed, match=r"column_max_to_be_between\(click_through_rate\)"):
        gate("generation", settings, {"batch_id": "gen-rate"}, data=frames)


def test_an_expectation_that_raises_is_errored_and_blocks(settings: Settings) -> None:
    frames = _frames()
    frames["click"] = frames["click"].drop(columns=["session_id"])
    with pytest.raises(GateFailed) as err:
        gate("generation", settings, {"batch_id": "gen-err"}, data=frames)
    outcome = err.value.outcome
    assert outcome["status"] == "errored"
    assert any(
        "click_missing_required" in e and "session_id" in e for e in outcome["errored_expectations"]
    )
    assert "errored:" in str(err.value)
    # errored and failed are reported apart: the missing column fails the schema check too
    assert any(
        "column_distinct_values_to_contain_set(field) observed missing click.session_id" in f
        for f in outcome["failed_expectations"]
    )


def test_ingestion_passes_a_clean_batch(settings: Settings) -> None:
    land_raw(settings)
    outcome = gate("ingestion", settings, {"batch_id": "ing-1"})
    assert outcome["status"] == "passed", outcome["message"]
    assert outcome["counts"] == {"search": 200, "click": 60, "conversion": 6, "dead_letters": 0}


def test_ingestion_fails_on_30_percent_malformed_and_leaves_docs(settings: Settings) -> None:
    land_raw(settings, searches=140, clicks=0, conversions=0, dead_letters=60)
    with pytest.raises(GateFailed) as err:
        gate("ingestion", settings, {"batch_id": "ing-1"})
    assert "ingestion gate failed" in str(err.value)
    assert "column_max_to_be_between(dead_letter_share) observed 0.3" in str(err.value)
    outcome = err.value.outcome
    # what the batch ledger records: the outcome, one reason per failed expectation, the count
    assert outcome["status"] == "failed" and outcome["evaluated"] == 14
    [reason] = outcome["reasons"]
    assert reason == (
        "ingestion.batch: column_max_to_be_between(dead_letter_share) observed 0.3, "
        "expected between 0 and 0.05 (dead letters / lines read: lines that could not be landed "
        "(malformed JSON, missing or invalid fields))"
    )
    assert "\n" not in reason
    rows = {r["expectation"]: r for r in outcome["expectations"]}
    assert len(rows) == 14
    assert rows["column_max_to_be_between(dead_letter_share)"]["status"] == "failed"
    home = settings.home_path / "quality"
    assert (home / "data_docs" / "index.html").exists()
    failed = _failed_results(settings)
    assert any("ingestion" in str(p) for p in failed)
    assert Path(err.value.outcome["report"]).exists()
    [last] = latest(settings, "ingestion")
    assert last["status"] == "failed" and last["failed"] == 1


def test_ingestion_quarantines_orphan_clicks(settings: Settings) -> None:
    land_raw(settings, clicks=60, orphan_clicks=15)
    with pytest.raises(
        GateFailed, match=r"column_max_to_be_between\(click_orphan_share\) observed 0.25"
    ) as err:
        gate("ingestion", settings, {"batch_id": "ing-1"})
    [reason] = err.value.outcome["reasons"]
    assert "share of click rows whose search_event_id is in no raw search event" in reason
    assert reason.endswith("; e.g. source_ref f:0, f:1, f:2 and 12 more"), reason
    rows = quarantine_rows(settings)
    assert len(rows) == 15
    assert set(rows["suite"]) == {"ingestion.batch"}
    assert set(rows["reason"]) == {"search_event_id is in no raw search event"}
    assert all(json.loads(r)["has_search"] is False for r in rows["row"])


def test_transformation_gate(settings: Settings) -> None:
    land_raw(settings)
    build_marts(settings)
    assert gate("transformation", settings, {"batch_id": "t-1"})["status"] == "passed"
    build_marts(settings, bad_segment=True)
    with pytest.raises(GateFailed, match=r"column_values_to_be_in_set\(segment\)"):
        gate("transformation", settings, {"batch_id": "t-2"})
    rows = quarantine_rows(settings)
    assert json.loads(rows["row"][0])["segment"] == "vip"


def test_transformation_gate_validates_the_candidate_named_in_the_summary(
    settings: Settings,
) -> None:
    land_raw(settings)
    build_marts(settings, bad_segment=True)  # the published names hold a bad mart
    build_marts(settings, version="v2")
    schemas = {s: f"{s}__v2" for s in ("analytics", "marketing", "ml")}
    summary = {"batch_id": "v2", "version": "v2", "schemas": schemas}
    assert gate("transformation", settings, summary)["status"] == "passed"
    build_marts(settings, version="v3", bad_segment=True)
    schemas = {s: f"{s}__v3" for s in ("analytics", "marketing", "ml")}
    with pytest.raises(GateFailed, match=r"column_values_to_be_in_set\(segment\)"):
        gate("transformation", settings, {"batch_id": "v3", "schemas": schemas})
    with pytest.raises(GateFailed, match="found no marketing__v4.mart_user_segments"):
        gate(
            "transformation",
            settings,
            {"batch_id": "v4", "schemas": {"marketing": "marketing__v4"}},
        )


def test_transformation_totals_count_only_published_raw_batches(settings: Settings) -> None:
    land_raw(settings)
    build_marts(settings)
    # a held batch's rows stay in raw, unpublished: the marts do not see them, nor does the gate
    with warehouse_session(settings) as con:
        con.execute(
            "INSERT INTO raw.search_events SELECT * REPLACE ('held' || event_id AS event_id, "
            "'ing-held' AS batch_id) FROM raw.search_events"
        )
        from searchflow import ledger

        ledger.record(con, "ing-held", "ingestion", state="held")
    assert gate("transformation", settings, {"batch_id": "t-4"})["status"] == "passed"


def test_transformation_gate_checks_funnel_totals_against_raw(settings: Settings) -> None:
    land_raw(settings)
    build_marts(settings)
    land_raw(settings, batch_id="ing-2", searches=0, clicks=0, conversions=0)
    with warehouse_session(settings) as con:
        con.execute(
            "INSERT INTO raw.search_events SELECT * REPLACE ('late' || event_id AS event_id) FROM raw.search_events LIMIT 5"
        )
    with pytest.raises(GateFailed, match="funnel_searches,raw_searches"):
        gate("transformation", settings, {"batch_id": "t-3"})


def warehouse_session(settings: Settings):
    from searchflow import warehouse

    return warehouse.session(settings)


def _crm(url: str, rows: int) -> None:
    con = psycopg2.connect(url)
    with con, con.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS crm")
        cur.execute(
            "CREATE TABLE IF NOT EXISTS crm.user_segments (user_id text PRIMARY KEY, segment text)"
        )
        cur.execute("TRUNCATE crm.user_segments")
        cur.execute(
            "INSERT INTO crm.user_segments SELECT 'u' || i, 'casual' FROM generate_series(0, %s) i",
            (rows - 1,),
        )
    con.close()


@pytest.mark.services
def test_sync_user_segments_through_the_postgres_sql_datasource(
    service_settings: Settings, postgres_url: str
) -> None:
    land_raw(service_settings)
    build_marts(service_settings, users=50)
    _crm(postgres_url, 50)
    outcome = gate("sync", service_settings, {"batch_id": "s-1", "sync": "user_segments"})
    assert outcome["status"] == "passed" and outcome["key"] == "sync.user_segments"
    _crm(postgres_url, 48)
    with pytest.raises(GateFailed, match=r"sync.user_segments: table_row_count_to_equal"):
        gate("sync", service_settings, {"batch_id": "s-2", "sync": "user_segments"})


@pytest.mark.services
def test_sync_gate_on_a_missing_table_is_errored(service_settings: Settings) -> None:
    land_raw(service_settings)
    build_marts(service_settings)
    with pytest.raises(GateFailed) as err:
        gate("sync", service_settings, {"batch_id": "s-3", "sync": "email_triggers"})
    assert err.value.outcome["status"] == "errored"


@pytest.mark.services
def test_sync_recommendations_samples_redis(service_settings: Settings, redis_url: str) -> None:
    land_raw(service_settings)
    build_marts(service_settings)
    client = redis.Redis.from_url(redis_url)
    body = json.dumps(
        {"destinations": ["Paris", "Rome"], "score": 0.85, "generated_at": "2025-01-02"}
    )
    owned = reco_owned_list(service_settings.reco_prefix)
    client.rpush(owned, "done:x")  # the list's state, then JSON arrays of the keys (as the sync)
    for i in range(20):
        client.set(f"reco:u{i}", body, ex=86400)
    client.rpush(owned, json.dumps([f"reco:u{i}" for i in range(12)]))
    client.rpush(owned, json.dumps([f"reco:u{i}" for i in range(12, 20)]))
    client.set("reco:other-app", "not ours, no TTL")  # under the prefix, not written by the sync
    outcome = gate("sync", service_settings, {"batch_id": "r-1", "sync": "recommendations"})
    assert outcome["status"] == "passed" and outcome["counts"]["sampled"] == 20
    client.set("reco:u99", body)  # no TTL
    client.set("reco:u98", "not json", ex=60)
    client.rpush(owned, json.dumps(["reco:u99", "reco:u98"]))
    with pytest.raises(GateFailed) as err:
        gate("sync", service_settings, {"batch_id": "r-2", "sync": "recommendations"})
    message = str(err.value)
    assert "column_values_to_be_between(ttl_seconds)" in message
    assert "column_values_to_be_in_set(json_ok)" in message
    reasons = set(quarantine_rows(service_settings)["reason"])
    assert any(r.startswith("ttl_seconds") for r in reasons)
    client.close()


def _main(*args: str) -> int:
    from searchflow.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_dq_check_reruns_a_gate_on_the_current_state(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEARCHFLOW_HOME", str(settings.home_path))
    assert _main("dq", "check", "ingestion") == 2  # nothing gated yet: a usage error
    assert "pass --batch-id" in capsys.readouterr().err
    land_raw(settings)
    build_marts(settings, bad_segment=True)
    assert _main("dq", "check", "ingestion", "--batch-id", "ing-1", "--json") == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(out)["status"] == "passed"
    assert _main("dq", "check", "transformation") == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "column_values_to_be_in_set(segment)" in err
    assert [s["key"] for s in latest(settings)] == ["ingestion", "transformation"]
