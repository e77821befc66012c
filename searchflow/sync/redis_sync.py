"""The Redis side: ``reco:{user_id}`` JSON values with a 24-hour TTL, diffed and written in bulk.

Plan (same for a real run, a dry run and reconcile), comparing the values Redis holds now (no
stored fingerprint that a hand edit could leave stale):

1. the mart's keys are fetched with ``MGET`` (10,000 keys a command; the keys RESP encoded by
   Arrow, all commands written to the socket at once, replies parsed by hiredis), skipped when
   the database is empty. In a real run, every key's TTL is refreshed at the same time on a second
   connection (``PEXPIREAT``, a no-op for missing keys), so an unchanged key needs nothing more;
2. keys nobody in the mart owns: when ``DBSIZE`` equals the number of keys found in step 1 the
   database holds nothing else, so there are none; otherwise ``SCAN MATCH reco:*`` lists them;
3. one DuckDB query compares: a key is ``insert`` when missing, ``update`` when its destinations or
   score differ (or the value is not the contract's JSON shape), ``unchanged`` otherwise (its
   value and ``generated_at`` stay as written), and a key whose user left the mart is deleted
   (``UNLINK``).

Apply: the values of the inserts and updates stream out of DuckDB in batches; Arrow encodes each
batch's ``SET key value PXAT t`` commands as RESP into one string column, whose data buffer *is*
the byte stream, sent as is (no Python per key) while DuckDB builds the next batch and Redis runs
the previous one. A reader thread counts the one-line replies while the writer sends, so the socket
is full duplex and there is no round trip per chunk (:mod:`searchflow.resp`). That is pipelining
without redis-py's Python cost per command, which a bulk write of every recommendation would pay
once per key (docs/reverse-etl.md, "Speed", compares the two).

Redis has no multi-key transaction worth the name at this size: each key is written atomically, and
a run that dies half-way is completed by the next run (the plan is recomputed from what is there).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from searchflow.arrays import utf8_strings
from searchflow.resp import RespConnection, argument, command, error_lines, header, wire

KEY_PREFIX = "reco:"
TTL_SECONDS = 24 * 3600
CHUNK = 10_000  # keys per MGET
SCAN_COUNT = 10_000
BATCH = 16_384  # values DuckDB builds per streamed chunk
SAMPLE = 5


@dataclass
class RedisPlan:
    """What a sync would do; ``actions`` is the mart's rows with an ``action`` column, ``extra``
    the sorted ``reco:*`` keys no mart row owns.

    ``expires_at`` (Unix ms) is set when the plan was made for a real run: the TTL of every mart
    key Redis held was then refreshed to it while the values were fetched (``refresh_errors`` are
    Redis' refusals), so applying the plan leaves unchanged keys alone.
    """

    actions: pa.Table
    extra: pa.Array
    inserted: int
    updated: int
    unchanged: int
    expires_at: str | None = None
    refresh_errors: list[str] = field(default_factory=list)

    def samples(self, action: str) -> list[str]:
        """Up to ``SAMPLE`` users, sorted, whose key the plan would ``action``."""
        users = self.actions.filter(pc.equal(self.actions["action"], action))["user_id"]
        users = users.combine_chunks().cast(pa.string())
        return pc.take(users, pc.sort_indices(users))[:SAMPLE].to_pylist()

    def extra_samples(self) -> list[str]:
        """Up to ``SAMPLE`` users, sorted, of the keys no mart row owns."""
        return pc.utf8_slice_codeunits(self.extra, len(KEY_PREFIX))[:SAMPLE].to_pylist()


def keys_of(users: pa.Array | pa.ChunkedArray, prefix: str = KEY_PREFIX) -> pa.Array:
    """``{prefix}{user_id}`` for a column of user ids."""
    if isinstance(users, pa.ChunkedArray):
        users = users.combine_chunks()
    return pc.binary_join_element_wise(prefix, users.cast(pa.string()), "")


# The value is head || tail: head = {"destinations":[...],"score":x (the compared part), tail =
# ,"generated_at":"..."}. Our writer is canonical (to_json of each string and of the score, no
# spaces), so an unchanged recommendation is a stored value that starts with the new head and ends
# in a well-formed generated_at: string comparisons, no JSON parsing of 200k values. Anything else
# (other JSON spelling, extra fields) is rewritten. Heads are built only to compare with the values
# Redis holds; full values only for the rows that are written, while they are sent. Both are SQL
# over the mart's columns.
_HEAD = (
    """concat('{"destinations":[', """
    "concat_ws(',', to_json(destination_1), to_json(destination_2), to_json(destination_3)), "
    """'],"score":', to_json(CAST(score AS DOUBLE)))"""
)
_VALUE = (
    f"""concat({_HEAD}, ',"generated_at":"', """
    """strftime(CAST(generated_at AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S.%fZ'), '"}')"""
)

_TAIL = r',"generated_at":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z"\}'


def _fetch_values(raw: RespConnection, keys: pa.Array) -> pa.Array:
    """The value of every key (NULL when missing), in order, via MGETs of ``CHUNK`` keys.

    The keys are RESP encoded as one column; an MGET is its header plus a slice of that column's
    data buffer, so no per-key work happens in Python.
    """
    import hiredis
    import redis

    rows = len(keys)
    if not rows:
        return pa.array([], pa.string())
    args = argument(keys)
    parts: list[bytes | memoryview] = []
    for start in range(0, rows, CHUNK):
        chunk = args.slice(start, CHUNK)
        parts.append(header("MGET", len(chunk)))
        parts.append(wire(chunk))
    values: list[bytes | None] = []
    for reply in raw.request(b"".join(parts), len(parts) // 2):
        if isinstance(reply, hiredis.ReplyError):  # e.g. an ACL without MGET on reco:*
            raise redis.ResponseError(str(reply))
        values.extend(reply)
    if len(values) != rows:
        raise ConnectionError(f"Redis answered {len(values)} values for {rows} keys")
    return utf8_strings(values)


def _extra_keys(client, keys: pa.Array, size: int, found: int) -> pa.Array:
    """``reco:*`` keys whose user is not in the mart, sorted; no SCAN when DBSIZE rules them out.

    ``size`` is the database's DBSIZE, ``found`` how many of the mart's ``keys`` exist.
    """
    if size <= found:
        return pa.array([], pa.string())
    listed = utf8_strings(list(client.scan_iter(match=f"{KEY_PREFIX}*", count=SCAN_COUNT)))
    extra = listed.filter(pc.invert(pc.is_in(listed, value_set=keys)))
    return pc.take(extra, pc.sort_indices(extra))


def _refresh(client, keys: pa.Array, expires_at: str) -> list[str]:
    """``PEXPIREAT`` every key (a no-op for missing ones) on a connection of its own; the errors."""
    with RespConnection(client) as raw:
        return error_lines(
            raw.write(wire(command("PEXPIREAT", keys, expires_at)), len(keys)), len(keys)
        )


def _actions(
    client, good: pa.Table, size: int, full_resync: bool, expires_at: str | None
) -> tuple[pa.Array, pa.Array, list[str]]:
    """Per mart row insert/update/unchanged (the values Redis holds against the new heads).

    The MGETs run on their own thread while DuckDB builds the heads, so Redis answers meanwhile.
    With ``expires_at`` (a real run) every key's TTL is refreshed on a second connection at the
    same time: an unchanged key needs nothing more, a changed one is rewritten with the same
    expiry, a missing one is untouched. Returns the actions, the extra keys and refresh errors.
    """
    keys = keys_of(good["user_id"])
    with RespConnection(client) as raw, ThreadPoolExecutor(2) as pool:
        fetching = pool.submit(_fetch_values, raw, keys)
        refreshing = pool.submit(_refresh, client, keys, expires_at) if expires_at else None
        con = duckdb.connect()
        try:
            con.register("mart", good)
            heads = con.execute(f"SELECT {_HEAD} FROM mart").to_arrow_table().column(0)
            # MGET answers in the order asked, DuckDB keeps the mart's order through a
            # projection: row i of each is the user of row i.
            old = fetching.result()
            con.register("n", pa.table({"head": heads, "old": old}))
            same = (
                f"starts_with(old, head) AND regexp_full_match(old[length(head) + 1:], '{_TAIL}')"
            )
            action = con.execute(
                f"""
                SELECT CASE WHEN old IS NULL THEN 'insert'
                            WHEN {"TRUE" if full_resync else "FALSE"} OR NOT ({same}) THEN 'update'
                            ELSE 'unchanged' END
                FROM n
                """
            ).to_arrow_table()
        finally:
            con.close()
        errors = refreshing.result() if refreshing else []
    extra = _extra_keys(client, keys, size, len(old) - old.null_count)
    return action.column(0), extra, errors


def _expiry(ttl: int) -> str:
    """Now + ``ttl`` seconds as Unix milliseconds, the argument of ``PXAT`` and ``PEXPIREAT``."""
    return str(int(time.time() * 1000) + ttl * 1000)


def plan(client, good: pa.Table, full_resync: bool = False, *, ttl: int | None = None) -> RedisPlan:
    """Compare the mart's rows with what Redis holds.

    ``ttl`` (seconds) marks a plan for a real run: the keys' TTLs are refreshed to now + ``ttl``
    while their values are fetched (see :func:`_actions`). Without it (dry runs, reconcile) the plan
    writes nothing. An empty database holds none of the keys: every row is an insert and nothing
    is fetched.
    """
    expires_at = None if ttl is None else _expiry(ttl)
    size = client.dbsize()
    errors: list[str] = []
    if size and good.num_rows:
        action, extra, errors = _actions(client, good, size, full_resync, expires_at)
    else:  # no keys to compare with, or no rows: everything is an insert, anything there extra
        extra = _extra_keys(client, keys_of(good["user_id"]), size, 0)
        action = pa.array(["insert"] * good.num_rows, pa.string())
    actions = good.append_column("action", action)
    counts = {
        item["values"]: item["counts"] for item in pc.value_counts(actions["action"]).to_pylist()
    }
    return RedisPlan(
        actions=actions,
        extra=extra,
        inserted=counts.get("insert", 0),
        updated=counts.get("update", 0),
        unchanged=counts.get("unchanged", 0),
        expires_at=expires_at,
        refresh_errors=errors,
    )


def _commands(actions: pa.Table, expires_at: str, refreshed: bool) -> Iterator[memoryview]:
    """``SET key value PXAT t`` for inserts and updates, ``PEXPIREAT key t`` for the unchanged
    (unless their TTLs were ``refreshed`` while the plan was made).

    The values are streamed from DuckDB ``BATCH`` rows at a time and each batch is encoded and sent
    while DuckDB builds the next (on one thread: the other core is Redis', executing the commands
    meanwhile), so encoding and writing overlap instead of adding up.
    """
    unchanged = pc.equal(actions["action"], "unchanged")
    con = duckdb.connect(config={"threads": 1})
    try:
        con.register("writes", actions.filter(pc.invert(unchanged)))
        query = f"SELECT user_id, {_VALUE} AS value FROM writes"
        for batch in con.execute(query).to_arrow_reader(BATCH):
            if batch.num_rows:
                keys = keys_of(batch["user_id"])
                yield wire(command("SET", keys, batch["value"], "PXAT", expires_at))
    finally:
        con.close()
    kept = actions.filter(unchanged)["user_id"]
    if len(kept) and not refreshed:
        yield wire(command("PEXPIREAT", keys_of(kept), expires_at))


def apply(client, plan_: RedisPlan, ttl: int = TTL_SECONDS) -> tuple[int, list[str]]:
    """Carry out the plan; returns (keys deleted, error replies).

    One stream of writes (see :func:`_commands`), then one ``UNLINK`` per key whose user left the
    mart (each reply ``:1`` when it removed one). The expiry is one absolute time for the whole run
    (the plan's, else now + ``ttl``): Redis 7 rewrites a relative ``EX`` into an absolute time for
    every command it executes, which costs it about as much as the write itself.
    """
    refreshed = plan_.expires_at is not None  # a real-run plan refreshed every TTL it could
    expires_at = plan_.expires_at or _expiry(ttl)
    writes = plan_.inserted + plan_.updated if refreshed else plan_.actions.num_rows
    unlinks = len(plan_.extra)
    with RespConnection(client) as raw:
        replies = raw.write(_commands(plan_.actions, expires_at, refreshed), writes)
        errors = [*plan_.refresh_errors, *error_lines(replies, writes)]
        replies = raw.write(wire(command("UNLINK", plan_.extra)), unlinks)
        errors += error_lines(replies, unlinks)
    deleted = replies.split(b"\r\n")[:unlinks].count(b":1")
    return deleted, errors
