"""The issue's check, end to end: events and the site's records to Postgres, both ingested, the
marts built; the source reconciles with every warehouse level and no mart text holds an address."""

from __future__ import annotations

import duckdb
import pytest

from flows.gated import gated_ingest, gated_transform
from generator import GeneratorConfig, generate, write
from searchflow.source import GOAL, reconcile

pytestmark = pytest.mark.slow

MART_SCHEMAS = ("analytics", "marketing", "ml")


def test_reconciled_and_no_email_in_the_marts(service_settings):
    batch = generate(GeneratorConfig(events=6000, users=600, seed=4, days=14))
    write(batch, "postgres", service_settings)
    gated_ingest(service_settings, "postgres")
    gated_ingest(service_settings, "app")
    summary = gated_transform(service_settings)
    result = reconcile(service_settings)
    assert result["accuracy"] >= GOAL and result["ok"]
    assert set(result["accuracy_by_level"]) == {"raw", "staging", "history"}
    con = duckdb.connect(str(service_settings.warehouse_path), read_only=True)
    try:
        schemas = [*MART_SCHEMAS, *summary["schemas"].values()]
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR' AND table_schema IN (SELECT unnest($s))",
            {"s": schemas},
        ).fetchall()
        assert len(columns) > 20
        with_at = [
            (s, t, c)
            for s, t, c in columns
            if con.execute(f'SELECT count(*) FROM "{s}"."{t}" WHERE "{c}" LIKE \'%@%\'').fetchone()[
                0
            ]
        ]
        net, gross = con.execute(
            "SELECT sum(net_lifetime_value), sum(lifetime_value) FROM analytics.dim_users"
        ).fetchone()
    finally:
        con.close()
    assert with_at == []
    assert net <= gross
