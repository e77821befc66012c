"""searchflow.resp: the RESP encoder checked against redis-py's own byte for byte, and the bulk
connection against a real Redis."""

from __future__ import annotations

import pyarrow as pa
import pytest
import redis

from searchflow.resp import (
    RespConnection,
    argument,
    command,
    error_lines,
    header,
    reply_errors,
    wire,
)
from searchflow.sync.redis_sync import keys_of


def _redis_py(*args: str) -> bytes:
    return b"".join(redis.Connection().pack_command(*args))


def test_commands_match_redis_py_byte_for_byte():
    keys = ["reco:a", "reco:ünïcødé", "reco:with space", "reco:東京", "reco:"]
    values = ['{"x":"Zürich"}', "line\r\nbreak", "", "$5\r\nfake", "a" * 70_000]
    encoded = command("SET", pa.array(keys), pa.array(values), "PXAT", "1700000000000")
    expected = [
        _redis_py("SET", k, v, "PXAT", "1700000000000") for k, v in zip(keys, values, strict=True)
    ]
    assert [bytes(v.as_py(), "utf-8") for v in encoded] == expected
    assert bytes(wire(encoded)) == b"".join(expected)


def test_constants_only_between_columns():
    encoded = command("UNLINK", pa.array(["k1", "ключ"]))
    assert [v.as_py().encode() for v in encoded] == [
        _redis_py("UNLINK", "k1"),
        _redis_py("UNLINK", "ключ"),
    ]
    assert len(command("UNLINK", pa.array([], pa.string()))) == 0
    with pytest.raises(ValueError):
        command("PING")


def test_a_slice_of_arguments_under_one_header_is_one_command():
    keys = pa.array(["a", "bé", "c", "d"])
    args = argument(keys)
    assert header("MGET", 2) + bytes(wire(args.slice(1, 2))) == _redis_py("MGET", "bé", "c")


def test_wire_of_slices_chunks_and_large_strings():
    column = pa.array(["ab", "cde", "f"])
    assert bytes(wire(column.slice(1))) == b"cdef"
    assert bytes(wire(pa.chunked_array([["x"], ["yz"]]))) == b"xyz"
    assert bytes(wire(column.cast(pa.large_string()).slice(0, 2))) == b"abcde"
    assert bytes(wire(pa.array([], pa.string()))) == b""
    with pytest.raises(ValueError):
        wire(pa.array(["a", None]))


def test_keys_of_prefixes_user_ids_of_any_type():
    assert keys_of(pa.array(["u1", "ü"])).to_pylist() == ["reco:u1", "reco:ü"]
    assert keys_of(pa.chunked_array([[1, 2], [3]])).to_pylist() == ["reco:1", "reco:2", "reco:3"]
    assert keys_of(pa.array(["u1"]), "other:").to_pylist() == ["other:u1"]


def test_bulk_connection_round_trip(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    keys = pa.array([f"k{i}" for i in range(5000)])
    values = pa.array([f"v{i}" for i in range(5000)])
    with RespConnection(client) as conn:
        # Chunks produced while sending count as one stream of commands.
        chunks = (
            wire(command("SET", keys.slice(i, 1000), values.slice(i, 1000)))
            for i in range(0, 5000, 1000)
        )
        replies = conn.write(chunks, 5000)
        assert error_lines(replies, 5000) == []
        got = conn.request(header("MGET", 3) + bytes(wire(argument(keys.slice(10, 3)))), 1)
        assert got == [[b"v10", b"v11", b"v12"]]
        refused = conn.request(wire(command("INCR", keys.slice(0, 2))), 2)
        assert len(reply_errors(refused)) == 2
        lines = conn.write(wire(command("INCR", keys.slice(0, 1))), 1)
        assert error_lines(lines, 1) and "not an integer" in error_lines(lines, 1)[0]
    client.close()
