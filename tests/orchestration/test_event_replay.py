"""A stage event that Prefect's events client never delivered is sent again by the run that
emitted it (``flows.common.confirm_event``), on a real server: stored once, however many copies
went out, and a server that never answers bounds the wait instead of hanging the run."""

from __future__ import annotations

import uuid

import pytest

from flows.common import confirm_event, event_stored

pytestmark = [pytest.mark.prefect_server, pytest.mark.slow]


def _fields(run_id: str) -> dict:
    from prefect.types._datetime import now

    return {
        "event": "searchflow.transformation.validated",
        "resource": {"prefect.resource.id": "searchflow.batch.replay-test"},
        "related": [
            {
                "prefect.resource.id": f"prefect.flow-run.{run_id}",
                "prefect.resource.role": "flow-run",
            }
        ],
        "payload": {"batch_id": "replay-test", "passed": 3},
        "id": uuid.uuid4(),
        "occurred": now("UTC"),
    }


def _copies(event_id: uuid.UUID) -> list:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventIDFilter

    with get_client(sync_client=True) as client:
        return client.read_events(
            filter=EventFilter(id=EventIDFilter(id=[event_id])), limit=10
        ).events


def test_an_event_never_delivered_is_sent_again_and_stored_once(prefect_server) -> None:
    from deployments.prepare import api

    with api(prefect_server.api_url):
        _sent_again_and_stored_once()


def _sent_again_and_stored_once() -> None:
    run_id = str(uuid.uuid4())
    fields = _fields(run_id)
    assert not event_stored(fields["id"])  # as if the events client had lost it
    assert confirm_event(fields, timeout=240, resend_every=0.5)
    copies = _copies(fields["id"])
    assert len(copies) == 1  # re-sent more than once while the server stored it: one event
    (stored,) = copies
    assert stored.event == fields["event"]
    assert stored.payload == fields["payload"]
    # the follower finds the emitting run by this related resource
    assert f"prefect.flow-run.{run_id}" in {r.id for r in stored.related}


def test_a_server_that_never_answers_bounds_the_wait() -> None:
    from deployments.prepare import api
    from deployments.server import free_port

    with api(f"http://127.0.0.1:{free_port()}/api"):
        assert confirm_event(_fields(str(uuid.uuid4())), timeout=3, resend_every=1) is False
