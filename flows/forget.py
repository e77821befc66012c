"""``searchflow forget``: erase one user everywhere SearchFlow keeps data, then suppress them.

Orchestration floor: it reaches every store the stages write (the warehouse, Postgres ``crm``,
Redis, the data folder's files, the published Parquet), so no single stage owns it. The user is
found by their id, their pseudonym (the user key of analytics, marketing and ml) and, when the
application's records landed, by their email addresses:

- the warehouse: every row of every base table (raw, staging, marts and their candidates,
  snapshots, the quarantine, dead letters) with a text column equal to a needle or naming it as a
  JSON string, in one transaction; ``ops`` (ledger, audit) never holds user ids and is skipped;
- the restricted store (the contacts model, a file of its own): the same, in a transaction of
  its own first (DuckDB writes one attached file per transaction);
- Postgres ``crm``: the user's segment, email queue rows (the one write the queue's never-touch
  rule allows, audited) and rejects;
- Redis: the recommendation key, its entry in the owned-keys list, stream entries naming the user;
- files under the data folder: JSONL lines naming the user are dropped, Data Docs and validation
  results have the id replaced, Parquet snapshots are rewritten without the user's rows.

Then the id's keyed hash joins the suppression list (later ingestion drops the user's records)
and one audit row records the counts under the hash: the id itself is kept nowhere.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import duckdb

from searchflow import audit, pii, restricted, warehouse
from searchflow.config import Settings
from searchflow.errors import UsageError

FORGOTTEN = "[forgotten]"
_TEXT_TYPES = ("VARCHAR", "JSON")


def _quoted(needle: str) -> str:
    return json.dumps(needle)


def _emails(con: duckdb.DuckDBPyConnection, user_id: str) -> list[str]:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'raw' "
        "AND table_name = 'app_users' AND column_name = 'email'"
    ).fetchone()[0]
    if not exists:
        return []
    rows = con.execute(
        "SELECT DISTINCT email FROM raw.app_users WHERE user_id = ? AND email IS NOT NULL",
        [user_id],
    ).fetchall()
    return [r[0] for r in rows]


def _restricted_emails(con: duckdb.DuckDBPyConnection, user_id: str) -> list[str]:
    if not restricted.has_contacts(con):
        return []
    rows = con.execute(
        f"SELECT DISTINCT email FROM {restricted.CONTACTS} WHERE user_id = ? AND email IS NOT NULL",
        [user_id],
    ).fetchall()
    return [r[0] for r in rows]


# A PostgreSQL warehouse's text columns, asked of PostgreSQL itself: DuckDB's catalog shows its
# views as tables, and deleting through a view would reach the candidate table behind it.
_PG_TEXT_COLUMNS = """
SELECT c.table_schema, c.table_name, c.column_name
FROM information_schema.columns c
JOIN information_schema.tables t
  ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE t.table_type = 'BASE TABLE'
  AND c.table_schema NOT IN ('ops', 'pg_catalog', 'information_schema')
  AND c.data_type IN ('character varying', 'text', 'json', 'jsonb')
ORDER BY 1, 2, 3
"""


def _text_columns(con: duckdb.DuckDBPyConnection, database: str | None) -> dict[str, list[str]]:
    if database is None and warehouse.on_postgres(con):
        found: dict[str, list[str]] = {}
        for schema, table, column in warehouse.native_rows(con, _PG_TEXT_COLUMNS):
            found.setdefault(f'"{schema}"."{table}"', []).append(f'"{column}"')
        return found
    where = "c.database_name = ?" if database else "c.database_name = current_database()"
    rows = con.execute(
        "SELECT c.database_name, c.schema_name, c.table_name, c.column_name FROM duckdb_columns() c "
        "JOIN duckdb_tables() t ON t.database_name = c.database_name "
        "AND t.schema_name = c.schema_name AND t.table_name = c.table_name "
        f"WHERE {where} AND c.schema_name <> 'ops' "
        f"AND c.data_type IN {_TEXT_TYPES}",
        [database] if database else [],
    ).fetchall()
    out: dict[str, list[str]] = {}
    for db, schema, table, column in rows:
        name = f'"{db}"."{schema}"."{table}"' if database else f'"{schema}"."{table}"'
        out.setdefault(name, []).append(f'"{column}"')
    return out


def erase_warehouse(
    con: duckdb.DuckDBPyConnection, needles: list[str], database: str | None = None
) -> dict[str, int]:
    """Delete every row naming a needle (equal, or as a JSON string inside the text), in the
    warehouse or in the attached ``database``."""
    removed: dict[str, int] = {}
    params: list[str] = []
    conditions = []
    for needle in needles:
        conditions.append("CAST({c} AS VARCHAR) = ? OR contains(CAST({c} AS VARCHAR), ?)")
        params += [needle, _quoted(needle)]
    for table, columns in _text_columns(con, database).items():
        where = " OR ".join(f"({cond.format(c=c)})" for c in columns for cond in conditions)
        args = [p for _ in columns for p in params]
        count = con.execute(f"SELECT count(*) FROM {table} WHERE {where}", args).fetchone()[0]
        if count:
            con.execute(f"DELETE FROM {table} WHERE {where}", args)
            removed[table.replace('"', "")] = int(count)
    return removed


def erase_postgres(settings: Settings, user_id: str) -> dict[str, int]:
    """The user's rows in ``crm``: segments, email queue, rejects (one transaction)."""
    from searchflow.sync.connections import default_pg_connect

    con = default_pg_connect(settings)()
    removed: dict[str, int] = {}
    try:
        with con.cursor() as cur:
            cur.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'crm' AND column_name IN ('user_id', 'key', 'row_data')"
            )
            columns: dict[str, set[str]] = {}
            for table, column in cur.fetchall():
                columns.setdefault(table, set()).add(column)
            for table, cols in sorted(columns.items()):
                terms, args = [], []
                if "user_id" in cols:
                    terms.append("user_id = %s")
                    args.append(user_id)
                if "key" in cols:
                    terms.append("key = %s")
                    args.append(user_id)
                if "row_data" in cols:
                    terms.append("row_data::text LIKE %s")
                    args.append(
                        "%" + _quoted(user_id).replace("%", r"\%").replace("_", r"\_") + "%"
                    )
                cur.execute(f"DELETE FROM crm.{table} WHERE {' OR '.join(terms)}", args)
                if cur.rowcount:
                    removed[f"crm.{table}"] = cur.rowcount
        con.commit()
    finally:
        con.close()
    return removed


def erase_redis(settings: Settings, needles: list[str]) -> dict[str, int]:
    """The recommendation key, its owned-list entry, and stream entries naming a needle."""
    from searchflow.contract import (
        RECORD_TYPES,
        STREAM_FIELD,
        reco_owned_list,
        record_stream_name,
        stream_name,
    )
    from searchflow.events import EVENT_TYPES
    from searchflow.services import redis_client

    user_id = needles[0]
    client = redis_client(settings)
    removed = {"keys": 0, "stream_entries": 0, "owned_entries": 0}
    try:
        key = f"{settings.reco_prefix}{user_id}"
        removed["keys"] = int(client.delete(key))
        owned = reco_owned_list(settings.reco_prefix)
        for index, chunk in enumerate(client.lrange(owned, 1, -1), start=1):
            keys = json.loads(chunk)
            if key in keys:
                client.lset(owned, index, json.dumps([k for k in keys if k != key]))
                removed["owned_entries"] += 1
        quoted = [_quoted(n).encode() for n in needles]
        streams = [stream_name(t) for t in EVENT_TYPES]
        streams += [record_stream_name(t) for t in RECORD_TYPES]
        for stream in streams:
            last = "-"
            while True:
                entries = client.xrange(stream, min=last, max="+", count=1000)
                if last != "-":
                    entries = entries[1:]
                if not entries:
                    break
                doomed = [
                    entry_id
                    for entry_id, fields in entries
                    if any(q in fields.get(STREAM_FIELD.encode(), b"") for q in quoted)
                ]
                if doomed:
                    removed["stream_entries"] += int(client.xdel(stream, *doomed))
                last = entries[-1][0].decode()
    finally:
        client.close()
    return removed


def _pattern(needles: list[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in needles)
    return re.compile(rf"(?<![\w.@-])(?:{alternatives})(?![\w@-])")


def _replace_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.forget.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def erase_files(home: Path, needles: list[str]) -> dict[str, int]:
    """JSONL lines naming a needle dropped; other text files (Data Docs, validation results) get
    the needle replaced; Parquet files rewritten without the rows naming a needle."""
    import pyarrow.parquet as pq

    pattern = _pattern(needles)
    removed = {"jsonl_lines": 0, "text_files": 0, "parquet_rows": 0}
    for path in sorted(home.rglob("*")):
        if not path.is_file() or path.name == pii.KEY_FILE:
            continue
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            lines = path.read_text(errors="replace").splitlines(keepends=True)
            kept = [line for line in lines if not pattern.search(line)]
            if len(kept) != len(lines):
                _replace_atomically(path, "".join(kept))
                removed["jsonl_lines"] += len(lines) - len(kept)
        elif suffix in (".html", ".json", ".txt", ".log"):
            text = path.read_text(errors="replace")
            if pattern.search(text):
                _replace_atomically(path, pattern.sub(FORGOTTEN, text))
                removed["text_files"] += 1
        elif suffix == ".parquet":
            table = pq.read_table(path)
            con = duckdb.connect()
            try:
                con.register("t", table)
                columns = [
                    f.name for f in table.schema if str(f.type) in ("string", "large_string")
                ]
                if not columns:
                    continue
                terms = " OR ".join(
                    f'("{c}" = $n{i} OR contains("{c}", $q{i}))'
                    for c in columns
                    for i in range(len(needles))
                )
                args = {f"n{i}": n for i, n in enumerate(needles)}
                args |= {f"q{i}": _quoted(n) for i, n in enumerate(needles)}
                kept = con.execute(
                    f"SELECT * FROM t WHERE NOT coalesce({terms}, false)", args
                ).to_arrow_table()
            finally:
                con.close()
            if kept.num_rows != table.num_rows:
                tmp = path.with_name(f".{path.name}.forget.tmp")
                pq.write_table(kept.cast(table.schema), tmp)
                os.replace(tmp, path)
                removed["parquet_rows"] += table.num_rows - kept.num_rows
    return removed


def forget_user(
    settings: Settings, user_id: str, *, flow_run_id: str | None = None, services: bool = True
) -> dict[str, Any]:
    """Erase ``user_id`` everywhere, suppress its hash, audit the counts under the hash.

    ``services=False`` leaves Postgres and Redis alone (a warehouse-only installation).
    """
    user_id = user_id.strip()
    if not user_id:
        raise UsageError("forget needs a user id (the application's user_id)")
    hashed = pii.user_hash(settings, user_id)
    with warehouse.session(settings) as con:
        warehouse.ensure_raw_schema(con)
        # a PostgreSQL warehouse keeps the contacts in its own pii schema, erased with the rest
        contacts = (
            not settings.warehouse_on_postgres
            and restricted.restricted_path(settings.warehouse_path).exists()
        )
        if contacts:  # the PII's own file, attached read-write for this erasure only
            restricted.attach(con, settings.warehouse_path, read_only=False)
        emails = {*_emails(con, user_id), *(_restricted_emails(con, user_id) if contacts else [])}
        # the user's pseudonym keys them in analytics, marketing, ml and the published Parquet
        needles = [user_id, *sorted(emails), pii.user_key(settings, user_id)]
        touched: dict[str, Any] = {}
        if contacts:
            con.execute("BEGIN")
            try:
                touched["restricted"] = erase_warehouse(con, needles, restricted.ALIAS)
                con.execute("COMMIT")
                con.execute(f"CHECKPOINT {restricted.ALIAS}")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        con.execute("BEGIN")
        try:
            touched["warehouse"] = erase_warehouse(con, needles)
            pii.suppress(con, hashed)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if not warehouse.on_postgres(con):  # PostgreSQL has its own durability, no CHECKPOINT
            con.execute("CHECKPOINT")
    if services:
        touched["postgres"] = erase_postgres(settings, user_id)
        touched["redis"] = erase_redis(settings, needles)
    touched["files"] = erase_files(settings.home_path, needles)
    touched["emails"] = len(emails)
    with warehouse.session(settings) as con:
        audit_id = audit.record(
            con, "forget", target=hashed, touched=touched, flow_run_id=flow_run_id
        )
    return {"user_hash": hashed, "audit_id": audit_id, **touched}
