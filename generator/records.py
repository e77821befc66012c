"""The travel site's own records beside its events: user profiles and bookings, with their history.

Users
    Every user of the pool (``user_000123``, the events' ``user_id``) has a profile: email, full
    name, phone, home city and country (the city their sessions come from), loyalty tier and
    marketing consent. Signups fall before :data:`SIGNUP_END`; after signup each profile changes
    at up to :data:`CHANGES` moments (a tier upgrade, a move, consent given or withdrawn). Like the
    user's habits, all of it is drawn from the seed and the pool size alone, so a profile is the
    same in every run of that seed, and its state at any time is known.
Bookings
    One per conversion, keyed by the conversion's event id: confirmed when the conversion happens,
    some cancelled later and most of those refunded after that.
Versions
    A record version is the state after a change; its ``updated_at`` is the change's time. A run
    over ``[start, start + days)`` carries, as *change records* (JSONL, Redis), the version each
    user held at the start plus every version that falls inside the period, and each booking's
    versions up to the period's end; the Postgres sink upserts the latest of those (an older run
    written later never moves a row back in time).

Built column-wise (numpy and Arrow, the JSON text too): no Python loop per user or booking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from generator import vocab
from generator.config import GeneratorConfig
from generator.text import (
    US_PER_DAY,
    compose,
    digits,
    fixed_strings,
    fragments,
    record_lines,
    to_text_buffer,
)
from searchflow.appdb import STATUSES, TIERS  # what ingestion accepts
from searchflow.arrays import string_bytes

RECORD_TYPES: tuple[str, ...] = ("users", "bookings")
USER_RECORD_STREAM, BOOKING_RECORD_STREAM = 4, 5  # numpy streams beside the simulation's
CHANGES = 4  # profile changes drawn per user (some fall years after any run)
SIGNUP_START = datetime(2020, 1, 1)
SIGNUP_END = datetime(2023, 1, 1)
MEAN_CHANGE_GAP_DAYS = 300.0
CHANGE_KINDS: tuple[str, ...] = ("tier", "move", "consent")
CHANGE_WEIGHTS = np.array([0.45, 0.2, 0.35])
CANCEL_SHARE = 0.08
REFUND_SHARE = 0.75  # of the cancelled bookings
SECOND = 1_000_000
HOUR = 3600 * SECOND
EMAIL_DOMAIN = "example.com"

FIRST_NAMES: tuple[str, ...] = (
    "Olivia", "Liam", "Emma", "Noah", "Charlotte", "William", "Amelia", "James", "Sophia",
    "Benjamin", "Chloe", "Lucas", "Zoe", "Ethan", "Maya", "Samuel", "Leah", "Nathan", "Claire",
    "Thomas", "Aisha", "Mateo", "Priya", "Hiroshi", "Fatima", "Diego", "Ingrid", "Kwame",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Tremblay", "Martin", "Roy", "Gagnon", "Lee", "Wilson", "Johnson", "MacDonald",
    "Brown", "Cote", "Taylor", "Campbell", "Anderson", "Nguyen", "Patel", "Garcia", "Kim",
    "Rossi", "Muller", "Dubois", "Singh", "Okafor", "Sato", "Silva", "Larsen", "Cohen",
)  # fmt: skip

USER_COLUMNS: tuple[str, ...] = (
    "user_id", "email", "full_name", "phone", "home_city", "home_country", "loyalty_tier",
    "marketing_consent", "created_at", "updated_at",
)  # fmt: skip
BOOKING_COLUMNS: tuple[str, ...] = (
    "booking_id", "user_id", "status", "amount", "currency", "product_type", "created_at",
    "updated_at",
)  # fmt: skip
TS = pa.timestamp("us", tz="UTC")


def _micros(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds()) * SECOND


@dataclass(frozen=True)
class Records:
    """What a run carries of the site's own records.

    ``users`` / ``bookings``: the change records of the period (one row per version), ordered by
    ``updated_at`` then key; ``current_users`` / ``current_bookings``: the latest version of each
    key at the period's end (what the application's tables hold after the run).
    """

    users: pa.Table
    bookings: pa.Table
    current_users: pa.Table
    current_bookings: pa.Table

    def table(self, record_type: str) -> pa.Table:
        return {"users": self.users, "bookings": self.bookings}[record_type]

    def current(self, record_type: str) -> pa.Table:
        return {"users": self.current_users, "bookings": self.current_bookings}[record_type]

    def lines(self, record_type: str) -> pa.Array:
        """The change records of one type as JSON text, one object per version."""
        return json_lines(self.table(record_type))

    def counts(self) -> dict[str, int]:
        return {t: self.table(t).num_rows for t in RECORD_TYPES}


def period(config: GeneratorConfig) -> tuple[int, int]:
    """The run's period in epoch microseconds, ``[start, start + days)``."""
    start = int(config.start_datetime.timestamp() * SECOND)
    return start, start + config.days * US_PER_DAY


# --- users -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profiles:
    """Every user's versions: ``(users, CHANGES + 1)`` arrays, version 0 = the signup."""

    at: np.ndarray  # when each version began (epoch us)
    tier: np.ndarray
    home: np.ndarray  # index into vocab.GEOS
    consent: np.ndarray
    email: pa.Array
    full_name: pa.Array
    phone: pa.Array


def profiles(config: GeneratorConfig, home: np.ndarray) -> Profiles:
    """Draw every profile and its changes; depends on the seed and the pool size only.

    ``home`` is each user's home (index into vocab.GEOS) from the simulation's pool, so a profile
    starts in the city its sessions come from.
    """
    n = config.users
    rng = np.random.default_rng([config.seed, USER_RECORD_STREAM, n])
    signup = rng.integers(_micros(SIGNUP_START), _micros(SIGNUP_END), n)
    gaps = rng.exponential(MEAN_CHANGE_GAP_DAYS * US_PER_DAY, (n, CHANGES)).astype(np.int64)
    at = np.concatenate([signup[:, None], signup[:, None] + np.cumsum(gaps + SECOND, axis=1)], 1)
    kind = rng.choice(len(CHANGE_KINDS), (n, CHANGES), p=CHANGE_WEIGHTS / CHANGE_WEIGHTS.sum())
    first_tier = rng.choice(len(TIERS), n, p=[0.7, 0.2, 0.08, 0.02])
    upgrades = np.cumsum(kind == 0, axis=1)
    tier = np.minimum(first_tier[:, None] + np.concatenate([np.zeros((n, 1), int), upgrades], 1), 3)
    moves = np.where(kind == 1, rng.choice(len(vocab.GEOS), (n, CHANGES)), -1)
    # the home after each change: the latest move so far, else the first home
    last_move = np.maximum.accumulate(np.where(moves >= 0, np.arange(CHANGES), -1), axis=1)
    moved_to = np.take_along_axis(moves, np.maximum(last_move, 0), axis=1)
    home_after = np.where(last_move >= 0, moved_to, home[:, None])
    homes = np.concatenate([home[:, None], home_after], 1)
    first_consent = rng.random(n) < 0.6
    toggles = np.concatenate([np.zeros((n, 1), int), np.cumsum(kind == 2, axis=1)], 1)
    consent = first_consent[:, None] ^ (toggles % 2 == 1)
    first = rng.integers(0, len(FIRST_NAMES), n)
    last = rng.integers(0, len(LAST_NAMES), n)
    number = digits(np.arange(n), max(6, len(str(n - 1))))
    first_s, last_s = fragments(FIRST_NAMES, first), fragments(LAST_NAMES, last)
    number_s = pa.array(number.view(f"S{number.shape[1]}").reshape(-1)).cast(pa.string())
    email = pc.binary_join_element_wise(
        pc.utf8_lower(first_s), ".", pc.utf8_lower(last_s), ".", number_s, f"@{EMAIL_DOMAIN}", ""
    )
    phone_digits = digits(rng.integers(0, 10_000_000, n), 7)
    phone_s = pa.array(phone_digits.view("S7").reshape(-1)).cast(pa.string())
    phone = pc.binary_join_element_wise(
        "+1-555-",
        pc.utf8_slice_codeunits(phone_s, 0, 3),
        "-",
        pc.utf8_slice_codeunits(phone_s, 3),
        "",
    )
    full_name = pc.binary_join_element_wise(first_s, last_s, " ")
    return Profiles(at, tier, homes, consent, email, full_name, phone)


def _user_rows(config: GeneratorConfig, p: Profiles, user: np.ndarray, version: np.ndarray):
    n = config.users
    ids = fixed_strings(compose(n, ["user_", digits(np.arange(n), max(6, len(str(n - 1))))]))
    geo = np.array(vocab.GEOS, dtype=object)
    home = p.home[user, version]
    take = pa.array(user)
    return pa.table(
        {
            "user_id": ids.take(take),
            "email": p.email.take(take),
            "full_name": p.full_name.take(take),
            "phone": p.phone.take(take),
            "home_city": fragments(list(geo[:, 1]), home),
            "home_country": fragments(list(geo[:, 0]), home),
            "loyalty_tier": fragments(TIERS, p.tier[user, version]),
            "marketing_consent": pa.array(p.consent[user, version]),
            "created_at": pa.array(p.at[user, 0], TS),
            "updated_at": pa.array(p.at[user, version], TS),
        }
    )


def user_records(config: GeneratorConfig, home: np.ndarray) -> tuple[pa.Table, pa.Table]:
    """(change records of the period, each user's latest version at its end)."""
    p = profiles(config, home)
    start, end = period(config)
    began = p.at < end  # versions that exist by the period's end
    # the version held at the start: the latest one that began before it
    held_at_start = (p.at < start) & ~np.concatenate(
        [p.at[:, 1:] < start, np.zeros((len(p.at), 1), bool)], 1
    )
    emitted = began & (held_at_start | (p.at >= start))
    user, version = np.nonzero(emitted)
    # ordered by (updated_at, user_id) as _ordered would: a user's versions never share a time,
    # and zero-padded ids of one width sort as their numbers, so numpy sorts the numbers instead
    order = np.lexsort((user, p.at[user, version]))
    changes = _user_rows(config, p, user[order], version[order])
    latest_user = np.flatnonzero(began[:, 0])
    latest_version = began.sum(axis=1)[latest_user] - 1
    current = _user_rows(config, p, latest_user, latest_version)
    return changes, current


# --- bookings ----------------------------------------------------------------------------------


def booking_records(config: GeneratorConfig, conversions: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(change records of the period, each booking's latest version at its end).

    ``conversions`` is the simulation's typed conversion table (event_id, timestamp, user_id,
    booking_value, currency, product_type).
    """
    n = conversions.num_rows
    created = conversions["timestamp"].combine_chunks().cast(pa.int64()).to_numpy()
    rng = np.random.default_rng([config.seed, BOOKING_RECORD_STREAM, n, int(created.sum() % 2**62)])
    cancelled = rng.random(n) < CANCEL_SHARE
    refunded = cancelled & (rng.random(n) < REFUND_SHARE)
    cancel_at = created + rng.integers(2 * HOUR, 20 * 24 * HOUR, n)
    refund_at = cancel_at + rng.integers(HOUR, 7 * 24 * HOUR, n)
    at = np.stack([created, cancel_at, refund_at], 1)
    exists = np.stack([np.ones(n, bool), cancelled, refunded], 1)
    _, end = period(config)
    # version 0 always (the conversion happened); later ones once they fall inside the period
    emitted = exists & ((np.arange(3) == 0) | (at < end))
    row, version = np.nonzero(emitted)
    changes = _booking_rows(conversions, at, row, version)
    latest = emitted.sum(axis=1) - 1
    current = _booking_rows(conversions, at, np.arange(n), latest)
    return _ordered(changes, "booking_id"), current


def _booking_rows(conversions: pa.Table, at: np.ndarray, row: np.ndarray, version: np.ndarray):
    take = pa.array(row, pa.int64())
    cents = np.round(conversions["booking_value"].combine_chunks().to_numpy() * 100).astype(
        np.int64
    )
    return pa.table(
        {
            "booking_id": conversions["event_id"].take(take),
            "user_id": conversions["user_id"].take(take),
            "status": fragments(STATUSES, version),
            "amount": _money(cents[row]),
            "currency": conversions["currency"].take(take),
            "product_type": conversions["product_type"].take(take),
            "created_at": pa.array(at[row, 0], TS),
            "updated_at": pa.array(at[row, version], TS),
        }
    )


def _money(cents: np.ndarray) -> pa.Array:
    """Cents as DECIMAL(12, 2): the decimal's storage is the unscaled integer, sign-extended."""
    words = np.stack([cents, cents >> 63], 1).astype("<i8")
    return pa.Array.from_buffers(pa.decimal128(12, 2), len(cents), [None, pa.py_buffer(words)])


def _ordered(table: pa.Table, key: str) -> pa.Table:
    return table.sort_by([("updated_at", "ascending"), (key, "ascending")])


def json_lines(table: pa.Table) -> pa.Array:
    """One JSON object per row, columns in order, times as ``...Z`` (UTC, microseconds).

    Built by :func:`generator.text.record_lines` (Arrow gathers and joins, no JSON encoder per
    row); a table it cannot write byte for byte as DuckDB's ``to_json`` would (a column of another
    type, a string that needs escaping) goes through DuckDB instead.
    """
    lines = record_lines(table)
    return lines if lines is not None else _duckdb_json_lines(table)


def jsonl_bytes(table: pa.Table) -> memoryview:
    """:func:`json_lines` as a JSONL file's bytes, each line followed by a newline."""
    lines = record_lines(table, end="\n")
    return string_bytes(lines) if lines is not None else to_text_buffer(_duckdb_json_lines(table))


def _duckdb_json_lines(table: pa.Table) -> pa.Array:
    """DuckDB's ``to_json`` of every row: the reference :func:`record_lines` is tested against."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("records", table)
        fields = []
        for name in table.column_names:
            column = f'"{name}"'
            if pa.types.is_timestamp(table.schema.field(name).type):
                column = f"strftime({column} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')"
            fields.append(f"{name} := {column}")
        sql = f"SELECT to_json(struct_pack({', '.join(fields)}))::VARCHAR AS line FROM records"
        con.execute("SET TimeZone = 'UTC'")
        lines = con.execute(sql).fetch_arrow_table()["line"].combine_chunks()
    finally:
        con.close()
    return lines.cast(pa.string())


def build_records(config: GeneratorConfig, home: np.ndarray, conversions: pa.Table) -> Records:
    """The run's user and booking records (see the module docstring)."""
    users, current_users = user_records(config, home)
    bookings, current_bookings = booking_records(config, conversions)
    return Records(users, bookings, current_users, current_bookings)
