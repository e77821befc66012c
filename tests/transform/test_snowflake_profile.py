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


def snowflake_dbt() -> Path | None:
    """A dbt that has the Snowflake adapter: this venv's, or the side venv `make snowflake` builds.

    dbt-snowflake cannot share the project's venv (it pins an older certifi than the rest of the
    stack resolves to), so CI installs it beside it, in ``.venv-snowflake``.
    """
    if importlib.util.find_spec("dbt.adapters.snowflake") is not None:
        return Path(sys.executable).with_name("dbt")
    side = project_dir().parent / ".venv-snowflake" / "bin" / "dbt"
    return side if side.exists() else None


SNOWFLAKE_DBT = snowflake_dbt()


def test_the_snowflake_target_reads_everything_from_the_environment() -> None:
    profile = yaml.safe_load((project_dir() / "profiles.yml").read_text())
    target = profile["searchflow"]["outputs"]["snowflake"]
    assert target["type"] == "snowflake"
    for key in ("account", "user", "password", "role", "warehouse", "database"):
        assert "env_var('SEARCHFLOW_SNOWFLAKE_" in str(target[key]), key


@pytest.mark.skipif(
    SNOWFLAKE_DBT is None and not os.environ.get("CI"),
    reason="dbt-snowflake is not installed (`make snowflake` installs it beside the project)",
)
def test_dbt_parse_with_the_snowflake_target_needs_no_connection(tmp_path: Path) -> None:
    checkout = tmp_path / "dbt"
    shutil.copytree(project_dir(), checkout, ignore=shutil.ignore_patterns("target", "logs"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEARCHFLOW_", "DBT_"))}
    env.update(
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        SEARCHFLOW_SNOWFLAKE_ACCOUNT="nowhere-0000",  # no such account: nothing may connect
    )
    assert SNOWFLAKE_DBT is not None, "CI runs `make snowflake` first: .venv-snowflake is missing"
    dbt = str(SNOWFLAKE_DBT)
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
