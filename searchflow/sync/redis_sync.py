"""The Redis side: ``<prefix>{user_id}`` JSON values with a 24-hour TTL, diffed and written in bulk.

The prefix is ``SEARCHFLOW_RECO_PREFIX`` (``reco:`` by default). Other applications may keep keys
under the same prefix in the same database, so the sync deletes only keys it wrote itself, the
way Hightouch and Census delete only rows they synced: every key the sync writes is first added to
a Redis set of its own (:func:`owned_set`, ``searchflow:owned:<prefix>``), in the same stream of
commands as the writes, and only members of that set are ever deleted.

Plan (same for a real run, a dry run and reconcile), comparing the values Redis holds now (no
stored fingerprint that a hand edit could leave stale):

1. the mart's keys are fetched with ``MGET`` (``CHUNK`` keys a command, RESP encoded by Arrow, all
   commands written to the socket at once, replies parsed by hiredis), skipped when the database
   is empty. In a real run, a second connection meanwhile refreshes every key's TTL
   (``PEXPIREAT``, a no-op for missing keys) and adds the keys to the owned set (``SADD``), so an
   unchanged key needs nothing more;
2. keys the sync owns that no mart row has: none when the owned set holds exactly the mart's keys
   (``SCARD``, after the claim of step 1), otherwise the set's members minus the mart's keys, of
   which those that still exist (``EXISTS``) are deleted and the rest (expired) leave the set;
3. one DuckDB query compares: a key is ``insert`` when missing, ``update`` when its destinations or
   score differ (or the value is not the contract's JSON shape), ``unchanged`` otherwise (its
   value and ``generated_at`` stay as written).

Apply: the keys are claimed (``SADD``, when the plan did not already), then the values of the
inserts and updates stream out of DuckDB in batches; Arrow encodes each batch's
``SET key value PXAT t`` commands as RESP into one string column, whose data buffer *is* the byte
stream, sent as is (no Python per key) while DuckDB builds the next batch and Redis runs the
previous one. A reader thread counts the one-line replies while the writer sends, so the socket is
full duplex and there is no round trip per chunk (:mod:`searchflow.resp`). Then one ``UNLINK`` per
owned key whose user left the mart, and ``SREM`` of those keys from the owned set.

Redis has no multi-key transaction worth the name at this size: each key is written atomically,
and a run that dies half-way is completed by the next run (the plan is recomputed from what is
there). A key is claimed before it is written, so no key the sync wrote is ever left unowned.
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
from searchflow.contract import RECO_KEY_PREFIX
from searchflow.resp import RespConnection, argument, command, error_lines, header, wire

KEY_PREFIX = RECO_KEY_PREFIX
OWNED_PREFIX = "searchflow:owned:"
TTL_SECONDS = 24 * 3600
CHUNK = 10_000  # keys per MGET, SADD and SREM command
BATCH = 16_384  # values DuckDB builds per streamed chunk
SAMPLE = 5


def owned_set(prefix: str = KEY_PREFIX) -> str:
    """The Redis set of the keys the recommendations sync wrote under ``prefix``."""
    return f"{OWNED_PREFIX}{prefix}"


@dataclass
class RedisPlan:
    """What a sync would do; ``actions`` is the mart's rows with an ``action`` column, ``extra``
    the sorted keys the sync owns that no mart row has (to delete), ``stale`` owned keys already
    gone (expired; only their set membership is removed).

    ``expires_at`` (Unix ms) is set when the plan was made for a real run: the TTL of every mart
    key Redis held was then refreshed to it while the values were fetched (``refresh_errors`` are
    Redis' refusals), so applying the plan leaves unchanged keys alone. ``claimed``: the mart's
    keys were added to the owned set then too.
    """

    actions: pa.Table
    extra: pa.Array
    inserted: int
    updated: int
    unchanged: int
    prefix: str = KEY_PREFIX
    stale: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    expires_at: str | None = None
    claimed: bool = False
    refresh_errors: list[str] = field(default_factory=list)

    def samples(self, action: str) -> list[str]:
        """Up to ``SAMPLE`` users, sorted, whose key the plan would ``action``."""
        users = self.actions.filter(pc.equal(self.actions["action"], action))["user_id"]
        users = users.combine_chunks().cast(pa.string())
        return pc.take(users, pc.sort_indices(users))[:SAMPLE].to_pylist()

    def extra_samples(self) -> list[str]:
        """Up to ``SAMPLE`` users, sorted, of the owned keys no mart row has."""
        return pc.utf8_slice_codeunits(self.extra, len(self.prefix))[:SAMPLE].to_pylist()


def keys_of(users: pa.Array | pa.ChunkedArray, prefix: str = KEY_PREFIX) -> pa.Array:
    """``{prefix}{user_id}`` for a column of user ids."""
    if isinstance(users, pa.ChunkedArray):
        users = users.combine_chunks()
    return pc.binary_join_element_wise(prefix, users.cast(pa.string()), "")


def _multi(name: str, target: str, keys: pa.Array) -> tuple[bytes, int]:
    """``name target k1 k2 ...`` in commands of up to ``CHUNK`` keys (SADD, SREM); (bytes, count)."""
    if not len(keys):
        return b"", 0
    args = argument(keys)
    key = f"${len(target.encode())}\r\n{target}\r\n".encode()
    parts: list[bytes | memoryview] = []
    for start in range(0, len(keys), CHUNK):
        chunk = args.slice(start, CHUNK)
        parts += [header(name, len(chunk) + 1), key, wire(chunk)]
    return b"".join(parts), len(parts) // 3


# The value is head || tail: head = {"destinations":[...],"score":x (the compared part), tail =
# ,"generated_at":"..."}. Our writer is canonical (to_json of each string and of the score, no
# spaces), so an unchanged recommendation is a stored value that starts with the new head and ends
# in a well-formed generated_at: string comparisons, no JSON parsing of every value. Anything else
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


def _owned_members(client, owned: str) -> pa.Array:
    """Every member of the owned set (one ``SMEMBERS``, parsed by hiredis)."""
    import hiredis
    import redis

    with RespConnection(client) as raw:
        (reply,) = raw.request(wire(command("SMEMBERS", pa.array([owned]))), 1)
    if isinstance(reply, hiredis.ReplyError):
        raise redis.ResponseError(str(reply))
    return utf8_strings(reply)


def _existing(client, keys: pa.Array) -> pa.Array:
    """A boolean per key: does it exist (one ``EXISTS`` each, sent in one stream)."""
    if not len(keys):
        return pa.array([], pa.bool_())
    with RespConnection(client) as raw:
        replies = raw.write(wire(command("EXISTS", keys)), len(keys))
    errors = error_lines(replies, len(keys))
    if errors:
        import redis

        raise redis.ResponseError(errors[0])
    return pa.array([line == b":1" for line in replies.split(b"\r\n")[: len(keys)]])


def _extra_keys(client, keys: pa.Array, owned: str, claimed: bool) -> tuple[pa.Array, pa.Array]:
    """(owned keys no mart row has that exist, sorted; owned keys already gone).

    After the claim (the owned set then holds every mart key), a set no larger than the mart's
    keys holds nothing else: no member is read.
    """
    empty = pa.array([], pa.string())
    size = client.scard(owned)
    if not size or (claimed and size <= len(keys)):
        return empty, empty
    members = _owned_members(client, owned)
    left = members.filter(pc.invert(pc.is_in(members, value_set=keys)))
    exists = _existing(client, left)
    extra = left.filter(exists)
    return pc.take(extra, pc.sort_indices(extra)), left.filter(pc.invert(exists))


def _refresh(client, keys: pa.Array, expires_at: str, owned: str) -> list[str]:
    """``PEXPIREAT`` every key (a no-op for missing ones) and claim them all (``SADD``) on a
    connection of its own; the errors."""
    claim, claims = _multi("SADD", owned, keys)
    with RespConnection(client) as raw:
        count = len(keys) + claims
        return error_lines(
            raw.write([claim, wire(command("PEXPIREAT", keys, expires_at))], count), count
        )


def _actions(
    client, good: pa.Table, keys: pa.Array, full_resync: bool, expires_at: str | None, owned: str
) -> tuple[pa.Array, list[str]]:
    """Per mart row insert/update/unchanged (the values Redis holds against the new heads).

    The MGETs run on their own thread while DuckDB builds the heads, so Redis answers meanwhile.
    With ``expires_at`` (a real run) every key's TTL is refreshed and every key claimed on a second
    connection at the same time: an unchanged key needs nothing more, a changed one is rewritten
    with the same expiry, a missing one is untouched. Returns the actions and refresh errors.
    """
    with RespConnection(client) as raw, ThreadPoolExecutor(2) as pool:
        fetching = pool.submit(_fetch_values, raw, keys)
        refreshing = pool.submit(_refresh, client, keys, expires_at, owned) if expires_at else None
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
    return action.column(0), errors


def _expiry(ttl: int) -> str:
    """Now + ``ttl`` seconds as Unix milliseconds, the argument of ``PXAT`` and ``PEXPIREAT``."""
    return str(int(time.time() * 1000) + ttl * 1000)


def plan(
    client,
    good: pa.Table,
    full_resync: bool = False,
    *,
    ttl: int | None = None,
    prefix: str = KEY_PREFIX,
) -> RedisPlan:
    """Compare the mart's rows with what Redis holds under ``prefix``.

    ``ttl`` (seconds) marks a plan for a real run: the keys' TTLs are refreshed to now + ``ttl``
    and the keys claimed while their values are fetched (see :func:`_actions`). Without it (dry
    runs, reconcile) the plan writes nothing. An empty database holds none of the keys: every row
    is an insert and nothing is fetched.
    """
    expires_at = None if ttl is None else _expiry(ttl)
    owned = owned_set(prefix)
    keys = keys_of(good["user_id"], prefix)
    errors: list[str] = []
    claimed = False
    if good.num_rows and client.dbsize():
        action, errors = _actions(client, good, keys, full_resync, expires_at, owned)
        claimed = expires_at is not None
    else:  # no keys to compare with, or no rows: everything is an insert
        action = pa.array(["insert"] * good.num_rows, pa.string())
    extra, stale = _extra_keys(client, keys, owned, claimed)
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
        prefix=prefix,
        stale=stale,
        expires_at=expires_at,
        claimed=claimed,
        refresh_errors=errors,
    )


def _commands(plan_: RedisPlan, expires_at: str, refreshed: bool) -> Iterator[bytes | memoryview]:
    """``SET key value PXAT t`` for inserts and updates, ``PEXPIREAT key t`` for the unchanged
    (unless their TTLs were ``refreshed`` while the plan was made).

    The values are streamed from DuckDB ``BATCH`` rows at a time and each batch is encoded and sent
    while DuckDB builds the next (on one thread: the other core is Redis', executing the commands
    meanwhile), so encoding and writing overlap instead of adding up.
    """
    actions, prefix = plan_.actions, plan_.prefix
    unchanged = pc.equal(actions["action"], "unchanged")
    con = duckdb.connect(config={"threads": 1})
    try:
        con.register("writes", actions.filter(pc.invert(unchanged)))
        query = f"SELECT user_id, {_VALUE} AS value FROM writes"
        for batch in con.execute(query).to_arrow_reader(BATCH):
            if batch.num_rows:
                keys = keys_of(batch["user_id"], prefix)
                yield wire(command("SET", keys, batch["value"], "PXAT", expires_at))
    finally:
        con.close()
    kept = actions.filter(unchanged)["user_id"]
    if len(kept) and not refreshed:
        yield wire(command("PEXPIREAT", keys_of(kept, prefix), expires_at))


def apply(client, plan_: RedisPlan, ttl: int = TTL_SECONDS) -> tuple[int, list[str]]:
    """Carry out the plan; returns (keys deleted, error replies).

    The mart's keys are claimed first (``SADD`` to the owned set, unless the plan did), then one
    stream of writes (see :func:`_commands`), then one ``UNLINK`` per owned key whose user left the
    mart (each reply ``:1`` when it removed one) and the ``SREM`` of those and the stale members.
    The expiry is one absolute time for the whole run (the plan's, else now + ``ttl``): Redis 7
    rewrites a relative ``EX`` into an absolute time for every command it executes, which costs it
    about as much as the write itself.
    """
    refreshed = plan_.expires_at is not None  # a real-run plan refreshed every TTL it could
    expires_at = plan_.expires_at or _expiry(ttl)
    owned = owned_set(plan_.prefix)
    claim, claims = (b"", 0)
    if not plan_.claimed:
        claim, claims = _multi("SADD", owned, keys_of(plan_.actions["user_id"], plan_.prefix))
    writes = plan_.inserted + plan_.updated if refreshed else plan_.actions.num_rows
    unlinks = len(plan_.extra)
    release, releases = _multi("SREM", owned, pa.concat_arrays([plan_.extra, plan_.stale]))
    with RespConnection(client) as raw:
        replies = raw.write([claim, *_commands(plan_, expires_at, refreshed)], claims + writes)
        errors = [*plan_.refresh_errors, *error_lines(replies, claims + writes)]
        replies = raw.write([wire(command("UNLINK", plan_.extra)), release], unlinks + releases)
        errors += error_lines(replies, unlinks + releases)
    deleted = replies.split(b"\r\n")[:unlinks].count(b":1")
    return deleted, errors
