"""The application database as a source: its tables, its columns, and a read-only way in.

``app.users`` and ``app.bookings`` are the travel site's own tables (the generator keeps them; in
production they belong to the application). Ingestion (``ingest --source app``) and the
reconciliation (``source reconcile``) both read them, only ever in read-only transactions, through
``SEARCHFLOW_SOURCE_URL`` (default: the PostgreSQL URL). Both stages use this one description of
the tables, so the columns they compare are the columns that were landed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from searchflow.config import Settings
from searchflow.contract import APP_TABLES, RECORD_KEYS, RECORD_TYPES
from searchflow.errors import SearchflowError, ServiceUnavailable

TS = pa.timestamp("us")  # naive UTC, as the warehouse keeps times


@dataclass(frozen=True)
class RecordTable:
    """One source table: its name, key, columns (name -> Arrow type) and amount column."""

    record_type: str
    table: str
    key: str
    columns: dict[str, pa.DataType]
    amount: str | None  # summed per day by the reconciliation

    @property
    def raw_table(self) -> str:
        """Where ingestion lands every version it sees."""
        return f"raw.app_{self.record_type}"

    @property
    def select_list(self) -> str:
        """The source columns, times as naive UTC text (COPY writes them so, whatever the
        session's time zone)."""
        parts = []
        for name, kind in self.columns.items():
            if pa.types.is_timestamp(kind):
                parts.append(f"({name} AT TIME ZONE 'UTC') AS {name}")
            else:
                parts.append(name)
        return ", ".join(parts)


RECORDS: dict[str, RecordTable] = {
    "users": RecordTable(
        "users",
        APP_TABLES["users"],
        RECORD_KEYS["users"],
        {
            "user_id": pa.string(),
            "email": pa.string(),
            "full_name": pa.string(),
            "phone": pa.string(),
            "home_city": pa.string(),
            "home_country": pa.string(),
            "loyalty_tier": pa.string(),
            "marketing_consent": pa.bool_(),
            "created_at": TS,
            "updated_at": TS,
        },
        None,
    ),
    "bookings": RecordTable(
        "bookings",
        APP_TABLES["bookings"],
        RECORD_KEYS["bookings"],
        {
            "booking_id": pa.string(),
            "user_id": pa.string(),
            "status": pa.string(),
            "amount": pa.decimal128(12, 2),
            "currency": pa.string(),
            "product_type": pa.string(),
            "created_at": TS,
            "updated_at": TS,
        },
        "amount",
    ),
}
assert tuple(RECORDS) == RECORD_TYPES
PII_COLUMNS: dict[str, tuple[str, ...]] = {"users": ("email", "full_name", "phone")}


def source_url(settings: Settings) -> str:
    """``SEARCHFLOW_SOURCE_URL``, else the PostgreSQL URL."""
    if settings.source_url:
        return settings.source_url
    from searchflow.services import postgres_url

    return postgres_url(settings)


@contextmanager
def read_only(settings: Settings) -> Iterator[Any]:
    """A psycopg2 connection whose every transaction is read-only (``SET TRANSACTION READ ONLY``
    inside ``default_transaction_read_only``): nothing SearchFlow sends can change the source."""
    import psycopg2

    from searchflow.services import mask_url

    url = source_url(settings)
    try:
        conn = psycopg2.connect(url, options="-c default_transaction_read_only=on")
    except psycopg2.Error as exc:
        raise ServiceUnavailable(
            f"cannot reach the application database at {mask_url(url)}: "
            f"{str(exc).strip().splitlines()[0]}; check SEARCHFLOW_SOURCE_URL"
        ) from None
    conn.set_session(readonly=True)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def begin_read_only(conn: Any) -> None:
    """Open a read-only transaction explicitly (on top of the session default)."""
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")


def tables_exist(conn: Any) -> dict[str, bool]:
    """Which of the application's tables exist in the source."""
    with conn.cursor() as cur:
        found = {}
        for record_type, spec in RECORDS.items():
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (spec.table,))
            found[record_type] = bool(cur.fetchone()[0])
    return found


def fetch(conn: Any, spec: RecordTable, where: str = "true", params: Any = (), **kw) -> pa.Table:
    """Rows of ``spec``'s table as typed Arrow columns, via ``COPY (...) TO STDOUT`` (CSV).

    ``where`` is a SQL condition on the table's columns; ``kw`` may give ``order`` and ``limit``.
    """
    import psycopg2
    import pyarrow.csv as pacsv

    order = kw.get("order", f"updated_at, {spec.key}")
    limit = f" LIMIT {int(kw['limit'])}" if kw.get("limit") else ""
    with conn.cursor() as cur:
        query = cur.mogrify(
            f"SELECT {spec.select_list} FROM {spec.table} WHERE {where} ORDER BY {order}{limit}",
            params,
        ).decode()
        buffer = io.BytesIO()
        try:
            cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)", buffer)
        except psycopg2.Error as exc:
            conn.rollback()
            raise SearchflowError(
                f"reading {spec.table} from the application database failed: "
                f"{str(exc).strip().splitlines()[0]}"
            ) from None
    data = buffer.getvalue()
    if not data:
        return pa.table({n: pa.array([], t) for n, t in spec.columns.items()})
    return pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(
            column_types=spec.columns,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )


TIERS: tuple[str, ...] = ("basic", "silver", "gold", "platinum")
STATUSES: tuple[str, ...] = ("confirmed", "cancelled", "refunded")


def _same(spec: RecordTable, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{c} IS NOT DISTINCT FROM {right}.{c}" for c in spec.columns)


def compare(con: Any, spec: RecordTable, source: str, warehouse: str) -> dict[str, Any]:
    """Compare the source rows (relation ``source``) with the warehouse's (relation
    ``warehouse``, one row per key: the version it holds now), in DuckDB.

    Returns rows and matching rows, the keys that differ (missing, extra, or a different value)
    and, per day of ``created_at``, rows and amount sums on both sides (days that differ only).
    """
    key = spec.key
    amount = spec.amount or "0"
    matched = con.execute(
        f"SELECT count(*) FROM {source} s JOIN {warehouse} w USING ({key}) "
        f"WHERE {_same(spec, 's', 'w')}"
    ).fetchone()[0]
    source_rows = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
    warehouse_rows = con.execute(f"SELECT count(*) FROM {warehouse}").fetchone()[0]
    mismatches = con.execute(
        f"""
        SELECT coalesce(s.{key}, w.{key}) AS key,
               CASE WHEN w.{key} IS NULL THEN 'missing in warehouse'
                    WHEN s.{key} IS NULL THEN 'not in source'
                    ELSE 'differs: ' || concat_ws(', ', {
            ", ".join(
                f"CASE WHEN s.{c} IS DISTINCT FROM w.{c} THEN '{c}' END"
                for c in spec.columns
                if c != key
            )
        })
               END AS problem
        FROM {source} s FULL JOIN {warehouse} w USING ({key})
        WHERE s.{key} IS NULL OR w.{key} IS NULL OR NOT ({_same(spec, "s", "w")})
        ORDER BY key
        """
    ).fetchall()
    days = con.execute(
        f"""
        WITH s AS (SELECT created_at::DATE AS day, count(*) AS n, sum({amount}) AS amount
                   FROM {source} GROUP BY ALL),
             w AS (SELECT created_at::DATE AS day, count(*) AS n, sum({amount}) AS amount
                   FROM {warehouse} GROUP BY ALL)
        SELECT day::VARCHAR, coalesce(s.n, 0), coalesce(w.n, 0),
               coalesce(s.amount, 0)::DOUBLE, coalesce(w.amount, 0)::DOUBLE
        FROM s FULL JOIN w USING (day)
        WHERE s.n IS DISTINCT FROM w.n OR s.amount IS DISTINCT FROM w.amount
        ORDER BY day
        """
    ).fetchall()
    return {
        "source_rows": int(source_rows),
        "warehouse_rows": int(warehouse_rows),
        "matching_rows": int(matched),
        "accuracy": matched / source_rows if source_rows else 1.0,
        "mismatching_keys": [{"key": k, "problem": p} for k, p in mismatches],
        "days_differing": [
            {
                "day": d,
                "source_rows": sn,
                "warehouse_rows": wn,
                **({"source_amount": sa, "warehouse_amount": wa} if spec.amount else {}),
            }
            for d, sn, wn, sa, wa in days
        ],
    }


def latest_versions(spec: RecordTable, relation: str, where: str = "true") -> str:
    """SQL: the newest version of each key in ``relation`` (a change-record history)."""
    columns = ", ".join(spec.columns)
    return (
        f"(SELECT {columns} FROM {relation} WHERE {where} "
        f"QUALIFY row_number() OVER (PARTITION BY {spec.key} ORDER BY updated_at DESC) = 1)"
    )


def accuracy(results: dict[str, dict[str, Any]]) -> float:
    """Matching rows over source rows, across the tables."""
    total = sum(r["source_rows"] for r in results.values())
    return sum(r["matching_rows"] for r in results.values()) / total if total else 1.0


# The privileges a read-only source role needs (docs/governance.md shows the same): connect, read
# the application's tables, nothing else; every session read-only by default besides.
_SOURCE_GRANTS: tuple[str, ...] = (
    "GRANT CONNECT ON DATABASE {db} TO {role}",
    "GRANT USAGE ON SCHEMA app TO {role}",
    "GRANT SELECT ON app.users, app.bookings TO {role}",
    "ALTER ROLE {role} SET default_transaction_read_only = on",
)


def source_role_grants(cur: Any, database: str, role: str) -> list[str]:
    """The statements that let ``role`` read the application's tables in ``database``, only."""
    from psycopg2 import sql

    db, who = (sql.Identifier(n).as_string(cur) for n in (database, role))
    return [statement.format(db=db, role=who) for statement in _SOURCE_GRANTS]


def grant_source_role(cur: Any, database: str, role: str) -> None:
    """Run :func:`source_role_grants` (as the owner of the app schema)."""
    for statement in source_role_grants(cur, database, role):
        cur.execute(statement)
