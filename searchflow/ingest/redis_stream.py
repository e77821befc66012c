"""Redis Streams reader: ``events:search|click|conversion`` through a consumer group.

Per stream, in this order, in batches, until drained:

1. this consumer's own pending entries (``XREADGROUP ... 0``): read before, landed or not, never
   acknowledged (the previous run died between its commit and its XACK);
2. entries a dead consumer left pending longer than ``claim_idle_ms`` (``XAUTOCLAIM``);
3. new entries (``XREADGROUP ... >``).

Each batch lands in one DuckDB transaction and is acknowledged (``XACK``) only after the commit.
Dying between the two leaves the entries pending; the next run re-reads them and dedup turns
them into duplicates, so nothing is lost and nothing lands twice. source_ref is
``<stream>/<entry id>``, stable across redeliveries, so a malformed entry's dead letter is not
written twice either.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

from searchflow.arrays import prefer_jemalloc, utf8_strings
from searchflow.config import Settings
from searchflow.errors import ServiceUnavailable
from searchflow.ingest.land import (
    LANDING_ROW_GROUP_SIZE,
    add_counts,
    ensure_ingest_schema,
    land_batch,
)
from searchflow.warehouse import EVENT_TYPES, session

STREAM_PREFIX = "events:"
FIELD = b"data"

Entry = tuple[bytes, dict[bytes, bytes] | None]


def stream_name(event_type: str) -> str:
    return f"{STREAM_PREFIX}{event_type}"


def default_consumer() -> str:
    """Stable across restarts on one host, so a restarted ingest finds its own pending entries."""
    return f"ingest-{socket.gethostname()}"


def ensure_group(client, stream: str, group: str) -> bool:
    """Create the group at the stream's start (id 0) if missing; False when the stream is absent."""
    import redis

    if not client.exists(stream):
        return False
    try:
        client.xgroup_create(stream, group, id="0")
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    return True


def _entries(response, **_options) -> list:
    """XREADGROUP's reply for one stream as its entries, parsed by hiredis only.

    Installed as the client's response callback: redis-py's own turns every entry's fields into a
    dict in Python, which cost more than landing the batch. An entry is ``(id, fields)`` with the
    fields a flat ``[name, value, ...]`` list, or None when it was deleted while pending.
    """
    if not response:
        return []
    if isinstance(response, dict):  # RESP3: {stream: entries}
        return next(iter(response.values()))
    return response[0][1]  # RESP2: [[stream, entries]]


def _own_pending(client, stream: str, group: str, consumer: str, count: int) -> Iterator[list]:
    last = "0"
    while True:
        entries = client.xreadgroup(group, consumer, {stream: last}, count=count)
        if not entries:
            return
        yield entries
        last = entries[-1][0]


def _claimed(
    client, stream: str, group: str, consumer: str, idle_ms: int, count: int
) -> Iterator[list]:
    cursor = "0-0"
    while True:
        reply = client.xautoclaim(stream, group, consumer, idle_ms, start_id=cursor, count=count)
        cursor, entries = reply[0], reply[1]
        if entries:
            yield entries
        if cursor in (b"0-0", "0-0"):
            return


def _new(client, stream: str, group: str, consumer: str, count: int) -> Iterator[list]:
    while True:
        entries = client.xreadgroup(group, consumer, {stream: ">"}, count=count)
        if not entries:
            return
        yield entries


def _text(fields) -> bytes | None:
    """The ``data`` field of an entry's fields (a flat list from XREADGROUP, a dict from
    XAUTOCLAIM); None for an entry deleted while pending or one without it."""
    if fields is None:
        return None
    if isinstance(fields, dict):
        return fields.get(FIELD)
    if fields[:1] == [FIELD]:
        return fields[1]
    pairs = dict(zip(fields[::2], fields[1::2], strict=True))
    return pairs.get(FIELD)


def _stage(con, stream: str, event_type: str, entries: list[Entry]) -> None:
    """The batch as the ``_ingest_input`` relation (Arrow columns, built without a Python row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array([entry_id for entry_id, _ in entries], pa.binary()).cast(pa.string())
    table = pa.table(
        {
            "ord": pa.array(range(len(entries)), pa.int64()),
            "raw_text": utf8_strings([_text(fields) for _, fields in entries]),
            "source_ref": pc.binary_join_element_wise(f"{stream}/", ids, ""),
            "stream": pa.array([event_type] * len(entries), pa.string()),
        }
    )
    con.register("_ingest_input", table)


def ingest(
    settings: Settings,
    batch_id: str,
    counts: dict,
    *,
    group: str = "searchflow-ingest",
    consumer: str | None = None,
    batch_size: int = 10_000,
    claim_idle_ms: int = 60_000,
    after_commit: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Drain the three streams; returns what the summary adds (consumer, batches, pending)."""
    import redis

    from searchflow.services import mask_url, redis_client, redis_url

    consumer = consumer or default_consumer()
    client = redis_client(settings, socket_timeout=30)
    client.set_response_callback("XREADGROUP", _entries)
    url = redis_url(settings)
    batches = 0
    claimed = 0
    prefer_jemalloc()  # every batch is staged through Arrow
    try:
        with session(settings, row_group_size=LANDING_ROW_GROUP_SIZE) as con:
            ensure_ingest_schema(con)
            for event_type in EVENT_TYPES:
                stream = stream_name(event_type)
                if not ensure_group(client, stream, group):
                    continue
                phases = (
                    ("pending", _own_pending(client, stream, group, consumer, batch_size)),
                    (
                        "claimed",
                        _claimed(client, stream, group, consumer, claim_idle_ms, batch_size),
                    ),
                    ("new", _new(client, stream, group, consumer, batch_size)),
                )
                for phase, source in phases:
                    for entries in source:
                        _stage(con, stream, event_type, entries)
                        try:
                            batch = land_batch(con, "_ingest_input", "redis", batch_id)
                        finally:
                            con.unregister("_ingest_input")
                        add_counts(counts, batch)
                        if after_commit is not None:
                            after_commit(batch)
                        client.xack(stream, group, *[entry_id for entry_id, _ in entries])
                        batches += 1
                        if phase == "claimed":
                            claimed += len(entries)
            pending = sum(
                client.xpending(stream_name(t), group)["pending"]
                for t in EVENT_TYPES
                if client.exists(stream_name(t))
            )
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise ServiceUnavailable(
            f"lost Redis at {mask_url(url)} while ingesting ({exc}); committed batches are kept, "
            "unacknowledged entries are re-read by the next run"
        ) from None
    finally:
        client.close()
    return {
        "consumer": consumer,
        "group": group,
        "batches": batches,
        "claimed": claimed,
        "pending": pending,
    }
