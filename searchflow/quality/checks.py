"""Row-level rules of the generation and ingestion gates, computed set-wise into one-row frames.

GX's cost is per expectation and per row it walks in Python-backed pandas code: row-level
expectations over every id of a large batch cost more than generating the batch. So each
row-level rule (ids unique, required fields present, event type, amounts, links, event time) is
counted here in one pass of Arrow kernels, with DuckDB hashing the ids for uniqueness and links
(generation, on the generator's in-memory tables), or one DuckDB query per event type (ingestion,
on the rows the batch landed), and GX validates the
resulting one-row frame: one ``expect_column_max_to_be_between`` per rule, thresholds as suite
parameters, the rule described in the expectation's ``meta.notes`` (and so on the Data Docs page).

The failing rows are only looked for when a rule fails: :meth:`RuleSet.rows` selects them with the
same predicate that counted them, for the quarantine.

A rule that cannot be computed (its column is missing) leaves its figure out of the frame, so its
expectation raises inside GX and the gate reports it errored, with the reason from
:attr:`RuleSet.notes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from searchflow.events import EVENT_TYPES, LIMITS, MINIMUMS, VOCABULARY

REQUIRED = {
    "search": ("event_id", "timestamp", "session_id", "query", "destination", "platform", "device_type"),
    "click": ("event_id", "timestamp", "session_id", "search_event_id"),
    "conversion": ("event_id", "timestamp", "session_id", "click_event_id"),
}  # fmt: skip
# The numbers of each type and the range a well-formed value lies in (inclusive minimum,
# exclusive limit: what the typed models can hold), from the event contract.
BOUNDS: dict[str, dict[str, tuple[float, float]]] = {
    t: {f: (low, LIMITS[t][f]) for f, low in MINIMUMS[t].items()} for t in EVENT_TYPES
}
PARENT = {"click": ("search_event_id", "search"), "conversion": ("click_event_id", "click")}
HAS_PARENT = {"click": "has_search", "conversion": "has_click"}

# (figure -> (reason, rows selector)); a selector returns the failing rows as a pandas frame.
Selector = Callable[[Mapping[str, Any]], pd.DataFrame]


@dataclass
class RuleSet:
    """The figures of one gate's rules, and how to find each rule's failing rows."""

    figures: dict[str, Any] = field(default_factory=dict)
    selectors: dict[str, tuple[str, Selector]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({k: [v] for k, v in self.figures.items()})

    def rows(self, figure: str, parameters: Mapping[str, Any]) -> tuple[str, pd.DataFrame] | None:
        """The rows that broke the rule behind ``figure``, with the reason; None for batch figures."""
        if figure not in self.selectors:
            return None
        reason, select = self.selectors[figure]
        return reason.format(**parameters), select(parameters)


# --- generation: Arrow kernels over the generator's tables -------------------------------------


def _kind(dtype: pa.DataType) -> str:
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_integer(dtype):
        return "integer"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "number"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_null(dtype):
        return "null"  # an all-null column (e.g. no known user in a small batch)
    return str(dtype)


def schema_frame(tables: Mapping[str, pa.Table]) -> pd.DataFrame:
    """One row per column of each event type: ``search.event_id`` and ``search.event_id: string``."""
    fields = [(f"{t}.{f.name}", _kind(f.type)) for t, table in tables.items() for f in table.schema]
    return pd.DataFrame(
        {"field": [f for f, _ in fields], "field_kind": [f"{f}: {k}" for f, k in fields]}
    )


def _false(mask: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.fill_null(mask, False)


def _count(mask: Any) -> int:
    return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)


def _duplicated(ids: Any) -> Any:
    counts = pc.value_counts(ids)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    return _false(pc.is_in(ids, value_set=repeated))


def _out_of_bounds(table: pa.Table, bounds: Mapping[str, tuple[float, float]]) -> Any:
    """Rows with a number below its minimum, at or above its limit, or NaN (nulls are not)."""
    mask = None
    for column, (low, high) in bounds.items():
        values = table[column]
        bad = pc.or_(pc.less(values, low), pc.greater_equal(values, high))
        if pa.types.is_floating(values.type):
            bad = pc.or_(bad, pc.is_nan(values))
        mask = bad if mask is None else pc.or_(mask, bad)
    return _false(mask)


def _not_in_vocabulary(table: pa.Table, allowed: Mapping[str, tuple[str, ...]]) -> Any:
    """Rows with a value outside its column's vocabulary (nulls are the required-field rule's)."""
    mask = None
    for column, values in allowed.items():
        bad = pc.invert(pc.is_in(table[column], value_set=pa.array(values)))
        bad = pc.and_(bad, pc.is_valid(table[column]))
        mask = bad if mask is None else pc.or_(mask, bad)
    return _false(mask)


def _take(table: pa.Table, mask_of: Callable[[], Any]) -> Selector:
    return lambda _params: table.filter(mask_of()).to_pandas()


def _rule(
    rules: RuleSet,
    t: str,
    table: pa.Table,
    name: str,
    needs: tuple[str, ...],
    reason: str,
    mask_of: Callable[[], Any],
    counted: Mapping[str, int] | None = None,
) -> None:
    """Count one row-level rule on one event type, or note why it cannot be counted.

    ``counted``: figures already counted another way (see :func:`_id_rule_counts`); the mask is
    then only computed to select the failing rows.
    """
    figure = f"{t}_{name}"
    missing = [c for c in needs if c not in table.column_names]
    if missing:
        rules.notes[figure] = f"column {', '.join(missing)} missing from the {t} events"
        return
    rules.figures[figure] = counted[figure] if counted else _count(mask_of())
    rules.selectors[figure] = (reason, _take(table, mask_of))


def _id_rule_counts(tables: Mapping[str, pa.Table]) -> dict[str, int]:
    """Rows with a repeated event_id per type, and orphan rows per child type, counted by DuckDB.

    These are hash aggregates and joins over string ids, which DuckDB runs on every core, where
    Arrow's ``value_counts`` and ``is_in`` run on one (docs/quality.md, "Cost"). The semantics are
    those of the masks that select the rows (:func:`_duplicated`, the orphan mask): null ids are one
    value, and a null parent reference is an orphan unless a parent has a null id too. Figures whose
    columns are missing are left out (the rule notes why).
    """
    import duckdb

    queries: dict[str, str] = {}
    con = duckdb.connect()
    try:
        for t in EVENT_TYPES:
            if "event_id" in tables[t].column_names:
                con.register(f"ids_{t}", tables[t].select(["event_id"]))
                queries[f"{t}_duplicate_ids"] = (
                    f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM ids_{t} "
                    "GROUP BY event_id HAVING count(*) > 1)"
                )
        for t, (column, parent) in PARENT.items():
            if column in tables[t].column_names and f"{parent}_duplicate_ids" in queries:
                con.register(f"links_{t}", tables[t].select([column]))
                queries[f"{t}_orphans"] = (
                    f"SELECT count(*) FROM links_{t} c ANTI JOIN ids_{parent} p "
                    f"ON c.{column} IS NOT DISTINCT FROM p.event_id"
                )
        if not queries:
            return {}
        # one statement: the counts run as scalar subqueries of a single query
        row = con.execute(
            "SELECT " + ", ".join(f"({sql})::BIGINT AS {name}" for name, sql in queries.items())
        ).fetchone()
    finally:
        con.close()
    return {name: int(value) for name, value in zip(queries, row or (), strict=True)}


def _id_rule_counts_here(tables: Mapping[str, pa.Table]) -> dict[str, int]:
    """The figures of :func:`_id_rule_counts` from Arrow's kernels on this core, with the masks'
    semantics: for one part of a batch built in parts, judged where a core of its own builds it,
    DuckDB's connection costs more than the counts."""
    counted: dict[str, int] = {}
    hashed: dict[str, Any] = {}  # type -> its ids' sorted hashes and their rows, when unique
    for t in EVENT_TYPES:
        if "event_id" in tables[t].column_names:
            ids = tables[t]["event_id"]
            hashed[t] = _unique_hashes(ids)
            counted[f"{t}_duplicate_ids"] = 0 if hashed[t] else _count(_duplicated(ids))
    for t, (column, parent) in PARENT.items():
        if column in tables[t].column_names and f"{parent}_duplicate_ids" in counted:
            links = tables[t][column]
            linked = _linked_by_hash(links, tables[parent]["event_id"], hashed[parent])
            if linked is None:
                parents = tables[parent]["event_id"].combine_chunks()
                linked = _count(_false(pc.is_in(links, value_set=parents)))
            counted[f"{t}_orphans"] = tables[t].num_rows - linked
    return counted


def _fixed_width(column: Any) -> np.ndarray | None:
    """A string column without nulls whose values all have one width (the generator's ids) as an
    ``(n, width)`` byte matrix, without a copy; None for any other column."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count or not pa.types.is_string(array.type) or len(array) == 0:
        return None
    offsets = np.frombuffer(array.buffers()[1], np.int32)[
        array.offset : array.offset + len(array) + 1
    ]
    width = int(offsets[1] - offsets[0])
    if width == 0 or int(offsets[-1] - offsets[0]) != width * len(array):
        return None
    if not (np.diff(offsets) == width).all():
        return None
    data = np.frombuffer(array.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    return data.reshape(len(array), width)


def _hashes(matrix: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of a byte matrix (equal rows, equal hashes)."""
    width = -(-matrix.shape[1] // 8) * 8
    padded = np.zeros((len(matrix), width), np.uint8)
    padded[:, : matrix.shape[1]] = matrix
    words = padded.view(np.uint64)
    h = np.zeros(len(matrix), np.uint64)
    for k in range(words.shape[1]):
        h = (h ^ words[:, k]) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    return h


def _unique_hashes(ids: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(sorted hashes, their rows, the byte matrix) of fixed-width ids whose hashes are all
    distinct, so the ids are too (no duplicate to count); None otherwise (count them exactly)."""
    matrix = _fixed_width(ids)
    if matrix is None:
        return None
    h = _hashes(matrix)
    order = np.argsort(h)  # the hashes are compared for distinctness: no order among equals
    ordered = h[order]
    if len(ordered) > 1 and not (ordered[1:] != ordered[:-1]).all():
        return None
    return ordered, order, matrix


def _linked_by_hash(links: Any, ids: Any, hashed: Any) -> int | None:
    """How many ``links`` are one of the ``ids``: each link's hash looked up among the parents'
    distinct hashes, then its bytes compared with that parent's (a hash match alone is not
    proof). None where the columns are not fixed-width alike: the caller counts with Arrow."""
    matrix = _fixed_width(links)
    if not hashed or matrix is None or matrix.shape[1] != hashed[2].shape[1]:
        return None
    ordered, order, parents = hashed
    h = _hashes(matrix)
    at = np.minimum(np.searchsorted(ordered, h), len(ordered) - 1)
    candidate = order[at]
    same = (ordered[at] == h) & (matrix == parents[candidate]).all(axis=1)
    return int(same.sum())


def generation_rules(tables: Mapping[str, pa.Table], *, one_core: bool = False) -> RuleSet:
    """Counts per event type: duplicate ids, missing required fields, wrong event type, numbers
    out of their bounds, values outside their vocabulary; orphan shares of clicks and conversions; the batch's click-through and conversion rates.

    ``one_core``: count the ids with Arrow in this thread rather than DuckDB on every core (a
    part judged in a generation worker).
    """
    rules = RuleSet()
    n = {t: tables[t].num_rows for t in EVENT_TYPES}
    counted = _id_rule_counts_here(tables) if one_core else _id_rule_counts(tables)
    for t in EVENT_TYPES:
        table = tables[t]

        _rule(
            rules,
            t,
            table,
            "duplicate_ids",
            ("event_id",),
            "event_id is not unique",
            lambda table=table: _duplicated(table["event_id"]),
            counted,
        )
        required = REQUIRED[t]

        def missing_mask(table: pa.Table = table, required: tuple[str, ...] = required) -> Any:
            mask = pc.is_null(table[required[0]])
            for column in required[1:]:
                mask = pc.or_(mask, pc.is_null(table[column]))
            return mask

        _rule(
            rules,
            t,
            table,
            "missing_required",
            required,
            f"a required field is null ({', '.join(required)})",
            missing_mask,
        )
        _rule(
            rules,
            t,
            table,
            "wrong_event_type",
            ("event_type",),
            f"event_type is not {t}",
            lambda table=table, t=t: pc.fill_null(pc.not_equal(table["event_type"], t), True),
        )
        bounds = BOUNDS[t]
        _rule(
            rules,
            t,
            table,
            "out_of_bounds",
            tuple(bounds),
            " or ".join(f"{f} outside [{lo:g}, {hi:g})" for f, (lo, hi) in bounds.items()),
            lambda table=table, bounds=bounds: _out_of_bounds(table, bounds),
        )
        if t in VOCABULARY:
            allowed = VOCABULARY[t]
            _rule(
                rules,
                t,
                table,
                "not_in_vocabulary",
                tuple(allowed),
                " or ".join(f"{c} not one of {', '.join(v)}" for c, v in allowed.items()),
                lambda table=table, allowed=allowed: _not_in_vocabulary(table, allowed),
            )
        if t in PARENT:
            column, parent = PARENT[t]
            figure = f"{t}_orphan_share"
            if column not in table.column_names or "event_id" not in tables[parent].column_names:
                rules.notes[figure] = f"column {column} or the {parent} event_id is missing"
                continue

            def orphan(table: pa.Table = table, column: str = column, parent: str = parent) -> Any:
                linked = pc.is_in(
                    table[column], value_set=tables[parent]["event_id"].combine_chunks()
                )
                return pc.invert(_false(linked))

            rules.figures[figure] = counted[f"{t}_orphans"] / n[t] if n[t] else 0.0
            rules.selectors[figure] = (
                f"{column} is not an event of the batch",
                _take(table, orphan),
            )
    rules.figures["searches"] = n["search"]
    rules.figures["click_through_rate"] = n["click"] / n["search"] if n["search"] else 0.0
    rules.figures["conversion_rate"] = n["conversion"] / n["click"] if n["click"] else 0.0
    return rules


def part_judge() -> Callable[[Mapping[str, pa.Table]], tuple[RuleSet, dict[str, int]]]:
    """The generation rules of one part of a batch built in parts, with its row counts.

    A part's tables stay alive only through its rules' selectors (to quarantine failing rows):
    they are kept for the first part where a rule fails, dropped for every other part, so judging
    a batch holds one part's tables at a time, whatever the batch's size.
    """
    kept = False

    def judge(tables: Mapping[str, pa.Table]) -> tuple[RuleSet, dict[str, int]]:
        nonlocal kept
        rules = generation_rules(tables, one_core=True)
        failing = any(
            isinstance(v, int) and v and k != "searches" for k, v in rules.figures.items()
        ) or any(v for k, v in rules.figures.items() if k.endswith("_orphan_share"))
        if kept or not failing:
            rules.selectors = {}
        kept = kept or failing
        return rules, {t: tables[t].num_rows for t in EVENT_TYPES}

    return judge


def merge_rules(parts: list[tuple[RuleSet, dict[str, int]]]) -> RuleSet:
    """The rules of a batch from its parts': counts added up, orphan shares and the two rates
    recomputed from the added-up counts (what :func:`generation_rules` gives on the whole)."""
    merged = RuleSet()
    totals = {t: sum(n[t] for _, n in parts) for t in EVENT_TYPES}
    for rules, n in parts:
        merged.notes.update(rules.notes)
        for name, selector in rules.selectors.items():
            merged.selectors.setdefault(name, selector)
        for name, value in rules.figures.items():
            if name in ("click_through_rate", "conversion_rate"):
                continue
            if name.endswith("_orphan_share"):
                value = value * n[name.removesuffix("_orphan_share")]  # back to a count
            merged.figures[name] = merged.figures.get(name, 0) + value
    for name in merged.figures:
        if name.endswith("_orphan_share"):
            t = name.removesuffix("_orphan_share")
            merged.figures[name] = merged.figures[name] / totals[t] if totals[t] else 0.0
    merged.figures["click_through_rate"] = (
        totals["click"] / totals["search"] if totals["search"] else 0.0
    )
    merged.figures["conversion_rate"] = (
        totals["conversion"] / totals["click"] if totals["click"] else 0.0
    )
    return merged


# --- ingestion: one DuckDB query per event type over the batch's rows ---------------------------


def _ingested(t: str) -> str:
    """The batch's rows of one type with the rule flags (a parent counts anywhere in raw).

    The payload is parsed once per row (one ``json_extract_string`` with a list of paths): the
    JSON parse is most of the cost of this query.
    """
    fields = ["session_id"] + ([PARENT[t][0]] if t in PARENT else [])
    paths = ", ".join(f"'$.{f}'" for f in fields)
    extracted = ", ".join(f"j[{i + 1}] AS {f}" for i, f in enumerate(fields))
    required = " OR ".join(
        ["event_id IS NULL", "event_time IS NULL"] + [f"{f} IS NULL" for f in fields]
    )
    parent = ""
    if t in PARENT:
        column, parent_type = PARENT[t]
        parent = f", {column} IN (SELECT event_id FROM raw.{parent_type}_events) AS {HAS_PARENT[t]}"
    return f"""
        SELECT *, epoch(event_time) - epoch($now) AS seconds_ahead,
               ({required}) AS missing_required {parent}
        FROM (SELECT event_id, event_time, source_ref, {extracted}
              FROM (SELECT event_id, event_time, source_ref,
                           json_extract_string(payload, [{paths}]) AS j
                    FROM raw.{t}_events WHERE batch_id = $batch))"""


def _figures_sql(t: str) -> str:
    orphan = (
        f", coalesce(count_if(NOT {HAS_PARENT[t]}) / nullif(count(*), 0), 0.0) AS orphan_share"
        if t in PARENT
        else ""
    )
    return f"""
        SELECT count(*) AS rows,
               count(event_id) - count(DISTINCT event_id) AS duplicate_ids,
               coalesce(count_if(missing_required), 0) AS missing_required,
               coalesce(max(seconds_ahead), 0.0) AS max_seconds_ahead {orphan}
        FROM ({_ingested(t)})"""


def ingestion_rules(
    con: Any, batch_id: str, now: datetime, read: Callable[[str, dict[str, Any]], pd.DataFrame]
) -> tuple[RuleSet, dict[str, int]]:
    """The ingestion batch's rule figures, and rows landed per type.

    ``read(sql, params)`` runs a query on a fresh warehouse connection: the failing rows are read
    later, only for a failed rule, after this connection is closed.
    """
    rules = RuleSet()
    params = {"batch": batch_id, "now": now}
    landed: dict[str, int] = {}
    for t in EVENT_TYPES:
        figures = con.execute(_figures_sql(t), params).df().iloc[0].to_dict()
        landed[t] = int(figures.pop("rows"))
        base = _ingested(t)

        def selector(where: str, base: str = base) -> Selector:
            def select(p: Mapping[str, Any]) -> pd.DataFrame:
                sql = f"SELECT * FROM ({base}) WHERE {where}"
                return read(sql, {**params, **{k: v for k, v in p.items() if f"${k}" in sql}})

            return select

        rules.figures[f"{t}_duplicate_ids"] = int(figures["duplicate_ids"])
        rules.selectors[f"{t}_duplicate_ids"] = (
            "event_id is not unique in the batch",
            selector(
                f"event_id IN (SELECT event_id FROM raw.{t}_events WHERE batch_id = $batch "
                "GROUP BY event_id HAVING count(*) > 1)"
            ),
        )
        rules.figures[f"{t}_missing_required"] = int(figures["missing_required"])
        rules.selectors[f"{t}_missing_required"] = (
            "a required field is null",
            selector("missing_required"),
        )
        rules.figures[f"{t}_max_seconds_ahead"] = float(figures["max_seconds_ahead"])
        rules.selectors[f"{t}_max_seconds_ahead"] = (
            "event time more than {max_seconds_ahead} s in the future",
            selector("seconds_ahead > $max_seconds_ahead"),
        )
        if t in PARENT:
            rules.figures[f"{t}_orphan_share"] = float(figures["orphan_share"])
            column, parent = PARENT[t]
            rules.selectors[f"{t}_orphan_share"] = (
                f"{column} is in no raw {parent} event",
                selector(f"NOT {HAS_PARENT[t]}"),
            )
    return rules, landed
