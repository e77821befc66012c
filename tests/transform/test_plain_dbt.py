"""A plain dbt user: `cd dbt && dbt build` with no SearchFlow variable set builds the candidate
`__dev` from the project's data folder (../data/warehouse.duckdb), reads only published batches
and never publishes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from searchflow.config import Settings
from searchflow.transform import project_dir

from . import scenario
from .keys import key_map
from .rawdata import load_duckdb

pytestmark = pytest.mark.slow


def test_plain_dbt_build_in_an_empty_environment(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(
        project_dir(), checkout / "dbt", ignore=shutil.ignore_patterns("target", "logs")
    )
    settings = Settings(home=checkout / "data", probe_localhost=False, embedded_services=False)
    base, _ = scenario.base()
    later, _ = scenario.next_day()
    load_duckdb(settings, base.events, batch_id="batch-1")
    load_duckdb(settings, later.events, batch_id="batch-2", publish=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEARCHFLOW_", "DBT_"))}
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    dbt = str(Path(sys.executable).with_name("dbt"))
    done = subprocess.run(
        [dbt, "build", "--profiles-dir", "."],
        cwd=checkout / "dbt",
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    keys = key_map(settings)  # the marts' pseudonyms back to the scenario's ids
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        users = {
            keys.get(r[0], r[0])
            for r in con.execute("SELECT user_id FROM marketing__dev.mart_user_segments").fetchall()
        }
        published = con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE schema_name IN ('analytics', 'marketing', 'ml')"
        ).fetchone()[0]
        log = con.execute("SELECT count(*) FROM ops.publish_log").fetchone()[0]
    assert "power" in users and "newcomer" not in users  # batch-2 is held
    assert published == 0 and log == 0  # a plain build never publishes
