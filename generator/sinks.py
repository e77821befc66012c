"""Where generated lines go: JSONL files, Redis Streams, PostgreSQL ``app.events``.

Every line carries its generation batch id beside it, so ingestion can name the batches it read as
its parents: the JSONL file is named after the batch, a stream entry has the field ``batch`` next
to ``data``, an ``app.events`` row has ``batch_id`` (the names are in :mod:`searchflow.contract`).

Bulk writes are whole-batch and all-or-nothing where the target allows it: a JSONL file appears
under its final name only once complete (temporary file + rename; what a killed run leaves is
removed by the next JSONL write), the PostgreSQL rows arrive in one transaction with the DDL.
Redis Streams have no transaction across pipelines; a failed run leaves a prefix of the stream,
which is what a real producer does too (the ingestion side is exactly-once per event id).

The ``*Appender`` classes write a trickle of rows as they come (live mode).
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from generator.text import fixed_strings, join, timestamp_bytes, to_text_buffer
from searchflow import resp
from searchflow.config import Settings
from searchflow.contract import (
    APP_EVENTS_BATCH_COLUMN,
    APP_EVENTS_TABLE,
    APP_TABLES,
    RECORD_KEYS,
    RECORD_TYPES,
    SINKS,
    STREAM_BATCH_FIELD,
    STREAM_FIELD,
    record_stream_name,
    stream_name,
)
from searchflow.errors import SearchflowError, UsageError
from searchflow.events import EVENT_TYPES

REDIS_CHUNK = 10_000  # XADDs encoded at a time (the socket stays busy while the next is encoded)
TMP_PATTERN = ".gen-*.tmp"  # a JSONL file being written (``.<batch_id>.jsonl.<pid>.tmp``)


class Lines(Protocol):
    """What a sink writes: a generated batch, or a held one read back (:mod:`generator.held`)."""

    batch_id: str

    def lines(self, event_type: str) -> pa.Array: ...

    @property
    def emitted(self) -> pa.Table: ...


APP_SCHEMA = APP_EVENTS_TABLE.split(".")[0]
APP_USERS, APP_BOOKINGS = APP_TABLES["users"], APP_TABLES["bookings"]

APP_DDL = rf"""
CREATE SCHEMA IF NOT EXISTS {APP_SCHEMA};
CREATE TABLE IF NOT EXISTS {APP_EVENTS_TABLE} (
    seq        bigserial   PRIMARY KEY,
    event_type text        NOT NULL,
    payload    text        NOT NULL,   -- the JSON text as sent; malformed rows are possible
    created_at timestamptz NOT NULL DEFAULT now(),
    {APP_EVENTS_BATCH_COLUMN}   text                   -- the generation batch; null from other producers
);
ALTER TABLE {APP_EVENTS_TABLE} ADD COLUMN IF NOT EXISTS {APP_EVENTS_BATCH_COLUMN} text;
CREATE OR REPLACE FUNCTION {APP_SCHEMA}.try_jsonb(t text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;
DO $$
BEGIN
    -- app.bookings was once a view of the well-formed conversions; it is the site's table now
    IF EXISTS (SELECT 1 FROM pg_views WHERE schemaname = '{APP_SCHEMA}' AND viewname = 'bookings')
    THEN DROP VIEW {APP_SCHEMA}.bookings;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS {APP_USERS} (
    user_id           text        PRIMARY KEY,
    email             text        NOT NULL,
    full_name         text        NOT NULL,
    phone             text,
    home_city         text        NOT NULL,
    home_country      text        NOT NULL,
    loyalty_tier      text        NOT NULL,
    marketing_consent boolean     NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS users_updated_at ON {APP_USERS} (updated_at, user_id);
CREATE TABLE IF NOT EXISTS {APP_BOOKINGS} (
    booking_id   text           PRIMARY KEY,   -- the conversion event's id
    user_id      text,                         -- null for an anonymous booking
    status       text           NOT NULL,      -- confirmed | cancelled | refunded
    amount       numeric(12, 2) NOT NULL,
    currency     text           NOT NULL,
    product_type text           NOT NULL,
    created_at   timestamptz    NOT NULL,
    updated_at   timestamptz    NOT NULL
);
CREATE INDEX IF NOT EXISTS bookings_updated_at ON {APP_BOOKINGS} (updated_at, booking_id);
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


def prepare_target(settings: Settings, sink: str, out: Path | str | None = None) -> Path | None:
    """Check the sink's target before anything is simulated: the JSONL folder is writable (and
    returned, resolved), the server's URL is set. Fails with one line."""
    check_sink(sink)
    if sink == "jsonl":
        return prepare_out(Path(out) if out is not None else default_out(settings))
    from searchflow.services import postgres_url, redis_url

    (redis_url if sink == "redis" else postgres_url)(settings)
    return None


def jsonl_path(out: Path, event_type: str, batch_id: str) -> Path:
    return Path(out) / event_type / f"{batch_id}.jsonl"


def remove_stale_tmp(out: Path) -> int:
    """Remove the temporary files that killed or failed JSONL writes left under ``out``.

    A write holds an exclusive lock on its temporary file until the rename, and the kernel drops
    the lock when the writer dies: a file whose lock can be taken belongs to nobody, one that is
    locked belongs to a write still running (another process) and is kept. Returns how many went.
    """
    removed = 0
    for event_type in EVENT_TYPES:
        for path in (Path(out) / event_type).glob(TMP_PATTERN):
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed below, after the unlink
            except OSError:
                continue  # renamed or removed meanwhile
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue
                with suppress(OSError):
                    if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                        path.unlink()
                        removed += 1
    return removed


def write_whole(path: Path, data: memoryview | bytes | pa.Buffer) -> None:
    """Write ``data`` to a locked temporary file beside ``path``, then rename it into place; a
    full disk or another write error is one line, and the temporary file does not stay."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(data)
            handle.flush()
            os.replace(tmp, path)
    except OSError as exc:
        with suppress(OSError):
            tmp.unlink()
        raise _write_failed(path, len(data), exc) from None


def _write_failed(path: Path, size: int, exc: OSError) -> SearchflowError:
    """One line for a failed file write: a full disk names the folder and the bytes it needed."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return SearchflowError(
            f"no space left in {path.parent} for {size:,} bytes of events; "
            "free some space or pass --out a folder on another disk"
        )
    return SearchflowError(f"writing {path} failed ({exc.strerror or exc}); check the folder")


# --- bulk -------------------------------------------------------------------------------------


def write_jsonl(batch: Lines, out: Path) -> dict[str, Any]:
    """``<out>/<type>/<batch_id>.jsonl`` per type, each written whole then renamed into place."""
    out = prepare_out(out)
    stale = remove_stale_tmp(out)
    files = {}
    for event_type in EVENT_TYPES:
        path = jsonl_path(out, event_type, batch.batch_id)
        text = getattr(batch, "text", None)  # a generated batch builds its JSONL in one copy
        write_whole(path, text(event_type) if text else to_text_buffer(batch.lines(event_type)))
        files[event_type] = str(path)
    for record_type, lines in _record_lines(batch).items():
        (out / record_type).mkdir(exist_ok=True)
        path = jsonl_path(out, record_type, batch.batch_id)
        write_whole(path, to_text_buffer(lines))
        files[record_type] = str(path)
    result: dict[str, Any] = {"out": str(out), "files": files}
    if stale:
        result["stale_tmp_removed"] = stale
    return result


def write_redis(batch: Lines, settings: Settings) -> dict[str, Any]:
    """XADD every line to ``events:<type>`` (fields ``data`` and ``batch``), streamed in chunks."""
    appender = RedisAppender(settings, batch.batch_id)
    try:
        for event_type in EVENT_TYPES:
            appender.add(event_type, batch.lines(event_type))
        records = _record_lines(batch)
        for record_type, lines in records.items():
            appender.add(record_type, lines, stream=record_stream_name(record_type))
    finally:
        appender.close()
    streams = {t: stream_name(t) for t in EVENT_TYPES}
    streams.update({t: record_stream_name(t) for t in records})
    return {"out": appender.where, "streams": streams}


def write_postgres(batch: Lines, settings: Settings) -> dict[str, Any]:
    """COPY every line into ``app.events`` in emission order, one transaction with the DDL."""
    appender = PostgresAppender(settings, batch.batch_id)
    try:
        appender.write(batch.emitted)
        records = getattr(batch, "records", None)
        if records is not None:
            for record_type in RECORD_TYPES:
                appender.upsert(record_type, records.current(record_type))
        appender.commit()
    finally:
        appender.close()
    result: dict[str, Any] = {"out": appender.where, "table": APP_EVENTS_TABLE}
    if records is not None:
        result["tables"] = [APP_TABLES[t] for t in RECORD_TYPES]
    return result


def _record_lines(batch: Lines) -> dict[str, pa.Array]:
    """The change records a batch carries (a held batch read back carries none)."""
    records = getattr(batch, "records", None)
    if records is None:
        return {}
    return {t: records.lines(t) for t in RECORD_TYPES}


def write(batch: Lines, sink: str, settings: Settings, out: Path | None = None) -> dict[str, Any]:
    """Send a generated batch to ``sink``; returns where it went."""
    check_sink(sink)
    if hasattr(batch, "write_parts"):  # a batch built in parts (generator/parts.py)
        return batch.write_parts(sink, settings, out)
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
        remove_stale_tmp(self.out)
        self.where = str(self.out)
        self.files = {
            t: open(jsonl_path(self.out, t, batch_id), "ab")  # noqa: SIM115 - closed in close()
            for t in EVENT_TYPES
        }

    def write(self, rows: pa.Table) -> None:
        for event_type in EVENT_TYPES:
            lines = rows.filter(pc.equal(rows["stream"], event_type))["line"].combine_chunks()
            if len(lines):
                data = to_text_buffer(lines)
                try:
                    self.files[event_type].write(data)
                    self.files[event_type].flush()
                except OSError as exc:
                    raise _write_failed(Path(self.files[event_type].name), len(data), exc) from None

    def commit(self) -> None:
        pass

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()


class RedisAppender:
    """XADDs rows to ``events:<type>``, each entry ``data`` = the line, ``batch`` = the batch id.

    redis-py would build a Python command object per event; here Arrow encodes the XADDs of a
    chunk as RESP (:mod:`searchflow.resp`), the chunks stream down one connection while hiredis
    parses the replies on the other side of it.
    """

    def __init__(self, settings: Settings, batch_id: str) -> None:
        import redis

        from searchflow.services import mask_url, redis_url

        url = redis_url(settings)
        self.where = mask_url(url)
        self.batch_id = batch_id
        self._redis = redis
        self.client = redis.Redis.from_url(url)
        self.conn: resp.RespConnection | None = None

    def _commands(self, stream: str, lines: pa.Array) -> Iterator[memoryview]:
        for start in range(0, len(lines), REDIS_CHUNK):
            chunk = lines.slice(start, REDIS_CHUNK)
            yield resp.wire(
                resp.command(
                    "XADD", stream, "*", STREAM_FIELD, chunk, STREAM_BATCH_FIELD, self.batch_id
                )
            )

    def add(self, event_type: str, lines: pa.Array, stream: str | None = None) -> None:
        """XADD ``lines`` to the type's stream (or ``stream``), in order; one line of error if
        Redis refuses."""
        if len(lines) == 0:
            return
        stream = stream or stream_name(event_type)
        try:
            if self.conn is None:
                self.conn = resp.RespConnection(self.client)
            refused = resp.reply_errors(
                self.conn.request(self._commands(stream, lines), len(lines))
            )
        except (self._redis.RedisError, OSError) as exc:
            self.close()
            raise SearchflowError(
                f"writing to Redis at {self.where} failed: {exc}; check the server and retry"
            ) from None
        if refused:
            self.close()
            raise SearchflowError(
                f"Redis at {self.where} refused {len(refused):,} of {len(lines):,} entries "
                f"for {stream}: {refused[0]}"
            )

    def write(self, rows: pa.Table) -> None:
        for event_type in EVENT_TYPES:
            lines = rows.filter(pc.equal(rows["stream"], event_type))["line"].combine_chunks()
            if len(lines):
                self.add(event_type, lines)

    def commit(self) -> None:
        pass

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.client.close()


class PostgresAppender:
    """COPYs rows into ``app.events`` (with their batch id); the DDL runs first in the same
    transaction."""

    def __init__(self, settings: Settings, batch_id: str, autocommit_each: bool = False) -> None:
        import psycopg2

        from searchflow.services import mask_url, postgres_url

        url = postgres_url(settings)
        self.where = mask_url(url)
        self.batch_id = batch_id
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
                f"creating {APP_EVENTS_TABLE} in PostgreSQL at {self.where} failed: "
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
        text = join(
            rows["stream"].combine_chunks(), "\t", line, "\t", created, f"\t{self.batch_id}"
        )
        buffer = io.BytesIO(to_text_buffer(text).tobytes())
        columns = f"event_type, payload, created_at, {APP_EVENTS_BATCH_COLUMN}"
        try:
            with self.conn.cursor() as cur:
                cur.copy_expert(f"COPY {APP_EVENTS_TABLE} ({columns}) FROM STDIN", buffer)
            if self.autocommit_each:
                self.conn.commit()
        except self._psycopg2.Error as exc:
            self.conn.rollback()
            raise SearchflowError(
                f"writing to PostgreSQL at {self.where} failed: "
                f"{str(exc).strip().splitlines()[0]}; nothing of this batch was kept"
            ) from None

    def upsert(self, record_type: str, rows: pa.Table) -> None:
        """Bring ``app.<record_type>`` to these versions: COPY into a temporary table, then one
        INSERT ... ON CONFLICT that only moves a row forward in time (an older run written later
        leaves the newer version in place)."""
        if rows.num_rows == 0:
            return
        import pyarrow.csv as pacsv

        table, key = APP_TABLES[record_type], RECORD_KEYS[record_type]
        columns = ", ".join(rows.column_names)
        updates = ", ".join(f"{c} = excluded.{c}" for c in rows.column_names if c != key)
        text = io.BytesIO()
        pacsv.write_csv(rows, text, pacsv.WriteOptions(include_header=False))
        text.seek(0)
        try:
            with self.conn.cursor() as cur:
                cur.execute(
                    f"CREATE TEMP TABLE _records (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
                )
                cur.copy_expert(f"COPY _records ({columns}) FROM STDIN WITH (FORMAT csv)", text)
                cur.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _records "
                    f"ON CONFLICT ({key}) DO UPDATE SET {updates} "
                    f"WHERE excluded.updated_at > {table}.updated_at"
                )
                cur.execute("DROP TABLE _records")
        except self._psycopg2.Error as exc:
            self.conn.rollback()
            raise SearchflowError(
                f"writing {table} to PostgreSQL at {self.where} failed: "
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
        return RedisAppender(settings, batch_id)
    return PostgresAppender(settings, batch_id, autocommit_each=True)
