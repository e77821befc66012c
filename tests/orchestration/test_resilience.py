"""The fault settings every flow run gets are real Prefect settings with the intended values, and
the crash detector is the automation Prefect documents (no server)."""

from __future__ import annotations

import pytest

from deployments.resilience import (
    CRASH_AFTER_SECONDS,
    FLOW_RUN_ENV,
    HEARTBEAT_SECONDS,
    client_retry_seconds,
    crash_automation,
)


def test_flow_run_env_names_prefect_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A renamed setting would be ignored silently: read them back through Prefect's own model."""
    from prefect.settings.models.root import Settings

    for key, value in FLOW_RUN_ENV.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.flows.heartbeat_frequency == HEARTBEAT_SECONDS
    assert settings.client.max_retries == int(FLOW_RUN_ENV["PREFECT_CLIENT_MAX_RETRIES"])
    assert settings.client.retry_jitter_factor == 0.2
    assert settings.api.request_timeout == 30
    assert settings.server.analytics_enabled is False


def test_client_retries_outlast_a_server_restart() -> None:
    # a restarted server is away for a while, then slow to answer /api/health on a busy machine
    assert 90 <= client_retry_seconds() <= 180
    assert client_retry_seconds(5) == 62


def test_crash_detector_waits_for_missed_heartbeats() -> None:
    automation = crash_automation()
    trigger = automation.trigger
    assert trigger.posture == "Proactive"
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    # any event of the run ends the wait: a heartbeat, a final state, a hand-back (AwaitingRetry)
    assert trigger.expect == {"prefect.flow-run.*"}
    assert trigger.for_each == {"prefect.resource.id"}
    assert trigger.within.total_seconds() == CRASH_AFTER_SECONDS >= 2 * HEARTBEAT_SECONDS
    (action,) = automation.actions
    assert action.type == "change-flow-run-state" and action.state.value == "CRASHED"


def test_a_local_server_keeps_its_leases_on_disk(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In memory a restart forgets the warehouse slot's lease while the slot stays taken; the
    setting must be the one Prefect reads, and name a storage it can import."""
    from prefect.server.concurrency.lease_storage import get_concurrency_lease_storage
    from prefect.settings import temporary_settings
    from prefect.settings.models.root import Settings

    from deployments.server import LEASE_STORAGE, server_env

    env = server_env(tmp_path, base={})
    assert env["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"] == LEASE_STORAGE
    for key in ("PREFECT_HOME", "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"):
        monkeypatch.setenv(key, env[key])
    assert Settings().server.concurrency.lease_storage == LEASE_STORAGE
    with temporary_settings(updates={}):  # the settings context, re-read from the environment
        storage = get_concurrency_lease_storage()
    assert type(storage).__module__ == LEASE_STORAGE


def test_taking_the_warehouse_slot_waits_out_a_server_restart(monkeypatch) -> None:
    """A refused connection while taking the slot is tried again (nothing is held yet); any other
    failure, or an outage past the bound, still fails at once."""
    from contextlib import nullcontext

    import httpx
    import prefect.concurrency.sync

    import flows.common as common

    attempts: list[int] = []

    def refusing_twice(*args, **kwargs):
        attempts.append(1)
        if len(attempts) <= 2:
            try:
                raise httpx.ConnectError("All connection attempts failed")
            except httpx.ConnectError as exc:
                raise RuntimeError("Unable to acquire concurrency slots") from exc
        return nullcontext()

    monkeypatch.setattr(common, "SLOT_RETRY_SECONDS", 0.0)
    monkeypatch.setattr(prefect.concurrency.sync, "concurrency", refusing_twice)
    with common.warehouse_slot():
        pass
    assert len(attempts) == 3

    def refusing(*args, **kwargs):
        raise RuntimeError("the limit does not exist")

    monkeypatch.setattr(prefect.concurrency.sync, "concurrency", refusing)
    with pytest.raises(RuntimeError, match="does not exist"), common.warehouse_slot():
        pass


def test_a_handed_back_run_is_not_marked_crashed() -> None:
    """Read by the server's own trigger model: a heartbeat opens the wait; a hand-back
    (AwaitingRetry), another heartbeat or a final state closes it, so only silence crashes."""
    from prefect.server.events.schemas.automations import EventTrigger

    trigger = EventTrigger.model_validate(crash_automation().trigger.model_dump(mode="json"))
    assert trigger.starts_after("prefect.flow-run.heartbeat")
    assert not trigger.starts_after("prefect.flow-run.AwaitingRetry")
    for event in ("heartbeat", "AwaitingRetry", "Completed", "Failed", "Crashed", "Cancelled"):
        assert trigger.expects(f"prefect.flow-run.{event}")
    assert not trigger.expects("prefect.task-run.Completed")
