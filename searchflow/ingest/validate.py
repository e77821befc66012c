"""Validation of raw lines, in SQL: one pass classifies every line as an event or a dead letter.

The rules are the event contract (:mod:`searchflow.events`, docs/architecture.md) and agree line
for line with the generator's reference :func:`generator.faults.classify` (a test holds them
together). A line is judged in this order, the first broken rule naming its malformed class (the
dead letter's ``reason``; ``detail`` says what exactly):

``unparsable``
    not a JSON object: cut short, not JSON at all, an array, an empty line, a trailing comma
    (DuckDB's parser accepts one, JSON does not), a NUL byte; or refused before parsing by its
    reader (the input's ``problem`` column): longer than ``MAX_LINE_BYTES``, not UTF-8.
``unknown_event_type``
    ``event_type`` present but not search / click / conversion (a number counts as unknown).
``missing_field``
    ``event_type`` or a field the type requires absent or null, or an empty ``event_id`` (it would
    make every other event without an id its "duplicate").
``wrong_type``
    a field of the wrong JSON type (``"42"`` for a number, an epoch number for the timestamp), or a
    timestamp not written ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``.
``impossible_value``
    a number outside what the typed models hold (below its minimum, at or above its limit, NaN or
    infinite), or a timestamp that is well written but is no real instant (month 13) or is absurd
    (before 1970, or more than a year after the ingest).

Why SQL and not Python: DuckDB parses the lines vectorised. Each line's text is parsed three
times and no more (parsing is most of the cost): ``TRY_CAST(... AS JSON)`` tells valid JSON and
*is* the payload the raw table stores (no second cast when landing); ``json_transform`` reads the
values the rules compare (ids, type, timestamp, numbers with bounds); ``json_type`` with the
declared type's own list of paths reads the JSON kinds of the fields that type's rules look at. A
line whose kinds are all well formed (one conjunction of comparisons per type) needs only its
value rules; the rest go through a CASE that names the first broken rule.

Known divergence from the reference: an object with a repeated key is judged on the first
occurrence (yyjson), where Python's ``json.loads`` keeps the last.
"""

from __future__ import annotations

from searchflow.events import (
    LIMITS,
    MINIMUMS,
    NULLABLE_FIELDS,
    REQUIRED_FIELDS,
    TIMESTAMP_REGEX,
)
from searchflow.warehouse import EVENT_TYPES

LEADING_BRACE = r"^\s*\{"
# A comma before a closing brace or bracket (JSON whitespace between), and a JSON string literal:
# a trailing comma is the first pattern in the text once the second is blanked out.
TRAILING_COMMA = r",[ \t\n\r]*[}\]]"
STRING_LITERAL = r'"(?:[^"\\]|\\.)*"'
# A well-written timestamp outside [EARLIEST, ingest time + LATEST_AHEAD] is impossible_value.
EARLIEST = "1970-01-01"
LATEST_AHEAD = "366 days"
SEP = "chr(31)"  # between a verdict's reason and its detail


# JSON kinds -> the json_type() names that satisfy them.
KIND_TYPES: dict[str, tuple[str, ...]] = {
    "string": ("VARCHAR",),
    "timestamp": ("VARCHAR",),  # and the pattern
    "integer": ("BIGINT", "UBIGINT"),
    "number": ("BIGINT", "UBIGINT", "DOUBLE"),
    "object": ("OBJECT",),
}
# Per declared type, the fields its rules look at, event_type first: one json_type() call with
# this list of paths reads all their kinds (a line declaring no known type: event_type only).
TYPE_FIELDS: dict[str, list[str]] = {
    event_type: ["event_type", *(n for n in {**fields, **NULLABLE_FIELDS} if n != "event_type")]
    for event_type, fields in REQUIRED_FIELDS.items()
}
# Values read per line (one json_transform): the three texts every line needs, then the
# fields with bounds as DOUBLE. Only trusted once their kinds passed.
VALUE_FIELDS: dict[str, str] = {
    "event_id": "VARCHAR",
    "event_type": "VARCHAR",
    "timestamp": "VARCHAR",
    **{name: "DOUBLE" for minimums in MINIMUMS.values() for name in minimums},
}


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _t(name: str, event_type: str | None = None) -> str:
    """The json_type() of a rule field on a line declaring ``event_type`` (NULL when absent,
    'NULL' for a JSON null)."""
    fields = TYPE_FIELDS[event_type] if event_type else ["event_type"]
    return f"types[{fields.index(name) + 1}]"


def _v(name: str) -> str:
    return f"v_{name}"


def _number(value: float) -> str:
    """A bound as a person writes it: 2147483648, 1e+16."""
    return str(int(value)) if value < 1e15 and float(value).is_integer() else f"{value:g}"


def _verdict(reason: str, detail: str) -> str:
    return f"{_q(reason)} || {SEP} || {detail}"


# --- the rules, as CASE branches ------------------------------------------------------------


def _empty_id_sql() -> str:
    """The CASE branch for an empty event_id (after the absent and null fields)."""
    return f"WHEN {_v('event_id')} = '' THEN {_verdict('missing_field', _q('event_id is empty'))}"


def _badly_written_sql(name: str) -> str:
    """The CASE branch for a timestamp field not written ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    badly_written = _verdict("wrong_type", f"{_q(name + ' ')} || {_v(name)}")
    return f"WHEN NOT regexp_full_match({_v(name)}, '{TIMESTAMP_REGEX}') THEN {badly_written}"


def _out_of_bounds_sql(event_type: str) -> list[str]:
    """The CASE branches for the numbers of ``event_type`` the typed models cannot hold.

    ``NOT (v >= low AND v < limit)`` is also true for NaN (DuckDB orders NaN above everything).
    """
    branches = []
    for name, low in MINIMUMS[event_type].items():
        limit = LIMITS[event_type][name]
        v = _v(name)
        detail = (
            f"{_q(name + ' ')} || CASE WHEN isnan({v}) THEN 'NaN is not a number' "
            f"WHEN {v} < {low} THEN {v} || {_q(f' below {low:g}')} "
            f"ELSE {v} || {_q(f' not below {_number(limit)}')} END"
        )
        branches.append(
            f"WHEN NOT ({v} >= {low} AND {v} < {limit}) THEN {_verdict('impossible_value', detail)}"
        )
    return branches


def _type_verdict_sql(event_type: str) -> str:
    """The first broken rule of a line declaring ``event_type``, as a CASE (NULL: none broken).

    Same order as the reference: a required field absent, null or (the id) empty, then a field of
    the wrong kind (dict order, the timestamp's pattern at its place), then a value out of bounds.
    """
    required = REQUIRED_FIELDS[event_type]
    branches: list[str] = []
    for name in required:
        if name != "event_type":
            t = _t(name, event_type)
            branches.append(
                f"WHEN {t} IS NULL OR {t} = 'NULL' THEN {_verdict('missing_field', _q(name))}"
            )
    branches.append(_empty_id_sql())
    for name, kind in {**required, **NULLABLE_FIELDS}.items():
        if name == "event_type":
            continue
        t = _t(name, event_type)
        allowed = ", ".join(map(_q, KIND_TYPES[kind]))
        wrong = _verdict("wrong_type", f"{_q(name + ' is ')} || {t}")
        branches.append(f"WHEN {t} <> 'NULL' AND {t} NOT IN ({allowed}) THEN {wrong}")
        if kind == "timestamp":
            branches.append(_badly_written_sql(name))
    branches.extend(_out_of_bounds_sql(event_type))
    return "CASE " + "\n                     ".join(branches) + " END"


def _line_checks_sql(event_type: str) -> str:
    """The rules that depend on values, for a line whose kinds are all right (see _kinds_ok_sql)."""
    branches = [
        _empty_id_sql(),
        _badly_written_sql("timestamp"),
        *_out_of_bounds_sql(event_type),
    ]
    return "CASE " + " ".join(branches) + " END"


def _kinds_ok_sql(event_type: str) -> str:
    """TRUE when every rule field of a line declaring ``event_type`` has a well-formed kind.

    Such a line (nearly all of them) needs only its value rules; the others go through the full
    CASE, which names the broken rule. Plain comparisons on the kinds list: cheaper than an
    equality join of the list against every well-formed combination.
    """
    required = REQUIRED_FIELDS[event_type]
    checks: list[str] = []
    for name in TYPE_FIELDS[event_type]:
        t = _t(name, event_type)
        allowed = KIND_TYPES[required.get(name) or NULLABLE_FIELDS[name]]
        test = f"{t} IN ({', '.join(map(_q, allowed))})"
        checks.append(test if name in required else f"({t} IS NULL OR {t} = 'NULL' OR {test})")
    return " AND ".join(checks)


def _unparsable_sql() -> str:
    """The detail of a line that is not a JSON object (``payload`` NULL, no reader's problem)."""
    return f"""'unparsable' || {SEP}
                     || CASE WHEN raw_text IS NULL OR trim(raw_text) = '' THEN 'empty line'
                             WHEN trailing_comma THEN 'a trailing comma'
                             WHEN contains(raw_text, chr(0)) THEN 'a NUL byte in the line'
                             ELSE 'not a JSON object' END"""


# --- the stages of the query, one CTE each ----------------------------------------------------


def _parse_sql(input_relation: str) -> str:
    """``objects``: each line's payload, when it is a JSON object without a trailing comma.

    A line the reader already refused (``problem``) is not parsed. The trailing-comma test runs
    its exact form (string literals blanked out) only on the lines its plain pattern matches: a
    CASE, so DuckDB evaluates the costly branch on those rows alone, on the line's text (not the
    JSON value, which would be cast back to text).
    """
    return f"""
    cast_ AS (
        SELECT ord, raw_text, source_ref, stream, problem,
               CASE WHEN problem IS NULL THEN TRY_CAST(raw_text AS JSON) END AS j
        FROM {input_relation}
    ), commas AS (
        SELECT *,
               CASE WHEN j IS NOT NULL AND regexp_matches(raw_text, '{TRAILING_COMMA}')
                    THEN regexp_matches(regexp_replace(raw_text, '{STRING_LITERAL}', '""', 'g'),
                                        '{TRAILING_COMMA}')
                    ELSE false END AS trailing_comma
        FROM cast_
    ), objects AS (
        -- a JSON object: valid JSON whose first non-blank character is a brace
        SELECT ord, raw_text, source_ref, stream, problem, trailing_comma,
               CASE WHEN NOT trailing_comma
                         AND (starts_with(j, '{{') OR regexp_matches(j, '{LEADING_BRACE}'))
                    THEN j END AS payload
        FROM commas
    )"""


def _values_sql() -> str:
    """``values_``: the values the rules compare, one json_transform per line."""
    structure = "{" + ", ".join(f'"{name}": "{kind}"' for name, kind in VALUE_FIELDS.items()) + "}"
    value_cols = ", ".join(f"vals.{name} AS {_v(name)}" for name in VALUE_FIELDS)
    return f"""
    valued AS (
        SELECT ord, source_ref, stream, problem, trailing_comma, payload,
               CASE WHEN payload IS NULL THEN raw_text END AS raw_text,
               CASE WHEN payload IS NOT NULL THEN json_transform(payload, {_q(structure)}) END
                   AS vals
        FROM objects
    ), values_ AS (
        SELECT ord, source_ref, stream, problem, trailing_comma, payload, raw_text, {value_cols}
        FROM valued
    )"""


def _kinds_sql() -> str:
    """``fields``: the JSON kinds of the fields the declared type's rules look at.

    A lenient transform never turns a non-string into 'search', so a known v_event_type was a
    JSON string.
    """
    kinds = "\n                    ".join(
        f"WHEN {_q(t)} THEN json_type(payload, [{', '.join(_q('$.' + n) for n in fields)}])"
        for t, fields in TYPE_FIELDS.items()
    )
    return f"""
    fields AS (
        SELECT *,
               CASE WHEN payload IS NOT NULL THEN CASE {_v("event_type")}
                    {kinds}
                    ELSE json_type(payload, ['$.event_type']) END END AS types
        FROM values_
    )"""


def _judge_sql() -> str:
    """``judged``: the first broken rule of each line (``reason || chr(31) || detail``)."""
    known = ", ".join(_q(t) for t in EVENT_TYPES)
    line_checks = "\n                    ".join(
        f"WHEN {_q(t)} THEN {_line_checks_sql(t)}" for t in EVENT_TYPES
    )
    kinds_ok = "\n                    ".join(
        f"WHEN {_q(t)} THEN {_kinds_ok_sql(t)}" for t in EVENT_TYPES
    )
    per_type = "\n                ".join(
        f"WHEN {_v('event_type')} = {_q(t)} THEN {_type_verdict_sql(t)}" for t in EVENT_TYPES
    )
    return f"""
    judged AS (
        SELECT f.*,
               TRY_CAST({_v("timestamp")} AS TIMESTAMP) AS event_time,
               CASE
                WHEN {_v("event_type")} IN ({known}) AND CASE {_v("event_type")}
                    {kinds_ok} END THEN CASE {_v("event_type")}
                    {line_checks} END
                WHEN problem IS NOT NULL THEN problem
                WHEN payload IS NULL THEN {_unparsable_sql()}
                WHEN types[1] IS NULL OR types[1] = 'NULL'
                THEN {_verdict("missing_field", "'event_type'")}
                WHEN types[1] <> 'VARCHAR' OR {_v("event_type")} NOT IN ({known})
                THEN {_verdict("unknown_event_type", f"'event_type ' || {_v('event_type')}")}
                {per_type}
               END AS verdict
        FROM fields f
    )"""


def _output_sql() -> str:
    """The classified lines: the verdict split, and the timestamp's range rule applied."""
    known = ", ".join(_q(t) for t in EVENT_TYPES)
    absurd = f"""verdict IS NULL AND (event_time IS NULL
                     OR event_time < TIMESTAMP '{EARLIEST}'
                     OR event_time > (now() AT TIME ZONE 'UTC')::TIMESTAMP
                                     + INTERVAL '{LATEST_AHEAD}')"""
    return f"""
    SELECT ord, source_ref, stream, payload, raw_text,
           CASE WHEN {_v("event_type")} IN ({known}) THEN {_v("event_type")} END AS event_type,
           {_v("event_type")} AS declared_type,
           {_v("event_id")} AS event_id,
           event_time,
           CASE WHEN {absurd}
                THEN 'impossible_value' ELSE split_part(verdict, {SEP}, 1) END AS reason,
           CASE WHEN {absurd}
                THEN 'timestamp ' || {_v("timestamp")}
                ELSE nullif(split_part(verdict, {SEP}, 2), '') END AS detail
    FROM judged
    """


def classify_sql(input_relation: str) -> str:
    """SELECT that classifies every row of ``input_relation``.

    Input columns: ``ord`` (order in the chunk, BIGINT), ``raw_text`` (VARCHAR, may be NULL for
    an empty line), ``source_ref``, ``stream`` (the type of the file / stream / app row it came
    from, a hint only: an event is judged by its own ``event_type``) and ``problem`` (NULL, or the
    verdict ``reason || chr(31) || detail`` of a line its reader refused before parsing).

    Output columns: ``ord, source_ref, stream``, ``payload`` (the line as JSON, for a line that is
    a JSON object), ``raw_text`` (the line, only when it is not: the text lives in one column or the
    other, never copied twice; ``coalesce(payload::VARCHAR, raw_text)`` is always the line),
    ``event_type`` (the declared type when it is a known one), ``declared_type`` (whatever string
    the line declared), ``event_id``, ``event_time`` (UTC TIMESTAMP), ``reason`` (NULL for a
    well-formed event) and ``detail``.

    The rules are plain column comparisons in one CASE per event type, generated from the
    contract's tables; nothing joins, nothing is grouped.
    """
    return (
        "WITH"
        + ",".join((_parse_sql(input_relation), _values_sql(), _kinds_sql(), _judge_sql()))
        + _output_sql()
    )
