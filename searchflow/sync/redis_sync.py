"""The Redis side: ``reco:{user_id}`` JSON values with a 24-hour TTL, diffed and written in bulk.

Plan (same for a real run, a dry run and reconcile), comparing the values Redis holds now (no
stored fingerprint that a hand edit could leave stale):

1. the mart's keys are fetched with ``MGET`` (10,000 keys a command; the keys RESP encoded by
   DuckDB, all commands written to the socket at once, replies parsed by hiredis);
2. keys nobody in the mart owns: when ``DBSIZE`` equals the number of keys found in step 1 the
   database holds nothing else, so there are none; otherwise ``SCAN MATCH reco:*`` lists them;
3. one DuckDB query compares: a key is ``insert`` when missing, ``update`` when its destinations or
   score differ (or the value is not the contract's JSON shape), ``unchanged`` otherwise (only its
   TTL is refreshed with ``EXPIRE``; the value and its ``generated_at`` stay as written), and a key
   whose user left the mart is deleted (``UNLINK``).

Apply: DuckDB encodes every command as RESP in one string column; the Arrow column's data buffer
*is* the concatenated byte stream, sent as is (no Python per key). A reader thread counts the
one-line replies while the writer sends, so the socket is full duplex and there is no round trip per
chunk. That is pipelining without redis-py's per-command Python cost, which caps at ~0.1M keys/s
here (STACK.md).

Redis has no multi-key transaction worth the name at this size: each key is written atomically, and
a run that dies half-way is completed by the next run (the plan is recomputed from what is there).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

KEY_PREFIX = "reco:"
TTL_SECONDS = 24 * 3600
CHUNK = 10_000  # keys per MGET
SCAN_COUNT = 10_000
SEND_BYTES = 4 << 20  # bytes per sendall
SAMPLE = 5

CRLF = "\r\n"


@dataclass
class RedisPlan:
    """What a sync would do; ``actions`` is an Arrow table (key, value, action)."""

    actions: pa.Table
    extra: list[bytes]
    inserted: int
    updated: int
    unchanged: int

    def samples(self, action: str) -> list[str]:
        keys = self.actions.filter(pc.equal(self.actions["action"], action))["key"]
        keys = pc.utf8_slice_codeunits(keys.combine_chunks(), len(KEY_PREFIX))
        return pc.take(keys, pc.sort_indices(keys))[:SAMPLE].to_pylist()


class RawConnection:
    """One socket of the client's pool, driven with pre-encoded RESP (hiredis parses replies)."""

    def __init__(self, client) -> None:
        self._conn = client.connection_pool.make_connection()
        self._conn.connect()
        self.sock = self._conn._sock  # raw socket: replies are read below, not by redis-py

    def close(self) -> None:
        self._conn.disconnect()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _send_all(self, payload: memoryview | bytes, reader: threading.Thread) -> None:
        reader.start()
        try:
            view = memoryview(payload)
            for start in range(0, len(view), SEND_BYTES):
                self.sock.sendall(view[start : start + SEND_BYTES])
        finally:
            reader.join()

    def request(self, payload: bytes, count: int) -> list:
        """Send ``count`` commands at once and return their ``count`` replies, parsed."""
        import hiredis

        replies: list = []
        failure: list[BaseException] = []

        def read() -> None:
            parser = hiredis.Reader()
            try:
                while len(replies) < count:
                    data = self.sock.recv(1 << 20)
                    if not data:
                        raise ConnectionError("Redis closed the connection during a bulk read")
                    parser.feed(data)
                    while (reply := parser.gets()) is not False:
                        replies.append(reply)
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)

        self._send_all(payload, threading.Thread(target=read, daemon=True))
        if failure:
            raise failure[0]
        return replies

    def write(self, payload: memoryview | bytes, count: int) -> bytes:
        """Send ``count`` commands whose replies are one line each; return the raw reply bytes.

        Counting newlines in C is all the parsing the writes need (``+OK``, ``:1``, ``-ERR ...``).
        """
        chunks: list[bytes] = []
        failure: list[BaseException] = []

        def read() -> None:
            lines = 0
            try:
                while lines < count:
                    data = self.sock.recv(1 << 20)
                    if not data:
                        raise ConnectionError("Redis closed the connection during a bulk write")
                    chunks.append(data)
                    lines += data.count(b"\n")
            except BaseException as exc:
                failure.append(exc)

        if not count:
            return b""
        self._send_all(payload, threading.Thread(target=read, daemon=True))
        if failure:
            raise failure[0]
        return b"".join(chunks)


def _buffer(column: pa.ChunkedArray | pa.Array) -> tuple[memoryview, pa.Array]:
    """A string column's values back to back (its Arrow data buffer, zero copy) and its offsets.

    An Arrow string column stores its values one after the other in one data buffer: for a column
    of RESP-encoded commands or arguments that buffer is exactly what goes on the wire.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise ValueError("a Redis command encoded as NULL")
    if pa.types.is_large_string(column.type):
        column = column.cast(pa.string())
    size = column.offset + len(column) + 1
    offsets = pa.Array.from_buffers(pa.int32(), size, [None, column.buffers()[1]])
    offsets = offsets.slice(column.offset)
    return memoryview(column.buffers()[2] or b""), offsets


def _stream(con: duckdb.DuckDBPyConnection, query: str) -> tuple[memoryview, int]:
    """The commands of ``query``'s single string column as one byte stream, and their count."""
    column = con.execute(query).to_arrow_table().column(0)
    if not len(column):
        return memoryview(b""), 0
    data, offsets = _buffer(column)
    return data[offsets[0].as_py() : offsets[len(column)].as_py()], len(column)


def _str(expr: str) -> str:
    return f"CAST({expr} AS VARCHAR)"


def _resp(*parts: str) -> str:
    """SQL for one RESP command whose arguments are SQL string expressions (one ``concat``)."""
    pieces = [f"'*{len(parts)}{CRLF}'"]
    for part in parts:
        pieces.extend(("'$'", _str(f"strlen({part})"), f"'{CRLF}'", part, f"'{CRLF}'"))
    return f"concat({', '.join(pieces)})"


def _strings(items: list[bytes | None]) -> pa.Array:
    """Redis replies as an Arrow string array, decoding in C (Python only for invalid UTF-8)."""
    raw = pa.array(items, pa.binary())
    try:
        return raw.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array(
            [v.decode("utf-8", "replace") if v is not None else None for v in items], pa.string()
        )


# The value is built as head || tail: head = {"destinations":[...],"score":x (the compared part),
# tail = ,"generated_at":"..."}. Our writer is canonical (to_json of each string and of the score,
# no spaces), so an unchanged recommendation is a stored value that starts with the new head and
# ends in a well-formed generated_at: a string comparison, no JSON parsing of 200k values. Anything
# else (other JSON spelling, extra fields) is rewritten. ``arg`` is the key as a RESP argument, for
# the MGETs.
_NEW_VALUES = f"""
    SELECT key, head,
           concat(head, ',"generated_at":"',
                  strftime(CAST(generated_at AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S.%fZ'), '"}}')
               AS value,
           concat('$', {_str("strlen(key)")}, '{CRLF}', key, '{CRLF}') AS arg
    FROM (
        SELECT concat('{KEY_PREFIX}', user_id) AS key,
               concat('{{"destinations":[',
                      concat_ws(',', to_json(destination_1), to_json(destination_2),
                                to_json(destination_3)),
                      '],"score":', to_json(CAST(score AS DOUBLE))) AS head,
               generated_at
        FROM mart
    )
"""

_TAIL = r',"generated_at":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z"\}'


def _fetch_values(raw: RawConnection, args: pa.ChunkedArray) -> pa.Array:
    """The value of every key (NULL when missing), in order, via MGETs of ``CHUNK`` keys.

    ``args`` holds each key already RESP encoded; an MGET is its header plus a slice of that
    column's data buffer, so no per-key work happens in Python.
    """
    import hiredis
    import redis

    rows = len(args)
    if not rows:
        return pa.array([], pa.string())
    data, offsets = _buffer(args)
    parts: list[bytes | memoryview] = []
    for start in range(0, rows, CHUNK):
        stop = min(start + CHUNK, rows)
        parts.append(f"*{stop - start + 1}{CRLF}$4{CRLF}MGET{CRLF}".encode())
        parts.append(data[offsets[start].as_py() : offsets[stop].as_py()])
    values: list[bytes | None] = []
    for reply in raw.request(b"".join(parts), len(parts) // 2):
        if isinstance(reply, hiredis.ReplyError):  # e.g. an ACL without MGET on reco:*
            raise redis.ResponseError(str(reply))
        values.extend(reply)
    if len(values) != rows:
        raise ConnectionError(f"Redis answered {len(values)} values for {rows} keys")
    return _strings(values)


def _extra_keys(client, con: duckdb.DuckDBPyConnection, found: int) -> list[bytes]:
    """``reco:*`` keys whose user is not in the mart, sorted; no SCAN when DBSIZE rules them out."""
    if client.dbsize() <= found:
        return []
    listed = pa.table(
        {"key": _strings(list(client.scan_iter(match=f"{KEY_PREFIX}*", count=SCAN_COUNT)))}
    )
    con.register("listed", listed)
    return [
        row[0].encode()
        for row in con.execute(
            "SELECT l.key FROM listed l ANTI JOIN n ON n.key = l.key ORDER BY l.key"
        ).fetchall()
    ]


def plan(client, good: pa.Table, full_resync: bool = False) -> RedisPlan:
    """Compare the mart's rows with what Redis holds, set-based in an in-memory DuckDB."""
    con = duckdb.connect()
    try:
        con.register("mart", good)
        new = con.execute(_NEW_VALUES).to_arrow_table()
        with RawConnection(client) as raw:
            old = _fetch_values(raw, new["arg"])
        # MGET answers in the order asked: value i belongs to the key of row i.
        n = new.drop_columns(["arg"]).append_column("old", old)
        con.register("n", n)
        extra = _extra_keys(client, con, len(old) - old.null_count)
        same = f"starts_with(old, head) AND regexp_full_match(old[length(head) + 1:], '{_TAIL}')"
        actions = con.execute(
            f"""
            SELECT key, value,
                   CASE WHEN old IS NULL THEN 'insert'
                        WHEN {"TRUE" if full_resync else "FALSE"} OR NOT ({same}) THEN 'update'
                        ELSE 'unchanged' END AS action
            FROM n
            """
        ).to_arrow_table()
        con.register("actions", actions)
        counts = dict(
            con.execute("SELECT action, count(*) FROM actions GROUP BY action").fetchall()
        )
    finally:
        con.close()
    return RedisPlan(
        actions=actions,
        extra=extra,
        inserted=counts.get("insert", 0),
        updated=counts.get("update", 0),
        unchanged=counts.get("unchanged", 0),
    )


def apply(client, plan_: RedisPlan, ttl: int = TTL_SECONDS) -> tuple[int, list[str]]:
    """Carry out the plan; returns (keys deleted, error replies).

    One stream of SET key value EX ttl (inserts, updates) and EXPIRE key ttl (unchanged keys), then
    one of UNLINK for every key whose user left the mart (each reply ``:1`` when it removed one).
    """
    set_cmd = _resp("'SET'", "key", "value", "'EX'", f"'{ttl}'")
    expire_cmd = _resp("'EXPIRE'", "key", f"'{ttl}'")
    extra = pa.table({"key": pa.array([k.decode() for k in plan_.extra], pa.string())})
    con = duckdb.connect()
    try:
        con.register("actions", plan_.actions)
        con.register("extra", extra)
        writes = _stream(
            con,
            f"SELECT CASE WHEN action = 'unchanged' THEN {expire_cmd} ELSE {set_cmd} END "
            "FROM actions",
        )
        unlink_cmd = _resp("'UNLINK'", "key")
        unlinks = _stream(con, f"SELECT {unlink_cmd} FROM extra")
    finally:
        con.close()
    errors: list[str] = []
    deleted = 0
    with RawConnection(client) as raw:
        for (payload, count), is_unlink in ((writes, False), (unlinks, True)):
            replies = raw.write(payload, count)
            if b"-" in replies:  # only error replies contain a dash (+OK, :0, :1 do not)
                lines = replies.split(b"\r\n")[:count]
                errors += [
                    line[1:].decode("utf-8", "replace") for line in lines if line[:1] == b"-"
                ]
                deleted += sum(line == b":1" for line in lines) if is_unlink else 0
            elif is_unlink:
                deleted += replies.count(b":1\r\n")
    return deleted, errors
