"""The Redis side: ``reco:{user_id}`` JSON values with a 24-hour TTL, diffed and written in bulk.

Plan (same for a real run, a dry run and reconcile): the keys present come from ``SCAN MATCH reco:*``
(the truth, including keys nobody wrote through the sync), their values from batched ``MGET``; the
comparison with the mart is one DuckDB query. A key is

- ``insert`` when missing, ``update`` when its destinations or score differ (or the value is not the
  contract's JSON shape), ``unchanged`` otherwise: only its TTL is refreshed (``EXPIRE``), the value
  and its ``generated_at`` stay as written;
- ``delete`` when its user left the mart.

Apply: the commands are encoded as RESP by DuckDB (string concatenation, set-based), sent to the
socket in chunks of 10,000 and the replies parsed by hiredis in C. That is pipelining without
redis-py's per-command Python cost, which caps at ~0.1M keys/s here (STACK.md).

Redis has no multi-key transaction worth the name at this size: each key is written atomically, and
a run that dies half-way is completed by the next run (the plan is recomputed from what is there).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

KEY_PREFIX = "reco:"
TTL_SECONDS = 24 * 3600
CHUNK = 10_000
SCAN_COUNT = 10_000
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
        import pyarrow.compute as pc

        keys = self.actions.filter(pc.equal(self.actions["action"], action))["key"]
        keys = pc.utf8_slice_codeunits(keys.combine_chunks(), len(KEY_PREFIX))
        return pc.take(keys, pc.sort_indices(keys))[:SAMPLE].to_pylist()


def scan_keys(client) -> list[bytes]:
    """Every ``reco:*`` key, with large SCAN steps (a handful of round trips for 200k keys)."""
    return list(client.scan_iter(match=f"{KEY_PREFIX}*", count=SCAN_COUNT))


def fetch_values(client, keys: list[bytes]) -> list[bytes | None]:
    """Values of ``keys`` through pipelined MGETs of 10,000 keys each."""
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(keys), CHUNK):
        pipe.mget(keys[start : start + CHUNK])
    values: list[bytes | None] = []
    for chunk in pipe.execute():
        values.extend(chunk)
    return values


# The value is built as head || tail: head = {"destinations":[...],"score":x (the compared part),
# tail = ,"generated_at":"..."}. Our writer is canonical, so an unchanged recommendation is a stored
# value that starts with the new head and ends in a well-formed generated_at: a string comparison,
# no JSON parsing of 200k values. Anything else (other JSON spelling, extra fields) is rewritten.
_NEW_VALUES = f"""
    SELECT key, head, head || ',"generated_at":"' || generated || '"}}' AS value
    FROM (
        SELECT '{KEY_PREFIX}' || user_id AS key,
               rtrim(json_object(
                   'destinations',
                   list_filter([destination_1, destination_2, destination_3], d -> d IS NOT NULL),
                   'score', CAST(score AS DOUBLE)
               )::VARCHAR, '}}') AS head,
               strftime(CAST(generated_at AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S.%fZ') AS generated
        FROM mart
    )
"""

_TAIL = r',"generated_at":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z"\}'


def _strings(items: list[bytes | None]) -> pa.Array:
    """Redis replies as an Arrow string array, decoding in C (Python only for invalid UTF-8)."""
    raw = pa.array(items, pa.binary())
    try:
        return raw.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array(
            [v.decode("utf-8", "replace") if v is not None else None for v in items], pa.string()
        )


def plan(client, good: pa.Table, full_resync: bool = False) -> RedisPlan:
    """Compare the mart's rows with what Redis holds, set-based in an in-memory DuckDB."""
    keys = scan_keys(client)
    values = fetch_values(client, keys) if keys else []
    old = pa.Table.from_arrays([_strings(keys), _strings(values)], names=["key", "value"])
    con = duckdb.connect()
    try:
        con.register("mart", good)
        con.register("old", old)
        same = (
            "starts_with(o.value, n.head) AND "
            f"regexp_full_match(o.value[length(n.head) + 1:], '{_TAIL}')"
        )
        actions = con.execute(
            f"""
            WITH n AS ({_NEW_VALUES})
            SELECT n.key, n.value,
                   CASE WHEN o.value IS NULL THEN 'insert'
                        WHEN {"TRUE" if full_resync else "FALSE"} OR NOT ({same}) THEN 'update'
                        ELSE 'unchanged' END AS action
            FROM n LEFT JOIN old o ON o.key = n.key
            """
        ).to_arrow_table()
        extra = [
            row[0].encode()
            for row in con.execute(
                "SELECT o.key FROM old o ANTI JOIN mart m ON o.key = "
                f"'{KEY_PREFIX}' || m.user_id ORDER BY o.key"
            ).fetchall()
        ]
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


def _resp(*parts: str) -> str:
    """SQL for one RESP command whose arguments are SQL string expressions."""
    out = [f"'*{len(parts)}{CRLF}'"]
    out.extend(f"'$' || strlen({p}) || '{CRLF}' || {p} || '{CRLF}'" for p in parts)
    return " || ".join(out)


def _chunks(table: pa.Table, command_sql: str) -> list[tuple[bytes, int]]:
    """RESP-encoded command chunks (payload, number of commands), built by DuckDB from ``table``."""
    if not table.num_rows:
        return []
    con = duckdb.connect()
    try:
        con.register("t", table)
        rows = con.execute(
            f"""
            WITH numbered AS (
                SELECT {command_sql} AS cmd, (row_number() OVER () - 1) // {CHUNK} AS chunk FROM t
            )
            SELECT string_agg(cmd, ''), count(*) FROM numbered GROUP BY chunk ORDER BY chunk
            """
        ).fetchall()
    finally:
        con.close()
    return [(payload.encode(), int(n)) for payload, n in rows]


def write_commands(plan_: RedisPlan, ttl: int = TTL_SECONDS) -> list[tuple[bytes, int]]:
    """SET key value EX ttl for inserts and updates, EXPIRE key ttl for unchanged keys."""
    set_cmd = _resp("'SET'", "key", "value", "'EX'", f"'{ttl}'")
    expire_cmd = _resp("'EXPIRE'", "key", f"'{ttl}'")
    return _chunks(
        plan_.actions,
        f"CASE WHEN action = 'unchanged' THEN {expire_cmd} ELSE {set_cmd} END",
    )


def delete_commands(plan_: RedisPlan) -> list[tuple[bytes, int]]:
    """UNLINK for every key whose user left the mart."""
    extra = pa.Table.from_pydict({"key": pa.array([k.decode() for k in plan_.extra], pa.string())})
    return _chunks(extra, _resp("'UNLINK'", "key"))


def send_bulk(client, chunks: list[tuple[bytes, int]]) -> tuple[int, list[str]]:
    """Write pre-encoded chunks on one connection, one round trip per chunk.

    Replies are parsed by hiredis straight from the socket; returns (sum of integer replies, error
    replies). For UNLINK the sum is the number of keys removed.
    """
    import hiredis

    if not chunks:
        return 0, []
    conn = client.connection_pool.make_connection()
    errors: list[str] = []
    integers = 0
    try:
        conn.connect()
        sock = conn._sock  # raw socket: the replies are parsed below, not by redis-py
        for payload, count in chunks:
            sock.sendall(payload)
            reader = hiredis.Reader()
            got = 0
            while got < count:
                data = sock.recv(1 << 20)
                if not data:
                    raise ConnectionError("Redis closed the connection during a bulk write")
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    got += 1
                    if isinstance(reply, hiredis.ReplyError):
                        errors.append(str(reply))
                    elif isinstance(reply, int):
                        integers += reply
    finally:
        conn.disconnect()
    return integers, errors


def apply(client, plan_: RedisPlan, ttl: int = TTL_SECONDS) -> tuple[int, list[str]]:
    """Carry out the plan; returns (keys deleted, error replies)."""
    _, errors = send_bulk(client, write_commands(plan_, ttl))
    deleted, delete_errors = send_bulk(client, delete_commands(plan_))
    return deleted, errors + delete_errors
