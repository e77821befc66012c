"""redis-py's private socket, as searchflow.compat.redis reads it: fails when redis-py changes."""

from __future__ import annotations

import socket

import pytest
import redis

from searchflow.compat.redis import RedisInternalsChanged, raw_connection, socket_of


def test_a_connection_keeps_its_socket_in_the_private_attribute_we_read():
    connection = redis.Connection()
    assert hasattr(connection, "_sock"), "redis-py renamed Connection._sock"
    assert connection._sock is None


def test_the_socket_is_the_live_connection(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    connection, sock = raw_connection(client)
    try:
        assert isinstance(sock, socket.socket)
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"
    finally:
        connection.disconnect()
        client.close()
    assert connection._sock is None, "redis-py no longer clears _sock on disconnect"


def test_a_changed_redis_py_is_one_clear_error():
    class Changed:
        pass

    with pytest.raises(RedisInternalsChanged, match="update searchflow/compat/redis.py"):
        socket_of(Changed())
