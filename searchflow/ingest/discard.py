"""Discarding an ingestion batch: its raw event rows go, its dead letters and quarantine stay.

For ``searchflow batches discard`` (a held batch, or a published one found bad later): the next
transform rebuilds without the rows. The ledger's state is the caller's (``ledger.discard``), in
the same transaction when the caller opened one, so the rows and the state move together.
"""

from __future__ import annotations

import duckdb

from searchflow.ingest.land import lit
from searchflow.warehouse import EVENT_TYPES, raw_table, table_exists


def discard_ingestion_batch(con: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, int]:
    """Delete the batch's rows from ``raw.<type>_events``; returns how many per event type.

    ``raw.dead_letter_events`` and the quarantine keep theirs: they are the record of what was
    wrong. The readers' bookkeeping does not move either, so the discarded input is not read again.
    """
    removed: dict[str, int] = {}
    for event_type in EVENT_TYPES:
        table = raw_table(event_type)
        if not table_exists(con, table):
            removed[event_type] = 0
            continue
        row = con.execute(f"DELETE FROM {table} WHERE batch_id = {lit(batch_id)}").fetchone()
        removed[event_type] = int(row[0]) if row else 0
    return removed
