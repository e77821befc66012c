"""Alerts: the webhook block's message, the automations (one alert per held batch), and a real
Prefect server posting exactly one alert to a local receiver for a batch its gate holds."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deployments.alerts import (
    AUTOMATIONS,
    DRIFT_AUTOMATION,
    FRESHNESS_AUTOMATION,
    GATE_AUTOMATION,
    RUN_AUTOMATION,
    SLACK_JSON,
    automations,
    ensure_alerts,
    webhook_block,
)


class Receiver:
    """A Slack-compatible webhook on 127.0.0.1: keeps every JSON body it is sent."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    try:
        yield hook
    finally:
        hook.stop()


def test_the_block_posts_slack_compatible_json(receiver: Receiver) -> None:
    block = webhook_block(receiver.url)
    assert block.json_data == SLACK_JSON
    block.notify(body='batch b1: "dead_letter_share" too high', subject="SearchFlow: gate failed")
    assert receiver.received == [
        {"text": 'SearchFlow: gate failed\nbatch b1: "dead_letter_share" too high'}
    ]


def test_the_automations() -> None:
    import uuid

    from prefect.server.events.schemas.events import matches

    built = {a.name: a for a in automations(uuid.uuid4())}
    assert tuple(built) == AUTOMATIONS
    gate = built[GATE_AUTOMATION]
    assert gate.trigger.expect == {"searchflow.*.failed"}
    (action,) = gate.actions
    for needed in ("searchflow.stage", "event.payload.batch_id", "event.payload.reason", "ui_url"):
        assert needed in action.subject + action.body
    run = built[RUN_AUTOMATION].trigger
    assert "prefect.flow-run.Crashed" in run.expect and "prefect.flow-run.Failed" in run.expect
    # the run a failed gate fails is left out: its alert is the gate's (one per held batch)
    (pattern,) = run.match["prefect.state-message"]
    gate_failed = "Flow run encountered an exception: GateFailed: ingestion batch x held: ..."
    assert not matches(pattern, gate_failed)
    assert matches(pattern, "Flow run encountered an exception: ServiceUnavailable: redis down")
    assert matches(pattern, "")  # a Crashed run may have no message
    freshness = built[FRESHNESS_AUTOMATION].trigger
    assert freshness.posture == "Proactive"
    assert freshness.after == {"searchflow.generation.validated"}
    assert freshness.expect == {"searchflow.ingestion.validated"}
    assert freshness.within.total_seconds() == 15 * 60


def _received(event: str, resource: dict, payload: dict | None = None, related=()) -> Any:
    """An event as the server receives it (for the server's own trigger matching)."""
    import uuid
    from datetime import UTC, datetime

    from prefect.server.events.schemas.events import ReceivedEvent

    now = datetime.now(UTC)
    return ReceivedEvent(
        occurred=now,
        received=now,
        event=event,
        resource=resource,
        related=list(related),
        payload=payload or {},
        id=uuid.uuid4(),
    )


def _server_triggers() -> dict[str, Any]:
    """Each alert's trigger as the server evaluates it."""
    import uuid

    from prefect.server.events.schemas.automations import EventTrigger

    return {
        a.name: EventTrigger.model_validate(a.trigger.model_dump(mode="json"))
        for a in automations(uuid.uuid4())
    }


# What a flow run of a tagged deployment relates its events to.
RUN_RELATED = (
    {"prefect.resource.id": "prefect.flow-run.0b6f", "prefect.resource.role": "flow-run"},
    {"prefect.resource.id": "prefect.tag.searchflow", "prefect.resource.role": "tag"},
)


def test_a_drift_alerts_once_per_destination_and_names_it() -> None:
    """The reconcile flow's drift event wakes the drift alert (one bucket per destination) and no
    other; its Drifted run does not wake the failed-run alert; another failure of it does."""
    from flows.reconcile import DRIFT_STATE, Drift

    triggers = _server_triggers()
    drift = Drift("user_segments", "crm.user_segments", "t42", 1, 0, 3)
    other = Drift("recommendations", "redis reco:{user_id}", "t42", 0, 2, 0)
    events = [_received(**d.event(), related=RUN_RELATED) for d in (drift, other)]
    covered = {name: [t.covers(e) for e in events] for name, t in triggers.items()}
    assert covered == {name: [name == DRIFT_AUTOMATION] * 2 for name in AUTOMATIONS}, (
        "only the drift alert listens for drift events"
    )
    buckets = {triggers[DRIFT_AUTOMATION].bucketing_key(e) for e in events}
    assert len(buckets) == 2  # one alert per drifted destination, not one per run

    run = triggers[RUN_AUTOMATION]
    state_event = {
        "prefect.resource.id": "prefect.flow-run.0b6f",
        "prefect.state-message": "user_segments drifted",
    }
    drifted = _received(f"prefect.flow-run.{DRIFT_STATE}", state_event, related=RUN_RELATED[1:])
    failed = _received("prefect.flow-run.Failed", state_event, related=RUN_RELATED[1:])
    assert not run.covers(drifted)  # the drift's own alert is enough
    assert run.covers(failed)  # a reconcile that could not run alerts as a failed run


def test_the_drift_message_names_what_drifted() -> None:
    """Rendered as the server renders it (Jinja, the event in the context): the destination,
    the sync, the mart version and the counts; sample keys only for trigger ids."""
    import uuid

    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from flows.reconcile import Drift

    (action,) = {a.name: a for a in automations(uuid.uuid4())}[DRIFT_AUTOMATION].actions
    env = ImmutableSandboxedEnvironment()
    env.filters["ui_url"] = lambda run: f"http://ui/runs/flow-run/{run['id']}"
    drift = Drift("email_triggers", "crm.email_queue", "t42", 2, 0, 1, ("trg_1", "trg_2"))
    context = {"event": _received(**drift.event()), "flow_run": {"id": "0b6f"}}
    subject = env.from_string(action.subject).render(context)
    body = env.from_string(action.body).render(context)
    assert subject == "SearchFlow: crm.email_queue drifted from mart version t42"
    assert "2 missing, 1 different" in body and "trg_1, trg_2" in body
    assert "searchflow sync email_triggers" in body and "http://ui/runs/flow-run/0b6f" in body
    hidden = Drift("user_segments", "crm.user_segments", "t42", 1, 0, 0)
    body = env.from_string(action.body).render({"event": _received(**hidden.event())})
    assert "see `searchflow reconcile user_segments`" in body and "not run by Prefect" in body


async def _ensure(url: str | None) -> tuple[dict, dict[str, int]]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        result = await ensure_alerts(client, url)
        counts = {name: len(await client.read_automations_by_name(name)) for name in AUTOMATIONS}
    return result, counts


def _alerts_on_server(api_url: str, url: str | None) -> tuple[dict, dict[str, int]]:
    from deployments.prepare import api

    with api(api_url):
        return asyncio.run(_ensure(url))


@pytest.mark.prefect_server
def test_ensure_alerts_is_idempotent_and_unset_url_removes_them(prefect_env, receiver) -> None:
    _alerts_on_server(prefect_env, receiver.url)
    result, counts = _alerts_on_server(prefect_env, receiver.url)
    assert result["created"] and counts == dict.fromkeys(AUTOMATIONS, 1)
    result, counts = _alerts_on_server(prefect_env, None)
    assert not result["created"] and "SEARCHFLOW_ALERT_WEBHOOK_URL" in result["reason"]
    assert counts == dict.fromkeys(AUTOMATIONS, 0)


@pytest.mark.prefect_server
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_held_batch_alerts_exactly_once(
    prefect_env, prepared, service_settings, receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30% malformed lines: the ingestion gate holds the batch and its flow run fails; the
    receiver gets one alert naming the stage, the batch and the failed expectation. The demo
    deploys as `searchflow deploy` does, which creates the alerts from the setting."""
    from deployments.demo import run_demo

    monkeypatch.setenv("SEARCHFLOW_ALERT_WEBHOOK_URL", receiver.url)
    try:
        result = run_demo(
            service_settings, events=2000, seed=13, timeout=600, generation={"malformed_rate": 0.3}
        )
        chain = result.chain
        assert chain.outcome == "failed" and chain.stopped_at == "ingest-events", chain.to_dict()
        held = chain.by_deployment()["ingest-events"]
        deadline = time.monotonic() + 120
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(20)  # room for a second alert (the failed run's), which must not come
    finally:
        _alerts_on_server(prefect_env, None)
    assert len(receiver.received) == 1, receiver.received
    text = receiver.received[0]["text"]
    assert "ingestion gate failed on batch" in text
    import duckdb

    from searchflow import ledger, published

    con = duckdb.connect()  # the ledger export, as the API reads it
    con.execute("CREATE SCHEMA ops")
    path = published.ops_path(service_settings.home_path, "batches")
    con.execute(f"CREATE VIEW ops.batches AS SELECT * FROM read_parquet('{path}')")
    (batch,) = ledger.list_batches(con, state="held", stage="ingestion")
    con.close()
    assert batch["batch_id"] in text
    assert "dead_letter_share" in text  # the failed expectation
    assert held.run_id in text  # the link to the run
