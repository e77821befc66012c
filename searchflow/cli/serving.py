"""What the long-running servers of the command line share (``serve``, ``dashboard``): their
``--port`` and ``--host`` options, the busy-port check and the printed address.

Both bind a port the user chose; a busy port must end as one line naming ``--port``, before any
server starts and fails with its own traceback.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import click

from searchflow.errors import UsageError


def port_option(default: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--port``, with the server's usual port as the default."""
    return click.option("--port", default=default, show_default=True, type=click.IntRange(1, 65535))


host_option = click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 serves other machines too.",
)


def check_port(host: str, port: int, what: str) -> None:
    """Refuse to serve ``what`` on ``host:port`` when the address cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"cannot serve {what} on {host}:{port} ({exc.strerror or exc}); "
                "pick another port with --port"
            ) from None


def shown_url(host: str, port: int) -> str:
    """The address to print: a local or wildcard bind is reached as localhost."""
    shown = "localhost" if host in {"127.0.0.1", "0.0.0.0"} else host
    return f"http://{shown}:{port}"
