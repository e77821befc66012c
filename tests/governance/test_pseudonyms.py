"""User keys in analytics, marketing and ml are pseudonyms (HMAC under the PII key); the
destinations get the application's real user id back through the restricted store's map."""

from __future__ import annotations

import duckdb
import psycopg2
import pytest
import redis

from flows.gated import gated_ingest, gated_transform
from generator import GeneratorConfig, generate, write
from searchflow import pii, restricted
from searchflow.sync import run_syncs

pytestmark = [pytest.mark.services, pytest.mark.slow]

USER_MARTS = (
    "analytics.dim_users",
    "marketing.mart_user_segments",
    "marketing.mart_recommendations",
    "marketing.mart_email_triggers",
    "ml.user_features",
)


def test_marts_carry_pseudonyms_and_destinations_real_ids(service_settings, redis_url):
    write(
        generate(GeneratorConfig(events=4000, users=300, seed=8, days=30)),
        "postgres",
        service_settings,
    )
    gated_ingest(service_settings, "postgres")
    gated_ingest(service_settings, "app")
    gated_transform(service_settings)
    con = duckdb.connect(str(service_settings.warehouse_path), read_only=True)
    try:
        ids = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT json_extract_string(payload, '$.user_id') FROM raw.search_events "
                "UNION SELECT user_id FROM raw.app_users"
            ).fetchall()
            if r[0]
        }
        keys = {
            m: {r[0] for r in con.execute(f"SELECT user_id FROM {m}").fetchall()}
            for m in USER_MARTS
        }
    finally:
        con.close()
    pseudonyms = {pii.user_key(service_settings, i): i for i in ids}
    for mart, found in keys.items():
        assert found, mart
        assert not found & ids, f"{mart} holds real user ids"
        assert found <= set(pseudonyms), f"{mart} holds keys that are no user's pseudonym"

    store = duckdb.connect(
        str(restricted.restricted_path(service_settings.warehouse_path)), read_only=True
    )
    try:
        mapped = dict(store.execute("SELECT user_key, user_id FROM pii.user_keys").fetchall())
    finally:
        store.close()
    assert {k: mapped[k] for k in keys["marketing.mart_user_segments"]} == {
        k: pseudonyms[k] for k in keys["marketing.mart_user_segments"]
    }

    run_syncs(service_settings, ["user_segments", "email_triggers", "recommendations"])
    with psycopg2.connect(service_settings.postgres_url) as pg, pg.cursor() as cur:
        cur.execute("SELECT user_id FROM crm.user_segments")
        segments = {r[0] for r in cur.fetchall()}
        cur.execute("SELECT user_id FROM crm.email_queue")
        queued = {r[0] for r in cur.fetchall()}
    pg.close()
    assert segments == {pseudonyms[k] for k in keys["marketing.mart_user_segments"]}
    assert queued and queued <= ids
    client = redis.Redis.from_url(redis_url)
    try:
        recos = {
            k.decode().removeprefix("reco:") for k in client.scan_iter(match="reco:*", count=1000)
        }
    finally:
        client.close()
    assert recos == {pseudonyms[k] for k in keys["marketing.mart_recommendations"]}
