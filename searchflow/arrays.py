"""Arrow helpers: the allocator Arrow uses here, and arrays from what Redis hands back."""

from __future__ import annotations

from contextlib import suppress
from functools import cache

import pyarrow as pa


@cache
def prefer_jemalloc() -> None:
    """Make jemalloc Arrow's allocator for this process, where this pyarrow has it.

    pyarrow's default on Linux is mimalloc, which asks the kernel for transparent huge pages; with
    the kernel's ``defrag=madvise`` setting the first touch of each one can stall on compaction.
    Generating 1M events spent 1.5 s in the kernel with mimalloc against 0.5 s with jemalloc (wall
    2.4 s against 1.4 s). Called by the stages that build large Arrow arrays (generation, the
    syncs, the Redis stream reader); runs once per process. Without jemalloc in this pyarrow build,
    Arrow keeps its default allocator: slower here, but correct.
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
