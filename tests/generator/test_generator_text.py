"""The vectorised text builders against Python's own formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

import generator.allocator
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


def test_generation_allocates_arrow_memory_from_mimalloc_where_arrow_has_it():
    """jemalloc, as pyarrow sets it up, gives every large buffer back to the kernel at once and
    faults it in again for the next part; mimalloc keeps it (generator/allocator.py)."""
    try:
        pa.mimalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow has no mimalloc")
    pa.set_memory_pool(pa.system_memory_pool())
    generator.allocator.reuse_freed_memory.cache_clear()
    generate(GeneratorConfig(events=100, seed=1))
    assert pa.default_memory_pool().backend_name == "mimalloc"


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


def test_record_lines_are_duckdbs_to_json_byte_for_byte():
    """The records' JSON from Arrow pieces equals DuckDB's to_json, nulls, amounts and times too;
    a string that needs escaping goes to DuckDB."""
    from generator.records import _duckdb_json_lines, json_lines, jsonl_bytes

    cents = [10000, 10, 256830, 123456789, -550, 0, 1205, 1]
    table = pa.table(
        {
            "id": pa.array([f"b{i}" for i in range(8)]),
            "user_id": pa.array(["u1", None, "São Paulo", "x/y", None, "a", "b", "c"]),
            "ok": pa.array([True, False, None, True, False, True, False, True]),
            "amount": pa.array([c / 100 for c in cents]).cast(pa.decimal128(12, 2)),
            "at": pa.array([0, 1, 10**15, None, 5, 6, 7, 8], pa.timestamp("us", tz="UTC")),
            "n": pa.array([1, 2, 3, None, 5, 6, 7, -8], pa.int64()),
        }
    )
    expected = _duckdb_json_lines(table)
    assert json_lines(table).equals(expected)
    assert (
        bytes(jsonl_bytes(table)) == "".join(f"{line}\n" for line in expected.to_pylist()).encode()
    )
    quoted = table.set_column(1, "user_id", pa.array(['say "hi"'] * 8))
    assert json_lines(quoted).equals(_duckdb_json_lines(quoted))
