"""Keyed hashes of user ids, and the suppression list of forgotten users.

A forgotten user must not come back from a source, yet their id must not be kept either: the
suppression list holds HMAC-SHA256 hashes of the ids under ``SEARCHFLOW_PII_KEY``. Without the
key a hash cannot be turned back into an id, nor recomputed for a guess. When the setting is unset
a random key is generated on first use and kept in the data folder, readable only by its owner
(production sets the setting, so that the hashes survive a new data folder).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from searchflow.config import Settings

KEY_FILE = "pii.key"
SUPPRESSED = "ops.suppressed_users"
SUPPRESSION_FUNCTION = "sf_suppressed"  # registered by register_suppression


def key_path(settings: Settings) -> Path:
    return settings.home_path / KEY_FILE


def pii_key(settings: Settings) -> bytes:
    """The HMAC key: the setting, else the data folder's key file (created 0600 on first use)."""
    if settings.pii_key is not None and settings.pii_key.get_secret_value():
        return settings.pii_key.get_secret_value().encode()
    path = key_path(settings)
    if not path.exists():
        settings.ensure_home()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    os.chmod(path, 0o600)
    return path.read_text().strip().encode()


def user_hash(settings: Settings, user_id: str) -> str:
    """The keyed hash of one user id (hex)."""
    return hmac.new(pii_key(settings), user_id.encode(), hashlib.sha256).hexdigest()


USER_KEY_PREFIX = b"user_key:"
USER_KEY_LENGTH = 32  # hex characters: 128 bits, no collision in any user pool


def pseudonym(key: bytes, user_id: str) -> str:
    """The user key that analytics, marketing and ml carry instead of the id: an HMAC under the
    PII key, domain-separated from :func:`user_hash`, so the suppression list never holds a value
    that was once a pseudonym in the marts."""
    digest = hmac.new(key, USER_KEY_PREFIX + user_id.encode(), hashlib.sha256).hexdigest()
    return digest[:USER_KEY_LENGTH]


def user_key(settings: Settings, user_id: str) -> str:
    """One user's pseudonym under the configured key."""
    return pseudonym(pii_key(settings), user_id)


_KEYS: dict[tuple[str | None, str], bytes] = {}


def served_user_key(settings: Settings, user_id: str) -> str:
    """:func:`user_key` for a long-lived server answering per request: the key is read once per
    setting and key file, not at every call (a new key needs a new transform and a restart)."""
    secret = settings.pii_key.get_secret_value() if settings.pii_key is not None else None
    which = (
        hashlib.sha256(secret.encode()).hexdigest() if secret else None,
        str(key_path(settings)),
    )
    if which not in _KEYS:
        _KEYS[which] = pii_key(settings)
    return pseudonym(_KEYS[which], user_id)


def register_user_key(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """``sf_user_key(user_id)`` on a DuckDB connection: the pseudonym, NULL for NULL; vectorized
    (one Python call per vector, not per row)."""
    import pyarrow as pa
    from duckdb.sqltypes import VARCHAR

    def keys(ids):  # no annotations: DuckDB evaluates them at registration
        return pa.array(
            [None if u is None else pseudonym(key, u) for u in ids.to_pylist()], pa.string()
        )

    with contextlib.suppress(duckdb.Error):
        con.remove_function("sf_user_key")
    con.create_function(
        "sf_user_key",
        keys,
        [VARCHAR],
        VARCHAR,
        type="arrow",
        null_handling="special",
        side_effects=False,
    )


def ensure_suppression(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS ops")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {SUPPRESSED} ("
        "user_hash VARCHAR PRIMARY KEY, forgotten_at TIMESTAMP NOT NULL)"
    )


def suppress(con: duckdb.DuckDBPyConnection, hashed: str) -> None:
    """Add a hash to the suppression list (idempotent)."""
    ensure_suppression(con)
    con.execute(
        f"INSERT INTO {SUPPRESSED} VALUES (?, ?) ON CONFLICT DO NOTHING",
        [hashed, datetime.now(UTC).replace(tzinfo=None)],
    )


def suppressed_hashes(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """Every forgotten user's hash (empty when nobody was forgotten yet)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'ops' "
        "AND table_name = 'suppressed_users'"
    ).fetchone()[0]
    if not exists:
        return frozenset()
    return frozenset(r[0] for r in con.execute(f"SELECT user_hash FROM {SUPPRESSED}").fetchall())


def register_suppression(con: duckdb.DuckDBPyConnection, settings: Settings) -> bool:
    """Teach an ingest connection who was forgotten: ``sf_suppressed(user_id)`` (see
    ``searchflow.ingest.land``). Nothing is registered when nobody was; True when it was."""
    from duckdb.sqltypes import BOOLEAN, VARCHAR

    hashes = suppressed_hashes(con)
    if not hashes:
        return False
    key = pii_key(settings)

    def suppressed(user_id: str | None) -> bool:
        if user_id is None:
            return False
        return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest() in hashes

    with contextlib.suppress(duckdb.Error):
        con.remove_function(SUPPRESSION_FUNCTION)
    con.create_function(
        SUPPRESSION_FUNCTION,
        suppressed,
        [VARCHAR],
        BOOLEAN,
        null_handling="special",
        side_effects=False,
    )
    return True
