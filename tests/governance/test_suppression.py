"""A forgotten user's events are dropped by later ingestion, counted as suppressed."""

from __future__ import annotations

import json

from generator import build, config_from_options, write_batch
from searchflow import pii, warehouse
from searchflow.config import Settings
from searchflow.ingest import run_ingestion


def test_suppressed_users_do_not_come_back(settings: Settings, tmp_path) -> None:
    events = tmp_path / "events"
    write_batch(settings, build(config_from_options(events=300, users=20, seed=5)), "jsonl", events)
    # the events and the users/ and bookings/ change records (ingested with them)
    lines = [
        json.loads(x) for p in sorted(events.rglob("*.jsonl")) for x in p.read_text().splitlines()
    ]
    user = next(e["user_id"] for e in lines if e.get("user_id"))
    theirs = sum(1 for e in lines if e.get("user_id") == user)
    with warehouse.session(settings) as con:
        warehouse.ensure_raw_schema(con)
        pii.suppress(con, pii.user_hash(settings, user))

    summary = run_ingestion(settings, "jsonl", path=events)
    assert summary["suppressed"] == theirs > 0
    assert (
        summary["read"]
        == summary["landed"]
        + summary["duplicates"]
        + summary["dead_letters"]
        + summary["suppressed"]
    )
    with warehouse.session(settings, read_only=True) as con:
        for table in ("search", "click", "conversion"):
            found = con.execute(
                f"SELECT count(*) FROM raw.{table}_events "
                "WHERE json_extract_string(payload, '$.user_id') = ?",
                [user],
            ).fetchone()[0]
            assert found == 0
        for table in ("app_users", "app_bookings"):
            found = con.execute(
                f"SELECT count(*) FROM raw.{table} WHERE user_id = ?", [user]
            ).fetchone()[0]
            assert found == 0
        dead = con.execute(
            "SELECT count(*) FROM raw.dead_letter_events WHERE contains(raw_text, ?)", [user]
        ).fetchone()[0]
    assert dead == 0
