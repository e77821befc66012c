"""prefect.yaml against the contract (searchflow/contract.py FLOWS): one deployment per served flow,
with its entrypoint, name, parameters, trigger and schedules, and the settings every flow run gets
(no server: this is the check that fails first when a flow or the contract changes)."""

from __future__ import annotations

import importlib
import inspect

import pytest

from deployments import DEFAULT_POOL, PREFECT_YAML
from deployments.follow import UPSTREAM
from deployments.prepare import deployment_configs, deployment_file, load_project
from deployments.resilience import FLOW_RUN_ENV
from searchflow.contract import FLOWS

EXPECTED = [flow.deployment for flow in FLOWS]
CONTRACT = {flow.deployment: flow for flow in FLOWS}
SWEEPER = "sweep"  # not a stage: the scheduled deployment that backs up the events
RECONCILER = "reconcile"  # not a stage: `searchflow reconcile` on a schedule, drift alerts


@pytest.fixture(scope="module")
def project() -> dict:
    return load_project(PREFECT_YAML)


@pytest.fixture(scope="module")
def by_name(project: dict) -> dict[str, dict]:
    return {d["name"]: d for d in project["deployments"]}


def _flow(entrypoint: str):
    path, _, function = entrypoint.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, function)


def test_one_deployment_per_flow(by_name: dict[str, dict]) -> None:
    assert sorted(by_name) == sorted([*EXPECTED, SWEEPER, RECONCILER])


def test_the_sweeper_is_scheduled_and_never_triggered(by_name: dict[str, dict]) -> None:
    from flows.sweep import sweep

    config = by_name[SWEEPER]
    assert config["entrypoint"] == "flows/sweep.py:sweep"
    assert _flow(config["entrypoint"]) is sweep and sweep.name == SWEEPER
    assert config["triggers"] == []
    (schedule,) = config["schedules"]
    assert schedule["active"] is True and schedule["interval"] <= 300
    assert config["work_pool"]["name"] == DEFAULT_POOL
    assert config["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert set(config.get("parameters") or {}) <= set(inspect.signature(sweep.fn).parameters)


def test_reconcile_is_scheduled_and_never_triggered(by_name: dict[str, dict]) -> None:
    """An active schedule (no event starts it), on the pool, one run at a time, and parameters the
    flow accepts; every sync is reconciled unless told otherwise."""
    from prefect.client.schemas.schedules import CronSchedule

    from flows.reconcile import reconcile

    config = by_name[RECONCILER]
    assert config["entrypoint"] == "flows/reconcile.py:reconcile"
    assert _flow(config["entrypoint"]) is reconcile and reconcile.name == RECONCILER
    assert config["triggers"] == []
    (schedule,) = config["schedules"]
    assert schedule.pop("active") is True
    cron = CronSchedule.model_validate(schedule)  # a cron Prefect accepts
    assert cron.cron.split()[1:] == ["*", "*", "*", "*"]  # once an hour
    assert config["work_pool"]["name"] == DEFAULT_POOL
    assert config["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert "searchflow" in config["tags"]  # the failed-run alert matches runs by this tag
    assert set(config.get("parameters") or {}) <= set(inspect.signature(reconcile.fn).parameters)
    assert inspect.signature(reconcile.fn).parameters["syncs"].default is None


@pytest.mark.parametrize("name", EXPECTED)
def test_entrypoint_imports_and_names_the_flow(by_name: dict[str, dict], name: str) -> None:
    from prefect import Flow

    assert by_name[name]["entrypoint"] == CONTRACT[name].entrypoint
    flow = _flow(by_name[name]["entrypoint"])
    assert isinstance(flow, Flow)
    assert flow.name == name


@pytest.mark.parametrize("name", EXPECTED)
def test_parameters_are_flow_parameters(by_name: dict[str, dict], name: str) -> None:
    config = by_name[name]
    accepted = set(inspect.signature(_flow(config["entrypoint"]).fn).parameters)
    assert set(config.get("parameters") or {}) <= accepted
    for trigger in config.get("triggers") or []:
        assert set(trigger.get("parameters") or {}) <= accepted, trigger["name"]


@pytest.mark.parametrize("name", EXPECTED)
def test_triggers_chain_the_stages(by_name: dict[str, dict], name: str) -> None:
    from prefect.events import DeploymentEventTrigger

    triggers = by_name[name].get("triggers") or []
    if CONTRACT[name].trigger is None:
        assert triggers == []  # the chain's root is started by hand (or the demo)
        return
    assert len(triggers) == 1
    spec = dict(triggers[0])
    assert spec.pop("type") == "event"
    trigger = DeploymentEventTrigger.model_validate(spec)
    assert trigger.enabled
    assert trigger.expect == {CONTRACT[name].trigger}
    assert trigger.posture == "Reactive" and trigger.threshold == 1
    assert "searchflow.batch.*" in str(trigger.match)
    params = spec.get("parameters") or {}
    if "parent_batch_id" in params:  # a single placeholder keeps the payload's JSON type
        assert params["parent_batch_id"] == "{{ event.payload.batch_id }}"
    assert UPSTREAM[name] in EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_pool_concurrency_and_schedules(by_name: dict[str, dict], name: str) -> None:
    config = by_name[name]
    assert config["work_pool"]["name"] == DEFAULT_POOL
    assert config["concurrency_limit"]["limit"] == 1
    assert config["concurrency_limit"]["collision_strategy"] == "ENQUEUE"
    for schedule in config.get("schedules") or []:
        assert schedule["active"] is False  # the events drive the chain; schedules are a fallback


def test_seed_cadence_is_declared(by_name: dict[str, dict]) -> None:
    assert by_name["ingest-events"]["schedules"][0]["interval"] == 300
    assert by_name["transform"]["schedules"][0]["cron"] == "0 * * * *"
    for sync in ("sync-user-segments", "sync-email-triggers", "sync-recommendations"):
        assert by_name[sync]["schedules"][0]["cron"] == "0 */6 * * *"


def test_pull_step_is_importable_and_finds_the_project(project: dict, monkeypatch) -> None:
    from prefect.utilities.importtools import import_object

    from deployments import PROJECT_DIR
    from deployments.steps import project_directory

    for step in project["pull"]:
        (function,) = step
        assert callable(import_object(function))
    monkeypatch.delenv("SEARCHFLOW_PROJECT_DIR", raising=False)
    assert project_directory() == PROJECT_DIR
    assert project_directory({"SEARCHFLOW_PROJECT_DIR": "/nonexistent"}) == PROJECT_DIR


def test_pool_override_points_every_deployment(project: dict) -> None:
    configs = deployment_configs(project, "docker-pool")
    assert {c["work_pool"]["name"] for c in configs} == {"docker-pool"}
    assert (
        project["deployments"][0]["work_pool"]["name"] == DEFAULT_POOL
    )  # the original is untouched


def test_ingestion_reads_the_sink_generation_wrote(by_name: dict[str, dict]) -> None:
    """The generation event carries its sink; the ingest trigger turns it into the source."""
    from generator.config import SINKS
    from searchflow.ingest import SOURCES

    (trigger,) = by_name["ingest-events"]["triggers"]
    assert trigger["parameters"]["source"] == "{{ event.payload.sink }}"
    assert set(SINKS) <= set(SOURCES)


def test_generated_deployment_file_points_every_deployment_at_the_pool(project: dict) -> None:
    """What `prefect deploy --all` reads instead of prefect.yaml when --pool is given."""
    generated = deployment_file(project, "docker-pool")
    assert "definitions" not in generated
    assert generated["pull"] == project["pull"]
    assert [d["name"] for d in generated["deployments"]] == [
        d["name"] for d in project["deployments"]
    ]
    assert {d["work_pool"]["name"] for d in generated["deployments"]} == {"docker-pool"}


@pytest.mark.parametrize("name", [*EXPECTED, SWEEPER, RECONCILER])
def test_flow_runs_get_the_fault_settings(by_name: dict[str, dict], name: str) -> None:
    """Heartbeats, client retries and quiet telemetry reach every run, on any pool; no run
    streams its output through its worker."""
    job_variables = by_name[name]["work_pool"]["job_variables"]
    assert job_variables["env"] == FLOW_RUN_ENV
    assert job_variables["stream_output"] is False
