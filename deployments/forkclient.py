"""The command a fork-server worker runs for each flow run: hand the run to the fork server, stand
in for it until it ends.

Prefect's process worker starts one process per flow run and watches it: its pid is the run's
infrastructure pid, its exit code says whether the run crashed, and cancellation signals it. This
script is that process. It starts in a few tens of milliseconds because it imports nothing but the
standard library (it runs as a file, with ``python -S``, never as part of the ``deployments``
package), sends its argv, environment, working folder and stdin/stdout/stderr to the fork server
(:mod:`deployments.forkserver`), which forks an already-imported interpreter into
``python -m prefect.engine`` for the run, and then:

- passes every termination signal it receives on to the run's process group;
- exits as the run's process exits (the same code, or killed by the same signal).

When no fork server answers (none configured, not started yet, or gone), it becomes
``python -m prefect.engine`` itself (``exec``): the run starts cold, as with Prefect's own worker,
but it starts.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import signal
import socket
import struct
import sys

SOCKET_ENV = "SEARCHFLOW_FORKSERVER_SOCKET"
# Signals passed on to the run; SIGKILL cannot be caught: the fork server sees this process's
# connection close and kills the run itself.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)
CONNECT_TIMEOUT = 5.0


def cold_start(args: list[str]) -> None:
    """Become ``python -m prefect.engine ARGS`` (the path Prefect's own worker takes)."""
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *args])


def send_request(sock: socket.socket, args: list[str]) -> None:
    """One length-prefixed JSON request, with this process's stdio as passed descriptors."""
    body = json.dumps({"args": args, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    fds = array.array("i", [0, 1, 2])
    sock.sendmsg(
        [struct.pack("!I", len(body)), body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)]
    )


def read_lines(sock: socket.socket):
    """The server's replies, one line at a time, until it closes the connection."""
    buffer = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except InterruptedError:
            continue
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode()


def wait_for_pid_exit(pid: int) -> None:
    """Poll until ``pid`` is gone (it is not our child, so we cannot wait on it)."""
    import time

    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        time.sleep(0.5)


def finish(status: str) -> None:
    """Exit as the run exited: ``code N`` or ``signal N``."""
    kind, _, value = status.partition(" ")
    number = int(value)
    if kind == "signal":
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
        sys.exit(128 + number)
    sys.exit(number)


def main(args: list[str]) -> None:
    path = os.environ.get(SOCKET_ENV)
    if not path:
        cold_start(args)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect(path)
        send_request(sock, args)
    except OSError:
        sock.close()
        cold_start(args)
    sock.settimeout(None)
    child: list[int] = []
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not child:
            pending.append(signum)
            return
        for send in (os.killpg, os.kill):  # the run leads its own session; else just the process
            with contextlib.suppress(ProcessLookupError, PermissionError):
                send(child[0], signum)
                return

    for signum in FORWARDED:
        signal.signal(signum, forward)
    for line in read_lines(sock):
        if line.startswith("pid "):
            child.append(int(line[4:]))
            for signum in pending:
                forward(signum, None)
        elif line.startswith(("code ", "signal ")):
            finish(line)
        elif line.startswith("error ") and not child:
            print(f"fork server: {line[6:]}; starting the run cold", file=sys.stderr, flush=True)
            sock.close()
            for signum in FORWARDED:
                signal.signal(signum, signal.SIG_DFL)
            cold_start(args)
    # The server went away before the run ended: wait for the run, whose end is unknown here (its
    # state is on the API; the crash-detection automation covers a run that died silently).
    if child:
        wait_for_pid_exit(child[0])
    sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
