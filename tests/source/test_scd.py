"""SCD type 2 of the segment snapshot: a change opens a version and closes the old one, an
unchanged row opens none (the app histories have the same test as dbt unit tests)."""

from __future__ import annotations

import duckdb
import pytest

from searchflow import warehouse
from searchflow.config import Settings
from searchflow.transform.runner import invoke

pytestmark = pytest.mark.slow

MART = """
CREATE OR REPLACE TABLE marketing.mart_user_segments AS
SELECT * FROM (VALUES
    ('u1', '{u1}', 3, 1, 0, 0.00::DECIMAL(14, 2), TIMESTAMP '2025-01-01', TIMESTAMP '{as_of}',
     TIMESTAMP '{as_of}'),
    ('u2', 'casual', 2, 0, 0, 0.00::DECIMAL(14, 2), TIMESTAMP '2025-01-01', TIMESTAMP '{as_of}',
     TIMESTAMP '{as_of}')
) AS t(user_id, segment, total_searches, total_clicks, total_conversions, lifetime_value,
       first_seen_at, last_seen_at, as_of)
"""


def _publish(settings: Settings, u1: str, as_of: str) -> None:
    with warehouse.session(settings) as con:
        warehouse.ensure_raw_schema(con)
        con.execute("CREATE SCHEMA IF NOT EXISTS marketing")
        con.execute(MART.format(u1=u1, as_of=as_of))


def _versions(settings: Settings) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(
            "SELECT user_id, segment, dbt_valid_from::VARCHAR, dbt_valid_to::VARCHAR "
            "FROM snapshots.user_segments_snapshot ORDER BY user_id, dbt_valid_from"
        ).fetchall()
    finally:
        con.close()


def test_segment_snapshot_versions(settings: Settings):
    _publish(settings, "engaged", "2025-02-01 00:00:00")
    invoke(settings, "snapshot", select="user_segments_snapshot")
    _publish(settings, "regular", "2025-03-01 00:00:00")  # u1 changes, u2 does not
    invoke(settings, "snapshot", select="user_segments_snapshot")
    assert _versions(settings) == [
        ("u1", "engaged", "2025-02-01 00:00:00", "2025-03-01 00:00:00"),
        ("u1", "regular", "2025-03-01 00:00:00", None),
        ("u2", "casual", "2025-02-01 00:00:00", None),
    ]
