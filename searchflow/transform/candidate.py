"""Mart candidates: the schemas one build writes, before any gate has seen them.

dbt builds the marts of version ``v`` into ``analytics__v``, ``marketing__v`` and ``ml__v``; the
served names (``analytics.fct_search_funnel``, ...) are views that publication repoints
(:mod:`searchflow.transform.publish`). Everything here is plain SQL on an open DuckDB connection
(with the warehouse in PostgreSQL, copies run in PostgreSQL itself: :func:`~searchflow.warehouse.copy_table`):

- :func:`seed` starts a candidate's incremental marts as copies of the published ones, so dbt
  continues from the served version instead of rebuilding in full;
- :func:`complete` copies the published marts a partial build (``--select``) did not build, so
  every candidate holds every mart and can be gated and published on its own;
- :func:`candidates`, :func:`drop` list and remove candidates; :func:`pending_parents` names the
  published ingestion batches no publication has taken in yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import duckdb

from searchflow.contract import MARTS
from searchflow.transform.runner import MART_SCHEMAS, PARSED_VERSION
from searchflow.warehouse import copy_table, table_exists

# Views over the segment snapshot, built straight into the published schema after a publication
# (dbt_project.yml's `after_publication` models): a candidate never holds them.
AFTER_PUBLICATION_MARTS: tuple[str, ...] = (
    "marketing.mart_segment_transitions",
    "marketing.mart_segment_history",
)
# The marts a candidate holds as tables.
CANDIDATE_MARTS: tuple[str, ...] = tuple(m for m in MARTS if m not in AFTER_PUBLICATION_MARTS)
# Incremental marts a candidate starts from the published version.
INCREMENTAL_MARTS: tuple[str, ...] = ("analytics.fct_search_funnel",)
# The incremental intermediates an incremental mart's deltas are computed from. When one is missing
# (a first build, or a discard dropped them) the marts are built in full.
INCREMENTAL_INTERMEDIATES: tuple[str, ...] = (
    "intermediate.int_search_sessions",
    "intermediate.int_conversions",
    "intermediate.int_user_journeys",
)


def new_version(now: datetime | None = None) -> str:
    """A mart version: ``t`` + the UTC time to the second + 4 hex digits; sorts by time."""
    stamp = (now or datetime.now(UTC)).strftime("t%Y%m%dt%H%M%S")
    return stamp + uuid.uuid4().hex[:4]


def schemas(version: str) -> dict[str, str]:
    """Published schema -> this version's candidate schema."""
    return {schema: f"{schema}__{version}" for schema in MART_SCHEMAS}


def candidate_name(published: str, version: str) -> str:
    """``analytics.fct_search_funnel`` -> ``analytics__<version>.fct_search_funnel``."""
    schema, _, table = published.partition(".")
    return f"{schemas(version)[schema]}.{table}"


def _quoted(qualified: str) -> str:
    schema, _, table = qualified.partition(".")
    return f'"{schema}"."{table}"'


def seed(con: duckdb.DuckDBPyConnection, version: str, *, full_refresh: bool = False) -> list[str]:
    """Copy the published incremental marts into the new candidate; returns the marts seeded.

    Nothing is seeded on a full refresh, before the first publication, or when an incremental
    intermediate is missing (its rows would all look new, but a day that lost every event would
    not be recomputed): dbt then builds those marts in full.
    """
    if full_refresh or not all(table_exists(con, t) for t in INCREMENTAL_INTERMEDIATES):
        return []
    seeded = []
    for mart in INCREMENTAL_MARTS:
        target = candidate_name(mart, version)
        if not table_exists(con, mart) or table_exists(con, target):
            continue
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{target.partition(".")[0]}"')
        copy_table(con, _quoted(mart), _quoted(target))
        seeded.append(mart)
    return seeded


def missing(con: duckdb.DuckDBPyConnection, version: str) -> list[str]:
    """The marts the candidate does not hold."""
    return [m for m in CANDIDATE_MARTS if not table_exists(con, candidate_name(m, version))]


def complete(con: duckdb.DuckDBPyConnection, version: str) -> list[str]:
    """Copy into the candidate the published marts it lacks (a partial build); returns them.

    A mart that is neither built nor published stays missing: the candidate is then incomplete
    and cannot be published.
    """
    copied = []
    for mart in missing(con, version):
        if table_exists(con, mart):
            target = candidate_name(mart, version)
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{target.partition(".")[0]}"')
            copy_table(con, _quoted(mart), _quoted(target))
            copied.append(mart)
    return copied


def candidates(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The versions that have candidate schemas in the warehouse, oldest first."""
    prefixes = [f"{schema}__" for schema in MART_SCHEMAS]
    rows = con.execute(
        "SELECT DISTINCT schema_name FROM information_schema.schemata "
        "WHERE catalog_name = current_database()"
    ).fetchall()
    found = set()
    for (name,) in rows:
        for prefix in prefixes:
            if name.startswith(prefix) and len(name) > len(prefix):
                found.add(name[len(prefix) :])
    return sorted(v for v in found if v != PARSED_VERSION)


def drop(con: duckdb.DuckDBPyConnection, version: str) -> None:
    """Drop a candidate's schemas (and every table in them)."""
    for schema in schemas(version).values():
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def prune(con: duckdb.DuckDBPyConnection, keep: Iterable[str], newest: int = 2) -> list[str]:
    """Drop every candidate but the ``newest`` and those in ``keep`` (the served one)."""
    found = candidates(con)
    kept = set(found[-newest:]) | set(keep)
    doomed = [v for v in found if v not in kept]
    for version in doomed:
        drop(con, version)
    return doomed


_PENDING = """
SELECT batch_id FROM ops.batches
WHERE stage = 'ingestion' AND state = 'published'
  AND batch_id NOT IN (SELECT unnest(parents) FROM ops.publish_log)
ORDER BY batch_id
"""


def pending_parents(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Published ingestion batches no mart publication has taken in yet: a build's parents."""
    if not table_exists(con, "ops.batches") or not table_exists(con, "ops.publish_log"):
        return []
    return [row[0] for row in con.execute(_PENDING).fetchall()]


def view_targets(con: duckdb.DuckDBPyConnection, version: str) -> Mapping[str, str]:
    """Published name -> the candidate table its view reads, for every mart the candidate holds."""
    return {m: candidate_name(m, version) for m in CANDIDATE_MARTS}
