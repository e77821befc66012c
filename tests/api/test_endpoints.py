"""Every endpoint over the fixture world, on the real Postgres and Redis."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from searchflow.api import create_app
from searchflow.config import Settings
from searchflow.errors import UsageError
from tests.api.conftest import MALFORMED_LINE, auth

pytestmark = pytest.mark.services


def test_health_is_ready_with_latencies(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and body["not_ready"] == []
    assert set(body["checks"]) == {"published", "postgres", "redis"}  # no Prefect configured
    assert all(check["latency_ms"] >= 0 for check in body["checks"].values())
    assert "t1" in body["checks"]["published"]["detail"]


def test_health_names_what_is_not_ready(home, postgres_url: str) -> None:
    """Nothing published and a Redis that does not answer: 503 naming both, not a crash."""
    settings = Settings(home=home, postgres_url=postgres_url, redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings, prefect_api_url="http://127.0.0.1:1/api")) as client:
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["not_ready"] == ["published", "redis", "prefect"]
    assert "nothing published" in body["checks"]["published"]["detail"]
    assert body["checks"]["postgres"]["ready"] is True


def test_stats(client: TestClient) -> None:
    body = client.get("/stats").json()
    # the discarded batch's rows are gone from the warehouse, so it is not counted
    assert body["events"] == {"landed": 140, "published": 100, "held": 40, "pending": 0}
    assert body["landed_rate"]["last_hour"] == 140
    assert body["landed_rate"]["per_minute_last_hour"] == pytest.approx(140 / 60, abs=1e-3)
    assert body["batches_by_state"]["ingestion"] == {"discarded": 1, "held": 1, "published": 1}
    assert body["gates"]["ingestion"] == {"outcomes": {"failed": 1, "passed": 1}, "pass_rate": 0.5}
    assert body["dead_letters_by_reason"] == {"missing_field": 2, "unparsable": 1}
    segments = body["syncs"]["user_segments"]
    assert segments["runs"] == 3 and segments["failed_runs"] == 1
    assert segments["latency_p50_seconds"] == pytest.approx(2.0)
    assert segments["latency_p95_seconds"] == pytest.approx(2.9)
    assert segments["destination"] == "postgres crm.user_segments"
    assert body["sync_error_rate"] == pytest.approx(0.25)
    # freshness: the latest PUBLISHED ingestion batch per source (the held redis one is not)
    assert [(f["source"], f["batch_id"], f["status"]) for f in body["freshness"]] == [
        ("jsonl", "ingest-ok", "fresh")
    ]
    assert body["published"]["version"] == "t1"
    assert body["warnings"] == []


def test_stats_without_postgres_says_so(home, redis_url: str) -> None:
    settings = Settings(
        home=home, postgres_url="postgresql://nobody@127.0.0.1:1/x", redis_url=redis_url
    )
    with TestClient(create_app(settings, prefect_api_url=None)) as client:
        response = client.get("/stats")
    assert response.status_code == 200
    body = response.json()
    assert body["syncs"] == {} and body["events"]["landed"] == 0
    assert "sync figures left out" in body["warnings"][0]


def test_batches_list_filter_and_lineage(client: TestClient) -> None:
    held = client.get("/batches", params={"state": "held"}).json()
    assert held["count"] == 1 and held["data"][0]["batch_id"] == "ingest-bad"
    assert held["data"][0]["gate_reasons"][0].startswith("ingestion.batch: dead_letter_share")
    assert client.get("/batches", params={"limit": 2}).json()["count"] == 2
    story = client.get("/batches/gen-1").json()
    assert story["batch"]["stage"] == "generation"
    assert [b["batch_id"] for b in story["lineage"]] == ["gen-1", "ingest-ok", "t1", "sync-1"]


@pytest.mark.parametrize(
    "params",
    [{"state": "lost"}, {"stage": "nope"}, {"limit": 0}, {"limit": 5000}, {"limit": "many"}],
)
def test_batches_bad_parameters_are_422_with_the_reason(client: TestClient, params) -> None:
    response = client.get("/batches", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] in params


def test_unknown_batch_is_404_naming_it(client: TestClient) -> None:
    response = client.get("/batches/no-such-batch")
    assert response.status_code == 404
    assert "no-such-batch" in response.json()["detail"]


def test_user_with_segment_and_recommendations(client: TestClient) -> None:
    body = client.get("/users/user_000001").json()
    assert body["segment"] == "engaged" and body["mart_version"] == "t1"
    assert body["total_searches"] == 12 and body["lifetime_value"] == 250.5
    reco = body["recommendations"]
    assert reco["key"] == "reco:user_000001"
    assert reco["destinations"] == ["Paris", "Rome", "Lisbon"]
    assert 0 < reco["ttl_seconds"] <= 3600


def test_user_without_recommendations(client: TestClient) -> None:
    body = client.get("/users/user_000002").json()
    assert body["segment"] == "casual" and body["recommendations"] is None


def test_unknown_user_is_404(client: TestClient) -> None:
    response = client.get("/users/nobody-at-all")
    assert response.status_code == 404
    assert "nobody-at-all" in response.json()["detail"]


def test_users_follow_the_configured_reco_prefix(api_settings, world, redis_url) -> None:
    import redis

    settings = api_settings.model_copy(update={"reco_prefix": "recs:"})
    client = redis.Redis.from_url(redis_url)
    client.set("recs:user_000002", '{"destinations": ["Oslo"]}')
    client.set("recs:wrongtype-user", "x")
    client.delete("recs:wrongtype-user")
    client.rpush("recs:user_000003", "not", "a", "string")  # another application's list
    client.close()
    with TestClient(create_app(settings, prefect_api_url=None)) as api:
        assert api.get("/users/user_000002").json()["recommendations"]["destinations"] == ["Oslo"]
        assert api.get("/users/user_000001").json()["recommendations"] is None
        assert api.get("/users/user_000003").json()["recommendations"] is None


def test_dead_letters_are_redacted_without_the_token(client: TestClient) -> None:
    body = client.get("/dead-letters", params={"reason": "unparsable"}).json()
    assert body["count"] == 1
    entry = body["data"][0]
    assert entry["batch_id"] == "ingest-ok" and entry["source_ref"] == "f.jsonl:3"
    assert entry["raw_text"] is None
    assert "jane.doe" not in entry["excerpt"] and "<email>" in entry["excerpt"]
    assert "555" not in entry["excerpt"] and "<number>" in entry["excerpt"]
    assert entry["raw_chars"] == len(MALFORMED_LINE)


def test_dead_letters_filter_by_batch(client: TestClient) -> None:
    body = client.get("/dead-letters", params={"batch_id": "ingest-bad"}).json()
    assert [d["dead_letter_id"] for d in body["data"]] == ["d3"]


def test_dead_letters_raw_text_needs_the_token(client: TestClient) -> None:
    denied = client.get("/dead-letters", params={"include_raw": "true"})
    assert denied.status_code == 401
    wrong = client.get(
        "/dead-letters", params={"include_raw": "true"}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    body = client.get(
        "/dead-letters", params={"include_raw": "true", "reason": "unparsable"}, headers=auth()
    ).json()
    assert body["data"][0]["raw_text"] == MALFORMED_LINE


def test_runs_need_the_token(client: TestClient) -> None:
    assert client.post("/runs", json={"events": 10, "seed": 1}).status_code == 401
    wrong = client.post("/runs", json={"events": 10}, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401


def test_runs_without_prefect_are_409_with_the_reason(client: TestClient) -> None:
    response = client.post("/runs", json={"events": 10, "seed": 1}, headers=auth())
    assert response.status_code == 409
    assert "PREFECT_API_URL" in response.json()["detail"]


def test_runs_bad_body_is_422(client: TestClient) -> None:
    response = client.post("/runs", json={"events": 0}, headers=auth())
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "events"]


def test_placeholder_token_is_refused(home) -> None:
    with pytest.raises(UsageError, match="SEARCHFLOW_API_TOKEN"):
        create_app(Settings(home=home, api_token="changeme"), prefect_api_url=None)


def test_cors_is_configurable(api_settings, world) -> None:
    settings = api_settings.model_copy(update={"api_cors_origins": "https://dash.example"})
    with TestClient(create_app(settings, prefect_api_url=None)) as api:
        allowed = api.get("/stats", headers={"Origin": "https://dash.example"})
        other = api.get("/stats", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
    assert "access-control-allow-origin" not in other.headers


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/health", "/stats", "/batches", "/batches/{batch_id}", "/users/{user_id}"):
        assert path in spec["paths"]
    assert "/dead-letters" in spec["paths"] and "post" in spec["paths"]["/runs"]
    assert client.get("/docs").status_code == 200
