"""Reading a mart for a sync: briefly, read-only, into Arrow, with rejects split off.

DuckDB lets one process hold the warehouse file read-write, and while it does no other process can
open it at all (a warehouse in PostgreSQL, ``SEARCHFLOW_WAREHOUSE_URL``, is read through
:func:`searchflow.warehouse.connect` instead, in one read-only transaction too). A sync therefore opens the file read-only, runs one query per mart, fetches the
result as Arrow and closes the file before it talks to any destination: the warehouse is held for
the time of a columnar scan, never for the time of a network write.

The marts a sync reads are the published ones: once transformations publish, the mart names are
views of the served version, and the version (the transform run that published it, the latest
row of ``ops.publish_log``) is read in the same connection as the rows, so the version a sync
records is the one whose rows it wrote. Before the first publication there is no version and the
marts are read as they are.

Rows a destination cannot take (a NULL or duplicated key, a missing required value) are split off in
the same query as rejects with a reason, so a bad mart row becomes a ``crm.sync_rejects`` row
instead of a crash or a silently wrong destination.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from searchflow import restricted, warehouse
from searchflow.arrays import prefer_jemalloc
from searchflow.config import Settings
from searchflow.errors import SearchflowError
from searchflow.warehouse import lock_error

# The contacts in a PostgreSQL warehouse: dbt's postgres target builds pii_user_contacts there.
POSTGRES_CONTACTS = "pii.user_contacts"


@dataclass(frozen=True)
class MartSpec:
    """What a sync reads: the mart, its key, the columns it copies and those that must be set."""

    sync: str
    mart: str
    key: str
    columns: tuple[str, ...]
    required: tuple[str, ...] = ()
    # The email sync: only consented users' rows, each with its address from the restricted store
    addressed: bool = False


@dataclass(frozen=True)
class MartBatch:
    """The mart's rows split into those to write and those rejected (``_reason``, ``_row`` JSON)."""

    good: pa.Table
    rejects: pa.Table
    version: str | None = None  # the published mart version read; None before any publication

    @property
    def read(self) -> int:
        return self.good.num_rows + self.rejects.num_rows


def missing_mart_error(mart: str) -> SearchflowError:
    return SearchflowError(
        f"the mart {mart} does not exist in the warehouse; run `searchflow transform` first"
    )


def addressed_relation(mart: str, contacts: bool, store: str = restricted.CONTACTS) -> str:
    """The email sync's rows: the mart's triggers of users whose marketing consent is given both
    at the mart's as-of time and in their current profile, each with the user's current address.

    The address is joined here, at sync time, from the restricted store
    (:data:`searchflow.restricted.CONTACTS`); the mart itself carries none. A user the store does
    not know, or without a version valid at the as-of time, gets no email: consent is never
    assumed. Without the store (no transform since the first app ingest) no row qualifies.
    ``store``: the contacts relation (in a PostgreSQL warehouse, :data:`POSTGRES_CONTACTS`).
    """
    if not contacts:
        return f"(SELECT m.*, CAST(NULL AS VARCHAR) AS email FROM {mart} AS m WHERE false)"
    return f"""(
        SELECT m.*, now_c.email
        FROM {mart} AS m
        JOIN {store} AS then_c
          ON then_c.user_id = m.user_id
         AND then_c.valid_from <= m.as_of
         AND (then_c.valid_to IS NULL OR then_c.valid_to > m.as_of)
        JOIN {store} AS now_c
          ON now_c.user_id = m.user_id AND now_c.valid_to IS NULL
        WHERE then_c.marketing_consent IS TRUE AND now_c.marketing_consent IS TRUE
    )"""


def keyed_relation(mart: str, keys: bool) -> str:
    """The mart with the application's user id in ``user_id``: the marts carry a pseudonym
    (dbt/macros/user_key.sql), which ``restricted.pii.user_keys`` maps back. A key the map does
    not know becomes NULL, so its row is a reject (or, for an email, not sent), never a
    pseudonym written as an id. Marts built before pseudonyms (no map) are read as they are."""
    if not keys:
        return mart
    return f"""(
        SELECT m.* REPLACE (k.user_id AS user_id)
        FROM {mart} AS m LEFT JOIN {restricted.USER_KEYS} AS k ON k.user_key = m.user_id
    )"""


def relation(
    spec: MartSpec, contacts: bool = False, keys: bool = False, store: str = restricted.CONTACTS
) -> str:
    """What a sync reads: the mart with real user ids, and for the email sync only consented,
    addressed rows."""
    keyed = keyed_relation(spec.mart, keys)
    return addressed_relation(keyed, contacts, store) if spec.addressed else keyed


def _missing(spec: MartSpec) -> str:
    return " OR ".join(f"{c} IS NULL" for c in spec.required) or "false"


def clean_query(spec: MartSpec, source: str | None = None) -> str:
    """One aggregate: TRUE when no row can be a reject (the common case, checked cheaply)."""
    return f"""
        SELECT count(*) = count(DISTINCT {spec.key}) AND NOT coalesce(bool_or({_missing(spec)}), false)
        FROM {source or spec.mart}
    """


def reject_query(spec: MartSpec, source: str | None = None) -> str:
    """One scan: every row with the reason it cannot be written (NULL when it can)."""
    cols = ", ".join(f"m.{c}" for c in spec.columns)
    reason = f"""CASE
                   WHEN m.{spec.key} IS NULL THEN 'null_key'
                   WHEN dup.{spec.key} IS NOT NULL THEN 'duplicate_key'
                   WHEN {_missing(spec)} THEN 'missing_value'
               END"""
    # The whole row as JSON only for rejects: encoding every good row would cost a second scan.
    # Duplicates through a GROUP BY (a hash aggregate), about twice as fast as a window count.
    source = source or spec.mart
    return f"""
        WITH dup AS (
            SELECT {spec.key} FROM {source} GROUP BY {spec.key} HAVING count(*) > 1
        )
        SELECT {cols}, {reason} AS _reason,
               CASE WHEN {reason} IS NOT NULL THEN to_json(m)::VARCHAR END AS _row
        FROM {source} AS m LEFT JOIN dup ON dup.{spec.key} = m.{spec.key}
    """


def published_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The served mart version (:func:`searchflow.ledger.published_version`); None before the
    first publication, or in a warehouse that has no ledger yet."""
    from searchflow import ledger

    try:
        row = ledger.published_version(con)
    except duckdb.CatalogException:  # no ops.publish_log: nothing was ever published
        return None
    return str(row["version"]) if row else None


def _open(settings: Settings, mart: str) -> duckdb.DuckDBPyConnection:
    if settings.warehouse_on_postgres:
        return warehouse.connect(settings, read_only=True)
    path = settings.warehouse_path
    if not path.exists():
        raise missing_mart_error(mart)
    try:
        return duckdb.connect(str(path), read_only=True, config=settings.duckdb_config())
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise lock_error(path, exc) from None
        raise SearchflowError(f"cannot open the warehouse {path}: {exc}") from None


def _attach_store(con: duckdb.DuckDBPyConnection, settings: Settings) -> bool:
    try:
        return restricted.attach(con, settings.warehouse_path, read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise lock_error(restricted.restricted_path(settings.warehouse_path), exc) from None
        raise


def read_mart(settings: Settings, spec: MartSpec) -> MartBatch:
    """Read one mart and the published version read-only into Arrow and close the file at once."""
    prefer_jemalloc()
    con = _open(settings, spec.mart)
    try:
        try:
            if settings.warehouse_on_postgres:
                # The postgres target keeps the ids (no pseudonyms) and builds the contacts into
                # the warehouse's own pii schema (docs/governance.md).
                contacts = spec.addressed and warehouse.table_exists(con, POSTGRES_CONTACTS)
                source = relation(spec, contacts, False, POSTGRES_CONTACTS)
            else:
                # The restricted store, read-only: the ids behind the pseudonyms, and addresses.
                attached = _attach_store(con, settings)
                contacts = spec.addressed and attached and restricted.has_contacts(con)
                keys = attached and restricted.has_table(con, restricted.USER_KEYS)
                source = relation(spec, contacts, keys)
            con.execute("BEGIN TRANSACTION")  # the version and the rows from one snapshot
            version = published_version(con)
            if con.execute(clean_query(spec, source)).fetchone()[0]:
                cols = ", ".join(spec.columns)
                good = con.execute(f"SELECT {cols} FROM {source}").to_arrow_table()
                empty = con.execute(f"{reject_query(spec, source)} LIMIT 0").to_arrow_table()
                return MartBatch(good=good, rejects=empty, version=version)
            table = con.execute(reject_query(spec, source)).to_arrow_table()
        except duckdb.CatalogException as exc:
            if spec.mart.split(".")[-1] in str(exc):
                raise missing_mart_error(spec.mart) from None
            raise SearchflowError(
                f"the mart {spec.mart} does not have the columns the {spec.sync} sync needs "
                f"({str(exc).splitlines()[0]}); rebuild it with `searchflow transform`"
            ) from None
        except duckdb.BinderException as exc:
            raise SearchflowError(
                f"the mart {spec.mart} does not have the columns the {spec.sync} sync needs "
                f"({str(exc).splitlines()[0]}); rebuild it with `searchflow transform`"
            ) from None
    finally:
        con.close()
    rejected = pc.is_valid(table["_reason"])
    good = table.filter(pc.invert(rejected)).select(list(spec.columns))
    rejects = table.filter(rejected)
    return MartBatch(good=good, rejects=rejects, version=version)
