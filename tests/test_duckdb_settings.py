"""The bounded-memory settings reach every DuckDB the stages open: the warehouse and dbt."""

from __future__ import annotations

from pathlib import Path

import yaml

from searchflow import warehouse
from searchflow.config import Settings
from searchflow.transform import dbt_env

ROOT = Path(__file__).resolve().parents[1]


def _current(con) -> tuple[str, int, str]:
    return con.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads'), "
        "current_setting('temp_directory')"
    ).fetchone()


def test_memory_limit_threads_and_spill_folder_reach_the_warehouse(home: Path) -> None:
    settings = Settings(home=home, duckdb_memory_limit="300MB", duckdb_threads=1)
    spill = str(home.resolve() / "tmp" / "duckdb")
    with warehouse.session(settings) as con:
        limit, threads, temp = _current(con)
    assert limit.endswith("MiB") and float(limit.split()[0]) < 300
    assert (threads, temp) == (1, spill)
    # the attaching connection (a row group size) gets them too, writing or read-only
    for read_only in (False, True):
        with warehouse.session(settings, read_only=read_only, row_group_size=2048) as con:
            assert _current(con)[1:] == (1, spill)
            assert float(_current(con)[0].split()[0]) < 300


def test_a_different_limit_gives_a_different_setting(home: Path) -> None:
    small = Settings(home=home, duckdb_memory_limit="200MB", duckdb_temp_directory=home / "spill")
    with warehouse.session(small) as con:
        limit, _threads, temp = _current(con)
    assert float(limit.split()[0]) < 200 and temp == str((home / "spill").resolve())


def test_dbt_gets_the_same_bounds(home: Path) -> None:
    settings = Settings(home=home, duckdb_memory_limit="700MB", duckdb_threads=2)
    env = dbt_env(settings, "dev")
    assert env["SEARCHFLOW_DUCKDB_MEMORY_LIMIT"] == "700MB"
    assert env["SEARCHFLOW_DUCKDB_THREADS"] == "2"
    assert env["SEARCHFLOW_DUCKDB_TEMP_DIRECTORY"] == str(home.resolve() / "tmp" / "duckdb")
    profile = yaml.safe_load((ROOT / "dbt" / "profiles.yml").read_text())
    dev = profile["searchflow"]["outputs"]["dev"]
    assert "SEARCHFLOW_DUCKDB_MEMORY_LIMIT" in dev["settings"]["memory_limit"]
    assert "SEARCHFLOW_DUCKDB_THREADS" in dev["settings"]["threads"]
    # a connect option: DuckDB refuses a SET of the spill folder once it was used
    assert "SEARCHFLOW_DUCKDB_TEMP_DIRECTORY" in dev["config_options"]["temp_directory"]


def test_a_spill_folder_whose_parent_is_missing_is_created(home: Path) -> None:
    spill = home / "deep" / "er" / "spill"
    settings = Settings(home=home, duckdb_memory_limit="64MB", duckdb_temp_directory=spill)
    dbt_env(settings, "dev")
    assert spill.is_dir()
    with warehouse.session(settings) as con:  # a query far over the limit spills there
        count = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT i::VARCHAR || 'x' FROM range(3000000) t(i))"
        ).fetchone()[0]
    assert count == 3_000_000
