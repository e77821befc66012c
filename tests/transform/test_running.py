"""How dbt is invoked: the pure argument and summary helpers, errors, the command and docs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from searchflow.cli import cli as main
from searchflow.config import Settings
from searchflow.errors import SearchflowError, UsageError
from searchflow.transform import (
    build_args,
    dbt_env,
    failure_message,
    postgres_parts,
    project_dir,
    project_fingerprint,
    run_transform,
    summarize,
    target_dir,
)

from . import scenario
from .rawdata import load_duckdb


def test_build_args_point_dbt_at_the_project_and_a_per_home_target(settings: Settings) -> None:
    args = build_args("build", settings=settings, full_refresh=True, select="marts+ int_as_of")
    assert args[0] == "build"
    assert args[args.index("--project-dir") + 1] == str(project_dir())
    assert args[args.index("--profiles-dir") + 1] == str(project_dir())
    assert args[args.index("--target") + 1] == "dev"
    assert args[args.index("--target-path") + 1] == str(target_dir(settings))
    assert str(settings.home_path) in str(target_dir(settings))
    assert "--full-refresh" in args
    assert args[args.index("--select") + 1 :][:2] == ["marts+", "int_as_of"]
    with pytest.raises(UsageError):
        build_args("test", settings=settings, full_refresh=True)


def test_postgres_parts_and_env(settings: Settings) -> None:
    parts = postgres_parts("postgresql://ann:p%40ss@db.example:6543/warehouse")
    assert parts == {
        "SEARCHFLOW_DBT_PG_HOST": "db.example",
        "SEARCHFLOW_DBT_PG_PORT": "6543",
        "SEARCHFLOW_DBT_PG_USER": "ann",
        "SEARCHFLOW_DBT_PG_PASSWORD": "p@ss",
        "SEARCHFLOW_DBT_PG_DBNAME": "warehouse",
    }
    env = dbt_env(settings, "postgres", "postgresql://me@localhost/x")
    assert env["SEARCHFLOW_WAREHOUSE"] == str(settings.warehouse_path)
    assert env["SEARCHFLOW_DBT_PG_DBNAME"] == "x"
    assert "SEARCHFLOW_DBT_PG_HOST" not in dbt_env(settings, "dev")
    with pytest.raises(UsageError):
        dbt_env(settings, "snowflake")
    with pytest.raises(UsageError):
        postgres_parts("mysql://x@y/z")


def _result(name: str, kind: str, status: str, message: str = "") -> SimpleNamespace:
    return SimpleNamespace(
        status=status, message=message, node=SimpleNamespace(name=name, resource_type=kind)
    )


def test_summarize_counts_per_outcome_and_type() -> None:
    results = [
        _result("a", "model", "success"),
        _result("b", "model", "error", "Binder Error: column x\nnot found"),
        _result("t", "test", "pass"),
        _result("u", "test", "fail", "Got 3 results"),
        _result("w", "test", "warn"),
        _result("c", "model", "skipped"),
    ]
    summary = summarize(results, 1.23456)
    assert (summary["nodes"], summary["passed"], summary["warned"]) == (6, 2, 1)
    assert (summary["failed"], summary["skipped"], summary["seconds"]) == (2, 1, 1.235)
    assert summary["by_type"]["model"] == {"run": 3, "passed": 1, "failed": 1, "skipped": 1}
    assert summary["by_type"]["test"] == {"run": 3, "passed": 2, "failed": 1, "skipped": 0}
    message = failure_message(results)
    assert "\n" not in message
    assert message.startswith("2 dbt node(s) failed (b, u): Binder Error: column x not found")


def test_fingerprint_changes_with_the_project(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: x\n")
    (tmp_path / "models" / "a.sql").write_text("select 1")
    first = project_fingerprint(tmp_path)
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "manifest.json").write_text("{}")
    assert project_fingerprint(tmp_path) == first  # artifacts do not count
    (tmp_path / "models" / "a.sql").write_text("select 2")
    assert project_fingerprint(tmp_path) != first


def test_no_warehouse_is_one_clear_error(settings: Settings) -> None:
    with pytest.raises(SearchflowError, match="run `searchflow ingest` first"):
        run_transform(settings)


def test_a_failing_test_fails_the_stage_with_dbt_message(settings: Settings) -> None:
    raw, _ = scenario.base()
    # a conversion without booking_value breaks the not_null test on stg_conversion_events
    broken = [dict(e) for e in raw.events]
    for event in broken:
        if event["event_type"] == "conversion":
            event["booking_value"] = None
            break
    load_duckdb(settings, broken)
    with pytest.raises(SearchflowError) as caught:
        run_transform(settings, select="stg_conversion_events")
    text = str(caught.value)
    assert "\n" not in text
    assert "not_null_stg_conversion_events_booking_value" in text


def test_partial_build_and_docs_command(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, _ = scenario.base()
    load_duckdb(settings, raw.events)
    for key, value in settings.as_env().items():
        monkeypatch.setenv(key, value)
    summary = run_transform(settings, select="+int_as_of")
    assert summary["failed"] == 0 and summary["nodes"] >= 4
    assert summary["as_of"] == scenario.AS_OF.isoformat()
    assert not summary["complete"] and not summary["published"]  # no marts built, none published

    runner = CliRunner()
    docs = runner.invoke(main, ["transform", "--docs", "--json"])
    assert docs.exit_code == 0, docs.output
    index = Path(json.loads(docs.stdout.strip().splitlines()[-1])["docs"])
    assert index.name == "index.html" and index.exists()
    catalog = json.loads((index.parent / "catalog.json").read_text())
    assert "model.searchflow.int_as_of" in catalog["nodes"]
    manifest = json.loads((index.parent / "manifest.json").read_text())
    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    assert len(models) >= 14
    undocumented = [
        f"{node['name']}.{column}"
        for node in models.values()
        for column, spec in node["columns"].items()
        if not spec.get("description")
    ] + [node["name"] for node in models.values() if not node.get("description")]
    assert undocumented == []
