"""A forgotten user does not come back from the application database: a full re-extraction
counts their rows as suppressed (landed nowhere, not even as dead letters) and the source still
reconciles, the suppressed keys left out of the comparison."""

from __future__ import annotations

import psycopg2
import pytest

from flows.forget import forget_user
from flows.gated import gated_ingest
from generator import GeneratorConfig, generate, write
from searchflow import warehouse
from searchflow.ingest import run_ingestion
from searchflow.source import reconcile

pytestmark = pytest.mark.services


def test_a_full_extraction_skips_a_forgotten_user(service_settings):
    write(
        generate(GeneratorConfig(events=2000, users=200, seed=11, days=20)),
        "postgres",
        service_settings,
    )
    gated_ingest(service_settings, "app")
    with psycopg2.connect(service_settings.postgres_url) as con, con.cursor() as cur:
        cur.execute(
            "SELECT u.user_id, u.email, count(b.booking_id) FROM app.users u "
            "JOIN app.bookings b USING (user_id) GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 1"
        )
        user_id, email, bookings = cur.fetchone()
    con.close()
    forget_user(service_settings, user_id, services=False)

    summary = run_ingestion(service_settings, "app", full=True)

    assert summary["suppressed"] >= 1 + bookings
    assert summary["landed"] == 0  # every other version was landed before
    with warehouse.session(service_settings, read_only=True) as con:
        found = con.execute(
            "SELECT (SELECT count(*) FROM raw.app_users WHERE user_id = $u OR email = $e) "
            "+ (SELECT count(*) FROM raw.app_bookings WHERE user_id = $u) "
            "+ (SELECT count(*) FROM raw.dead_letter_events "
            "   WHERE contains(raw_text, $u) OR contains(raw_text, $e))",
            {"u": user_id, "e": email},
        ).fetchone()[0]
    assert found == 0
    result = reconcile(service_settings)
    assert result["accuracy"] == 1.0 and result["ok"]
    assert result["tables"]["users"]["source_rows"] == 199
