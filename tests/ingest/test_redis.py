"""Redis Streams ingestion on the real Redis: consumer group, ack after commit, redelivery."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import redis as redis_lib

from searchflow.config import Settings
from searchflow.ingest import GROUP, run_ingestion

from .conftest import reconciles
from .helpers import event, line, malformed

pytestmark = pytest.mark.services
TYPES = ("search", "click", "conversion")


@pytest.fixture
def rsettings(home, redis_url) -> Settings:
    return Settings(home=home, redis_url=redis_url)


@pytest.fixture
def client(redis_url):
    c = redis_lib.Redis.from_url(redis_url)
    yield c
    c.close()


def _send(client, event_type: str, texts: list[str]) -> list[bytes]:
    pipe = client.pipeline()
    for text in texts:
        pipe.xadd(f"events:{event_type}", {"data": text})
    return pipe.execute()


def _pending(client) -> int:
    total = 0
    for t in TYPES:
        if client.exists(f"events:{t}"):
            groups = {g["name"]: g for g in client.xinfo_groups(f"events:{t}")}
            if GROUP.encode() in groups:
                total += groups[GROUP.encode()]["pending"]
    return total


def _fill(client) -> int:
    n = 0
    for t in TYPES:
        texts = [line(event(t, i)) for i in range(30)] + [line(event(t, 3))]
        texts += [v[0] for v in malformed(t, 700).values()]
        _send(client, t, texts)
        n += len(texts)
    return n


def test_lands_reconciles_and_acks_everything(rsettings, client, query):
    sent = _fill(client)
    summary = run_ingestion(rsettings, "redis", consumer="c1", chunk_size=16)
    assert summary["read"] == sent
    assert (summary["landed"], summary["duplicates"], summary["dead_letters"]) == (90, 3, 15)
    assert reconciles(summary)
    assert summary["chunks"] > 3  # small chunks: the loop drains each stream
    assert summary["pending"] == 0 and _pending(client) == 0
    ref = query("SELECT source_ref FROM raw.click_events WHERE event_id = 'c-000000'", rsettings)
    assert ref[0][0].startswith("events:click/")
    again = run_ingestion(rsettings, "redis", consumer="c1")
    assert again["read"] == 0 and again["landed"] == 0


def test_kill_between_commit_and_ack_loses_and_doubles_nothing(rsettings, client, query):
    sent = _fill(client)

    def die(chunk):
        raise KeyboardInterrupt("killed after commit, before XACK")

    with pytest.raises(KeyboardInterrupt):
        run_ingestion(rsettings, "redis", consumer="c1", chunk_size=10, after_commit=die)
    assert _pending(client) == 10  # committed, never acknowledged
    landed_first = query("SELECT count(*) FROM raw.search_events", rsettings)[0][0]
    assert landed_first > 0
    summary = run_ingestion(rsettings, "redis", consumer="c1", chunk_size=10)
    # the 10 pending entries are re-read first: already landed, so duplicates, not new rows
    assert summary["read"] == sent and summary["pending"] == 0 and _pending(client) == 0
    assert summary["duplicates"] == 3 + 10  # the 3 injected + the 10 redelivered
    for t in TYPES:
        rows = query(f"SELECT count(*), count(DISTINCT event_id) FROM raw.{t}_events", rsettings)
        assert rows == [(30, 30)]
    assert query("SELECT count(*) FROM raw.dead_letter_events", rsettings) == [(15,)]


def test_sigkill_between_commit_and_ack(rsettings, client, query, service_env):
    """A real process killed with SIGKILL right after its first commit."""
    _fill(client)
    script = textwrap.dedent(
        f"""
        import os, signal
        from searchflow.config import get_settings
        from searchflow.ingest import run_ingestion
        run_ingestion(get_settings(redis_url={rsettings.redis_url!r}), "redis", consumer="c1",
                      chunk_size=7, after_commit=lambda b: os.kill(os.getpid(), signal.SIGKILL))
        """
    )
    env = {**os.environ, "SEARCHFLOW_HOME": str(rsettings.home_path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert proc.returncode == -9
    assert _pending(client) == 7
    summary = run_ingestion(rsettings, "redis", consumer="c1")
    assert _pending(client) == 0
    assert summary["duplicates"] == 3 + 7  # the injected ones + the 7 redelivered
    for t in TYPES:
        rows = query(f"SELECT count(*), count(DISTINCT event_id) FROM raw.{t}_events", rsettings)
        assert rows == [(30, 30)]
    assert query("SELECT count(*) FROM raw.dead_letter_events", rsettings) == [(15,)]


def test_entries_of_a_dead_consumer_are_claimed(rsettings, client, query):
    ids = _send(client, "search", [line(event("search", i)) for i in range(5)])
    client.xgroup_create("events:search", GROUP, id="0")
    client.xreadgroup(GROUP, "dead-one", {"events:search": ">"}, count=5)  # read, never acked
    assert _pending(client) == 5
    summary = run_ingestion(rsettings, "redis", consumer="c2", claim_idle_ms=0)
    assert summary["claimed"] == 5 and summary["landed"] == 5 and _pending(client) == 0
    assert len(ids) == 5


def test_redelivered_and_resent_events_never_make_a_second_row(rsettings, client, query):
    _send(client, "conversion", [line(event("conversion", 1))])
    assert run_ingestion(rsettings, "redis", consumer="c1")["landed"] == 1
    # the producer sends the same event again (a new stream entry, same event_id)
    _send(client, "conversion", [line(event("conversion", 1))])
    again = run_ingestion(rsettings, "redis", consumer="c1")
    assert (again["read"], again["landed"], again["duplicates"]) == (1, 0, 1)
    assert query("SELECT count(*) FROM raw.conversion_events", rsettings) == [(1,)]


def test_unreachable_redis_is_one_clear_error(home):
    from searchflow.errors import ServiceUnavailable

    settings = Settings(home=home, redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(ServiceUnavailable, match="cannot connect to Redis at redis://127.0.0.1:1"):
        run_ingestion(settings, "redis")
