"""Hand-made raw events for the transform tests, loaded straight into the raw tables.

Each helper builds one event in the shape of docs/architecture.md's event contract; ``load_duckdb``
and ``load_postgres`` land a list of them in the raw layer (``raw.<type>_events``), the first through
the warehouse's own DDL, the second into a Postgres ``raw`` schema with a ``jsonb`` payload, so the
same dbt project can be built on both targets. dbt reads only the rows of ingestion batches the
ledger (``ops.batches``) has published: ``load_duckdb`` records the batch and publishes it unless
told to leave it ``held``; ``load_postgres`` writes a minimal ledger beside the raw tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from searchflow import ledger
from searchflow.config import Settings
from searchflow.warehouse import EVENT_TYPES, ensure_raw_schema, session

T0 = datetime(2024, 6, 1, 8, 0, 0)


def ts(value: datetime) -> str:
    """The contract's UTC timestamp text."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Raw:
    """Collects events; ids are deterministic so expected values can name them."""

    events: list[dict[str, Any]] = field(default_factory=list)
    _n: int = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n:05d}"

    def search(
        self,
        at: datetime,
        user: str | None,
        session: str,
        destination: str = "Lisbon",
        platform: str = "web",
        device: str = "desktop",
        country: str = "PT",
        utm_source: str | None = None,
        utm_campaign: str | None = None,
    ) -> str:
        event_id = self._id("s")
        self.events.append(
            {
                "event_id": event_id,
                "event_type": "search",
                "timestamp": ts(at),
                "user_id": user,
                "session_id": session,
                "query": f"hotels in {destination}",
                "destination": destination,
                "results_count": 20,
                "page": 1,
                "platform": platform,
                "device_type": device,
                "geo": {"country": country, "city": "Porto"},
                "utm_source": utm_source,
                "utm_campaign": utm_campaign,
            }
        )
        return event_id

    def click(
        self, at: datetime, user: str | None, session: str, search_id: str, destination: str
    ) -> str:
        event_id = self._id("c")
        self.events.append(
            {
                "event_id": event_id,
                "event_type": "click",
                "timestamp": ts(at),
                "user_id": user,
                "session_id": session,
                "search_event_id": search_id,
                "result_id": f"r-{event_id}",
                "result_position": 1,
                "result_type": "hotel",
                "result_price": 120.5,
                "result_destination": destination,
                "result_provider": "acme",
            }
        )
        return event_id

    def conversion(
        self, at: datetime, user: str | None, session: str, click_id: str, value: float = 100.0
    ) -> str:
        event_id = self._id("v")
        self.events.append(
            {
                "event_id": event_id,
                "event_type": "conversion",
                "timestamp": ts(at),
                "user_id": user,
                "session_id": session,
                "click_event_id": click_id,
                "booking_value": value,
                "commission": round(value * 0.1, 2),
                "currency": "EUR",
                "product_type": "hotel",
                "provider": "acme",
            }
        )
        return event_id

    def journey(
        self,
        at: datetime,
        user: str | None,
        session: str,
        destination: str = "Lisbon",
        convert_after: timedelta | None = timedelta(minutes=10),
        value: float = 100.0,
        **search_kwargs: Any,
    ) -> tuple[str, str, str | None]:
        """search, click a minute later, and optionally a conversion ``convert_after`` the click."""
        s = self.search(at, user, session, destination, **search_kwargs)
        c = self.click(at + timedelta(minutes=1), user, session, s, destination)
        v = None
        if convert_after is not None:
            v = self.conversion(at + timedelta(minutes=1) + convert_after, user, session, c, value)
        return s, c, v


def rows(
    events: Iterable[dict[str, Any]], batch_id: str = "fixture"
) -> dict[str, list[tuple[Any, ...]]]:
    """Raw-table rows per event type: (event_id, event_time, payload, source, ref, batch, ingested)."""
    out: dict[str, list[tuple[Any, ...]]] = {t: [] for t in EVENT_TYPES}
    landed = datetime(2030, 1, 1, tzinfo=UTC).replace(tzinfo=None)
    for n, event in enumerate(events):
        at = datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
        out[event["event_type"]].append(
            (
                event["event_id"],
                at,
                json.dumps(event),
                "jsonl",
                f"fixture:{n}",
                batch_id,
                landed,
            )
        )
    return out


def load_duckdb(
    settings: Settings,
    events: Iterable[dict[str, Any]],
    batch_id: str = "fixture",
    *,
    publish: bool = True,
) -> None:
    """Append the events to the DuckDB raw tables (created if missing) as one ingestion batch,
    published in the ledger (or held, with ``publish=False``)."""
    with session(settings) as con:
        ensure_raw_schema(con)
        ledger.ensure_ledger(con)
        for event_type, table_rows in rows(events, batch_id).items():
            if table_rows:
                con.executemany(
                    f"INSERT INTO raw.{event_type}_events VALUES (?, ?, ?, ?, ?, ?, ?)", table_rows
                )
        ledger.record(con, batch_id, "ingestion", source="jsonl")
        ledger.judge(con, batch_id, "passed" if publish else "failed", [] if publish else ["test"])


def publish_batch(settings: Settings, batch_id: str, *, gate: str = "forced") -> None:
    """Publish an ingestion batch: a held one as `searchflow batches release --force` would, or one
    the ingestion stage landed without a gate (``gate="passed"``)."""
    with session(settings) as con:
        ledger.ensure_ledger(con)
        if ledger.get(con, batch_id) is None:
            ledger.record(con, batch_id, "ingestion")
        ledger.judge(con, batch_id, gate)


def load_postgres(url: str, events: Iterable[dict[str, Any]], batch_id: str = "fixture") -> None:
    """Create the raw schema in Postgres (payload jsonb) and append the events."""
    import psycopg2

    con = psycopg2.connect(url)
    try:
        with con, con.cursor() as cur:
            cur.execute("CREATE SCHEMA IF NOT EXISTS ops")
            cur.execute(
                """CREATE TABLE IF NOT EXISTS ops.batches (
                    batch_id text PRIMARY KEY, stage text NOT NULL, state text NOT NULL,
                    published_at timestamp)"""
            )
            cur.execute(
                "INSERT INTO ops.batches VALUES (%s, 'ingestion', 'published', now()) "
                "ON CONFLICT (batch_id) DO NOTHING",
                (batch_id,),
            )
            cur.execute("CREATE SCHEMA IF NOT EXISTS raw")
            for event_type, table_rows in rows(events, batch_id).items():
                cur.execute(
                    f"""CREATE TABLE IF NOT EXISTS raw.{event_type}_events (
                        event_id text NOT NULL, event_time timestamp NOT NULL,
                        payload jsonb NOT NULL, source text NOT NULL, source_ref text,
                        batch_id text NOT NULL, ingested_at timestamp NOT NULL)"""
                )
                if table_rows:
                    cur.executemany(
                        f"INSERT INTO raw.{event_type}_events VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        table_rows,
                    )
    finally:
        con.close()
