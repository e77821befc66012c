"""Vectorised text building: JSON fragments as Arrow string arrays, never one Python str per event.

Fixed-width pieces (UUIDs, timestamps, zero-padded numbers and the constant JSON between them) are
laid out as one ``(n, width)`` byte matrix with numpy and handed to Arrow as a string array without
copying; variable pieces (categorical fragments, integers) come from Arrow's ``take`` and ``cast``;
``binary_join_element_wise`` glues them into lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from searchflow.arrays import string_bytes

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DIGIT0 = ord("0")
US_PER_DAY = 86_400_000_000

Piece = bytes | str | np.ndarray


# byte -> its two lowercase hex digits, as one uint16 (little-endian: first digit in the low byte)
_HEX_PAIRS = (
    np.array([[_HEX[b >> 4], _HEX[b & 0x0F]] for b in range(256)], dtype=np.uint8)
    .view(np.uint16)
    .reshape(-1)
)


def uuid_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random version-4 UUIDs as an ``(n, 36)`` byte matrix (8-4-4-4-12 hex)."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = _HEX_PAIRS[raw].view(np.uint8).reshape(n, 32)
    return compose(
        n, [hexed[:, 0:8], "-", hexed[:, 8:12], "-", hexed[:, 12:16], "-", hexed[:, 16:20], "-",
            hexed[:, 20:32]]
    )  # fmt: skip


_PAIRS = np.array([[_DIGIT0 + i // 10, _DIGIT0 + i % 10] for i in range(100)], dtype=np.uint8)
_PAIRS16 = _PAIRS.view(np.uint16).reshape(-1)


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers as zero-padded decimal, an ``(n, width)`` byte matrix.

    Two digits per step through a 100-entry lookup table (half the divisions of digit by digit).
    """
    values = np.asarray(values, dtype=np.int64)
    pairs = (width + 1) // 2
    out = np.empty((len(values), pairs), dtype=np.uint16)
    rest = values
    for k in range(pairs - 1, -1, -1):
        rest, low = np.divmod(rest, 100)
        out[:, k] = _PAIRS16[low]
    return out.view(np.uint8).reshape(len(values), 2 * pairs)[:, 2 * pairs - width :]


def civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day) of days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm)."""
    z = days.astype(np.int64) + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def timestamp_bytes(micros: np.ndarray) -> np.ndarray:
    """UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` of epoch microseconds, an ``(n, 27)`` byte matrix.

    Built from lookup tables rather than digit by digit: the ``YYYY-MM-DD`` of each day in the
    batch's span, ``HH:MM:SS`` of each second of a day and ``fff`` of 0-999, each row gathered
    whole, instead of dividing every timestamp digit by digit.
    """
    micros = np.asarray(micros, dtype=np.int64)
    n = len(micros)
    days = np.floor_divide(micros, US_PER_DAY)
    seconds, fraction = np.divmod(micros - days * US_PER_DAY, 1_000_000)
    first = int(days.min()) if n else 0
    span = int(days.max()) - first + 1 if n else 1
    if span <= max(n, 1):
        dates = take_rows(_date_bytes(np.arange(first, first + span)), days - first)
    else:  # few events over a very long span: a table per event is no larger
        dates = _date_bytes(days)
    millis, micro = np.divmod(fraction, 1000)
    return compose(
        n,
        [
            dates,
            "T",
            take_rows(_clock_table(), seconds),
            ".",
            take_rows(_three_digits(), millis),
            take_rows(_three_digits(), micro),
            "Z",
        ],
    )


def _date_bytes(days: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DD`` of days since 1970-01-01, an ``(n, 10)`` byte matrix."""
    year, month, day = civil_from_days(days)
    return compose(len(days), [digits(year, 4), "-", digits(month, 2), "-", digits(day, 2)])


@cache
def _clock_table() -> np.ndarray:
    """``HH:MM:SS`` of every second of a day, an ``(86400, 8)`` byte matrix (built once)."""
    hours, rest = np.divmod(np.arange(86_400), 3600)
    minutes, seconds = np.divmod(rest, 60)
    return compose(86_400, [digits(hours, 2), ":", digits(minutes, 2), ":", digits(seconds, 2)])


@cache
def _three_digits() -> np.ndarray:
    """``000`` to ``999``, a ``(1000, 3)`` byte matrix (built once)."""
    return digits(np.arange(1000), 3)


def compose(n: int, pieces: Sequence[Piece]) -> np.ndarray:
    """Lay constant strings and ``(n, w)`` byte matrices side by side into one ``(n, W)`` matrix."""
    blocks = [p.encode() if isinstance(p, str) else p for p in pieces]
    width = sum(len(b) if isinstance(b, bytes) else b.shape[1] for b in blocks)
    out = np.empty((n, width), dtype=np.uint8)
    at = 0
    for block in blocks:
        if isinstance(block, bytes):
            out[:, at : at + len(block)] = np.frombuffer(block, dtype=np.uint8)
            at += len(block)
        else:
            out[:, at : at + block.shape[1]] = block
            at += block.shape[1]
    return out


def fixed_strings(matrix: np.ndarray) -> pa.StringArray:
    """An ``(n, w)`` byte matrix as an Arrow string array of n strings of w bytes (zero-copy)."""
    n, width = matrix.shape
    if n * width >= 2**31:
        offsets = pa.py_buffer(np.arange(0, (n + 1) * width, width, dtype=np.int64))
        data = pa.py_buffer(np.ascontiguousarray(matrix))
        return pa.LargeStringArray.from_buffers(n, offsets, data).cast(pa.string())
    offsets = pa.py_buffer(np.arange(0, (n + 1) * width, width, dtype=np.int32))
    return pa.StringArray.from_buffers(n, offsets, pa.py_buffer(np.ascontiguousarray(matrix)))


def fragments(vocabulary: Sequence[str], index: np.ndarray) -> pa.Array:
    """``vocabulary[index]`` for every row, as Arrow strings (a gather, not a Python loop)."""
    return pa.array(vocabulary, type=pa.string()).take(pa.array(index, type=pa.int32()))


def integers(values: np.ndarray) -> pa.Array:
    """Integers as their decimal JSON text."""
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def money(cents: np.ndarray) -> pa.Array:
    """Amounts in cents as JSON numbers with exactly two decimals (``-12.05`` for -1205)."""
    cents = np.asarray(cents, dtype=np.int64)
    whole = integers(np.abs(cents) // 100)
    frac = fixed_strings(compose(len(cents), [".", digits(np.abs(cents) % 100, 2)]))
    text = join(whole, frac)
    negative = cents < 0
    if negative.any():
        text = pc.if_else(pa.array(negative), join("-", text), text)
    return text


def join(*pieces: pa.Array | str) -> pa.Array:
    """Row-wise concatenation of string arrays and constants."""
    return pc.binary_join_element_wise(*pieces, "")


def to_text_buffer(lines: pa.Array, terminator: str = "\n") -> memoryview:
    """All lines, each followed by ``terminator``, as one contiguous buffer (for a single write)."""
    if len(lines) == 0:
        return memoryview(b"")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    return string_bytes(join(lines, terminator))


def take_rows(matrix: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``matrix[index]`` for a byte matrix, moving each row as one item (much faster than 2-D)."""
    matrix = np.ascontiguousarray(matrix)
    width = matrix.shape[1]
    if width == 0 or len(matrix) == 0:
        return np.zeros((len(index), width), dtype=np.uint8)
    rows = matrix.view(f"V{width}").reshape(-1)
    return rows[index].view(np.uint8).reshape(len(index), width)


# --- records as JSON ---------------------------------------------------------------------------


def record_lines(table: pa.Table, end: str = "") -> pa.Array | None:
    """One JSON object per row, the columns in order, as DuckDB's ``to_json(struct_pack(...))``
    writes them (timestamps as UTC ``...ffffffZ`` strings, a 2-decimal amount as the shortest
    number that reads back the same: ``100.0``, ``2568.3``, ``12.05``).

    The row's text is laid out by Arrow gathers and one join, instead of a JSON encoder per row;
    the quotes of a string column without nulls ride in the constant pieces around it. Returns
    None when a column is of another type or a string needs escaping, for the caller to encode
    those rows another way.
    """
    pieces: list[pa.Array | str] = []
    before = "{"
    for i, name in enumerate(table.column_names):
        column = table.column(i).combine_chunks()
        quoted = _is_string(column.type) and not column.null_count
        value = column.cast(pa.string()) if quoted else _json_value(column)
        if value is None or (_is_string(column.type) and _needs_escape(column)):
            return None
        pieces += [f'{before}"{name}":' + ('"' if quoted else ""), value]
        before = '",' if quoted else ","
    if not pieces:
        return None
    close = ('"}' if before == '",' else "}") + end  # ``end`` after each object: "\n" for JSONL
    return join(*pieces, close) if table.num_rows else pa.array([], pa.string())


def _is_string(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _needs_escape(column: pa.Array) -> bool:
    """Whether any value holds what JSON escapes: a quote, a backslash or a control character."""
    width = np.int64 if pa.types.is_large_string(column.type) else np.int32
    offsets = np.frombuffer(column.buffers()[1], dtype=width)
    start, stop = int(offsets[column.offset]), int(offsets[column.offset + len(column)])
    data = column.buffers()[2]
    if data is None or stop == start:
        return False
    values = np.frombuffer(data, dtype=np.uint8)[start:stop]
    return bool(((values < 0x20) | (values == ord('"')) | (values == ord("\\"))).any())


def _json_value(column: pa.Array) -> pa.Array | None:
    """A column's values as JSON text (``null`` for a missing one), or None when not supported."""
    kind = column.type
    if _is_string(kind):
        text = join('"', column.cast(pa.string()), '"')
    elif pa.types.is_boolean(kind):
        text = pa.array(["false", "true"]).take(pc.cast(column, pa.int8()))
    elif pa.types.is_timestamp(kind) and kind.unit == "us":
        micros = column.cast(pa.int64()).fill_null(0).to_numpy()
        text = fixed_strings(compose(len(column), ['"', timestamp_bytes(micros), '"']))
    elif pa.types.is_decimal(kind) and kind.scale == 2 and kind.precision <= 18:
        words = np.frombuffer(column.buffers()[1], dtype="<i8")  # low word: the unscaled value
        text = _shortest_cents(words[2 * column.offset :: 2][: len(column)])
    elif pa.types.is_integer(kind):
        text = pc.cast(column, pa.string())
    else:
        return None
    if column.null_count:
        text = pc.if_else(pc.is_null(column), "null", text)
    return text


def _shortest_cents(cents: np.ndarray) -> pa.Array:
    """Cents as the shortest decimal that reads back the same: ``100.0``, ``2568.3``, ``12.05``."""
    whole = integers(np.abs(cents) // 100)
    rest = np.abs(cents) % 100
    two = fixed_strings(compose(len(cents), [".", digits(rest, 2)]))
    one = pc.utf8_slice_codeunits(two, 0, 2)  # a trailing zero dropped; ".0" stays
    text = join(whole, pc.if_else(pa.array(rest % 10 == 0), one, two))
    negative = cents < 0
    if negative.any():
        text = pc.if_else(pa.array(negative), join("-", text), text)
    return text
