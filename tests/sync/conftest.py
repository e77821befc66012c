"""Marts built directly in a test warehouse, in the contract's columns (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb
import pytest

from searchflow import restricted
from searchflow.config import Settings

from .marts import CONTACTS_DDL, MART_DDL, contact_rows, reco_row, segment_row, trigger_row


@pytest.fixture
def build_marts(settings: Settings) -> Callable[..., None]:
    """Replace the marts in the test warehouse: build_marts(segments=[...], triggers=..., recos=...).

    A mart passed as None is left as it is; pass ``drop=("marketing.mart_x",)`` to remove one.
    With triggers, the restricted store's contacts are rebuilt too: ``contacts`` rows as given,
    else one consented profile per trigger's user (the email sync addresses consented users only).
    """

    def build(
        segments: Sequence[tuple] | None = None,
        triggers: Sequence[tuple] | None = None,
        recos: Sequence[tuple] | None = None,
        drop: Sequence[str] = (),
        contacts: Sequence[tuple] | None = None,
    ) -> None:
        settings.ensure_home()
        con = duckdb.connect(str(settings.warehouse_path))
        try:
            con.execute("CREATE SCHEMA IF NOT EXISTS marketing")
            for mart, rows in (
                ("marketing.mart_user_segments", segments),
                ("marketing.mart_email_triggers", triggers),
                ("marketing.mart_recommendations", recos),
            ):
                if rows is None:
                    continue
                con.execute(f"CREATE OR REPLACE TABLE {mart} {MART_DDL[mart]}")
                if rows:
                    marks = ", ".join("?" * len(rows[0]))
                    con.executemany(f"INSERT INTO {mart} VALUES ({marks})", [list(r) for r in rows])
            for mart in drop:
                con.execute(f"DROP TABLE IF EXISTS {mart}")
        finally:
            con.close()
        if triggers is not None or contacts is not None:
            rows = contacts if contacts is not None else contact_rows(triggers or [])
            store = duckdb.connect(str(restricted.ensure_store(settings.warehouse_path)))
            try:
                store.execute("CREATE SCHEMA IF NOT EXISTS pii")
                store.execute(f"CREATE OR REPLACE TABLE pii.user_contacts {CONTACTS_DDL}")
                if rows:
                    store.executemany(
                        "INSERT INTO pii.user_contacts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [list(r) for r in rows],
                    )
            finally:
                store.close()

    return build


@pytest.fixture
def default_marts(build_marts) -> dict[str, list[tuple]]:
    """Small marts: 40 users, 12 triggers, 40 recommendations (some with fewer destinations)."""
    rows = {
        "segments": [segment_row(i) for i in range(40)],
        "triggers": [trigger_row(i) for i in range(12)],
        "recos": [reco_row(i, n=1 + i % 3) for i in range(40)],
    }
    build_marts(**rows)
    return rows
