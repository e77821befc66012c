"""Arrow arrays from what Redis hands back: lists of bytes."""

from __future__ import annotations

import pyarrow as pa


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
