"""redis-py's private members, used by the bulk RESP paths (:mod:`searchflow.resp`).

redis-py builds a Python object per command and parses each reply in Python; the bulk paths
(the generator's XADDs, the recommendations sync's MGET/SET/UNLINK) send pre-encoded commands
straight down a connection's socket instead and parse the replies with hiredis. redis-py has no
public accessor for a connection's socket, so this module is the one place that reads
``Connection._sock``; ``tests/compat/test_redis.py`` fails if that stops working.
"""

from __future__ import annotations

import socket
from typing import Any


class RedisInternalsChanged(RuntimeError):
    """redis-py no longer looks the way :mod:`searchflow.compat.redis` expects."""


def socket_of(connection: Any) -> socket.socket:
    """The connected socket of a redis-py connection (its private ``_sock``).

    Whoever writes to it owns the connection from then on: redis-py must not read or reuse it,
    so callers take a connection of their own from the pool (:func:`raw_connection`) and
    disconnect it when done.
    """
    sock = getattr(connection, "_sock", None)
    if not isinstance(sock, socket.socket):
        raise RedisInternalsChanged(
            f"redis-py's connection has no socket in _sock (found {type(sock).__name__}); "
            "this redis-py release changed its internals: update searchflow/compat/redis.py"
        )
    return sock


def raw_connection(client: Any) -> tuple[Any, socket.socket]:
    """A new, connected connection from ``client``'s pool, outside the pool, and its socket.

    The connection is not handed back to the pool: call its ``disconnect()`` when done.
    """
    connection = client.connection_pool.make_connection()
    connection.connect()
    try:
        return connection, socket_of(connection)
    except BaseException:
        connection.disconnect()
        raise
