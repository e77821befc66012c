"""The scheduled reconcile flow: what counts as drift (pure), and the flow itself on the real
Postgres, Redis and a real Prefect server: clean destinations pass; a row changed by hand in
``crm.user_segments`` and a reco key deleted from Redis fail the run as ``Drifted``, naming both
destinations, with one ``searchflow.reconcile.drift`` event each, and the server posts one alert
per drifted destination to a local webhook."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import duckdb
import httpx
import psycopg2
import pytest
import redis

from flows.reconcile import (
    DRIFT_EVENT,
    DRIFT_STATE,
    Drift,
    ReconcileDrift,
    drift_of,
    drifts,
    pending,
    reconcile,
)
from searchflow.config import Settings
from tests.sync.marts import MART_DDL, reco_row, segment_row, trigger_row


def _result(sync: str, missing=0, extra=0, different=0, **samples: list[str]) -> dict[str, Any]:
    return {
        "sync": sync,
        "destination": f"dest of {sync}",
        "mart_version": "t1",
        "missing": missing,
        "extra": extra,
        "different": different,
        **{
            f"{kind}_sample": samples.get(f"{kind}_sample", [])
            for kind in ("missing", "extra", "different")
        },
    }


def test_what_counts_as_drift() -> None:
    assert drift_of(_result("user_segments")) is None
    assert drift_of(_result("recommendations", extra=2)) == Drift(
        "recommendations", "dest of recommendations", "t1", 0, 2, 0
    )
    # the email queue keeps triggers the mart no longer shows: insert-only, not drift
    assert drift_of(_result("email_triggers", extra=5, extra_sample=["trg_1"])) is None
    # crm.user_segments keeps users who left the mart when told to
    assert drift_of(_result("user_segments", extra=3), keep_removed=True) is None
    assert drift_of(_result("user_segments", extra=3), keep_removed=False).extra == 3
    found = drifts(
        [_result("user_segments"), _result("email_triggers", missing=1, missing_sample=["trg_9"])]
    )
    assert [d.sync for d in found] == ["email_triggers"]


def test_a_version_waiting_for_its_sync_is_pending_not_drift() -> None:
    waiting = {**_result("user_segments", different=40), "synced_by": None}
    assert pending(waiting)
    assert drift_of(waiting) is None
    delivered = {**waiting, "synced_by": "run-1"}
    assert not pending(delivered)
    assert drift_of(delivered).different == 40
    # before any publication there is no version to wait for: differences are drift
    unversioned = {**waiting, "mart_version": None}
    assert not pending(unversioned)
    assert drift_of(unversioned).different == 40


def test_events_name_the_destination_and_never_a_user_id() -> None:
    """Events live in the Prefect server, which `searchflow forget` does not rewrite: user keys
    stay out of them; trigger ids may travel."""
    users = drift_of(_result("user_segments", different=1, different_sample=["user_7"]))
    event = users.event()
    assert event["event"] == DRIFT_EVENT == "searchflow.reconcile.drift"
    assert event["resource"]["prefect.resource.id"] == "searchflow.reconcile.user_segments"
    assert "user_7" not in str(event)
    assert event["payload"]["summary"] == (
        "dest of user_segments (user_segments) drifted from mart version t1: 1 different"
    )
    triggers = drift_of(_result("email_triggers", missing=1, missing_sample=["trg_9"]))
    assert triggers.event()["payload"]["sample"] == "trg_9"


# --- the flow on real services --------------------------------------------------------------


def _build_marts(settings: Settings) -> None:
    settings.ensure_home()
    rows = {
        "marketing.mart_user_segments": [segment_row(i) for i in range(30)],
        "marketing.mart_email_triggers": [trigger_row(i) for i in range(8)],
        "marketing.mart_recommendations": [reco_row(i) for i in range(30)],
    }
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS marketing")
        for mart, values in rows.items():
            con.execute(f"CREATE OR REPLACE TABLE {mart} {MART_DDL[mart]}")
            marks = ", ".join("?" * len(values[0]))
            con.executemany(f"INSERT INTO {mart} VALUES ({marks})", [list(r) for r in values])
    finally:
        con.close()


async def _limit() -> None:
    from prefect.client.orchestration import get_client

    from deployments.prepare import ensure_concurrency_limit

    async with get_client() as client:
        await ensure_concurrency_limit(client)


async def _alerts(url: str | None) -> None:
    from prefect.client.orchestration import get_client

    from deployments.alerts import ensure_alerts

    async with get_client() as client:
        await ensure_alerts(client, url)


def _drift_events(api_url: str, since: float, want: int) -> list[dict[str, Any]]:
    """The drift events the server stored since ``since`` (epoch s), waiting until ``want`` came
    (the server stores events asynchronously)."""
    from datetime import UTC, datetime

    since_iso = datetime.fromtimestamp(since, UTC).isoformat()
    body = {
        "filter": {"event": {"name": [DRIFT_EVENT]}, "occurred": {"since": since_iso}},
        "limit": 50,
    }
    deadline = time.monotonic() + 90
    events: list[dict[str, Any]] = []
    while True:
        try:
            response = httpx.post(f"{api_url}/events/filter", json=body, timeout=30)
            response.raise_for_status()
            events = response.json()["events"]
        except httpx.TimeoutException:
            pass  # a busy test server (SQLite) answers late: ask again until the deadline
        if len(events) >= want or time.monotonic() > deadline:
            return events
        time.sleep(2)


@pytest.mark.prefect_server
@pytest.mark.services
@pytest.mark.timeout(900)
def test_the_flow_passes_clean_destinations_and_fails_naming_drift(
    prefect_env, service_env, service_settings, postgres_url, redis_url
) -> None:
    from deployments.prepare import api
    from tests.orchestration.test_alerts import Receiver

    hook = Receiver()
    with api(prefect_env):
        try:
            asyncio.run(_alerts(hook.url))
            events, alerts = _clean_then_drifted(
                prefect_env, service_settings, postgres_url, redis_url, hook
            )
        finally:
            asyncio.run(_alerts(None))
            hook.stop()
    by_sync: dict[str, list[dict]] = {}
    for event in events:
        by_sync.setdefault(event["resource"]["searchflow.sync"], []).append(event)
    assert set(by_sync) == {"user_segments", "recommendations"}
    assert all(len(found) == 2 for found in by_sync.values())  # one per run and destination
    (payload, *_) = [e["payload"] for e in by_sync["user_segments"]]
    assert (payload["missing"], payload["extra"], payload["different"]) == (0, 0, 1)
    assert payload["destination"] == "postgres crm.user_segments"
    # two drifted runs, two destinations each: four alerts, each naming its destination
    texts = sorted(a["text"] for a in alerts)
    assert len(texts) == 4, texts
    assert sum("SearchFlow: postgres crm.user_segments drifted" in t for t in texts) == 2
    assert sum("1 missing" in t and "recommendations" in t for t in texts) == 2
    assert not any("flow run" in t.splitlines()[0] for t in texts)  # no failed-run alert


def _clean_then_drifted(prefect_env, service_settings, postgres_url, redis_url, hook):
    """Sync, reconcile clean, drift two destinations, reconcile twice; (drift events, alerts)."""
    from searchflow.sync import run_sync

    asyncio.run(_limit())
    service_settings.ensure_home()
    duckdb.connect(str(service_settings.warehouse_path)).close()  # a warehouse, no mart yet
    before = reconcile(return_state=True)
    assert before.is_completed(), before.message  # nothing built is not drift, nor a failure
    assert before.result()["not_built"] == ["user_segments", "email_triggers", "recommendations"]

    _build_marts(service_settings)
    for name in ("user_segments", "email_triggers", "recommendations"):
        run_sync(service_settings, name)

    clean = reconcile(return_state=True)
    assert clean.is_completed(), clean.message
    summary = clean.result()
    assert summary["in_sync"] and summary["drift"] == []
    assert set(summary["syncs"]) == {"user_segments", "email_triggers", "recommendations"}

    con = psycopg2.connect(postgres_url)
    with con, con.cursor() as cur:
        cur.execute("UPDATE crm.user_segments SET segment = 'vip' WHERE user_id = 'user_7'")
        # an extra row in the insert-only queue is its history, not drift
        cur.execute(
            "INSERT INTO crm.email_queue (trigger_id, user_id, trigger_type) "
            "SELECT 'trg_old', user_id, trigger_type FROM crm.email_queue LIMIT 1"
        )
    con.close()
    client = redis.Redis.from_url(redis_url)
    assert client.delete(f"{service_settings.reco_prefix}user_3") == 1
    client.close()

    started = time.time() - 5
    drifted = reconcile(return_state=True)
    assert drifted.is_failed() and drifted.name == DRIFT_STATE
    assert "crm.user_segments (user_segments) drifted" in drifted.message
    assert "1 different" in drifted.message
    assert "(recommendations) drifted" in drifted.message and "1 missing" in drifted.message
    assert "email_triggers" not in drifted.message
    assert "user_7" not in drifted.message and "user_3" not in drifted.message
    with pytest.raises(ReconcileDrift) as raised:
        reconcile()
    assert raised.value.summary["in_sync"] is False

    events = _drift_events(prefect_env, started, want=4)
    deadline = time.monotonic() + 120
    while len(hook.received) < 4 and time.monotonic() < deadline:
        time.sleep(2)
    time.sleep(10)  # room for an alert too many (the failed run's), which must not come
    return events, list(hook.received)
