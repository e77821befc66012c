"""The issue's check, end to end: events and the site's records to Postgres, both ingested, the
marts built; the source reconciles with every warehouse level, no text outside raw in the
warehouse file holds an address, and the one restricted model lives in an owner-only file."""

from __future__ import annotations

import stat

import duckdb
import pytest

from flows.gated import gated_ingest, gated_transform
from generator import GeneratorConfig, generate, write
from searchflow import restricted
from searchflow.source import GOAL, reconcile

pytestmark = pytest.mark.slow

MART_SCHEMAS = ("analytics", "marketing", "ml")
# Modelled layers in the warehouse file: no email, name or phone there (only raw keeps them)
MODELLED = ("staging", "intermediate", "snapshots")


def test_reconciled_and_no_email_in_the_marts(service_settings):
    batch = generate(GeneratorConfig(events=6000, users=600, seed=4, days=14))
    write(batch, "postgres", service_settings)
    gated_ingest(service_settings, "postgres")
    gated_ingest(service_settings, "app")
    summary = gated_transform(service_settings)
    result = reconcile(service_settings)
    assert result["accuracy"] >= GOAL and result["ok"]
    assert set(result["accuracy_by_level"]) == {"raw", "staging", "history", "restricted"}
    store = restricted.restricted_path(service_settings.warehouse_path)
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
    con = duckdb.connect(str(service_settings.warehouse_path), read_only=True)
    try:
        schemas = [*MART_SCHEMAS, *MODELLED, *summary["schemas"].values()]
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR' AND table_schema IN (SELECT unnest($s)) "
            "AND table_catalog = current_database()",
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
        pii_columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE column_name IN ('email', 'full_name', 'phone') AND table_schema <> 'raw'"
        ).fetchall()
        net, gross = con.execute(
            "SELECT sum(net_lifetime_value), sum(lifetime_value) FROM analytics.dim_users"
        ).fetchone()
    finally:
        con.close()
    assert with_at == []
    assert pii_columns == []
    with duckdb.connect(str(store), read_only=True) as con:
        addressed = con.execute(
            "SELECT count(*) FROM pii.user_contacts WHERE email LIKE '%@%'"
        ).fetchone()[0]
    assert addressed > 0
    assert net <= gross
