"""Postgres ingestion on the real server: app.events above a watermark kept in DuckDB."""

from __future__ import annotations

import psycopg2
import pytest

from searchflow.config import Settings
from searchflow.errors import SearchflowError, ServiceUnavailable
from searchflow.ingest import run_ingestion

from .conftest import reconciles
from .helpers import event, line, malformed

pytestmark = pytest.mark.services

DDL = """
CREATE SCHEMA IF NOT EXISTS app;
CREATE TABLE IF NOT EXISTS app.events (
    seq bigserial PRIMARY KEY, event_type text NOT NULL, payload text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())
"""


@pytest.fixture
def psettings(home, postgres_url) -> Settings:
    return Settings(home=home, postgres_url=postgres_url)


def _insert(url: str, rows: list[tuple[str, str]]) -> None:
    con = psycopg2.connect(url)
    with con, con.cursor() as cur:
        cur.execute(DDL)
        cur.executemany("INSERT INTO app.events (event_type, payload) VALUES (%s, %s)", rows)
    con.close()


def test_lands_above_the_watermark_and_advances_it(psettings, postgres_url, query):
    rows = [(t, line(event(t, i))) for t in ("search", "click", "conversion") for i in range(20)]
    rows += [("search", line(event("search", 5)))]  # a re-sent event
    rows += [("click", text) for variants in malformed("click", 900).values() for text in variants]
    rows += [("click", 'has "quotes", commas,\nand a newline')]
    _insert(postgres_url, rows)
    summary = run_ingestion(psettings, "postgres", chunk_size=17)
    assert summary["read"] == len(rows)
    assert (summary["landed"], summary["duplicates"]) == (60, 1)
    assert summary["dead_letters"] == len(rows) - 61
    assert reconciles(summary)
    assert summary["watermark_to"] == len(rows) and summary["chunks"] == -(-len(rows) // 17)
    raw = query("SELECT raw_text FROM raw.dead_letter_events WHERE raw_text LIKE 'has%'", psettings)
    assert raw == [('has "quotes", commas,\nand a newline',)]
    ref = query("SELECT source_ref FROM raw.search_events WHERE event_id = 's-000000'", psettings)
    assert ref == [("app.events/1",)]

    assert run_ingestion(psettings, "postgres")["read"] == 0  # nothing above the watermark
    _insert(postgres_url, [("conversion", line(event("conversion", 77)))])
    more = run_ingestion(psettings, "postgres")
    assert (more["read"], more["landed"], more["watermark_from"]) == (1, 1, len(rows))
    assert query("SELECT last_seq FROM raw.ingest_watermarks", psettings) == [(len(rows) + 1,)]


def test_recreated_table_resets_the_watermark_and_dedup_holds(psettings, postgres_url, query):
    _insert(postgres_url, [("search", line(event("search", i))) for i in range(5)])
    run_ingestion(psettings, "postgres")
    con = psycopg2.connect(postgres_url)
    with con, con.cursor() as cur:
        cur.execute("DROP TABLE app.events")
    con.close()
    _insert(postgres_url, [("search", line(event("search", i))) for i in (0, 1)])
    summary = run_ingestion(psettings, "postgres")
    assert summary["watermark_reset"] is True
    assert (summary["landed"], summary["duplicates"]) == (0, 2)


def test_missing_table_is_one_clear_error(psettings):
    with pytest.raises(SearchflowError, match="no table app.events"):
        run_ingestion(psettings, "postgres")


def test_unreachable_postgres_is_one_clear_error(home):
    settings = Settings(home=home, postgres_url="postgresql://nobody:secret@127.0.0.1:1/x")
    with pytest.raises(ServiceUnavailable) as err:
        run_ingestion(settings, "postgres")
    assert "secret" not in str(err.value) and "127.0.0.1:1" in str(err.value)
