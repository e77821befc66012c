"""What every SearchFlow flow shares: the warehouse slot, the gated run and the stage events.

The warehouse is one DuckDB file and DuckDB allows one writer process, so every flow that opens it
holds the ``searchflow-warehouse`` global concurrency slot (strict: a missing limit is an error, not
a silent free-for-all). Each flow runs its stage through :mod:`flows.gated` (write, audit, publish,
recorded in the ledger with the flow run's id) and then emits the event that chains the next
stage, carrying the batch id the next flow records as its parent. The names (stages, events, the
limit) come from :mod:`searchflow.contract`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

from searchflow.contract import STAGES, WAREHOUSE_LEASE_SECONDS, WAREHOUSE_LIMIT, event_name
from searchflow.errors import GateFailed, SearchflowError

__all__ = [
    "STAGES",
    "WAREHOUSE_LIMIT",
    "confirm_event",
    "current_flow_run_id",
    "emit_stage_event",
    "event_name",
    "RETRIES",
    "retry_unless_user_error",
    "run_and_signal",
    "stage_task",
    "warehouse_slot",
]


# How long taking the warehouse slot waits for a Prefect API that does not answer (a restart).
SLOT_OUTAGE_SECONDS = 120.0
SLOT_RETRY_SECONDS = 5.0


def _api_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a connection that failed, not a refusal."""
    import httpx

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx.TransportError | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextmanager
def warehouse_slot(strict: bool = True) -> Iterator[None]:
    """Hold the one global slot that guards the DuckDB file for the duration of the block.

    The slot's lease is short and renewed while the holder lives, so the slot of a killed holder
    frees within the lease instead of blocking every later stage. Taking the slot opens a fresh
    API client, which Prefect does not retry on a refused connection: while the server restarts,
    the attempt is repeated (nothing is held yet) for a bounded time instead of failing the stage."""
    from prefect.concurrency.sync import concurrency

    deadline = time.monotonic() + SLOT_OUTAGE_SECONDS
    while True:
        stack = ExitStack()
        try:
            stack.enter_context(
                concurrency(
                    WAREHOUSE_LIMIT,
                    occupy=1,
                    strict=strict,
                    lease_duration=WAREHOUSE_LEASE_SECONDS,
                )
            )
        except Exception as exc:
            if not _api_unreachable(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(SLOT_RETRY_SECONDS)
            continue
        with stack:
            yield
        return


def current_flow_run_id() -> str | None:
    """The id of the flow run this code runs in, for the ledger; None outside a flow run."""
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else None


# Attempts after the first, per stage (issue 11): a retry is safe in each (ingestion lands exactly
# once, a build is rebuilt, a sync converges), and never used on a user error or a held batch.
RETRIES: dict[str, int] = {"ingestion": 3, "transformation": 2, "sync": 2}


def _failure(state: Any) -> BaseException | None:
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    try:
        result = state.result(raise_on_failure=False)
    except Exception as exc:
        return exc
    return result if isinstance(result, BaseException) else None


def retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """A task's ``retry_condition_fn``: retry what may be transient (a server that did not answer,
    an unexpected error), never a user error or a held batch: both are
    :class:`SearchflowError`s that a retry cannot fix."""
    from searchflow.errors import ServiceUnavailable

    exc = _failure(state)
    if isinstance(exc, ServiceUnavailable):
        return True
    return not isinstance(exc, SearchflowError)


def stage_task(stage: str, fn: Callable[..., Any], name: str) -> Any:
    """``fn`` as a Prefect task with the stage's retries and the configured delay.

    Built when the flow runs, so the delay (``SEARCHFLOW_RETRY_DELAY_SECONDS``) is read from the
    settings of that run. No result caching: every attempt runs.
    """
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    from searchflow.config import get_settings

    return task(
        fn,
        name=name,
        retries=RETRIES[stage],
        retry_delay_seconds=get_settings().retry_delay_seconds,
        retry_condition_fn=retry_unless_user_error,
        cache_policy=NO_CACHE,
    )


def _counts(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if isinstance(v, int | float) and k != "batch_id"}


def run_and_signal(
    stage: str,
    run: Callable[[], dict[str, Any]],
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run a gated stage and emit the event that chains (or stops) the next stage.

    Pass: ``searchflow.<stage>.validated`` with the batch id (the next flow's parent) and counts.
    Held: ``searchflow.<stage>.failed`` names the reasons and the GateFailed propagates, so the
    flow run fails and nothing downstream runs on the batch. A run with nothing new (no gate)
    emits nothing. ``labels`` are string fields added to the payload for the next trigger.
    """
    try:
        summary = run()
    except GateFailed as exc:
        held = getattr(exc, "summary", None) or {}
        emit_stage_event(
            stage,
            "failed",
            str(held.get("batch_id", "")),
            {**_counts(held), **(labels or {}), "reason": str(exc)},
        )
        raise
    if summary.get("gate") is None:
        return summary
    emit_stage_event(
        stage, "validated", str(summary["batch_id"]), {**_counts(summary), **(labels or {})}
    )
    return summary


def flat_payload(payload: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """Payload values as strings and numbers only (a UUID or datetime breaks trigger templating)."""
    out: dict[str, str | int | float | bool] = {}
    for key, value in payload.items():
        if isinstance(value, bool | int | float | str):
            out[key] = value
        elif value is None:
            out[key] = ""
        else:
            out[key] = str(value)
    return out


def emit_stage_event(stage: str, outcome: str, batch_id: str, payload: Mapping[str, Any]) -> None:
    """Emit ``searchflow.<stage>.<outcome>`` about one batch; deployment triggers listen for it.

    Inside a flow run on a Prefect server, the run then makes sure the server stored the event
    (:func:`confirm_event`) before it ends: Prefect's events client gives up on an event it could
    not send while the server was away, and a process that exits takes its unsent events with it.
    """
    from uuid import uuid4

    from prefect.events import emit_event
    from prefect.types._datetime import now

    run_id = current_flow_run_id()
    fields: dict[str, Any] = {
        "event": event_name(stage, outcome),
        "resource": {
            "prefect.resource.id": f"searchflow.batch.{batch_id}",
            "prefect.resource.name": f"{stage} batch {batch_id}",
            "searchflow.stage": stage,
        },
        "payload": flat_payload({"batch_id": batch_id, **payload}),
        "id": uuid4(),
        "occurred": now("UTC"),
    }
    if run_id:
        # Named here, not only by the events client from the run context, so a re-sent copy
        # still says which run emitted it (the follower and the UI link the two by it).
        fields["related"] = [
            {
                "prefect.resource.id": f"prefect.flow-run.{run_id}",
                "prefect.resource.role": "flow-run",
            }
        ]
    emit_event(**fields)
    if run_id and served():
        confirm_event(fields)


def served() -> bool:
    """Whether this process talks to a Prefect server of its own (``PREFECT_API_URL``), not the
    ephemeral in-process API, whose events nothing waits for."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


# How long a run waits for the server to store its stage event, and how often it sends it again
# meanwhile. Past the bound the sweeper (flows/sweep.py) starts the next stage from the ledger.
EVENT_CONFIRM_SECONDS = 180.0
EVENT_RESEND_SECONDS = 20.0


def event_stored(event_id: Any) -> bool:
    """Whether the server has stored the event with this id (False while it does not answer)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventIDFilter

    try:
        with get_client(sync_client=True) as client:
            page = client.read_events(filter=EventFilter(id=EventIDFilter(id=[event_id])), limit=1)
    except Exception:
        return False
    return bool(page.events)


def send_event_now(fields: Mapping[str, Any]) -> bool:
    """Send the event on a connection of its own and close it; True when the server took it.

    The same id as the first emission: the server stores an event once and its triggers skip an
    event they have already seen, so a copy never starts the next stage twice."""
    import asyncio
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from prefect.events.clients import get_events_client
    from prefect.events.schemas.events import Event

    async def send() -> None:
        async with get_events_client(reconnection_attempts=2) as client:
            await client.emit(Event(**fields))

    # A thread of its own (the flow may run inside an event loop, and asyncio.run needs none),
    # with this thread's context, where Prefect keeps its settings (the API URL).
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            pool.submit(context.run, asyncio.run, send()).result(timeout=60)
        except Exception:
            return False
    return True


def _logger() -> Any:
    """The flow run's logger (the UI and the run's log file), or the module's outside a run."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_logger, get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger(__name__)


def confirm_event(
    fields: Mapping[str, Any],
    timeout: float = EVENT_CONFIRM_SECONDS,
    resend_every: float = EVENT_RESEND_SECONDS,
) -> bool:
    """Wait until the server stored the event, sending it again every ``resend_every`` seconds
    while it has not; give up after ``timeout`` seconds with a warning. True when stored.

    The first send is the events client's (in the background, a moment after the emit); the
    server stores events in batches every few seconds, so the first copies go out only after
    ``resend_every``."""
    name, event_id = fields["event"], fields["id"]
    started = time.monotonic()
    last_sent = started
    resent = 0
    delay = 0.5
    while True:
        if event_stored(event_id):
            if resent:
                _logger().info(
                    "%s stored after %d re-send(s), %.0f s after it was emitted",
                    name,
                    resent,
                    time.monotonic() - started,
                )
            return True
        elapsed = time.monotonic() - started
        if elapsed >= timeout:
            _logger().warning(
                "%s (event %s) not stored by the server after %.0f s; the sweeper starts the "
                "next stage from the ledger instead",
                name,
                event_id,
                elapsed,
            )
            return False
        if time.monotonic() - last_sent >= resend_every:
            last_sent = time.monotonic()
            if send_event_now(fields):
                resent += 1
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
