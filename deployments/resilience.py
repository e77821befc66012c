"""How the served chain lives through its faults: the settings of every Prefect process the project
starts, and the automation that marks a flow run Crashed when its heartbeats stop.

- **Crash detection.** A flow-run process that dies (kill -9, a lost machine) cannot report its own
  end, so its run would show Running forever. Flow runs send a heartbeat event every
  ``HEARTBEAT_SECONDS``; the automation below (the one Prefect documents for open-source servers,
  "detect zombie flows") expects another heartbeat or a final state within ``CRASH_AFTER_SECONDS``
  and otherwise sets the run Crashed. ``searchflow deploy`` creates it.
- **A transient API outage.** Prefect's client retries a failed request with an exponential back-off
  (2, 4, 8, ... seconds). ``CLIENT_RETRIES`` gives it enough attempts to outlast a server restart
  (:func:`client_retry_seconds`), and bounds each request so a half-dead server cannot stall a call.
- **Quiet.** Telemetry is off in everything the project starts.

``FLOW_RUN_ENV`` is what a flow run needs; ``prefect.yaml`` carries the same values in its
deployments' ``job_variables.env`` (a test keeps the two equal), so every worker on any pool passes
them on, and the worker started here runs with them too.
"""

from __future__ import annotations

from typing import Any

HEARTBEAT_SECONDS = 30  # Prefect's minimum heartbeat period
CRASH_AFTER_SECONDS = 90  # three missed heartbeats
CRASH_AUTOMATION = "searchflow: mark runs without heartbeats Crashed"
CRASH_MESSAGE = (
    "Flow run marked Crashed: no heartbeat for {seconds} s (its process or machine died); "
    "a retry or the next trigger runs the stage again"
)

QUIET: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}
CLIENT_RETRIES: dict[str, str] = {
    "PREFECT_CLIENT_MAX_RETRIES": "6",
    "PREFECT_CLIENT_RETRY_JITTER_FACTOR": "0.2",
    "PREFECT_API_REQUEST_TIMEOUT": "30",
}
FLOW_RUN_ENV: dict[str, str] = {
    **QUIET,
    **CLIENT_RETRIES,
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),
}


def client_retry_seconds(max_retries: int | None = None) -> float:
    """How long Prefect's client keeps retrying one request before it gives up (no jitter)."""
    retries = int(
        CLIENT_RETRIES["PREFECT_CLIENT_MAX_RETRIES"] if max_retries is None else max_retries
    )
    return float(sum(2**attempt for attempt in range(1, retries + 1)))


def crash_automation() -> Any:
    """The automation that sets a run Crashed when no other event of the run (a heartbeat, a new
    state) follows its last heartbeat within ``CRASH_AFTER_SECONDS`` (an ``AutomationCore``)."""
    from datetime import timedelta

    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=CRASH_AUTOMATION,
        description="Created by `searchflow deploy` (docs/orchestration.md, failure behaviour).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            # Any event of the run: another heartbeat, a final state, or a run handed back to
            # its queue (AwaitingRetry, by the worker's supervisor), which must wait for a worker
            # without being marked Crashed.
            expect={"prefect.flow-run.*"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=CRASH_AFTER_SECONDS),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=CRASH_MESSAGE.format(seconds=CRASH_AFTER_SECONDS),
            )
        ],
    )


async def ensure_crash_automation(client: Any) -> str:
    """Create or update the crash-detection automation; exactly one remains. Returns its id."""
    wanted = crash_automation()
    existing = await client.read_automations_by_name(CRASH_AUTOMATION)
    if not existing:
        return str(await client.create_automation(wanted))
    keep, *extra = existing
    await client.update_automation(keep.id, wanted)
    for automation in extra:
        await client.delete_automation(automation.id)
    return str(keep.id)
