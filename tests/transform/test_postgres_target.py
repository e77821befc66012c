"""The same dbt project, the same raw fixture, on the dbt-postgres target (the road to a bigger
warehouse): every model, unit test and data test of a candidate build must pass there too, with the
same segments as on DuckDB. (Publication and the ledger live in the DuckDB warehouse: on Postgres the
candidate is built and read where it is.)"""

from __future__ import annotations

import psycopg2
import pytest

from searchflow.config import Settings
from searchflow.transform import run_transform

from . import scenario
from .rawdata import load_postgres

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_dbt_build_passes_on_postgres(settings: Settings, postgres_url: str) -> None:
    base, _ = scenario.base()
    load_postgres(postgres_url, base.events)
    summary = run_transform(settings, target="postgres", postgres_url=postgres_url)
    assert summary["failed"] == 0 and summary["skipped"] == 0
    assert summary["by_type"]["test"]["run"] > 40
    assert summary["by_type"]["unit_test"]["passed"] == 5  # segments, crm fields, reco, two SCD2

    marketing, analytics = summary["schemas"]["marketing"], summary["schemas"]["analytics"]
    con = psycopg2.connect(postgres_url)
    try:
        with con.cursor() as cur:
            cur.execute(f"SELECT user_id, segment FROM {marketing}.mart_user_segments")
            segments = dict(cur.fetchall())
            cur.execute(f"SELECT sum(conversions), sum(revenue) FROM {analytics}.fct_search_funnel")
            conversions, revenue = cur.fetchone()
            cur.execute(f"SELECT count(*) FROM {marketing}.mart_email_triggers")
            (triggers,) = cur.fetchone()
    finally:
        con.close()
    assert segments["power"] == "power"
    assert segments["late_booker"] == "regular"
    assert segments["dormant"] == "dormant"
    assert "main_marketing" not in segments  # schemas are exact, checked by the query itself
    assert (conversions, str(revenue)) == (6, "385.85")
    assert triggers == 5
