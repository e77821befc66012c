"""Lines of a text file that DuckDB's CSV reader cannot be trusted with, split in bounded blocks.

DuckDB's CSV reader (the fast path, :mod:`searchflow.ingest.jsonl`) ends a line at a bare ``\\r``
and counts ``\\r\\n`` as two line ends, cuts a line at a NUL (its column delimiter here), and
stops the whole read at a line that is not UTF-8 or is longer than its maximum. A file with any
of those is split here instead: lines end at ``\\n`` only (a ``\\r`` before it is dropped, one
inside a line stays: it is JSON whitespace), so line numbers are those of an editor, and a line
that cannot be parsed as text gets a ``problem`` (the validation's verdict) instead of stopping
the others. Memory stays bounded: blocks of :data:`BLOCK_BYTES`, and of an over-long line only
its first :data:`KEPT_BYTES` are held.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from searchflow.events import MAX_LINE_BYTES

BLOCK_BYTES = 16 << 20
KEPT_BYTES = 64 << 10  # of a line over MAX_LINE_BYTES, what its dead letter keeps
SEP = "\x1f"  # between a problem's reason and its detail (validate.SEP)
NEWLINE = 10


def too_large(size: int) -> str:
    """The verdict of a line (entry, payload) over :data:`MAX_LINE_BYTES`."""
    return (
        f"unparsable{SEP}a line of {size:,} bytes, over the limit of {MAX_LINE_BYTES:,}; "
        f"its first {KEPT_BYTES:,} bytes kept"
    )


def not_utf8(raw: bytes) -> str:
    """The verdict of bytes that are not UTF-8, naming the first bad byte's offset."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"unparsable{SEP}not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}"
    raise ValueError("the bytes are UTF-8")


def judge_bytes(items: list[bytes | None]) -> tuple[pa.Array, pa.Array]:
    """Raw lines as Arrow text and problems: over-long or non-UTF-8 ones get a problem, and
    their text is what a dead letter keeps (a prefix; U+FFFD for undecodable bytes)."""
    problems: list[str | None] = [None] * len(items)
    texts = list(items)
    for i, raw in enumerate(items):
        if raw is not None and len(raw) > MAX_LINE_BYTES:
            problems[i] = too_large(len(raw))
            texts[i] = raw[:KEPT_BYTES]
    try:
        strings = pa.array(texts, pa.string())  # checked as UTF-8 in C
    except pa.ArrowInvalid:
        for i, raw in enumerate(texts):
            if raw is None or problems[i] is not None:
                continue
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                problems[i] = not_utf8(raw)
        strings = pa.array(
            [None if t is None else t.decode("utf-8", "replace") for t in texts], pa.string()
        )
    return strings, pa.array(problems, pa.string())


def _block_table(data: bytes, ends: np.ndarray, first_line: int) -> pa.Table:
    """The lines of ``data`` ending at ``ends`` (offsets of their newlines, or of the end).

    Vectorised: one Arrow array over the block's bytes, each line with its line end, checked as
    UTF-8 and right-trimmed of ``\r\n`` in C; only a block holding a bad line goes line by line.
    """
    n = len(ends)
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    offsets[1:] = np.minimum(ends + 1, len(data))
    lengths = np.diff(offsets)
    raw = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    lines = None
    if lengths.max(initial=0) <= MAX_LINE_BYTES:
        try:
            lines = raw.cast(pa.large_string())
            problems = pa.nulls(n, pa.string())
        except pa.ArrowInvalid:
            lines = None
    if lines is None:  # a bad line in the block: judge each
        lines, problems = judge_bytes([item.rstrip(b"\r\n") for item in raw.to_pylist()])
    return pa.table(
        {
            "ln": pa.array(np.arange(first_line, first_line + n), pa.int64()),
            "line": pc.utf8_rtrim(lines, characters="\r\n"),
            "problem": problems,
        }
    )


def read_lines(path: Path, skip: int = 0) -> Iterator[pa.Table]:
    """Tables ``(ln, line, problem)`` of the lines of ``path`` after line ``skip``, block by block.

    An empty line is an empty string (not an event; the caller skips it, it still counts in the
    numbering). A last line without a newline is included.
    """
    line = 1
    pending = b""  # the start of a line not ended yet
    long: tuple[bytes, int] | None = None  # (first bytes, size) of an over-long line not ended
    with path.open("rb") as handle:
        while True:
            block = handle.read(BLOCK_BYTES)
            eof = not block
            if long is not None:
                nl = block.find(b"\n")
                if nl < 0 and not eof:
                    long = (long[0], long[1] + len(block))
                    continue
                if line > skip:
                    yield _long_table(line, long[0], long[1] + (nl if nl >= 0 else 0))
                line += 1
                long = None
                if eof:
                    return
                block = block[nl + 1 :]
            data = pending + block if pending else block
            pending = b""
            ends = np.flatnonzero(np.frombuffer(data, np.uint8) == NEWLINE)
            cut = int(ends[-1]) + 1 if len(ends) else 0
            rest = data[cut:]
            if eof and rest:
                ends = np.append(ends, len(data))
                rest = b""
            if len(ends):
                first = line
                line += len(ends)
                if line - 1 > skip:
                    yield _block_table(data, ends, first).slice(max(0, skip - first + 1))
            if eof:
                return
            if len(rest) > MAX_LINE_BYTES:
                long = (rest[:KEPT_BYTES], len(rest))
            else:
                pending = rest


def _long_table(line: int, head: bytes, size: int) -> pa.Table:
    """The one-row table of a line over :data:`MAX_LINE_BYTES` that spanned blocks."""
    return pa.table(
        {
            "ln": pa.array([line], pa.int64()),
            "line": pa.array([head.decode("utf-8", "replace")], pa.large_string()),
            "problem": pa.array([too_large(size)], pa.string()),
        }
    )
