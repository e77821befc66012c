"""A batch above ``PART_EVENTS`` events, simulated and written in parts, one part at a time.

A batch's memory is what one part needs, whatever the batch's size: each part is a simulation of
the batch's whole range with its own share of the events and faults
(:meth:`GeneratorConfig.part_configs`), its own random streams (salted with the part number) and
the batch's user pool. Its lines are appended to the batch's files (streams, ``app.events``)
after the previous part's, so a file is the parts one after the other, each in emission order.

Two passes, both streaming:

survey (:meth:`PartedBatch.survey`, :meth:`PartedBatch.counts`)
    Simulates every part without its text: its counts, and what the generation gate makes of its
    clean tables (the gate adds the parts' figures up and judges the whole batch before any sink
    sees a line).
write (:meth:`PartedBatch.write_parts`)
    Simulates every part again with its text and appends it to the sink; the next part is built
    on a second core while the current one is written. For the JSONL sink the gated path stages
    the files during the survey instead (:meth:`PartedBatch.stage`): one pass, the files renamed
    into place once the gate passed, removed when it held the batch. JSONL files are written to locked
    temporary names and renamed into place at the end (never half a batch under the real name);
    the free disk space is checked before the first byte.

The same arguments give the same bytes: the parts, their seeds and their order depend on the
arguments alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from generator.batch import GeneratedBatch
from generator.config import GeneratorConfig, PartConfig
from generator.faults import MALFORMED_CLASSES, plan
from generator.records import booking_records, json_lines, jsonl_bytes, user_records
from generator.simulate import build_users, simulate, user_json, user_names
from generator.workers import run_parts
from searchflow.config import Settings
from searchflow.contract import RECORD_TYPES
from searchflow.errors import SearchflowError
from searchflow.events import EVENT_TYPES

# Bytes of JSONL per event (faults included) and per user's change records, a little above what
# a 10M-event, 1M-user batch wrote: what the free-space check asks for.
BYTES_PER_EVENT = 400
BYTES_PER_USER = 350
RECORD_CHUNK = 250_000  # user change records turned into JSON at a time
T = TypeVar("T")


def build_part(batch_id: str, config: PartConfig) -> GeneratedBatch:
    """One part: simulated and planned, its text built on first use."""
    sim = simulate(config)
    return GeneratedBatch(batch_id, config, sim, plan(config, sim))


class PartedBatch:
    """A bulk batch above ``PART_EVENTS`` events: the :class:`GeneratedBatch` API the gate and the
    sinks use (``batch_id``, ``config``, ``counts()``, ``write_parts``), one part in memory at a
    time. Held and released like any batch; held, it keeps no lines (the release rebuilds them:
    same arguments, same bytes)."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.batch_id = config.batch_id
        self.part_configs = config.part_configs()
        self._counts: list[dict[str, Any]] | None = None
        self._schema: dict[str, pa.Table] = {}
        self._staged: TempFiles | None = None
        self._staged_out: Path | None = None
        self._stale = 0

    def __repr__(self) -> str:
        return f"PartedBatch({self.batch_id}, {len(self.part_configs)} parts)"

    # --- survey: counts and what the gate judges, no text --------------------------------------

    def survey(
        self,
        judge: Callable[[dict[str, pa.Table]], Any] | None = None,
        meanwhile: Callable[[], object] | None = None,
    ) -> list[Any]:
        """Simulate every part once, without its text: each part's counts, and ``judge(tables)``
        of its clean tables when given (the generation gate's rules; the gate drops what it does
        not keep, so one part's tables at a time are alive). Returns the judgements in part order.

        A judged survey of a staged batch (:meth:`stage`) writes the files too. The parts are
        built on every core (:mod:`generator.workers`), ``meanwhile()`` on a thread of this
        process as they do; the counts of a judged pass are kept, so :meth:`counts` after the
        gate costs nothing.
        """
        staged = self._staged if judge is not None else None
        results = self._build_all(judge, staged, meanwhile)
        if staged is not None:
            staged.complete = True
        if judge is not None and results and results[0][2] is not None:
            self._schema = results[0][2]
        self._counts = [counts for counts, _, _ in results]
        return [judged for _, judged, _ in results] if judge is not None else []

    def _build_all(
        self,
        judge: Callable[[dict[str, pa.Table]], Any] | None,
        files: TempFiles | None,
        meanwhile: Callable[[], object] | None = None,
    ) -> list[tuple[dict[str, Any], Any, dict[str, pa.Table] | None]]:
        """Every part's (counts, judgement, empty schema tables of part 0); with ``files``, its
        text and bookings appended to them, after the users' records."""
        build_users(self.config)  # once, before the workers fork: they share them
        user_names(self.config.users)
        user_json(self.config.users)

        def produce(i: int) -> tuple[dict[str, Any], Any]:
            part = build_part(self.batch_id, self.part_configs[i])
            data: dict[str, Any] = {}
            if files is not None:
                data = {t: part.text(t) for t in EVENT_TYPES}
                data["bookings"] = jsonl_bytes(self.booking_records(part)[0])
            return data, self._judged(part, i, judge)

        def redo(i: int) -> Any:
            return self._judged(build_part(self.batch_id, self.part_configs[i]), i, judge)

        try:
            return run_parts(
                len(self.part_configs),
                produce,
                files.fds if files is not None else {},
                redo,
                side=self._user_chunks if files is not None else None,
                meanwhile=meanwhile,
            )
        except OSError as exc:
            if files is None:
                raise
            from generator.sinks import _write_failed

            raise _write_failed(files.paths["search"], self.jsonl_bytes, exc) from None

    def _judged(
        self, part: GeneratedBatch, i: int, judge: Callable[[dict[str, pa.Table]], Any] | None
    ) -> tuple[dict[str, Any], Any, dict[str, pa.Table] | None]:
        if judge is None:
            return part.counts(), None, None
        tables = part.clean_tables()
        schema = {t: tables[t].slice(0, 0) for t in EVENT_TYPES} if i == 0 else None
        return part.counts(), judge(tables), schema

    def _user_chunks(self) -> Iterator[tuple[str, Any]]:
        """The users' change records as JSONL, a chunk at a time (built here, not kept)."""
        users = user_records(self.config, build_users(self.config).home)[0]
        for start in range(0, users.num_rows, RECORD_CHUNK):
            yield "users", jsonl_bytes(users.slice(start, RECORD_CHUNK))

    def counts(self, upto: int | None = None) -> dict[str, Any]:
        """The batch's ground truth: the parts' counts added up (``upto`` is for live runs)."""
        if upto is not None:
            raise ValueError("a batch in parts is never live")
        if self._counts is None:
            self.survey()
        assert self._counts is not None
        return add_counts(self._counts)

    def schema_tables(self) -> dict[str, pa.Table]:
        """Empty tables with the schema of the clean events (known once a judged survey ran)."""
        return self._schema

    # --- write: parts with their text, one ahead on a second core ------------------------------

    def parts(self) -> Iterator[GeneratedBatch]:
        """Every part with its lines built, in order; the next is built while this one is used."""

        def ready(config: PartConfig) -> GeneratedBatch:
            part = build_part(self.batch_id, config)
            for t in EVENT_TYPES:
                part.lines(t)
            return part

        yield from ahead(ready, self.part_configs)

    @cached_property
    def user_records(self) -> tuple[pa.Table, pa.Table]:
        """The users' change records of the period and their latest versions (once per batch)."""
        return user_records(self.config, build_users(self.config).home)

    def booking_records(self, part: GeneratedBatch) -> tuple[pa.Table, pa.Table]:
        return booking_records(part.config, part.to_arrow("conversion"))

    def write_parts(self, sink: str, settings: Settings, out: Path | None) -> dict[str, Any]:
        """Send every part to ``sink`` in order; returns where it went (as :func:`sinks.write`)."""
        if sink == "jsonl":
            return self._write_jsonl(Path(out) if out else _default_out(settings))
        if sink == "redis":
            return self._write_redis(settings)
        return self._write_postgres(settings)

    @property
    def jsonl_bytes(self) -> int:
        """About how many bytes the batch's JSONL files take (events and user records)."""
        return self.config.events * BYTES_PER_EVENT + self.config.users * BYTES_PER_USER

    def stage(self, out: Path) -> None:
        """Write the JSONL while the gate surveys the batch: one pass instead of two.

        The files are opened (locked, under temporary names) now and filled by the judged
        :meth:`survey`; :meth:`write_parts` to the same folder then only renames them into place,
        and :meth:`discard` (a held batch) removes them. Nothing appears under a real name
        before the gate passed; what a killed run leaves is removed by the next JSONL write.
        """
        from generator.sinks import prepare_out, remove_stale_tmp

        out = prepare_out(out)
        self._stale = remove_stale_tmp(out)
        check_free_space(out, self.jsonl_bytes)
        self._staged = TempFiles(self._paths(out)).__enter__()
        self._staged_out = out

    def discard(self) -> None:
        """Remove the staged files (the gate held the batch)."""
        if self._staged is not None:
            self._staged.__exit__(None, None, None)
            self._staged = None

    def _paths(self, out: Path) -> dict[str, Path]:
        from generator.sinks import jsonl_path

        for kind in RECORD_TYPES:
            (out / kind).mkdir(exist_ok=True)
        return {
            kind: jsonl_path(out, kind, self.batch_id) for kind in (*EVENT_TYPES, *RECORD_TYPES)
        }

    def _write_jsonl(self, out: Path) -> dict[str, Any]:
        from generator.sinks import prepare_out, remove_stale_tmp

        out = prepare_out(out)
        staged = self._staged
        if staged is not None and staged.complete and out == self._staged_out:
            stale = self._stale
            try:
                staged.commit()
            finally:
                staged.__exit__(None, None, None)
            self._staged = None
        else:
            self.discard()
            stale = remove_stale_tmp(out)
            check_free_space(out, self.jsonl_bytes)
            with TempFiles(self._paths(out)) as files:
                self._counts = [counts for counts, _, _ in self._build_all(None, files)]
                files.commit()
            staged = files
        result: dict[str, Any] = {
            "out": str(out),
            "files": {k: str(p) for k, p in staged.paths.items()},
        }
        if stale:
            result["stale_tmp_removed"] = stale
        return result

    def _write_redis(self, settings: Settings) -> dict[str, Any]:
        from generator.sinks import RedisAppender
        from searchflow.contract import record_stream_name, stream_name

        appender = RedisAppender(settings, self.batch_id)
        try:
            users = self.user_records[0]
            for start in range(0, users.num_rows, RECORD_CHUNK):
                lines = json_lines(users.slice(start, RECORD_CHUNK))
                appender.add("users", lines, record_stream_name("users"))
            for part in self.parts():
                for t in EVENT_TYPES:
                    appender.add(t, part.lines(t))
                bookings = json_lines(self.booking_records(part)[0])
                appender.add("bookings", bookings, record_stream_name("bookings"))
        finally:
            appender.close()
        streams = {t: stream_name(t) for t in EVENT_TYPES}
        streams.update({t: record_stream_name(t) for t in RECORD_TYPES})
        return {"out": appender.where, "streams": streams}

    def _write_postgres(self, settings: Settings) -> dict[str, Any]:
        from generator.sinks import PostgresAppender
        from searchflow.contract import APP_EVENTS_TABLE, APP_TABLES

        appender = PostgresAppender(settings, self.batch_id)
        try:
            appender.upsert("users", self.user_records[1])
            for part in self.parts():
                appender.write(part.emitted)
                appender.upsert("bookings", self.booking_records(part)[1])
            appender.commit()
        finally:
            appender.close()
        return {
            "out": appender.where,
            "table": APP_EVENTS_TABLE,
            "tables": [APP_TABLES[t] for t in RECORD_TYPES],
        }


def ahead(make: Callable[[PartConfig], T], configs: list[PartConfig]) -> Iterator[T]:
    """``make(config)`` of every config, in order, the next one made on a second thread while
    the caller uses the current one (numpy and Arrow release the GIL in their kernels): two
    parts alive at most."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate-part") as pool:
        pending = pool.submit(make, configs[0])
        for config in configs[1:]:
            done = pending.result()
            pending = pool.submit(make, config)
            yield done
            del done
        yield pending.result()


def add_counts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts of several parts added up (nested per-stream and per-class counts too)."""
    total: dict[str, Any] = {
        "events": 0,
        **dict.fromkeys(EVENT_TYPES, 0),
        "lines": dict.fromkeys(EVENT_TYPES, 0),
        "malformed": 0,
        "malformed_by_class": dict.fromkeys(MALFORMED_CLASSES, 0),
        "duplicates": 0,
        "late": 0,
    }
    for counts in parts:
        for key, value in counts.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    total[key][k] += v
            else:
                total[key] += value
    return total


def check_free_space(folder: Path, needed: int) -> None:
    """One line, before any byte is written, when ``folder``'s disk lacks ``needed`` bytes."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise SearchflowError(
            f"not enough disk space in {folder}: the batch needs about {needed / 1e9:.1f} GB, "
            f"{free / 1e9:.1f} GB are free; free some space, pass --out a folder on another "
            "disk, or generate fewer --events"
        )


def _default_out(settings: Settings) -> Path:
    from generator.sinks import default_out

    return default_out(settings)


class TempFiles:
    """One locked temporary file per target, appended to, all renamed into place by
    :meth:`commit`; removed instead when the block fails (a full disk is one line)."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths
        self.tmp = {k: p.with_name(f".{p.name}.{os.getpid()}.tmp") for k, p in paths.items()}
        self.files: dict[str, Any] = {}
        self.complete = False  # every part appended (a staged survey ran to its end)

    def __enter__(self) -> TempFiles:
        for kind, tmp in self.tmp.items():
            handle = open(tmp, "wb")  # noqa: SIM115 - closed in __exit__
            fcntl.flock(handle, fcntl.LOCK_EX)
            self.files[kind] = handle
        return self

    @property
    def fds(self) -> dict[str, int]:
        """The open temporary files' descriptors, for writes at an offset (generator.workers)."""
        return {kind: handle.fileno() for kind, handle in self.files.items()}

    def commit(self) -> None:
        """Flush every file and rename each into place (still locked, as a single write is)."""
        from generator.sinks import _write_failed

        for kind, handle in self.files.items():
            try:
                handle.flush()
                os.replace(self.tmp[kind], self.paths[kind])
            except OSError as exc:
                raise _write_failed(self.paths[kind], handle.tell(), exc) from None
        self.tmp = {}

    def __exit__(self, *exc: object) -> None:
        for handle in self.files.values():
            with suppress(OSError):
                handle.close()
        for tmp in self.tmp.values():
            with suppress(OSError):
                tmp.unlink()
