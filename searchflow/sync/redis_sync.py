"""The Redis side: ``<prefix>{user_id}`` JSON values with a 24-hour TTL, diffed and written in bulk.

The prefix is ``SEARCHFLOW_RECO_PREFIX`` (``reco:`` by default). Other applications may keep keys
under the same prefix in the same database, so the sync deletes only keys it wrote itself, the
way Hightouch and Census delete only rows they synced: the keys it owns are listed in Redis
(:func:`owned_list`, ``searchflow:owned:<prefix>``), every key is listed there before it is
written, in the same stream of commands as the writes, and only listed keys are ever deleted.

Plan (same for a real run, a dry run and reconcile), comparing the values Redis holds now (no
stored fingerprint of the values that a hand edit could leave stale):

1. the mart's keys are fetched with ``MGET`` (``CHUNK`` keys a command, RESP encoded by Arrow, all
   commands written to the socket at once, replies parsed by hiredis), skipped when the database
   is empty. In a real run, a second connection meanwhile refreshes every key's TTL
   (``PEXPIREAT``, a no-op for missing keys), so an unchanged key needs nothing more;
2. owned keys no mart row has: none when the owned list's state says it holds exactly the mart's
   keys (a digest of the key set, left by the last complete run); otherwise its keys minus the
   mart's, of which those that still exist (``EXISTS``) are deleted and the rest (expired) are
   dropped from the list;
3. one DuckDB query compares: a key is ``insert`` when missing, ``update`` when its destinations or
   score differ (or the value is not the contract's JSON shape), ``unchanged`` otherwise (its
   value and ``generated_at`` stay as written).

Apply: unless the list was settled, it first becomes what it held plus the mart's keys (the
claim); then the values of the inserts and updates stream out of DuckDB in batches; Arrow encodes
each batch's ``SET key value PXAT t`` commands as RESP into one string column, whose data buffer
*is* the byte stream, sent as is (no Python per key) while DuckDB builds the next batch and Redis
runs the previous one. A reader thread counts the one-line replies while the writer sends, so the
socket is full duplex and there is no round trip per chunk (:mod:`searchflow.resp`). Then one
``UNLINK`` per owned key whose user left the mart, and the list becomes the mart's keys.

Redis has no multi-key transaction worth the name at this size: each key is written atomically,
and a run that dies half-way is completed by the next run (the plan is recomputed from what is
there). A key is claimed before it is written, so no key the sync wrote is ever left unlisted.
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
from searchflow.contract import RECO_KEY_PREFIX, reco_owned_list
from searchflow.resp import RespConnection, argument, command, error_lines, header, wire

KEY_PREFIX = RECO_KEY_PREFIX
NEXT_PREFIX = "searchflow:owned-next:"
TTL_SECONDS = 24 * 3600
CHUNK = 10_000  # keys per MGET, and per element of the owned-keys list
BATCH = 16_384  # values DuckDB builds per streamed chunk
SAMPLE = 5
CLAIMING = "claiming"  # the owned list's state while a run may be writing keys it does not list


# The Redis list of the keys the recommendations sync wrote under a prefix. Element 0 is its state:
# ``done:<digest>`` after a complete run (the list then holds exactly the mart's keys of that run,
# :func:`key_digest`), ``claiming`` while a run is under way. The other elements are JSON arrays of
# up to ``CHUNK`` keys each: a whole key set costs Redis a few large string copies to store and to
# read, not a hash-table entry per key. The quality gate samples it too.
owned_list = reco_owned_list


def key_digest(keys: pa.Array) -> str:
    """An order-free fingerprint of a set of distinct keys: their count and the XOR of their
    64-bit hashes. Equal fingerprints mean the same key set (short of a hash collision). One
    thread: the scan is too short to pay for starting more."""
    con = duckdb.connect(config={"threads": 1})
    try:
        con.register("k", pa.table({"k": keys}))
        mixed, count = con.execute(
            "SELECT coalesce(bit_xor(hash(k)), 0), count(*) FROM k"
        ).fetchone()
    finally:
        con.close()
    return f"{count}:{mixed}"


def owned_keys(client, prefix: str = KEY_PREFIX) -> pa.Array:
    """Every key the owned list holds (none when there is no list)."""
    import json

    chunks = utf8_strings(client.lrange(owned_list(prefix), 1, -1))
    if not len(chunks):
        return pa.array([], pa.string())
    if pc.any(pc.match_substring(chunks, "\\")).as_py():  # escapes: let a JSON parser read them
        return pa.array([k for chunk in chunks.to_pylist() for k in json.loads(chunk)], pa.string())
    # Without escapes no key holds a quote, so every quote is JSON's: split in C.
    inner = pc.utf8_trim_whitespace(pc.utf8_slice_codeunits(pc.utf8_trim_whitespace(chunks), 1, -1))
    inner = pc.utf8_slice_codeunits(inner, 1, -1)
    return pc.list_flatten(pc.split_pattern_regex(inner, r'"\s*,\s*"')).cast(pa.string())


def _json_chunks(keys: pa.Array) -> pa.Array:
    """The keys as JSON arrays of up to ``CHUNK`` each."""
    import json

    if not len(keys):
        return pa.array([], pa.string())
    if pc.any(pc.match_substring_regex(keys, r'[\x00-\x1f"\\]')).as_py():
        values = keys.to_pylist()  # a key JSON must escape: rare, so Python's encoder does it
        return pa.array([json.dumps(values[i : i + CHUNK]) for i in range(0, len(values), CHUNK)])
    quoted = pc.binary_join_element_wise('"', keys, '"', "")
    offsets = pa.array([*range(0, len(keys), CHUNK), len(keys)], pa.int32())
    lists = pa.ListArray.from_arrays(offsets, quoted)
    return pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", "")


def _replace_owned(chunks: list[pa.Array], state: str, prefix: str) -> tuple[bytes, int]:
    """Commands that make the owned list ``[state, *chunks]`` at once; (bytes, replies).

    ``chunks`` are arrays of JSON key chunks (:func:`_json_chunks`). The new list is built under a
    key of its own and renamed over the old one, so a reader (or a crash) sees the old list or the
    new one, never a part.
    """
    target, scratch = owned_list(prefix), f"{NEXT_PREFIX}{prefix}"
    elements = pa.concat_arrays([pa.array([state]), *(c.cast(pa.string()) for c in chunks)])
    parts = [
        bytes(wire(command("DEL", pa.array([scratch])))),
        header("RPUSH", len(elements) + 1),
        bytes(wire(argument(pa.array([scratch])))),
        bytes(wire(argument(elements))),
        bytes(wire(command("RENAME", pa.array([scratch]), pa.array([target])))),
    ]
    return b"".join(parts), 3


@dataclass
class RedisPlan:
    """What a sync would do; ``actions`` is the mart's rows with an ``action`` column, ``extra``
    the sorted keys the sync owns that no mart row has (to delete), ``stale`` owned keys already
    gone (expired; only their set membership is removed).

    ``expires_at`` (Unix ms) is set when the plan was made for a real run: the TTL of every mart
    key Redis held was then refreshed to it while the values were fetched (``refresh_errors`` are
    Redis' refusals), so applying the plan leaves unchanged keys alone. ``settled``: the owned list already held exactly the mart's keys (its state
    matched ``digest``), so there is nothing to claim and nothing of ours to delete; otherwise
    ``owned`` is what it held.
    """

    actions: pa.Table
    extra: pa.Array
    inserted: int
    updated: int
    unchanged: int
    prefix: str = KEY_PREFIX
    stale: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    expires_at: str | None = None
    settled: bool = False
    digest: str = ""
    owned: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    run_id: str = ""  # written into each value set (``sync_run_id``)
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


# The value is head || tail: head = {"destinations":[...],"score":x (the compared part), tail =
# ,"generated_at":"...","sync_run_id":"..."} (sync_run_id: the run that last wrote the value, for
# audit; like generated_at it is not compared, so an unchanged value keeps the id that wrote it). Our writer is canonical (to_json of each string and of the score, no
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
    """strftime(CAST(generated_at AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S.%fZ'), """
    """'","sync_run_id":', to_json(CAST(? AS VARCHAR)), '}')"""
)

_TAIL = (
    r',"generated_at":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z"'
    r',"sync_run_id":"[0-9A-Za-z_.:-]*"\}'
)


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


def _extra_keys(client, keys: pa.Array, owned: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(owned keys no mart row has that exist, sorted; owned keys already gone)."""
    left = owned.filter(pc.invert(pc.is_in(owned, value_set=keys)))
    exists = _existing(client, left)
    extra = left.filter(exists)
    return pc.take(extra, pc.sort_indices(extra)), left.filter(pc.invert(exists))


def _refresh(client, keys: pa.Array, expires_at: str) -> list[str]:
    """``PEXPIREAT`` every key (a no-op for missing ones) on a connection of its own; the errors."""
    with RespConnection(client) as raw:
        count = len(keys)
        return error_lines(raw.write(wire(command("PEXPIREAT", keys, expires_at)), count), count)


def _actions(
    client, good: pa.Table, keys: pa.Array, full_resync: bool, expires_at: str | None
) -> tuple[pa.Array, list[str]]:
    """Per mart row insert/update/unchanged (the values Redis holds against the new heads).

    The MGETs run on their own thread while DuckDB builds the heads, so Redis answers meanwhile.
    With ``expires_at`` (a real run) every key's TTL is refreshed on a second
    connection at the same time: an unchanged key needs nothing more, a changed one is rewritten
    with the same expiry, a missing one is untouched. Returns the actions and refresh errors.
    """
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
    run_id: str = "",
) -> RedisPlan:
    """Compare the mart's rows with what Redis holds under ``prefix``.

    ``ttl`` (seconds) marks a plan for a real run: the keys' TTLs are refreshed to now + ``ttl``
    while their values are fetched (see :func:`_actions`). Without it (dry
    runs, reconcile) the plan writes nothing. An empty database holds none of the keys: every row
    is an insert and nothing is fetched. When the owned list already holds exactly the mart's keys
    (the digest the last complete run left matches), its keys are not even read.
    """
    expires_at = None if ttl is None else _expiry(ttl)
    keys = keys_of(good["user_id"], prefix)
    digest = key_digest(keys)
    pipe = client.pipeline(transaction=False)
    pipe.lindex(owned_list(prefix), 0).dbsize()
    state, size = pipe.execute()
    settled = state is not None and state.decode() == f"done:{digest}"
    owned = pa.array([], pa.string()) if settled else owned_keys(client, prefix)
    errors: list[str] = []
    if good.num_rows and size:
        action, errors = _actions(client, good, keys, full_resync, expires_at)
    else:  # no keys to compare with, or no rows: everything is an insert
        action = pa.array(["insert"] * good.num_rows, pa.string())
    extra, stale = _extra_keys(client, keys, owned)
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
        settled=settled,
        digest=digest,
        owned=owned,
        refresh_errors=errors,
        run_id=run_id,
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
        for batch in con.execute(query, [plan_.run_id]).to_arrow_reader(BATCH):
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

    The mart's keys are claimed first (the owned list becomes what it held plus the mart's keys,
    state ``claiming``; nothing to do when it was settled), then one stream of writes (see
    :func:`_commands`), then one ``UNLINK`` per owned key whose user left the mart (each reply
    ``:1`` when it removed one); last, when all of that went through, the owned list becomes the
    mart's keys with their digest.
    The expiry is one absolute time for the whole run (the plan's, else now + ``ttl``): Redis 7
    rewrites a relative ``EX`` into an absolute time for every command it executes, which costs it
    about as much as the write itself.
    """
    refreshed = plan_.expires_at is not None  # a real-run plan refreshed every TTL it could
    expires_at = plan_.expires_at or _expiry(ttl)
    mart = keys_of(plan_.actions["user_id"], plan_.prefix)
    claim, claims = (b"", 0)
    if not plan_.settled:  # claim before writing: whatever happens next, these keys are ours
        new = mart.filter(pc.invert(pc.is_in(mart, value_set=plan_.owned)))
        mine = _json_chunks(mart)
        held = [_json_chunks(plan_.owned), _json_chunks(new)] if len(plan_.owned) else [mine]
        claim, claims = _replace_owned(held, CLAIMING, plan_.prefix)
    writes = plan_.inserted + plan_.updated if refreshed else plan_.actions.num_rows
    unlinks = len(plan_.extra)
    with RespConnection(client) as raw:
        replies = raw.write([claim, *_commands(plan_, expires_at, refreshed)], claims + writes)
        errors = [*plan_.refresh_errors, *error_lines(replies, claims + writes)]
        replies = raw.write(wire(command("UNLINK", plan_.extra)), unlinks)
        errors += error_lines(replies, unlinks)
        if not plan_.settled and not errors:  # the list now names exactly the mart's keys
            settle, settles = _replace_owned([mine], f"done:{plan_.digest}", plan_.prefix)
            errors += error_lines(raw.write(settle, settles), settles)
    deleted = replies.split(b"\r\n")[:unlinks].count(b":1")
    return deleted, errors
