"""Validation of raw lines, in SQL: one pass classifies every line as an event or a dead letter.

The rules are the event contract (docs/architecture.md) and agree line for line with the
generator's reference :func:`generator.faults.classify` (a test holds them together). A line is
judged in this order, the first broken rule naming its malformed class (the dead letter's
``reason``):

``unparsable``
    not a JSON object (cut short, not JSON at all, an array, an empty line).
``unknown_event_type``
    ``event_type`` present but not search / click / conversion (a number counts as unknown).
``missing_field``
    ``event_type`` or a field the type requires absent or null.
``wrong_type``
    a field of the wrong JSON type (``"42"`` for a number, an epoch number for the timestamp), or a
    timestamp not written ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``.
``impossible_value``
    a value below its minimum (negative price, booking value or results count, page 0), or a
    timestamp that is well written but is no real instant (month 13) or is absurd (before
    1970, or more than a year after the ingest).

Why SQL and not Python: DuckDB parses the lines vectorised, and the presence and kind rules are
judged per *shape* (keys, value types, declared type: a handful per batch) rather than per line
(``"`` string, ``{`` object, a digit or ``-`` number, no ``.``/``e`` integer), vectorised over the
whole batch.
"""

from __future__ import annotations

from searchflow.warehouse import EVENT_TYPES

MALFORMED_CLASSES: tuple[str, ...] = (
    "unparsable",
    "missing_field",
    "wrong_type",
    "unknown_event_type",
    "impossible_value",
)

# Required per type: present and non-null, with their JSON kinds (same as generator/faults.py).
COMMON_FIELDS: dict[str, str] = {
    "event_id": "string",
    "event_type": "string",
    "timestamp": "timestamp",
    "session_id": "string",
}
REQUIRED_FIELDS: dict[str, dict[str, str]] = {
    "search": {
        **COMMON_FIELDS,
        "query": "string",
        "destination": "string",
        "results_count": "integer",
        "page": "integer",
        "platform": "string",
        "device_type": "string",
        "geo": "object",
    },
    "click": {
        **COMMON_FIELDS,
        "search_event_id": "string",
        "result_id": "string",
        "result_position": "integer",
        "result_type": "string",
        "result_price": "number",
        "result_destination": "string",
        "result_provider": "string",
    },
    "conversion": {
        **COMMON_FIELDS,
        "click_event_id": "string",
        "booking_value": "number",
        "commission": "number",
        "currency": "string",
        "product_type": "string",
        "provider": "string",
    },
}
# May be absent or null; when present, of this kind.
NULLABLE_FIELDS: dict[str, str] = {
    "user_id": "string",
    "utm_source": "string",
    "utm_campaign": "string",
}
# Inclusive lower bounds of a well-formed value.
MINIMUMS: dict[str, dict[str, float]] = {
    "search": {"results_count": 0, "page": 1},
    "click": {"result_position": 1, "result_price": 0.01},
    "conversion": {"booking_value": 0.01, "commission": 0},
}
LEADING_BRACE = r"^\s*\{"
TIMESTAMP_REGEX = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z"
# A well-written timestamp outside [EARLIEST, ingest time + LATEST_AHEAD] is impossible_value.
EARLIEST = "1970-01-01"
LATEST_AHEAD = "366 days"


# JSON kinds -> the json_type() names that satisfy them.
KIND_TYPES: dict[str, tuple[str, ...]] = {
    "string": ("VARCHAR",),
    "timestamp": ("VARCHAR",),  # and the pattern, checked per line
    "integer": ("BIGINT", "UBIGINT"),
    "number": ("BIGINT", "UBIGINT", "DOUBLE"),
    "object": ("OBJECT",),
}
# Values read per line: the three every line needs, then the fields with a minimum.
VALUE_FIELDS: list[str] = ["event_id", "event_type", "timestamp"] + [
    name for minimums in MINIMUMS.values() for name in minimums if name
]


def _val(name: str) -> str:
    return f"vals[{VALUE_FIELDS.index(name) + 1}]"


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def rules_values() -> str:
    """The field rules as a VALUES list: (event_type, rule_no, field, kind, required)."""
    rows: list[str] = []
    for event_type, fields in REQUIRED_FIELDS.items():
        rule_no = 0
        for name, kind in {**fields, **NULLABLE_FIELDS}.items():
            if name == "event_type":
                continue
            rule_no += 1
            required = "true" if name in fields else "false"
            rows.append(f"({_q(event_type)}, {rule_no}, {_q(name)}, {_q(kind)}, {required})")
    return ",\n            ".join(rows)


def _kind_ok(kind_col: str, type_col: str) -> str:
    return (
        "CASE "
        + " ".join(
            f"WHEN {kind_col} = {_q(kind)} THEN {type_col} IN ({', '.join(map(_q, types))})"
            for kind, types in KIND_TYPES.items()
        )
        + " END"
    )


def _minimum_checks() -> str:
    """WHEN branches for the per-line value rules (minimums), in the reference's order."""
    branches = []
    for event_type, minimums in MINIMUMS.items():
        for name, low in minimums.items():
            v = _val(name)
            branches.append(
                f"WHEN {_val('event_type')} = {_q(event_type)} AND TRY_CAST({v} AS DOUBLE) < {low} "
                f"THEN 'impossible_value' || chr(31) || '{name} ' || {v} || ' below {low:g}'"
            )
    return "\n                ".join(branches)


def classify_sql(input_relation: str) -> str:
    """SELECT that classifies every row of ``input_relation``.

    Input columns: ``ord`` (order in the batch, BIGINT), ``raw_text`` (VARCHAR, may be NULL for an
    empty line), ``source_ref``, ``stream`` (the type of the file / stream / app row it came from,
    a hint only: an event is judged by its own ``event_type``).

    Output columns: those four plus ``event_type`` (the declared type when it is a known one),
    ``declared_type`` (whatever string the line declared), ``event_id``, ``event_time`` (UTC
    TIMESTAMP), ``reason`` (NULL for a well-formed event) and ``detail``.

    How: a line's *shape* is its keys, the JSON type of each value and its declared event_type.
    A batch has a handful of shapes however many lines it has, so presence and kind rules are
    judged once per shape (a small join against the rules), and per line only what depends on
    values: the timestamp pattern and instant, and the minimums.
    """
    paths = ", ".join(f"'$.{name}'" for name in VALUE_FIELDS)
    known = ", ".join(_q(t) for t in EVENT_TYPES)
    return f"""
    WITH keyed AS (
        -- one parse that also tells valid JSON: try() gives NULL where json_keys fails
        SELECT ord, raw_text, source_ref, stream, try(json_keys(raw_text)) AS keys
        FROM {input_relation}
    ), parsed AS (
        SELECT *, coalesce(keys IS NOT NULL AND (starts_with(raw_text, '{{')
                           OR regexp_matches(raw_text, '{LEADING_BRACE}')), false) AS parsed
        FROM keyed
    ), valued AS (
        SELECT *, CASE WHEN parsed THEN json_extract_string(raw_text, [{paths}]) END AS vals
        FROM parsed
    ), lines AS MATERIALIZED (
        SELECT ord, raw_text, source_ref, stream, parsed, vals,
               CASE WHEN parsed THEN hash(keys, json_type(raw_text, '$.*'),
                                          {_val("event_type")}) END AS shape
        FROM valued
    ), shapes AS MATERIALIZED (
        -- one line per shape, its keys and value types unnested
        SELECT shape, any_value(et_text) AS et_text,
               any_value(keys) AS keys, any_value(types) AS types
        FROM (
            SELECT l.shape, l.{_val("event_type")} AS et_text,
                   json_keys(l.raw_text) AS keys, json_type(l.raw_text, '$.*') AS types
            FROM lines l
            JOIN (SELECT shape, min(ord) AS ord FROM lines WHERE parsed GROUP BY shape) USING (ord)
        )
        GROUP BY shape
    ), shape_fields AS (
        SELECT shape, et_text, unnest(keys) AS key, unnest(types) AS type FROM shapes
    ), rules(event_type, rule_no, field, kind, required) AS (
        VALUES
            {rules_values()}
    ), type_verdicts AS (
        -- event_type itself: absent or null -> missing_field; not a known string -> unknown
        SELECT s.shape,
               CASE WHEN f.type IS NULL OR f.type = 'NULL'
                    THEN 'missing_field' || chr(31) || 'event_type'
                    WHEN f.type <> 'VARCHAR' OR s.et_text NOT IN ({known})
                    THEN 'unknown_event_type' || chr(31) || 'event_type ' || s.et_text
               END AS verdict
        FROM shapes s
        LEFT JOIN shape_fields f ON f.shape = s.shape AND f.key = 'event_type'
    ), field_checks AS (
        SELECT s.shape, r.rule_no, r.field,
               CASE WHEN r.required AND (f.type IS NULL OR f.type = 'NULL') THEN 1
                    WHEN f.type IS NOT NULL AND f.type <> 'NULL'
                         AND NOT ({_kind_ok("r.kind", "f.type")}) THEN 2
               END AS broken,
               f.type
        FROM shapes s
        JOIN rules r ON r.event_type = s.et_text
        LEFT JOIN shape_fields f ON f.shape = s.shape AND f.key = r.field
    ), field_verdicts AS (
        SELECT shape,
               arg_min(CASE broken WHEN 1 THEN 'missing_field' || chr(31) || field
                                   ELSE 'wrong_type' || chr(31) || field || ' is ' || type END,
                       broken * 1000 + rule_no) AS verdict
        FROM field_checks WHERE broken IS NOT NULL
        GROUP BY shape
    ), shape_verdicts AS (
        SELECT shape, coalesce(t.verdict, f.verdict) AS verdict
        FROM type_verdicts t LEFT JOIN field_verdicts f USING (shape)
    ), judged AS (
        SELECT ord, raw_text, source_ref, stream,
               {_val("event_type")} AS et_text, {_val("event_id")} AS id_text,
               {_val("timestamp")} AS ts,
               TRY_CAST({_val("timestamp")} AS TIMESTAMP) AS event_time,
               CASE
                WHEN NOT parsed THEN 'unparsable' || chr(31)
                     || CASE WHEN raw_text IS NULL OR trim(raw_text) = '' THEN 'empty line'
                             ELSE 'not a JSON object' END
                WHEN v.verdict IS NOT NULL THEN v.verdict
                WHEN NOT regexp_full_match({_val("timestamp")}, '{TIMESTAMP_REGEX}')
                THEN 'wrong_type' || chr(31) || 'timestamp ' || {_val("timestamp")}
                {_minimum_checks()}
               END AS verdict
        FROM lines
        LEFT JOIN shape_verdicts v USING (shape)
    )
    SELECT ord, raw_text, source_ref, stream,
           CASE WHEN et_text IN ({known}) THEN et_text END AS event_type,
           et_text AS declared_type,
           id_text AS event_id,
           event_time,
           CASE WHEN verdict IS NULL AND (event_time IS NULL
                     OR event_time < TIMESTAMP '{EARLIEST}'
                     OR event_time > (now() AT TIME ZONE 'UTC')::TIMESTAMP
                                     + INTERVAL '{LATEST_AHEAD}')
                THEN 'impossible_value' ELSE split_part(verdict, chr(31), 1) END AS reason,
           CASE WHEN verdict IS NULL AND (event_time IS NULL
                     OR event_time < TIMESTAMP '{EARLIEST}'
                     OR event_time > (now() AT TIME ZONE 'UTC')::TIMESTAMP
                                     + INTERVAL '{LATEST_AHEAD}')
                THEN 'timestamp ' || ts ELSE nullif(split_part(verdict, chr(31), 2), '') END
               AS detail
    FROM judged
    """
