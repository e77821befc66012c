"""Arrow helpers: the allocator Arrow uses here, arrays from what Redis hands back, and a string
column's bytes as one buffer for a socket or a file."""

from __future__ import annotations

from contextlib import suppress
from functools import cache

import numpy as np
import pyarrow as pa


@cache
def prefer_jemalloc() -> None:
    """Make jemalloc Arrow's allocator for this process, where this pyarrow has it.

    pyarrow's default on Linux is mimalloc, which asks the kernel for transparent huge pages; with
    the kernel's ``defrag=madvise`` setting the first touch of each one can stall on compaction,
    where generation once spent most of its kernel time. Called by the syncs and the Redis stream
    reader; runs once per process. (Generation builds part after part of the same size and uses
    mimalloc, which reuses their pages, where jemalloc faulted each one in again: see
    generator/allocator.py.) Without jemalloc in this pyarrow build, Arrow keeps its
    default allocator: slower here, but correct.
    """
    with suppress(NotImplementedError):  # this pyarrow was built without jemalloc
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def utf8_strings(items: list[bytes | None]) -> pa.Array:
    """Bytes (None for missing) as an Arrow string array, checked as UTF-8 in C.

    Invalid UTF-8 is decoded with replacement characters (the only case that costs Python per
    item), so the text stays readable and later checks can judge it.
    """
    try:
        return pa.array(items, pa.string())
    except pa.ArrowInvalid:
        return pa.array(
            [v.decode("utf-8", "replace") if v is not None else None for v in items], pa.string()
        )


def string_bytes(column: pa.Array | pa.ChunkedArray) -> memoryview:
    """A string column's values back to back, as a view of its Arrow data buffer (no copy).

    An Arrow string column stores its values one after the other in one data buffer, so a column
    whose rows are already terminated lines (JSONL) or RESP-encoded commands is, byte for byte,
    what goes to the file or the socket: one ``write``/``sendall`` of this view, no Python object
    per row. Both offset widths (``string`` and ``large_string``) are read as they are. A NULL row
    has no bytes to send, so it is refused rather than silently dropped.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise ValueError("a string column with NULL rows has no byte form; fill them first")
    if len(column) == 0:
        return memoryview(b"")
    width = np.int64 if pa.types.is_large_string(column.type) else np.int32
    offsets = np.frombuffer(column.buffers()[1], dtype=width)
    start = int(offsets[column.offset])
    stop = int(offsets[column.offset + len(column)])
    return memoryview(column.buffers()[2])[start:stop]
