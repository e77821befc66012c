"""The RESP encoder the Redis sync writes with, checked against redis-py's own (no server needed)."""

from __future__ import annotations

import pyarrow as pa
import redis

from searchflow.sync.redis_sync import keys_of, resp


def _redis_py(*args: str) -> bytes:
    return b"".join(redis.Connection().pack_command(*args))


def test_commands_match_redis_py_byte_for_byte():
    keys = ["reco:a", "reco:ünïcødé", "reco:with space", "reco:東京", "reco:"]
    values = ['{"x":"Zürich"}', "line\r\nbreak", "", "$5\r\nfake", "a" * 70_000]
    encoded = resp("SET", pa.array(keys), pa.array(values), "PXAT", "1700000000000")
    expected = [
        _redis_py("SET", k, v, "PXAT", "1700000000000") for k, v in zip(keys, values, strict=True)
    ]
    assert [bytes(v.as_py(), "utf-8") for v in encoded] == expected


def test_constants_only_between_columns():
    encoded = resp("UNLINK", pa.array(["k1", "ключ"]))
    assert [v.as_py().encode() for v in encoded] == [
        _redis_py("UNLINK", "k1"),
        _redis_py("UNLINK", "ключ"),
    ]
    assert len(resp("UNLINK", pa.array([], pa.string()))) == 0


def test_keys_of_prefixes_user_ids_of_any_type():
    assert keys_of(pa.array(["u1", "ü"])).to_pylist() == ["reco:u1", "reco:ü"]
    assert keys_of(pa.chunked_array([[1, 2], [3]])).to_pylist() == ["reco:1", "reco:2", "reco:3"]
