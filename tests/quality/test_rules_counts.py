"""The generation gate's id rules: DuckDB's counts agree with the Arrow masks that select the rows."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from searchflow.quality.checks import PARENT, _count, _duplicated, _false, _id_rule_counts

S = pa.string()


def test_duckdb_id_counts_match_the_row_masks_nulls_included():
    tables = {
        "search": pa.table({"event_id": pa.array(["a", "b", "b", None, None, "c"], S)}),
        "click": pa.table(
            {
                "event_id": pa.array(["x", "y", "y", "z", None], S),
                "search_event_id": pa.array(["a", None, "q", "b", "c"], S),
            }
        ),
        "conversion": pa.table(
            {"event_id": pa.array(["k", "k"], S), "click_event_id": pa.array([None, "x"], S)}
        ),
    }
    expected = {f"{t}_duplicate_ids": _count(_duplicated(tables[t]["event_id"])) for t in tables}
    for t, (column, parent) in PARENT.items():
        parents = tables[parent]["event_id"].combine_chunks()
        linked = pc.is_in(tables[t][column], value_set=parents)
        expected[f"{t}_orphans"] = _count(pc.invert(_false(linked)))
    got = _id_rule_counts(tables)
    assert got == expected
    # and the figures are the hand-counted ones: b, b, null, null repeated; 'q' has no search
    assert got["search_duplicate_ids"] == 4 and got["click_orphans"] == 1


def test_missing_columns_leave_their_figures_out():
    tables = {
        "search": pa.table({"query": pa.array(["x"], S)}),
        "click": pa.table({"event_id": pa.array(["c"], S)}),
        "conversion": pa.table({"event_id": pa.array(["v"], S), "click_event_id": ["c"]}),
    }
    assert _id_rule_counts(tables) == {
        "click_duplicate_ids": 0,
        "conversion_duplicate_ids": 0,
        "conversion_orphans": 0,
    }


def test_numbers_out_of_bounds_nan_included_nulls_not():
    import pyarrow as pa

    from searchflow.quality.checks import BOUNDS, _count, _out_of_bounds

    table = pa.table(
        {
            "booking_value": [0.01, 0.0, float("nan"), None, 1e16, 250.0],
            "commission": [0.0, 1.0, 1.0, 1.0, 1.0, -1.0],
        }
    )
    assert _count(_out_of_bounds(table, BOUNDS["conversion"])) == 4
