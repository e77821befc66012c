"""Fault injection: malformed, duplicated and late events, and the emission order.

Every well-formed event is emitted once at its own timestamp, except:

late (``late_rate`` of the well-formed events)
    emitted after a delay (bulk: 10 min to 24 h; live: 2 s to 2 min) but keeping its original
    timestamp, so events with later timestamps reach the sink first.
duplicate (``duplicate_rate`` x events extra lines)
    a byte-identical re-send of a well-formed event, emitted a little later (bulk: 1 s to 6 h).
malformed (``malformed_rate`` x events extra lines)
    a copy of a random well-formed event with a fresh ``event_id``, broken in exactly one way and
    emitted in the stream (file, Redis stream, ``app.events.event_type``) of that event's type.
    The five classes are produced in equal shares; :data:`MALFORMED_CLASSES` is also the
    ``reason`` a dead letter carries:

    ``unparsable``
        not JSON: the line cut short (after 30 or 90 characters, or without its closing brace).
    ``missing_field``
        valid JSON without one required field (``event_id``, ``timestamp``, ``session_id`` or a
        type-specific key: search ``query``/``destination``, click
        ``search_event_id``/``result_price``, conversion ``click_event_id``/``booking_value``).
    ``wrong_type``
        a field with the wrong JSON type: the number ``results_count`` / ``result_price`` /
        ``booking_value`` written as a string (``"42"``), or ``timestamp`` as an epoch number.
    ``unknown_event_type``
        ``event_type`` is ``pageview``, ``serach`` or ``booking_cancelled``.
    ``impossible_value``
        a negative ``results_count`` (search), ``result_price`` (click) or ``booking_value``
        (conversion).

:func:`classify` states the validation rules these classes break; it is the reference (and the
tests' oracle) for what the ingestion stage must dead-letter, written per line for clarity, not
for speed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from generator.config import GeneratorConfig
from generator.simulate import HOUR, MINUTE, SECOND, Simulation
from generator.text import fixed_strings, join, take_rows, uuid_bytes
from searchflow.events import (
    EVENT_TYPES,
    LIMITS,
    MALFORMED_CLASSES,
    MINIMUMS,
    NULLABLE_FIELDS,
    REQUIRED_FIELDS,
    TIMESTAMP_PATTERN,
)

FAULT_STREAM = 4

# How each class is made, per event type: (regex, replacement) variants applied to the line.
_MISSING = {
    "search": ["event_id", "timestamp", "session_id", "query", "destination"],
    "click": ["event_id", "timestamp", "session_id", "search_event_id", "result_price"],
    "conversion": ["event_id", "timestamp", "session_id", "click_event_id", "booking_value"],
}
_NUMBER_FIELD = {"search": "results_count", "click": "result_price", "conversion": "booking_value"}
_UNKNOWN_TYPES = ("pageview", "serach", "booking_cancelled")


def _missing_rule(event_type: str, name: str) -> tuple[str, str]:
    if name == "event_id":  # the first key: take the comma after it
        return r'"event_id":"[^"]*",', ""
    if name in _NUMBER_FIELD.values():
        return rf',"{name}":-?[0-9.]+', ""
    return rf',"{name}":"[^"]*"', ""


def _rules(reason: str, event_type: str) -> list[tuple[str, str] | int]:
    """The variants of one class for one type: a regex rule, or a cut length for unparsable."""
    if reason == "unparsable":
        return [30, 90, -1]
    if reason == "missing_field":
        return [_missing_rule(event_type, f) for f in _MISSING[event_type]]
    if reason == "wrong_type":
        number = _NUMBER_FIELD[event_type]
        return [
            (rf'"{number}":(-?[0-9.]+)', rf'"{number}":"\1"'),
            (r'"timestamp":"[^"]*"', '"timestamp":1735689600'),
        ]
    if reason == "unknown_event_type":
        return [(f'"event_type":"{event_type}"', f'"event_type":"{t}"') for t in _UNKNOWN_TYPES]
    if reason == "impossible_value":
        number = _NUMBER_FIELD[event_type]
        return [(f'"{number}":', f'"{number}":-')]
    raise ValueError(f"unknown malformed class {reason!r}")


def _break(lines: pa.Array, rule: tuple[str, str] | int) -> pa.Array:
    if isinstance(rule, int):
        return pc.utf8_slice_codeunits(lines, 0, rule)
    pattern, replacement = rule
    return pc.replace_substring_regex(lines, pattern, replacement, max_replacements=1)


@dataclass
class Emission:
    """Every line to emit, in emission order, and what it is.

    ``meta`` columns: ``stream`` (event type whose file / Redis stream / ``app.events`` type gets
    the line), ``event_id``, ``timestamp`` (the event's own time), ``emitted_at`` (when it is
    sent), ``fault`` (``none``, ``late``, ``duplicate`` or ``malformed``), ``reason`` (malformed
    class, else null). The line texts stay in per-stream pools (well-formed lines, then malformed
    ones) and are gathered on demand, so a batch without faults never copies its text. The pools
    themselves are built on first use (``make_pools``): the meta and the counts need no text.
    """

    meta: pa.Table
    stream_code: np.ndarray  # per emitted row, index into EVENT_TYPES
    pool_index: np.ndarray  # per emitted row, index into its stream's pool
    _pools: dict[str, pa.Array] | None = None
    make_pools: Callable[[], dict[str, pa.Array]] | None = field(default=None, repr=False)

    @property
    def pools(self) -> dict[str, pa.Array]:
        if self._pools is None:
            assert self.make_pools is not None
            self._pools = self.make_pools()
        return self._pools

    def lines(self, event_type: str) -> pa.Array:
        """The lines of one stream, in emission order."""
        pool = self.pools[event_type]
        index = self.pool_index[self.stream_code == EVENT_TYPES.index(event_type)]
        if len(index) == len(pool) and np.array_equal(index, np.arange(len(pool))):
            return pool
        return pool.take(pa.array(index, pa.int64()))

    def in_pool_order(self, event_type: str, size: int) -> bool:
        """Whether the stream sends exactly its first ``size`` pool lines in pool order (no fault
        touched it): its lines are then the simulation's, and its pools need not be built."""
        index = self.pool_index[self.stream_code == EVENT_TYPES.index(event_type)]
        return len(index) == size and np.array_equal(index, np.arange(size))

    def all_lines(self) -> pa.Array:
        """Every line in global emission order (all streams interleaved)."""
        per_stream = [self.lines(t) for t in EVENT_TYPES]
        sizes = [len(a) for a in per_stream]
        position = np.empty(len(self.stream_code), np.int64)
        base = 0
        for code, size in enumerate(sizes):
            rows = np.flatnonzero(self.stream_code == code)
            position[rows] = base + np.arange(size)
            base += size
        return pa.concat_arrays(per_stream).take(pa.array(position))


@dataclass
class _Sends:
    """A group of emitted lines before the global ordering: which stream and clean line each
    copies, its timestamp, when it is sent, its fault code and malformed class (-1: none)."""

    stream: np.ndarray
    local: np.ndarray
    ids: np.ndarray  # (n, 36) event ids
    timestamp: np.ndarray
    emitted: np.ndarray
    fault: np.ndarray  # 0 none, 1 late, 2 duplicate, 3 malformed
    reason: np.ndarray


def plan(config: GeneratorConfig, sim: Simulation) -> Emission:
    """Decide which events are late, duplicated or malformed, and the order everything is sent in.

    One generator drawn from in a fixed order (late, duplicates, malformed): the same config
    always plans the same emission.
    """
    rng = np.random.default_rng([config.seed, FAULT_STREAM, *config.salt])
    counts = [sim.count(t) for t in EVENT_TYPES]
    if sum(counts) == 0 and (config.n_duplicates or config.n_malformed):
        from searchflow.errors import UsageError

        raise UsageError(
            "the fault rates leave no well-formed event to copy; lower --malformed-rate / "
            "--duplicate-rate or raise --events"
        )
    clean = _clean_sends(rng, config, sim, counts)
    duplicates = _duplicate_sends(rng, config, clean)
    malformed, make_pools = _malformed_sends(rng, config, sim, clean, counts)
    return _in_emission_order(clean, duplicates, malformed, make_pools)


def _clean_sends(
    rng: np.random.Generator, config: GeneratorConfig, sim: Simulation, counts: list[int]
) -> _Sends:
    """Every well-formed event once, at its timestamp; the late ones sent after a delay (the
    timestamp in the line is untouched)."""
    n_clean = sum(counts)
    stream = np.repeat(np.arange(len(EVENT_TYPES), dtype=np.int8), counts)
    local = np.concatenate([np.arange(c) for c in counts])  # row within its stream's clean lines
    ts = np.concatenate([sim.timestamps(t) for t in EVENT_TYPES])
    emitted = ts.copy()
    fault = np.zeros(n_clean, np.int8)
    n_late = round(config.late_rate * n_clean)
    late = rng.choice(n_clean, n_late, replace=False) if n_late else np.zeros(0, np.int64)
    low, high = (2 * SECOND, 2 * MINUTE) if config.live else (10 * MINUTE, 24 * HOUR)
    emitted[late] += rng.integers(low, high, len(late))
    fault[late] = 1
    ids = np.concatenate([sim.ids[t] for t in EVENT_TYPES])
    return _Sends(stream, local, ids, ts, emitted, fault, np.full(n_clean, -1))


def _duplicate_sends(rng: np.random.Generator, config: GeneratorConfig, clean: _Sends) -> _Sends:
    """Re-sends of random well-formed events: the very same bytes, a little later."""
    n_clean, n_dup = len(clean.timestamp), config.n_duplicates
    src = rng.choice(n_clean, n_dup, replace=n_dup > n_clean) if n_dup else np.zeros(0, int)
    low, high = (1 * SECOND, 1 * MINUTE) if config.live else (1 * SECOND, 6 * HOUR)
    emitted = clean.emitted[src] + rng.integers(low, high, n_dup)
    return _Sends(
        clean.stream[src],
        clean.local[src],
        take_rows(clean.ids, src),
        clean.timestamp[src],
        emitted,
        np.full(n_dup, 2, np.int8),
        np.full(n_dup, -1),
    )


def _malformed_sends(
    rng: np.random.Generator,
    config: GeneratorConfig,
    sim: Simulation,
    clean: _Sends,
    counts: list[int],
) -> tuple[_Sends, Callable[[], dict[str, pa.Array]]]:
    """Copies of random events with a fresh id, broken in one way, and how to build each stream's
    line pool (its clean lines, then its malformed ones); every draw is made here, the text later."""
    n_mal = config.n_malformed
    template = rng.choice(len(clean.timestamp), n_mal) if n_mal else np.zeros(0, int)
    reasons = rng.permutation(np.arange(n_mal) % len(MALFORMED_CLASSES))
    variant_seed = rng.integers(0, 1 << 30, n_mal)
    new_ids = uuid_bytes(rng, n_mal)
    low, high = (0, 5 * SECOND) if config.live else (0, 10 * MINUTE)
    emitted = clean.emitted[template] + rng.integers(low, high + 1, n_mal)
    stream = clean.stream[template]
    local = np.zeros(n_mal, np.int64)
    for code in range(len(EVENT_TYPES)):
        mine = np.flatnonzero(stream == code)
        local[mine] = counts[code] + np.arange(len(mine))
    template_local = clean.local[template]

    def make_pools() -> dict[str, pa.Array]:
        pools: dict[str, pa.Array] = {}
        for code, event_type in enumerate(EVENT_TYPES):
            mine = np.flatnonzero(stream == code)
            lines = sim.lines(event_type)
            if len(mine):
                broken = _malformed_lines(
                    lines,
                    code,
                    template_local[mine],
                    reasons[mine],
                    variant_seed[mine],
                    new_ids[mine],
                )
                pools[event_type] = pa.concat_arrays([lines, broken])
            else:
                pools[event_type] = lines
        return pools

    sends = _Sends(
        stream,
        local,
        new_ids,
        clean.timestamp[template],
        emitted,
        np.full(n_mal, 3, np.int8),
        reasons,
    )
    return sends, make_pools


def _in_emission_order(
    clean: _Sends,
    duplicates: _Sends,
    malformed: _Sends,
    make_pools: Callable[[], dict[str, pa.Array]],
) -> Emission:
    """All sends sorted by emission time (ties: clean, then duplicates, then malformed, each in
    its own order), with the per-line truth as an Arrow table."""
    groups = (clean, duplicates, malformed)

    def column(name: str) -> np.ndarray:
        return np.concatenate([getattr(g, name) for g in groups])

    stream, local, emitted = column("stream"), column("local"), column("emitted")
    order = np.lexsort((np.arange(len(emitted)), emitted))
    reason = column("reason")[order]
    meta = pa.table(
        {
            "stream": pa.array(list(EVENT_TYPES), pa.string()).take(
                pa.array(stream[order].astype(np.int32))
            ),
            "event_id": fixed_strings(take_rows(column("ids"), order)),
            "timestamp": pa.array(column("timestamp")[order], pa.timestamp("us", tz="UTC")),
            "emitted_at": pa.array(emitted[order], pa.timestamp("us", tz="UTC")),
            "fault": pa.array(["none", "late", "duplicate", "malformed"], pa.string()).take(
                pa.array(column("fault")[order].astype(np.int32))
            ),
            "reason": pa.array(list(MALFORMED_CLASSES), pa.string()).take(
                pa.array(reason, pa.int32(), mask=reason < 0)
            ),
        }
    )
    return Emission(meta, stream[order], local[order], make_pools=make_pools)


def _malformed_lines(
    lines: pa.Array,
    code: int,
    template: np.ndarray,
    reasons: np.ndarray,
    variant_seed: np.ndarray,
    new_ids: np.ndarray,
) -> pa.Array:
    """Break copies of one stream's template lines, one group (class x variant) at a time."""
    n = len(template)
    event_type = EVENT_TYPES[code]
    base = lines.take(pa.array(template, pa.int64()))
    # A fresh event id: every line starts with '{"event_id":"' + 36 characters.
    base = join('{"event_id":"', fixed_strings(new_ids), pc.utf8_slice_codeunits(base, 49))
    parts: list[pa.Array] = []
    positions: list[np.ndarray] = []
    for r, reason in enumerate(MALFORMED_CLASSES):
        rules = _rules(reason, event_type)
        variant = variant_seed % len(rules)
        for v, rule in enumerate(rules):
            rows = np.flatnonzero((reasons == r) & (variant == v))
            if len(rows):
                parts.append(_break(base.take(pa.array(rows, pa.int64())), rule))
                positions.append(rows)
    where = np.concatenate(positions)
    inverse = np.empty(n, np.int64)
    inverse[where] = np.arange(n)
    return pa.concat_arrays(parts).take(pa.array(inverse))


def classify(text: str, stream: str | None = None) -> str | None:
    """The malformed class of one line, or None when it is a well-formed event.

    Checked in this order: ``unparsable`` (not a JSON object), ``unknown_event_type``
    (``event_type`` present but not search/click/conversion), ``missing_field`` (a required field
    absent or null, or an empty ``event_id``), ``wrong_type`` (a field of the wrong JSON type, or
    a timestamp not in ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``), ``impossible_value`` (outside
    :data:`MINIMUMS` and :data:`LIMITS`, or NaN).
    ``stream`` is unused by the rules (an event is judged by its own ``event_type``).
    """
    try:
        event: Any = json.loads(text)
    except ValueError:
        return "unparsable"
    if not isinstance(event, dict):
        return "unparsable"
    event_type = event.get("event_type")
    if event_type is not None and event_type not in REQUIRED_FIELDS:
        return "unknown_event_type"
    if event_type is None:
        return "missing_field"
    required = REQUIRED_FIELDS[event_type]
    if any(event.get(name) is None for name in required) or event["event_id"] == "":
        return "missing_field"
    for name, kind in {**required, **NULLABLE_FIELDS}.items():
        value = event.get(name)
        if value is not None and not _is_kind(value, kind):
            return "wrong_type"
    for name, minimum in MINIMUMS[event_type].items():
        if not minimum <= event[name] < LIMITS[event_type][name]:  # NaN too
            return "impossible_value"
    return None


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "timestamp":
        return isinstance(value, str) and TIMESTAMP_PATTERN.match(value) is not None
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    raise ValueError(kind)
