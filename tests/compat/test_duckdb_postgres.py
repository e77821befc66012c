"""The PostgreSQL extension loads from its wheel and writes a real PostgreSQL table."""

from __future__ import annotations

import duckdb
import psycopg2
import pytest

from searchflow.compat import duckdb_postgres

pytestmark = pytest.mark.services


def test_the_wheel_holds_the_extension_of_this_duckdb() -> None:
    path = duckdb_postgres.extension_path()
    assert path.is_file() and path.parent.name == f"v{duckdb.__version__}"


def test_an_attached_database_is_postgres_itself(postgres_url: str) -> None:
    con = duckdb.connect()
    try:
        duckdb_postgres.attach(con, postgres_url, "wh")
        con.execute("CREATE SCHEMA IF NOT EXISTS probe")
        con.execute("CREATE TABLE probe.t (id VARCHAR, payload JSON)")
        con.execute("""INSERT INTO probe.t VALUES ('a', '{"k": 1}')""")
    finally:
        con.close()
    pg = psycopg2.connect(postgres_url)
    try:
        with pg.cursor() as cur:
            cur.execute(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_schema = 'probe' AND table_name = 't' AND column_name = 'payload'"
            )
            assert cur.fetchone() == ("json",)
            cur.execute("SELECT payload->>'k' FROM probe.t")
            assert cur.fetchone() == ("1",)
    finally:
        pg.close()
