"""Where generated lines go: JSONL files, Redis Streams, PostgreSQL ``app.events``.

Bulk writes are whole-batch and all-or-nothing where the target allows it: a JSONL file appears
under its final name only once complete (temporary file + rename), the PostgreSQL rows arrive in
one transaction with the DDL. Redis Streams have no transaction across 10k-entry pipelines; a
failed run leaves a prefix of the stream, which is what a real producer does too (the ingestion
side is exactly-once per event id).

The ``*Appender`` classes write a trickle of rows as they come (live mode).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from generator.config import SINKS
from generator.text import fixed_strings, join, timestamp_bytes, to_text_buffer
from searchflow.config import Settings
from searchflow.errors import SearchflowError, UsageError
from searchflow.events import EVENT_TYPES

if TYPE_CHECKING:
    from generator.batch import GeneratedBatch

STREAM_PREFIX = "events:"
REDIS_FIELD = "data"
REDIS_CHUNK = 10_000

APP_DDL = r"""
CREATE SCHEMA IF NOT EXISTS app;
CREATE TABLE IF NOT EXISTS app.events (
    seq        bigserial   PRIMARY KEY,
    event_type text        NOT NULL,
    payload    text        NOT NULL,   -- the JSON text as sent; malformed rows are possible
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION app.try_jsonb(t text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;
CREATE OR REPLACE VIEW app.bookings AS
WITH parsed AS (
    SELECT seq, created_at, app.try_jsonb(payload) AS j
    FROM app.events
    WHERE event_type = 'conversion'
), valid AS (
    SELECT seq, created_at, j
    FROM parsed
    WHERE j IS NOT NULL
      AND jsonb_typeof(j) = 'object'
      AND j ->> 'event_type' = 'conversion'
      AND jsonb_typeof(j -> 'event_id') = 'string'
      AND jsonb_typeof(j -> 'session_id') = 'string'
      AND jsonb_typeof(j -> 'click_event_id') = 'string'
      AND jsonb_typeof(j -> 'currency') = 'string'
      AND jsonb_typeof(j -> 'product_type') = 'string'
      AND jsonb_typeof(j -> 'provider') = 'string'
      AND coalesce(j ->> 'timestamp' ~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$', false)
      AND CASE WHEN jsonb_typeof(j -> 'booking_value') = 'number'
               THEN (j ->> 'booking_value')::numeric > 0 ELSE false END
      AND CASE WHEN jsonb_typeof(j -> 'commission') = 'number'
               THEN (j ->> 'commission')::numeric >= 0 ELSE false END
)
SELECT DISTINCT ON (j ->> 'event_id')
    j ->> 'event_id'                          AS event_id,
    (j ->> 'timestamp')::timestamptz          AS booked_at,
    j ->> 'user_id'                           AS user_id,
    j ->> 'session_id'                        AS session_id,
    j ->> 'click_event_id'                    AS click_event_id,
    (j ->> 'booking_value')::numeric(12, 2)   AS booking_value,
    (j ->> 'commission')::numeric(12, 2)      AS commission,
    j ->> 'currency'                          AS currency,
    j ->> 'product_type'                      AS product_type,
    j ->> 'provider'                          AS provider,
    seq,
    created_at
FROM valid
ORDER BY j ->> 'event_id', seq;
"""


def check_sink(sink: str) -> str:
    if sink not in SINKS:
        raise UsageError(f"unknown sink {sink!r}; choose one of {', '.join(SINKS)}")
    return sink


def default_out(settings: Settings) -> Path:
    return settings.ensure_home() / "events"


def prepare_out(out: Path) -> Path:
    """Create ``out`` and its per-type folders, or fail with one line if it cannot be written."""
    out = Path(out).expanduser().resolve()
    try:
        for event_type in EVENT_TYPES:
            (out / event_type).mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"cannot write events to {out} ({exc.strerror or exc}); pass --out a folder you can write"
        ) from None
    return out


def jsonl_path(out: Path, event_type: str, batch_id: str) -> Path:
    return Path(out) / event_type / f"{batch_id}.jsonl"


# --- bulk -------------------------------------------------------------------------------------


def write_jsonl(batch: GeneratedBatch, out: Path) -> dict[str, Any]:
    """``<out>/<type>/<batch_id>.jsonl`` per type, each written whole then renamed into place."""
    out = prepare_out(out)
    files = {}
    for event_type in EVENT_TYPES:
        path = jsonl_path(out, event_type, batch.batch_id)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(to_text_buffer(batch.lines(event_type)))
        os.replace(tmp, path)
        files[event_type] = str(path)
    return {"out": str(out), "files": files}


def write_redis(batch: GeneratedBatch, settings: Settings) -> dict[str, Any]:
    """XADD every line to ``events:<type>`` (field ``data``), 10k-entry chunks in one round trip."""
    appender = RedisAppender(settings)
    try:
        for event_type in EVENT_TYPES:
            lines = batch.lines(event_type)
            for start in range(0, len(lines), REDIS_CHUNK):
                appender.add(event_type, lines.slice(start, REDIS_CHUNK))
    finally:
        appender.close()
    return {"out": appender.where, "streams": {t: STREAM_PREFIX + t for t in EVENT_TYPES}}


def write_postgres(batch: GeneratedBatch, settings: Settings) -> dict[str, Any]:
    """COPY every line into ``app.events`` in emission order, one transaction with the DDL."""
    appender = PostgresAppender(settings)
    try:
        appender.write(batch.emitted)
        appender.commit()
    finally:
        appender.close()
    return {"out": appender.where, "table": "app.events"}


def write(
    batch: GeneratedBatch, sink: str, settings: Settings, out: Path | None = None
) -> dict[str, Any]:
    """Send a generated batch to ``sink``; returns where it went."""
    check_sink(sink)
    if sink == "jsonl":
        return write_jsonl(batch, Path(out) if out else default_out(settings))
    if sink == "redis":
        return write_redis(batch, settings)
    return write_postgres(batch, settings)


# --- appenders (live mode, and the building blocks of the bulk writers) -----------------------


class JsonlAppender:
    """Appends rows to ``<out>/<type>/<batch_id>.jsonl`` as they come, flushed per call."""

    def __init__(self, out: Path, batch_id: str) -> None:
        self.out = prepare_out(out)
        self.where = str(self.out)
        self.files = {
            t: open(jsonl_path(self.out, t, batch_id), "ab")  # noqa: SIM115 - closed in close()
            for t in EVENT_TYPES
        }

    def write(self, rows: pa.Table) -> None:
        for event_type in EVENT_TYPES:
            lines = rows.filter(pc.equal(rows["stream"], event_type))["line"].combine_chunks()
            if len(lines):
                self.files[event_type].write(to_text_buffer(lines))
                self.files[event_type].flush()

    def commit(self) -> None:
        pass

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()


class RedisAppender:
    """XADDs rows to ``events:<type>``: commands RESP-encoded column-wise, one round trip per call.

    redis-py would build a Python command object per event; here Arrow renders every XADD of a
    chunk into one buffer, the buffer goes down the socket in one ``sendall`` and hiredis parses
    the replies.
    """

    def __init__(self, settings: Settings) -> None:
        import redis

        from searchflow.services import mask_url, redis_url

        url = redis_url(settings)
        self.where = mask_url(url)
        self._redis = redis
        self.client = redis.Redis.from_url(url)
        self.conn = None

    def _socket(self):
        if self.conn is None:
            self.conn = self.client.connection_pool.make_connection()
            self.conn.connect()
        return self.conn._sock

    def add(self, event_type: str, lines: pa.Array) -> None:
        import hiredis

        if len(lines) == 0:
            return
        stream = STREAM_PREFIX + event_type
        head = (
            f"*5\r\n$4\r\nXADD\r\n${len(stream)}\r\n{stream}\r\n$1\r\n*\r\n"
            f"${len(REDIS_FIELD)}\r\n{REDIS_FIELD}\r\n$"
        )
        sizes = pc.cast(pc.binary_length(lines), pa.string())
        payload = to_text_buffer(join(head, sizes, "\r\n", lines), terminator="\r\n")
        try:
            sock = self._socket()
            sock.sendall(payload)
            reader = hiredis.Reader()
            got = 0
            while got < len(lines):
                data = sock.recv(1 << 20)
                if not data:
                    raise ConnectionError("Redis closed the connection during a bulk write")
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    got += 1
                    if isinstance(reply, hiredis.ReplyError):
                        raise self._redis.ResponseError(str(reply))
        except (self._redis.RedisError, OSError) as exc:
            self.close()
            raise SearchflowError(
                f"writing to Redis at {self.where} failed: {exc}; check the server and retry"
            ) from None

    def write(self, rows: pa.Table) -> None:
        for event_type in EVENT_TYPES:
            lines = rows.filter(pc.equal(rows["stream"], event_type))["line"].combine_chunks()
            if len(lines):
                self.add(event_type, lines)

    def commit(self) -> None:
        pass

    def close(self) -> None:
        if self.conn is not None:
            self.conn.disconnect()
            self.conn = None
        self.client.close()


class PostgresAppender:
    """COPYs rows into ``app.events``; the DDL runs first in the same transaction."""

    def __init__(self, settings: Settings, autocommit_each: bool = False) -> None:
        import psycopg2

        from searchflow.services import mask_url, postgres_url

        url = postgres_url(settings)
        self.where = mask_url(url)
        self._psycopg2 = psycopg2
        self.autocommit_each = autocommit_each
        self.conn = psycopg2.connect(url)
        try:
            with self.conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext('searchflow.app.ddl'))")
                cur.execute(APP_DDL)
            if autocommit_each:
                self.conn.commit()
        except psycopg2.Error as exc:
            self.conn.rollback()
            self.conn.close()
            raise SearchflowError(
                f"creating app.events in PostgreSQL at {self.where} failed: "
                f"{str(exc).strip().splitlines()[0]}; check the database user's rights"
            ) from None

    def write(self, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        line = rows["line"].combine_chunks()
        # COPY text format: backslash, tab, newline and carriage return must be escaped.
        for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
            line = pc.replace_substring(line, raw, escaped)
        emitted = rows["emitted_at"].combine_chunks().cast(pa.int64()).to_numpy()
        created = fixed_strings(timestamp_bytes(np.asarray(emitted)))
        text = join(rows["stream"].combine_chunks(), "\t", line, "\t", created)
        buffer = io.BytesIO(to_text_buffer(text).tobytes())
        try:
            with self.conn.cursor() as cur:
                cur.copy_expert(
                    "COPY app.events (event_type, payload, created_at) FROM STDIN", buffer
                )
            if self.autocommit_each:
                self.conn.commit()
        except self._psycopg2.Error as exc:
            self.conn.rollback()
            raise SearchflowError(
                f"writing to PostgreSQL at {self.where} failed: "
                f"{str(exc).strip().splitlines()[0]}; nothing of this batch was kept"
            ) from None

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


def appender(sink: str, settings: Settings, batch_id: str, out: Path | None = None):
    """An incremental writer for live mode."""
    check_sink(sink)
    if sink == "jsonl":
        return JsonlAppender(Path(out) if out else default_out(settings), batch_id)
    if sink == "redis":
        return RedisAppender(settings)
    return PostgresAppender(settings, autocommit_each=True)
