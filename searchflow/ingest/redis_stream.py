"""Redis Streams reader: ``events:search|click|conversion`` through a consumer group, then the
application's change records ``app:users`` and ``app:bookings`` (the Redis sink writes them beside
the events), landed into ``raw.app_*`` by :func:`searchflow.ingest.records.land_record_lines`.

Per stream, in this order, in chunks, until drained:

1. this consumer's own pending entries (``XREADGROUP ... 0``): read before, landed or not, never
   acknowledged (the previous run died between its commit and its XACK);
2. entries a dead consumer left pending longer than ``claim_idle_ms`` (``XAUTOCLAIM``);
3. new entries (``XREADGROUP ... >``).

Each chunk lands in one DuckDB transaction and is acknowledged (``XACK``) only after the commit.
Dying between the two leaves the entries pending; the next run re-reads them and dedup turns
them into duplicates, so nothing is lost and nothing lands twice. source_ref is
``<stream>/<entry id>``, stable across redeliveries, so a malformed entry's dead letter is not
written twice either. An entry that is not UTF-8 or is over the line limit is dead-lettered
(never landed with replacement characters); an entry's ``batch`` field names its generation
batch, the ingestion batch's parent.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from searchflow.arrays import prefer_jemalloc
from searchflow.config import Settings
from searchflow.contract import (
    RECORD_TYPES,
    REDIS_READ_BATCH,
    STREAM_BATCH_FIELD,
    STREAM_FIELD,
    record_stream_name,
    stream_name,
)
from searchflow.errors import ServiceUnavailable
from searchflow.ingest.chunks import INPUT, Chunk
from searchflow.ingest.textlines import judge_bytes
from searchflow.warehouse import EVENT_TYPES

GROUP = "searchflow-ingest"
CLAIM_IDLE_MS = 60_000
FIELD = STREAM_FIELD.encode()
BATCH_FIELD = STREAM_BATCH_FIELD.encode()

Entry = tuple[bytes, Any]
Reader = Callable[[duckdb.DuckDBPyConnection, dict[str, Any]], Iterator[Chunk]]


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
    dict in Python, which costs more than landing the chunk. An entry is ``(id, fields)`` with the
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


def _field(fields, name: bytes) -> bytes | None:
    """One field of an entry's fields (a flat list from XREADGROUP, a dict from XAUTOCLAIM);
    None for an entry deleted while pending or one without it."""
    if fields is None:
        return None
    if isinstance(fields, dict):
        return fields.get(name)
    if fields[:1] == [name]:
        return fields[1]
    pairs = dict(zip(fields[::2], fields[1::2], strict=True))
    return pairs.get(name)


def _stage(con: duckdb.DuckDBPyConnection, stream: str, event_type: str, entries: list[Entry]):
    """The chunk as the input relation (Arrow columns); returns its size and parents."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = [_field(fields, FIELD) for _, fields in entries]
    lines, problems = judge_bytes(texts)
    ids = pa.array([entry_id for entry_id, _ in entries], pa.binary()).cast(pa.string())
    table = pa.table(
        {
            "ord": pa.array(range(len(entries)), pa.int64()),
            "raw_text": lines,
            "source_ref": pc.binary_join_element_wise(f"{stream}/", ids, ""),
            "stream": pa.array([event_type] * len(entries), pa.string()),
            "problem": problems,
        }
    )
    con.register(INPUT, table)
    parents = {_field(fields, BATCH_FIELD) for _, fields in entries} - {None}
    size = sum(len(t) for t in texts if t is not None)
    return size, frozenset(p.decode("utf-8", "replace") for p in parents)


def _phases(client, stream: str, group: str, consumer: str, count: int, idle_ms: int):
    """(phase, entries) per read, in the order of the module docstring."""
    for entries in _own_pending(client, stream, group, consumer, count):
        yield "pending", entries
    for entries in _claimed(client, stream, group, consumer, idle_ms, count):
        yield "claimed", entries
    for entries in _new(client, stream, group, consumer, count):
        yield "new", entries


def _stream_chunks(
    con,
    client,
    event_type: str,
    group: str,
    consumer: str,
    count: int,
    idle_ms: int,
    stats,
    *,
    stream: str | None = None,
    land: Any = None,
) -> Iterator[Chunk]:
    """One stream's chunks; ``event_type`` is the lines' ``stream`` label (a record type for
    the change-record streams, whose chunks ``land`` lands)."""
    stream = stream or stream_name(event_type)
    if not ensure_group(client, stream, group):
        return
    for phase, entries in _phases(client, stream, group, consumer, count, idle_ms):
        size, parents = _stage(con, stream, event_type, entries)
        ids = [entry_id for entry_id, _ in entries]
        try:
            yield Chunk(
                size_bytes=size,
                parents=parents,
                acknowledge=lambda ids=ids: client.xack(stream, group, *ids),
                land=land,
            )
        finally:
            con.unregister(INPUT)
        if phase == "claimed":
            stats["claimed"] += len(entries)


@contextmanager
def reader(
    settings: Settings,
    *,
    group: str = GROUP,
    consumer: str | None = None,
    chunk_size: int = REDIS_READ_BATCH,
    claim_idle_ms: int = CLAIM_IDLE_MS,
) -> Iterator[Reader]:
    """The stream reader: ``chunks(con, stats)`` drains the event streams, then the record streams.

    ``stats`` receives what the summary adds (consumer, group, claimed, pending). A lost Redis is
    one clear line; committed chunks are kept, unacknowledged entries are re-read next time.
    """
    import redis

    from searchflow.services import mask_url, redis_client, redis_url

    consumer = consumer or default_consumer()
    client = redis_client(settings, socket_timeout=30)
    client.set_response_callback("XREADGROUP", _entries)
    url = redis_url(settings)
    prefer_jemalloc()  # every chunk is staged through Arrow

    def chunks(con: duckdb.DuckDBPyConnection, stats: dict[str, Any]) -> Iterator[Chunk]:
        from searchflow.ingest.records import land_record_lines

        stats.update(consumer=consumer, group=group, claimed=0)
        for event_type in EVENT_TYPES:
            yield from _stream_chunks(
                con, client, event_type, group, consumer, chunk_size, claim_idle_ms, stats
            )
        for record_type in RECORD_TYPES:
            yield from _stream_chunks(
                con,
                client,
                record_type,
                group,
                consumer,
                chunk_size,
                claim_idle_ms,
                stats,
                stream=record_stream_name(record_type),
                land=land_record_lines,
            )
        streams = [stream_name(t) for t in EVENT_TYPES]
        streams += [record_stream_name(t) for t in RECORD_TYPES]
        stats["pending"] = sum(
            client.xpending(s, group)["pending"] for s in streams if client.exists(s)
        )

    try:
        yield chunks
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise ServiceUnavailable(
            f"lost Redis at {mask_url(url)} while ingesting ({exc}); committed chunks are kept, "
            "unacknowledged entries are re-read by the next run"
        ) from None
    finally:
        client.close()
