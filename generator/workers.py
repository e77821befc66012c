"""Parts built on every core: worker processes build the parts of a batch, each writes its own
text into the batch's files, in place, in part order.

Threads would not do: most of a part's time is spent in short numpy and Arrow calls between
Python statements, so two threads of one interpreter take turns on the GIL. Workers are forked
from the process that holds the batch (its config, the user pool, the gate's judge, the open
temporary files), so nothing is pickled on the way in; what comes back is small (the part's byte
sizes, its counts and its judgement).

The order of the bytes in a file is the parts' order, whichever worker finishes first: a worker
reports its part's size per file, the parent hands out each file's offset in part order, and the
worker writes there (``os.pwrite``). Two parts are alive per worker at most (one being written,
none queued), so memory is the workers' count times one part.

A side task (the users' records) runs on the first free worker next to the parts, writing a file
of its own from its start.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from multiprocessing.connection import Connection, wait
from typing import Any

MAX_WORKERS = 4  # each holds one part: memory grows with the count, past the cores nothing does
Buffer = memoryview | bytes
Produce = Callable[[int], tuple[Mapping[str, Buffer], Any]]
Side = Callable[[], Iterator[tuple[str, Buffer]]]
UNPICKLABLE = "unpicklable"  # a value a worker could not send back: the parent makes it again


def worker_count(tasks: int) -> int:
    """How many processes to build ``tasks`` parts on: the cores this process may use, at most
    :data:`MAX_WORKERS`; 1 (build in this process) where a child process cannot be started."""
    if multiprocessing.current_process().daemon:  # a daemonic process may not have children
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS, tasks))


def write_all(fd: int, data: Buffer, offset: int) -> None:
    """Write every byte of ``data`` at ``offset`` (a large ``pwrite`` may write less)."""
    view = memoryview(data).cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def run_parts(
    count: int,
    produce: Produce,
    files: Mapping[str, int],
    redo: Callable[[int], Any],
    side: Side | None = None,
    workers: int | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> list[Any]:
    """``produce(i)`` of every part ``0..count-1``: its bytes per file (``files``: kind -> an
    open file descriptor), appended in part order, and a value; returns the values in part order.

    A value the worker cannot pickle (the gate keeps a failing part's tables in closures) is made
    again here by ``redo(i)``. ``side()`` yields ``(kind, bytes)`` chunks of files no part
    writes, appended in the order given. With one worker, everything runs in this process.

    ``meanwhile()`` runs on a thread of this process while the workers build, once they are
    forked (a fork copies no other thread): work the caller needs next, such as an import, is
    then off the stage's critical path. Its errors are ignored: the caller meets them again.
    """
    workers = worker_count(count + (side is not None)) if workers is None else workers
    if workers <= 1 or count == 0:
        return _inline(count, produce, files, side)
    values = _parallel(count, produce, files, side, workers, meanwhile)
    return [redo(i) if value == UNPICKLABLE else value for i, value in enumerate(values)]


def _inline(count: int, produce: Produce, files: Mapping[str, int], side: Side | None) -> list[Any]:
    if side is not None:
        _write_side(side, files)
    offsets = dict.fromkeys(files, 0)
    values = []
    for i in range(count):
        data, value = produce(i)
        for kind, chunk in data.items():
            write_all(files[kind], chunk, offsets[kind])
            offsets[kind] += len(chunk)
        values.append(value)
        del data
    return values


def _write_side(side: Side, files: Mapping[str, int]) -> None:
    offsets: dict[str, int] = {}
    for kind, chunk in side():
        at = offsets.get(kind, 0)
        write_all(files[kind], chunk, at)
        offsets[kind] = at + len(chunk)


def _parallel(
    count: int,
    produce: Produce,
    files: Mapping[str, int],
    side: Side | None,
    workers: int,
    meanwhile: Callable[[], object] | None,
) -> list[Any]:
    """The parent's side: tasks out to idle workers, offsets out in part order, values back."""
    context = multiprocessing.get_context("fork")
    tasks: deque[Any] = deque(range(count))
    if side is not None:
        tasks.appendleft("side")
    procs, conns = [], []
    helper: threading.Thread | None = None
    try:
        for _ in range(workers):
            parent, child = context.Pipe()
            proc = context.Process(
                target=_serve, args=(child, produce, side, files), name="generate-part"
            )
            proc.start()
            child.close()
            procs.append(proc)
            conns.append(parent)
        if meanwhile is not None:
            helper = threading.Thread(target=_quietly, args=(meanwhile,), daemon=True)
            helper.start()
        values: list[Any] = [None] * count
        sized: dict[int, tuple[Connection, dict[str, int]]] = {}
        offsets = dict.fromkeys(files, 0)
        next_part, idle, finished = 0, list(conns), 0
        busy: set[Connection] = set()
        while finished < count + (side is not None):
            while idle and tasks:
                conn = idle.pop()
                conn.send(tasks.popleft())
                busy.add(conn)
            for conn in wait(list(busy)):
                message = _receive(conn)
                if message[0] == "sized":
                    _, i, sizes, values[i] = message
                    sized[i] = (conn, sizes)
                    while next_part in sized:  # every earlier part has its place: this one too
                        owner, sizes = sized.pop(next_part)
                        owner.send(dict(offsets))
                        for kind, size in sizes.items():
                            offsets[kind] += size
                        next_part += 1
                else:  # "done": a part written or the side task finished
                    finished += 1
                    busy.discard(conn)
                    idle.append(conn)
        for conn in conns:
            conn.send(None)
        for proc in procs:
            proc.join()
        if helper is not None:
            helper.join()
        return values
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()
        for conn in conns:
            conn.close()


def _quietly(work: Callable[[], object]) -> None:
    with suppress(Exception):
        work()


def _receive(conn: Connection) -> tuple[Any, ...]:
    try:
        message = conn.recv()
    except EOFError:
        raise RuntimeError("a generation worker process died; see its output above") from None
    if message[0] == "error":
        raise message[1]
    return message


def _serve(conn: Connection, produce: Produce, side: Side | None, files: Mapping[str, int]) -> None:
    """A worker: build the parts it is sent, report their sizes, write them where it is told."""
    try:
        while (task := conn.recv()) is not None:
            if task == "side":
                assert side is not None
                _write_side(side, files)
                conn.send(("done",))
                continue
            data, value = produce(task)
            try:
                pickle.dumps(value)
            except (pickle.PicklingError, AttributeError, TypeError):
                value = UNPICKLABLE
            conn.send(("sized", task, {kind: len(chunk) for kind, chunk in data.items()}, value))
            offsets = conn.recv()
            for kind, chunk in data.items():
                write_all(files[kind], chunk, offsets[kind])
            del data
            conn.send(("done",))
    except KeyboardInterrupt:
        pass
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
        with suppress(Exception):
            try:
                conn.send(("error", exc))
            except (pickle.PicklingError, AttributeError, TypeError):
                conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
