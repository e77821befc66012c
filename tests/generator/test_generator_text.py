"""The vectorised text builders against Python's own formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from generator import GeneratorConfig, generate
from generator.text import fixed_strings, timestamp_bytes

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _python(micros: np.ndarray) -> list[str]:
    return [
        (EPOCH + timedelta(microseconds=int(m))).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for m in micros
    ]


@pytest.mark.parametrize(
    "micros",
    [
        # a month of events, the usual batch (the per-day table path)
        np.sort(
            np.random.default_rng(1).integers(1_735_689_600_000_000, 1_738_281_600_000_000, 5000)
        ),
        # a few events centuries apart, leap days and the epoch's edges (the per-event path)
        np.array([0, 951_782_400_000_000, 4_107_542_399_999_999, -1, 86_399_999_999, 1]),
        np.array([], dtype=np.int64),
    ],
    ids=["month", "far-apart", "empty"],
)
def test_timestamps_match_python(micros):
    text = fixed_strings(timestamp_bytes(micros)).to_pylist() if len(micros) else []
    assert text == _python(micros)


def test_generation_uses_jemalloc_where_arrow_has_it():
    """Arrow's default allocator here (mimalloc) stalls on huge-page faults; see prefer_jemalloc."""
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow has no jemalloc")
    generate(GeneratorConfig(events=100, seed=1))
    assert pa.default_memory_pool().backend_name == "jemalloc"


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_string_bytes_is_the_rows_back_to_back(kind):
    from searchflow.arrays import string_bytes

    column = pa.array(["ab", "", "cdé", "f"], kind)
    assert bytes(string_bytes(column)) == "abcdéf".encode()
    assert bytes(string_bytes(column.slice(1, 2))) == "cdé".encode()
    chunked = pa.chunked_array([column.slice(0, 2), column.slice(2)])
    assert bytes(string_bytes(chunked)) == "abcdéf".encode()
    assert bytes(string_bytes(column.slice(0, 0))) == b""
    with pytest.raises(ValueError, match="NULL"):
        string_bytes(pa.array(["a", None]))
