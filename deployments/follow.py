"""Follow one served chain through the Prefect API and tabulate what each stage did.

The chain starts with a ``generate-events`` run; every later run is created by an automation when the
upstream gate's ``searchflow.<stage>.validated`` event arrives. Following means polling: the runs of
the six deployments created since the root run, and the ``searchflow.*`` events (each carries the
flow run that emitted it as a related resource, which gives the stage's counts and the hop times).

The chain ends when every sync completed (``completed``), when a run failed, crashed or was cancelled
and nothing is still running (``failed``: the stage and the reason, from its ``.failed`` event or its
state message), when a stage completed without emitting ``.validated`` (``stalled``: no new data, so
nothing downstream), or at the timeout (``timeout``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from searchflow.contract import FLOWS, STAGES, event_name

# (stage, deployment) in chain order; the deployment and flow share the name.
CHAIN: tuple[tuple[str, str], ...] = tuple(
    (flow.stage, flow.deployment)
    for flow in sorted(FLOWS, key=lambda flow: STAGES.index(flow.stage))
)
# Each triggered deployment -> the deployment whose gate event triggers it.
UPSTREAM: dict[str, str] = {
    flow.deployment: upstream.deployment
    for flow in FLOWS
    if flow.trigger
    for upstream in FLOWS
    if flow.trigger == event_name(upstream.stage, "validated")
}
STAGE_OF = dict((d, s) for s, d in CHAIN)
# Which payload count is "rows" for a stage: the numeric fields of each stage's summary that
# flows.common.run_and_signal puts on its event (generation: events generated; ingestion: rows
# landed; sync: mart rows read). dbt reports nodes, not rows: the transformation shows its nodes.
ROW_KEYS: dict[str, str] = {
    "generation": "events",
    "ingestion": "landed",
    "transformation": "nodes",
    "sync": "read",
}
ROW_UNITS: dict[str, str] = {"transformation": " nodes"}
# After a stage completes, how long its .validated event may take to show up before we call it stalled.
STALL_GRACE_SECONDS = 45.0
BAD_STATES = {"FAILED", "CRASHED", "CANCELLED", "CANCELLING"}


@dataclass
class StageRun:
    """One flow run of the chain, as the table shows it."""

    stage: str
    deployment: str
    run_id: str | None = None
    run_name: str = "-"
    state: str = "NOT RUN"
    state_type: str = ""
    message: str = ""
    created: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None
    created_by: str = ""  # "automation:<name>" for triggered runs
    rows: int | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    event: str = ""  # the stage event this run emitted (validated/failed)
    event_at: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.started and self.ended:
            return (self.ended - self.started).total_seconds()
        return None

    @property
    def by_automation(self) -> bool:
        return self.created_by.startswith("automation:")

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "deployment": self.deployment,
            "run_id": self.run_id,
            "run": self.run_name,
            "state": self.state,
            "seconds": None if self.seconds is None else round(self.seconds, 2),
            "rows": self.rows,
            "created_by": self.created_by,
            "event": self.event,
            "message": self.message,
            "counts": self.counts,
        }


@dataclass
class Chain:
    """The chain's runs in order, its outcome, and the trigger hops measured on the way."""

    runs: list[StageRun]
    outcome: str = "running"  # running, completed, failed, stalled, timeout
    stopped_at: str | None = None
    reason: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "completed"

    def by_deployment(self) -> dict[str, StageRun]:
        return {r.deployment: r for r in self.runs}

    def hops(self) -> list[dict[str, Any]]:
        """Event emitted upstream -> downstream run running, per triggered run (seconds).

        Split in two where the seconds go: ``trigger_seconds`` (event -> run created: the server's
        automation) and ``start_seconds`` (run created -> running: the worker's poll, the new
        process importing Prefect, the pull step, loading the flow).
        """
        runs = self.by_deployment()
        out = []
        for deployment, upstream in UPSTREAM.items():
            up, down = runs[upstream], runs[deployment]
            if up.event_at and down.started:
                hop: dict[str, Any] = {
                    "from": upstream,
                    "to": deployment,
                    "seconds": round((down.started - up.event_at).total_seconds(), 2),
                }
                if down.created:
                    hop["trigger_seconds"] = round((down.created - up.event_at).total_seconds(), 2)
                    hop["start_seconds"] = round((down.started - down.created).total_seconds(), 2)
                out.append(hop)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "stopped_at": self.stopped_at,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "runs": [r.to_dict() for r in self.runs],
            "hops": self.hops(),
        }


def _rows(stage: str, counts: dict[str, Any]) -> int | None:
    value = counts.get(ROW_KEYS.get(stage, ""))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None


# The most stage events one snapshot reads (a chain emits one per run).
EVENT_LIMIT = 2000


async def _read_events(client: Any, since: datetime) -> list[dict[str, Any]]:
    """Every ``searchflow.*`` event since ``since``, oldest first, as JSON dicts."""
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventOrder,
    )

    query = EventFilter(
        occurred=EventOccurredFilter(since=since),
        event=EventNameFilter(prefix=["searchflow."]),
        order=EventOrder.ASC,
    )
    page = await client.read_events(filter=query, limit=50)
    events = list(page.events)
    while page.next_page and len(events) < EVENT_LIMIT:
        page = await client.read_events_page(page.next_page)
        events.extend(page.events)
    return [event.model_dump(mode="json") for event in events]


def _emitting_run(event: dict[str, Any]) -> str | None:
    for related in event.get("related", []):
        rid = related.get("prefect.resource.id", "")
        if rid.startswith("prefect.flow-run."):
            return rid.removeprefix("prefect.flow-run.")
    return None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


async def snapshot(
    client: Any, root_id: str, deployment_ids: dict[str, str]
) -> tuple[list[StageRun], datetime]:
    """The chain's runs right now, with the counts from the events they emitted."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterExpectedStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    root = await client.read_flow_run(root_id)
    since = root.created
    flow_runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=list(deployment_ids.values())),
            expected_start_time=FlowRunFilterExpectedStartTime(after_=since),
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        limit=200,
    )
    name_of = {v: k.split("/")[0] for k, v in deployment_ids.items()}
    first: dict[str, Any] = {"generate-events": root}
    for run in flow_runs:
        deployment = name_of.get(str(run.deployment_id))
        if deployment and deployment != "generate-events" and run.created >= since:
            first.setdefault(deployment, run)
    events = await _read_events(client, since)
    by_run: dict[str, dict[str, Any]] = {}
    for event in events:
        run_id = _emitting_run(event)
        if run_id:
            by_run[run_id] = event  # the last stage event of that run wins
    runs = []
    for stage, deployment in CHAIN:
        row = StageRun(stage=stage, deployment=deployment)
        run = first.get(deployment)
        if run is not None:
            row.run_id = str(run.id)
            row.run_name = run.name
            row.state = run.state.name if run.state else "UNKNOWN"
            row.state_type = run.state.type.value if run.state else ""
            row.message = (run.state.message or "") if run.state else ""
            row.created = run.created
            row.started = run.start_time
            row.ended = run.end_time
            if run.created_by and run.created_by.type == "AUTOMATION":
                row.created_by = f"automation:{run.created_by.display_value}"
            elif run.created_by:
                row.created_by = f"{run.created_by.type.lower()}:{run.created_by.display_value}"
            event = by_run.get(str(run.id))
            if event:
                row.event = event["event"]
                row.event_at = _parse_time(event.get("occurred"))
                row.counts = {k: v for k, v in event.get("payload", {}).items() if k != "batch_id"}
                row.rows = _rows(stage, row.counts)
                if event["event"].endswith(".failed") and row.counts.get("reason"):
                    row.message = str(row.counts["reason"])
        runs.append(row)
    return runs, since


def judge(runs: list[StageRun], now: datetime) -> tuple[str, str | None, str | None]:
    """(outcome, stopped_at, reason) of a snapshot; ``running`` while anything may still happen."""
    by = {r.deployment: r for r in runs}
    active = [r for r in runs if r.run_id and r.state_type not in ("COMPLETED", *BAD_STATES)]
    failed = [r for r in runs if r.state_type in BAD_STATES]
    if failed and not active:
        first = failed[0]
        reason = first.message or f"the run ended {first.state}"
        return "failed", first.deployment, reason
    if all(r.state_type == "COMPLETED" for r in runs):
        return "completed", None, None
    if active or failed:
        return "running", None, None
    # Nothing running and something missing: a completed stage whose downstream never appeared.
    for deployment, upstream in UPSTREAM.items():
        up, down = by[upstream], by[deployment]
        if up.state_type == "COMPLETED" and down.run_id is None:
            if up.event.endswith(".validated"):
                return "running", None, None  # the trigger is on its way
            waited = (now - up.ended).total_seconds() if up.ended else 0.0
            if waited >= STALL_GRACE_SECONDS:
                return (
                    "stalled",
                    upstream,
                    f"{upstream} completed without emitting searchflow.{up.stage}.validated "
                    "(nothing new to pass on), so nothing downstream ran",
                )
    return "running", None, None


# How long a decided chain waits for the stage events of its finished runs to be stored.
EVENT_GRACE_SECONDS = 90.0


def _missing_events(runs: list[StageRun]) -> bool:
    """True while a completed run, or a run whose gate failed, has no stage event yet."""
    return any(r.state_type in ("COMPLETED", "FAILED") and not r.event for r in runs if r.run_id)


def follow(
    api_url: str,
    root_id: str,
    deployment_ids: dict[str, str],
    timeout: float = 900.0,
    poll_seconds: float = 1.0,
    on_change: Any = None,
) -> Chain:
    """Poll until the chain is decided or ``timeout`` seconds pass; returns the last snapshot.

    One client and one event loop for the whole follow: a fresh client per poll costs CPU that the
    flow runs on the same machine need.
    """
    from deployments.prepare import api

    with api(api_url):
        return asyncio.run(_follow(root_id, deployment_ids, timeout, poll_seconds, on_change))


async def _follow(
    root_id: str,
    deployment_ids: dict[str, str],
    timeout: float,
    poll_seconds: float,
    on_change: Any,
) -> Chain:
    from prefect.client.orchestration import get_client

    started = time.monotonic()
    last_states: tuple[str, ...] = ()
    async with get_client() as client:
        while True:
            runs, _ = await snapshot(client, root_id, deployment_ids)
            states = tuple(r.state for r in runs)
            if on_change is not None and states != last_states:
                on_change(runs)
                last_states = states
            outcome, stopped_at, reason = judge(runs, datetime.now(UTC))
            elapsed = time.monotonic() - started
            if outcome != "running":
                # A run's stage event is stored a moment after the run's final state (the server
                # persists events in batches; slower under load): wait until every finished run's
                # event is there, within a grace period, so the table and the hops are complete.
                grace_until = time.monotonic() + EVENT_GRACE_SECONDS
                while _missing_events(runs) and time.monotonic() < grace_until:
                    await asyncio.sleep(poll_seconds)
                    runs, _ = await snapshot(client, root_id, deployment_ids)
                return Chain(runs, outcome, stopped_at, reason, elapsed)
            if elapsed >= timeout:
                pending = [r.deployment for r in runs if r.state_type != "COMPLETED"]
                return Chain(
                    runs,
                    "timeout",
                    pending[0] if pending else None,
                    f"not finished after {timeout:.0f} s (waiting on {', '.join(pending)})",
                    elapsed,
                )
            await asyncio.sleep(poll_seconds)


def table(chain: Chain) -> str:
    """The human table of a chain (see :func:`format_rows`)."""
    return format_rows([r.to_dict() for r in chain.runs])


def format_rows(rows: list[dict[str, Any]]) -> str:
    """Stage, deployment, run, state, duration, rows, and how each run was started."""
    header = ("stage", "deployment", "run", "state", "seconds", "rows", "started by")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r["stage"],
                r["deployment"],
                r["run"],
                r["state"],
                "-" if r["seconds"] is None else f"{r['seconds']:.1f}",
                "-" if r["rows"] is None else f"{r['rows']:,}{ROW_UNITS.get(r['stage'], '')}",
                r["created_by"].split(":", 1)[0] if r["created_by"] else "-",
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in lines
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
