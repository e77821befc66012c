"""A fork server: one interpreter that has imported Prefect and the flows, forked once per flow run.

A cold ``python -m prefect.engine`` spends seconds importing Prefect, pydantic and the flow's
modules before the run can even report Running; Prefect's process worker in 3.8 starts two such
interpreters per run (a workspace supervisor, then the engine). This server pays the imports once.
For each request from :mod:`deployments.forkclient` it forks; the child takes the request's
environment, working folder and stdin/stdout/stderr, starts a session of its own, refreshes
Prefect's settings and logging from that environment, and runs ``prefect.engine`` as ``__main__``,
the very code a cold start runs: pull steps, heartbeats, logs to the API, the control channel for
cancellation, deployment concurrency slots and the run's states all stay Prefect's.

Forking a process that runs threads can copy a lock in its held state into the child; so the server
preloads, checks that it still is single-threaded, and refuses to start otherwise (the clients then
start runs cold). It never talks to the API itself.

Protocol (a Unix socket): the client sends a 4-byte length, a JSON body ``{args, env, cwd}`` and its
three stdio descriptors; the server answers ``pid N`` once the run's process exists, then
``code N`` or ``signal N`` when it ends, or ``error TEXT`` when it could not fork. A client whose
connection closes before its run ended was killed: the server kills the run's process group.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import gc
import json
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployments import PROJECT_DIR
from deployments.forkclient import SOCKET_ENV

# Imported once, before the first fork: what ``python -m prefect.engine`` and the flows need.
PRELOAD: tuple[str, ...] = (
    "prefect",
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.flows",
    "prefect.deployments.steps",
    "prefect.client.orchestration",
    "prefect.events",
    "prefect.logging.handlers",
    "prefect.concurrency.sync",
    "deployments.steps",
    "deployments.logs",
    "flows.common",
    "flows.generate",
    "flows.ingest",
    "flows.transform",
    "flows.sync",
    "flows.sweep",
)
READY_LINE = "forkserver ready"
ENGINE = "prefect.engine"
REAP_SECONDS = 0.1
STALE_CHECK_SECONDS = 2.0
HEADER = struct.Struct("!I")
MAX_REQUEST = 16 * 1024 * 1024


class ForkServerError(RuntimeError):
    """The server cannot serve (a preload failed, or a thread is running)."""


def preload(modules: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import ``modules``; returns the ones that failed (a flow module with a broken import still
    fails in its run, with its own traceback in the run's logs)."""
    import importlib

    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # reported, not fatal: the run imports it again and says why
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    return failed


def check_single_threaded() -> None:
    """Raise unless this process runs only its main thread (safe to fork)."""
    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if others:
        raise ForkServerError(
            f"threads started while preloading ({', '.join(others)}); forking is not safe"
        )


def project_sources(folder: Path = PROJECT_DIR) -> dict[str, float]:
    """Modification time of every imported module file under ``folder`` (the project's)."""
    root = str(folder) + os.sep
    out: dict[str, float] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.startswith(root):
            with contextlib.suppress(OSError):
                out[path] = os.stat(path).st_mtime
    return out


def sources_changed(sources: dict[str, float]) -> bool:
    """True when a preloaded project file changed or went away: a fork would run old code."""
    for path, mtime in sources.items():
        try:
            if os.stat(path).st_mtime != mtime:
                return True
        except OSError:
            return True
    return False


@dataclass
class Run:
    """One forked run and the client connection that stands for it."""

    pid: int
    conn: socket.socket


def receive_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """Read one request: its JSON body and the descriptors passed with it."""
    fds = array.array("i")
    data, ancdata, _flags, _addr = conn.recvmsg(HEADER.size, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if len(data) < HEADER.size:
        data += _recv_exact(conn, HEADER.size - len(data))
    (length,) = HEADER.unpack(data)
    if length > MAX_REQUEST:
        raise ValueError(f"request of {length} bytes")
    body = json.loads(_recv_exact(conn, length))
    return body, list(fds)


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = conn.recv(left)
        if not chunk:
            raise ConnectionError("client closed the connection mid-request")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def run_child(
    request: dict[str, Any], fds: list[int], module: str = ENGINE, cold: bool = False
) -> int:
    """In the forked child: become ``python -m MODULE ARGS`` (``prefect.engine``) for this request;
    ``cold``: by ``exec`` (a fresh interpreter in this same process), when the preloaded code is
    stale."""
    import runpy

    os.setsid()
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [sys.argv[0], *request["args"]]
    if cold:
        os.execv(sys.executable, [sys.executable, "-m", module, *request["args"]])
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    sys.stdin = os.fdopen(0, "r", closefd=False)

    # The environment changed after Prefect read it at import: read it again (API URL,
    # heartbeat period, logging settings, the run's id for the run-log handler).
    if "prefect" in sys.modules:
        from prefect.context import refresh_global_settings_context
        from prefect.logging.configuration import setup_logging

        refresh_global_settings_context()
        # The handlers made at import belong to the server (the run-log file handler found no run
        # id then); Prefect keeps root handlers it takes for the user's, so drop them first.
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        setup_logging(incremental=False)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return _exit_code(exc.code)
    return 0


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _reply(conn: socket.socket, line: str) -> None:
    # a client that is gone is handled when its connection reports EOF
    with contextlib.suppress(OSError):
        conn.sendall(f"{line}\n".encode())


def _status(waitstatus: int) -> str:
    if os.WIFSIGNALED(waitstatus):
        return f"signal {os.WTERMSIG(waitstatus)}"
    return f"code {os.waitstatus_to_exitcode(waitstatus)}"


def _kill_run(pid: int) -> None:
    for send in (os.killpg, os.kill):
        try:
            send(pid, signal.SIGKILL)
            return
        except (ProcessLookupError, PermissionError):
            continue


class ForkServer:
    """Accepts run requests on a Unix socket and forks one child per request."""

    def __init__(
        self,
        path: Path,
        module: str = ENGINE,
        parent: int | None = None,
        watch: Path = PROJECT_DIR,
    ) -> None:
        self.path = path
        self.module = module
        self.pid = os.getpid()
        # the worker that started the server: the server ends when it is gone
        self.parent = os.getppid() if parent is None else parent
        self.runs: dict[int, Run] = {}  # by the client connection's fd
        self.stopping = False
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.selector = selectors.DefaultSelector()
        self.sources = project_sources(watch)
        self.stale = False

    def listen(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        self.listener.bind(str(self.path))
        self.path.chmod(0o600)
        self.listener.listen(64)
        self.selector.register(self.listener, selectors.EVENT_READ)

    def serve(self) -> int | None:
        """Serve until SIGTERM or until the worker that started the server is gone; returns an
        exit code in a forked child (it ran a flow run)."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        checked = time.monotonic()
        while not self.stopping and os.getppid() == self.parent:
            if self.stale and not self.runs:
                return None  # retired, and its last run ended
            if not self.stale and time.monotonic() - checked >= STALE_CHECK_SECONDS:
                self._check_sources()
                checked = time.monotonic()
            for key, _ in self.selector.select(REAP_SECONDS):
                if key.fileobj is self.listener:
                    code = self._accept()
                    if code is not None:
                        return code
                else:
                    self._client_closed(key.fileobj)  # a client sends nothing after its request
            self._reap()
        return None

    def _check_sources(self) -> None:
        """Retire once a preloaded project file changed: stop listening and free the socket's
        path (the worker starts a fresh server there), serve the runs already forked to their
        end, then exit. A request already accepted starts cold (``exec`` in the child)."""
        if self.stale or not sources_changed(self.sources):
            return
        self.stale = True
        self.selector.unregister(self.listener)
        self.listener.close()
        self.path.unlink(missing_ok=True)
        print(
            "forkserver: the project's code changed since it was imported; a fresh server "
            "takes over",
            file=sys.stderr,
            flush=True,
        )

    def _stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def _accept(self) -> int | None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return None
        try:
            conn.settimeout(5.0)
            request, fds = receive_request(conn)
        except (OSError, ValueError) as exc:
            _reply(conn, f"error bad request: {exc}")
            conn.close()
            return None
        self._check_sources()
        try:
            pid = os.fork()
        except OSError as exc:
            _reply(conn, f"error fork failed: {exc}")
            conn.close()
            for fd in fds:
                os.close(fd)
            return None
        if pid == 0:  # the child: leave the server behind
            self.selector.close()
            self.listener.close()
            conn.close()
            for run in self.runs.values():
                run.conn.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            return run_child(request, fds, self.module, cold=self.stale)
        for fd in fds:
            os.close(fd)
        conn.settimeout(None)
        self.runs[conn.fileno()] = Run(pid=pid, conn=conn)
        self.selector.register(conn, selectors.EVENT_READ)
        _reply(conn, f"pid {pid}")
        return None

    def _client_closed(self, conn: Any) -> None:
        run = self.runs.pop(conn.fileno(), None)
        self.selector.unregister(conn)
        conn.close()
        if run is not None:
            _kill_run(run.pid)

    def _reap(self) -> None:
        while True:
            try:
                pid, waitstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for fd, run in list(self.runs.items()):
                if run.pid == pid:
                    _reply(run.conn, _status(waitstatus))
                    self.selector.unregister(run.conn)
                    run.conn.close()
                    del self.runs[fd]

    def close(self) -> None:
        if os.getpid() != self.pid:
            return
        self.selector.close()
        if not self.stale:  # a retired server's path may be its successor's by now
            self.listener.close()
            self.path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m deployments.forkserver --socket PATH``: preload, then serve until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m deployments.forkserver", description=main.__doc__
    )
    parser.add_argument("--socket", type=Path, required=True)
    # what each child runs as __main__; another module only in tests
    parser.add_argument("--module", default=ENGINE)
    parser.add_argument("--no-preload", action="store_true", help="import nothing up front (tests)")
    parser.add_argument("--preload", action="append", default=[], help="import this too (tests)")
    parser.add_argument("--watch", type=Path, default=PROJECT_DIR, help="code folder (tests)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    parent = os.getppid()
    failed = (
        preload(tuple(args.preload)) if args.no_preload else preload(PRELOAD + tuple(args.preload))
    )
    for failure in failed:
        print(f"forkserver: preloading {failure}", file=sys.stderr, flush=True)
    check_single_threaded()
    gc.collect()
    gc.freeze()  # the preloaded objects stay shared with every child (no refcount-driven copies)
    server = ForkServer(args.socket, args.module, parent, args.watch)
    server.listen()
    print(f"{READY_LINE} in {time.perf_counter() - started:.1f} s on {args.socket}", flush=True)
    try:
        code = server.serve()
    finally:
        server.close()
    if code is not None:  # a forked run ends here, through the interpreter's normal exit
        sys.stdout.flush()
        sys.stderr.flush()
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["SOCKET_ENV", "ForkServer", "main"]
