"""The Snowflake target of dbt/profiles.yml: the project parses with the Snowflake adapter, with no
connection and no credential (the road past one machine, infra/README.md)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from searchflow.transform import project_dir

HAS_ADAPTER = importlib.util.find_spec("dbt.adapters.snowflake") is not None


def test_the_snowflake_target_reads_everything_from_the_environment() -> None:
    profile = yaml.safe_load((project_dir() / "profiles.yml").read_text())
    target = profile["searchflow"]["outputs"]["snowflake"]
    assert target["type"] == "snowflake"
    for key in ("account", "user", "password", "role", "warehouse", "database"):
        assert "env_var('SEARCHFLOW_SNOWFLAKE_" in str(target[key]), key


@pytest.mark.skipif(
    not HAS_ADAPTER,
    reason="dbt-snowflake is not installed (pip install -e '.[snowflake]' to run this test)",
)
def test_dbt_parse_with_the_snowflake_target_needs_no_connection(tmp_path: Path) -> None:
    checkout = tmp_path / "dbt"
    shutil.copytree(project_dir(), checkout, ignore=shutil.ignore_patterns("target", "logs"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEARCHFLOW_", "DBT_"))}
    env.update(
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        SEARCHFLOW_SNOWFLAKE_ACCOUNT="nowhere-0000",  # no such account: nothing may connect
    )
    dbt = str(Path(sys.executable).with_name("dbt"))
    done = subprocess.run(
        [dbt, "parse", "--profiles-dir", ".", "--target", "snowflake"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    manifest = json.loads((checkout / "target" / "manifest.json").read_text())
    assert manifest["metadata"]["adapter_type"] == "snowflake"
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert {"fct_search_funnel", "mart_user_segments", "mart_recommendations"} <= models
