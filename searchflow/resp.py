"""Redis' wire protocol (RESP) encoded column-wise by Arrow, and a connection that sends it in bulk.

redis-py builds a Python command object per command and parses each reply in Python, which caps a
pipeline at the speed of the Python loop. The bulk paths (the generator's XADDs, the
recommendations sync's MGET/SET/PEXPIREAT/UNLINK/SADD) instead encode every command of a batch as
one Arrow string column in C (:func:`command`), whose data buffer *is* the byte stream to send
(:func:`wire`), and send it down one connection while a reader thread takes the replies
(:class:`RespConnection`): no Python per command, no round trip per chunk.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from contextlib import suppress
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from searchflow.arrays import string_bytes
from searchflow.compat.redis import raw_connection

CRLF = "\r\n"
SEND_BYTES = 4 << 20  # bytes per sendall: a bounded slice of a large buffer
RECV_BYTES = 1 << 20

Payload = bytes | memoryview | Iterable[bytes | memoryview]


def argument(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each value as one RESP bulk string, ``$<bytes>\\r\\n<value>\\r\\n``."""
    return pc.binary_join_element_wise(*_argument_pieces(values), "")


def _argument_pieces(values: pa.Array | pa.ChunkedArray) -> list:
    return ["$", pc.cast(pc.binary_length(values), pa.string()), CRLF, values, CRLF]


def header(name: str, arguments: int) -> bytes:
    """The start of a command with ``arguments`` arguments after its ``name`` (they follow as
    :func:`argument` bytes): how one MGET, UNLINK or SADD takes a slice of a whole column."""
    return f"*{arguments + 1}{CRLF}${len(name.encode())}{CRLF}{name}{CRLF}".encode()


def command(*parts: str | pa.Array | pa.ChunkedArray) -> pa.Array:
    """One RESP command per row, its arguments constants or string columns, built by Arrow in C.

    ``command("SET", keys, values, "PXAT", "1700000000000")`` is the column of
    ``*5\\r\\n$3\\r\\nSET\\r\\n$<n>\\r\\n<key>\\r\\n...``; :func:`wire` of it is the bytes to send.
    """
    pieces: list = [f"*{len(parts)}{CRLF}"]
    for part in parts:
        if isinstance(part, str):
            pieces.append(f"${len(part.encode())}{CRLF}{part}{CRLF}")
        else:
            pieces.extend(_argument_pieces(part))
    merged: list = []  # adjacent constants joined: fewer inputs to the kernel
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    if len(merged) == 1:  # constants only: one command per row of nothing is no command
        raise ValueError("a RESP command column needs at least one column argument")
    return pc.binary_join_element_wise(*merged, "")


# A column of RESP commands or arguments, sent as is: its Arrow data buffer is the byte stream.
wire = string_bytes


def error_lines(replies: bytes, count: int) -> list[str]:
    """The error messages among ``count`` one-line replies (only error replies contain a dash)."""
    if b"-" not in replies:
        return []
    lines = replies.split(b"\r\n")[:count]
    return [line[1:].decode("utf-8", "replace") for line in lines if line[:1] == b"-"]


def reply_errors(replies: list) -> list[str]:
    """The error messages among parsed replies (:meth:`RespConnection.request`)."""
    import hiredis

    return [str(r) for r in replies if isinstance(r, hiredis.ReplyError)]


class RespConnection:
    """One connection of its own from a redis-py client's pool, driven with pre-encoded RESP.

    Commands go out with ``sendall`` while a reader thread takes the replies, so the socket is
    full duplex: Redis executes the first commands while the last are still being sent. The
    connection is never handed back to the pool (redis-py did not see what was sent on it).
    """

    def __init__(self, client: Any) -> None:
        self._conn, self.sock = raw_connection(client)

    def close(self) -> None:
        self._conn.disconnect()

    def __enter__(self) -> RespConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send_all(self, payload: Payload, reader: threading.Thread) -> None:
        """Write ``payload`` (bytes, or chunks produced while sending) as ``reader`` takes replies.

        If writing fails (or producing the next chunk does), the socket is shut so the reader
        stops waiting for replies that will never come; the connection is not reused.
        """
        chunks = [payload] if isinstance(payload, bytes | memoryview) else payload
        reader.start()
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                for start in range(0, len(view), SEND_BYTES):
                    self.sock.sendall(view[start : start + SEND_BYTES])
        except BaseException:
            with suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            raise
        finally:
            reader.join()

    def request(self, payload: Payload, count: int) -> list:
        """Send ``count`` commands and return their ``count`` replies, parsed by hiredis.

        Error replies come back as ``hiredis.ReplyError`` values in the list
        (:func:`reply_errors`), not raised: the caller decides what a refusal means.
        """
        import hiredis

        replies: list = []
        failure: list[BaseException] = []

        def read() -> None:
            parser = hiredis.Reader()
            try:
                while len(replies) < count:
                    data = self.sock.recv(RECV_BYTES)
                    if not data:
                        raise ConnectionError("Redis closed the connection during a bulk read")
                    parser.feed(data)
                    while (reply := parser.gets()) is not False:
                        replies.append(reply)
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)

        if not count:
            return []
        self._send_all(payload, threading.Thread(target=read, daemon=True))
        if failure:
            raise failure[0]
        return replies

    def write(self, payload: Payload, count: int) -> bytes:
        """Send ``count`` commands whose replies are one line each; return the raw reply bytes.

        Counting newlines in C is all the parsing these need (``+OK``, ``:1``, ``-ERR ...``);
        :func:`error_lines` picks out the refusals.
        """
        chunks: list[bytes] = []
        failure: list[BaseException] = []

        def read() -> None:
            lines = 0
            try:
                while lines < count:
                    data = self.sock.recv(RECV_BYTES)
                    if not data:
                        raise ConnectionError("Redis closed the connection during a bulk write")
                    chunks.append(data)
                    lines += data.count(b"\n")
            except BaseException as exc:
                failure.append(exc)

        if not count:
            return b""
        self._send_all(payload, threading.Thread(target=read, daemon=True))
        if failure:
            raise failure[0]
        return b"".join(chunks)
