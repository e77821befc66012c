"""JSONL reader: ``<dir>/search/*.jsonl``, ``<dir>/click/*.jsonl``, ``<dir>/conversion/*.jsonl``,
then the application's change records ``<dir>/users/*.jsonl`` and ``<dir>/bookings/*.jsonl``.

The change records are read the same way (same files ledger, same chunks) after the events, in the
same batch, and landed in ``raw.app_users`` / ``raw.app_bookings`` under the app extraction's
rules (:mod:`searchflow.ingest.records`).

Exactly once across re-runs, two ways at once:

* ``raw.ingest_files`` records, per file, its size, mtime and how many lines were consumed, in
  the same transaction as the rows. A file whose size and mtime did not change is skipped without
  being read; a file that grew is read from the line after the last one consumed.
* dedup by event_id (and dead-letter id) protects against everything else: a file copied under
  another name, a rewritten file, a crash between two runs.

A last line without a newline is read like any other. When it is not JSON it may be half written
by an appending writer: it is dead-lettered but not counted as consumed, so if the file grows the
completed line is read again.

Lines are read in one of two ways, per file. A *plain* file (no ``\\r``, no NUL: one memchr each)
goes through DuckDB's CSV reader as raw text (one VARCHAR column, no quoting), in parallel, into a
temp table whose rowid keeps the file order; the line number is the rowid's distance from the
file's first row. Any other file, or one the CSV reader refuses (a line that is not UTF-8 or is
over its maximum size), is split by :mod:`searchflow.ingest.textlines`, which gives each line its
editor line number and a ``problem`` for the lines that cannot be text. Empty lines are not
events and are skipped; a line of blanks is dead-lettered as unparsable.

Parents: a generated file is named after its generation batch
(``<type>/<generation batch id>.jsonl``); the ids of the files read are the batch's parents.

Bounded chunks: the staged lines (DuckDB temp tables, which spill to disk beyond the memory limit)
land in chunks of at most ``chunk_lines`` staged rows, each its own landing transaction, so a
large file never has to be judged and inserted at once. A chunk's bookkeeping records how many
lines of each file it consumed so far; a file not finished yet is recorded with size 0, so a run
killed between two chunks finds the file "changed" and reads on from the line after the last
one landed. Lines split the careful way (a file the CSV reader cannot take) land in one last
chunk of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from searchflow.contract import GENERATION_BATCH_PREFIX, RECORD_TYPES
from searchflow.errors import UsageError
from searchflow.ingest.chunks import INPUT, Chunk
from searchflow.ingest.land import lit, utc_now
from searchflow.ingest.space import disk_full_error, is_disk_full
from searchflow.ingest.textlines import read_lines
from searchflow.warehouse import EVENT_TYPES, RAW_SCHEMA

TEMP_TABLES = (
    "_ingest_csv",
    "_ingest_split",
    "_ingest_file_meta",
    "_ingest_files",
    "_ingest_chunk_files",
)
# Staged lines per landing transaction (run_ingestion's chunk_size overrides it).
JSONL_READ_LINES = 1_000_000


@dataclass(frozen=True)
class InputFile:
    """One JSONL file as seen now, and how far earlier runs got."""

    index: int
    path: Path
    stream: str | None  # event type of the folder it is in, None elsewhere
    size: int
    mtime_ns: int
    done_lines: int  # lines consumed by earlier runs
    ends_with_newline: bool
    plain: bool  # no \r and no NUL: DuckDB's CSV reader splits it right

    @property
    def parent(self) -> str | None:
        """The generation batch the file holds, when its name says so."""
        stem = self.path.stem
        return stem if stem.startswith(GENERATION_BATCH_PREFIX) else None


def find_files(root: Path) -> list[tuple[Path, str | None]]:
    """The JSONL files under ``root``: ``<type>/*.jsonl`` per event type, or ``root`` itself."""
    root = root.expanduser()
    if not root.exists():
        raise UsageError(
            f"no events at {root}: the path does not exist; pass --path to the folder "
            "`searchflow generate --sink jsonl` wrote (it holds search/, click/, conversion/)"
        )
    if root.is_file():
        stream = root.parent.name if root.parent.name in EVENT_TYPES else None
        return [(root.resolve(), stream)]
    found: list[tuple[Path, str | None]] = []
    for event_type in EVENT_TYPES:
        folder = root / event_type
        if folder.is_dir():
            found.extend((p.resolve(), event_type) for p in sorted(folder.glob("*.jsonl")))
    found.extend((p.resolve(), None) for p in sorted(root.glob("*.jsonl")))
    return found


def find_record_files(root: Path) -> list[tuple[Path, str | None]]:
    """The application's change records under ``root``: ``users/*.jsonl``, ``bookings/*.jsonl``
    (the JSONL sink writes them beside the events; see :mod:`searchflow.ingest.records`)."""
    root = root.expanduser()
    if not root.is_dir():
        return []
    return [
        (p.resolve(), record_type)
        for record_type in RECORD_TYPES
        if (root / record_type).is_dir()
        for p in sorted((root / record_type).glob("*.jsonl"))
    ]


SCAN_BLOCK = 16 << 20  # bytes read at a time looking for carriage returns and NULs


def _scan(path: Path, size: int) -> tuple[bool, bool]:
    """(ends with a newline, plain): a memchr for ``\\r`` and one for NUL, a block at a time.

    Not on a mapping of the whole file: the pages of a mapping count in the process's resident
    memory, so a 3 GB file made a 3 GB peak RSS (10M events); one reused block keeps it at 16 MB.
    """
    if size == 0:
        return True, True
    block = bytearray(SCAN_BLOCK)
    plain, left = True, size
    with path.open("rb") as handle:
        while plain and left > 0:
            n = handle.readinto(memoryview(block)[: min(SCAN_BLOCK, left)])
            if not n:
                break
            plain = block.find(b"\r", 0, n) < 0 and block.find(b"\0", 0, n) < 0
            left -= n
        handle.seek(size - 1)
        return handle.read(1) == b"\n", plain


def plan_files(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    found: list[tuple[Path, str | None]] | None = None,
) -> list[InputFile]:
    """Files with something new: unseen, grown, or changed (size or mtime differ).

    ``found``: the files to look at (default: the event files, :func:`find_files`).
    """
    known = {
        path: (size, mtime_ns, lines)
        for path, size, mtime_ns, lines in con.execute(
            f"SELECT path, size, mtime_ns, lines FROM {RAW_SCHEMA}.ingest_files"
        ).fetchall()
    }
    todo: list[InputFile] = []
    for path, stream in find_files(root) if found is None else found:
        stat = path.stat()
        seen = known.get(str(path))
        if seen and seen[0] == stat.st_size and seen[1] == stat.st_mtime_ns:
            continue
        # A file that shrank was rewritten: read it again from the top (dedup protects).
        done = seen[2] if seen and stat.st_size >= seen[0] else 0
        newline, plain = _scan(path, stat.st_size)
        todo.append(
            InputFile(
                index=len(todo),
                path=path,
                stream=stream,
                size=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
                done_lines=done,
                ends_with_newline=newline,
                plain=plain,
            )
        )
    return todo


def _read_csv(con: duckdb.DuckDBPyConnection, files: list[InputFile]) -> None:
    """Plain files into ``_ingest_csv(fi, line)``; raises what DuckDB's CSV reader raises."""
    paths = lit([str(f.path) for f in files])
    index = "CASE file_index " + " ".join(f"WHEN {i} THEN {f.index}" for i, f in enumerate(files))
    con.execute(
        f"""
        INSERT INTO _ingest_csv
        SELECT {index} END AS fi, line
        FROM read_csv({paths}, columns = {{'line': 'VARCHAR'}}, delim = chr(0), quote = '',
                      escape = '', header = false, auto_detect = false, strict_mode = false,
                      new_line = '\\n')
        """
    )


def _read_plain(con: duckdb.DuckDBPyConnection, files: list[InputFile]) -> list[InputFile]:
    """Read the plain files with DuckDB's CSV reader; returns those it refused.

    All at once (in parallel) first; when that fails (a line that is not UTF-8 or too long, found
    only by reading), each on its own, so only the refused files go the careful way.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE _ingest_csv (fi INTEGER, line VARCHAR)")
    if not files:
        return []
    try:
        _read_csv(con, files)
        return []
    except duckdb.InvalidInputException:
        con.execute("DELETE FROM _ingest_csv")
    refused = []
    for f in files:
        try:
            _read_csv(con, [f])
        except duckdb.InvalidInputException:
            refused.append(f)
    return refused


def _read_split(con: duckdb.DuckDBPyConnection, files: list[InputFile]) -> None:
    """The other files into ``_ingest_split(fi, ln, line, problem)``, block by block."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ingest_split "
        "(fi INTEGER, ln BIGINT, line VARCHAR, problem VARCHAR)"
    )
    for f in files:
        for block in read_lines(f.path, skip=f.done_lines):
            con.register("_ingest_block", block)
            try:
                con.execute(
                    f"INSERT INTO _ingest_split SELECT {f.index}, ln, nullif(line, ''), problem "
                    "FROM _ingest_block"
                )
            finally:
                con.unregister("_ingest_block")


def stage_lines(con: duckdb.DuckDBPyConnection, files: list[InputFile]) -> None:
    """Read the files' new lines into temp tables (:func:`stage_chunk` exposes them by chunk).

    Also fills ``_ingest_files`` (per file: how many lines it has now) for the bookkeeping.
    """
    refused = _read_plain(con, [f for f in files if f.plain])
    careful = [f for f in files if not f.plain] + refused
    _read_split(con, careful)
    split = {f.index for f in careful}
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ingest_file_meta (fi INTEGER, path VARCHAR, stream VARCHAR,"
        " done BIGINT, partial_last BOOLEAN, split BOOLEAN)"
    )
    con.execute(
        "INSERT INTO _ingest_file_meta VALUES "
        + ", ".join(
            f"({f.index}, {lit(str(f.path))}, {lit(f.stream)}, {f.done_lines}, "
            f"{lit(not f.ends_with_newline)}, {lit(f.index in split)})"
            for f in files
        )
    )
    # Lines now: from the CSV rows (rowids), or the last line number split (only lines after
    # `done` are split, so the count alone would not say).
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _ingest_files AS
        SELECT m.fi, m.path, m.stream, m.done, m.partial_last,
               coalesce(c.first_row, 0) AS first_row,
               CASE WHEN m.split THEN greatest(m.done, coalesce(s.last_ln, 0))
                    ELSE coalesce(c.n, 0) END AS lines
        FROM _ingest_file_meta m
        LEFT JOIN (SELECT fi, min(rowid) AS first_row, count(*) AS n
                   FROM _ingest_csv GROUP BY fi) c USING (fi)
        LEFT JOIN (SELECT fi, max(ln) AS last_ln FROM _ingest_split GROUP BY fi) s USING (fi)
        """
    )


def _csv_rows(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """The rowid range ``[first, end)`` of the CSV-staged lines (empty: ``(0, 0)``)."""
    first, last = con.execute("SELECT min(rowid), max(rowid) FROM _ingest_csv").fetchone()
    return (0, 0) if first is None else (int(first), int(last) + 1)


def chunk_ranges(first: int, end: int, size: int, rest: bool) -> list[tuple[int, int] | None]:
    """The chunks of a read: rowid ranges of the CSV-staged lines, then ``None`` when ``rest``
    (split lines, or files without CSV rows whose bookkeeping must still be written)."""
    ranges: list[tuple[int, int] | None] = [
        (lo, min(lo + size, end)) for lo in range(first, end, max(size, 1))
    ]
    if rest or not ranges:
        ranges.append(None)
    return ranges


def stage_chunk(con: duckdb.DuckDBPyConnection, rows: tuple[int, int] | None) -> None:
    """Expose one chunk as ``_ingest_input`` and its files' progress as ``_ingest_chunk_files``.

    ``rows``: the CSV rowid range ``[lo, hi)``, or None for the split lines plus the files with
    no CSV rows.
    """
    if rows is None:
        files = (
            "SELECT *, true AS at_end FROM _ingest_files "
            "WHERE fi NOT IN (SELECT DISTINCT fi FROM _ingest_csv)"
        )
        csv = "false"
    else:
        lo, hi = rows
        # lines of the file consumed once this chunk lands: up to the chunk's end, or all
        consumed = f"least(lines, {hi} - first_row)"
        files = (
            f"SELECT * REPLACE ({consumed} AS lines), ({consumed} = lines) AS at_end "
            "FROM _ingest_files WHERE fi IN (SELECT DISTINCT fi FROM _ingest_csv) "
            f"AND first_row < {hi} AND first_row + lines > {lo}"
        )
        csv = f"c.rowid >= {lo} AND c.rowid < {hi}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _ingest_chunk_files AS {files}")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW {INPUT} AS
        SELECT c.rowid AS ord, c.line AS raw_text,
               f.path || ':' || (c.rowid - f.first_row + 1) AS source_ref, f.stream,
               NULL::VARCHAR AS problem
        FROM _ingest_csv c JOIN _ingest_files f USING (fi)
        WHERE {csv} AND c.rowid - f.first_row + 1 > f.done AND c.line IS NOT NULL
        UNION ALL
        SELECT (1::BIGINT << 62) + s.rowid AS ord, s.line AS raw_text,
               f.path || ':' || s.ln AS source_ref, f.stream, s.problem
        FROM _ingest_split s JOIN _ingest_files f USING (fi)
        WHERE {"true" if rows is None else "false"} AND s.line IS NOT NULL
        """
    )


def bookkeeping(batch_id: str, ingested_at: datetime, files: list[InputFile]) -> list[str]:
    """Statements that record how far each file of a chunk was read (inside its transaction).

    A last line without a newline that was judged ``unparsable`` is not counted as consumed: it
    may be half written, and is read again once the file grows. A file the chunk did not finish
    is recorded with size 0, so the next run reads on from where this chunk stopped.
    """
    seen = ", ".join(f"({f.index}, {f.size}, {f.mtime_ns})" for f in files)
    return [
        f"DELETE FROM {RAW_SCHEMA}.ingest_files "
        "WHERE path IN (SELECT path FROM _ingest_chunk_files)",
        f"""
        INSERT INTO {RAW_SCHEMA}.ingest_files
        SELECT f.path, CASE WHEN f.at_end THEN m.size ELSE 0 END, m.mtime_ns,
               greatest(f.done, f.lines - CASE WHEN f.at_end AND f.partial_last AND EXISTS (
                   SELECT 1 FROM _ingest_judged j
                   WHERE j.source_ref = f.path || ':' || f.lines AND j.reason = 'unparsable')
                   THEN 1 ELSE 0 END),
               {lit(batch_id)}, {lit(ingested_at)}
        FROM _ingest_chunk_files f JOIN (VALUES {seen}) m(fi, size, mtime_ns) USING (fi)
        """,
    ]


def drop_stage(con: duckdb.DuckDBPyConnection) -> None:
    """Remove the temp relations of a read (the connection may be reused)."""
    con.execute(f"DROP VIEW IF EXISTS {INPUT}")
    for name in TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {name}")


def chunks(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    batch_id: str,
    stats: dict[str, Any],
    *,
    folder: Path,
    chunk_lines: int | None = None,
) -> Iterator[Chunk]:
    """The new lines of the files under ``root``, in chunks of at most ``chunk_lines`` staged
    lines (default :data:`JSONL_READ_LINES`), each one landing transaction: the events first,
    then the application's change records (``users/``, ``bookings/``), whose chunks are landed
    by :func:`searchflow.ingest.records.land_record_lines` into ``raw.app_*``.

    ``stats`` receives what the summary adds: ``files_found``, ``files_read`` (events) and
    ``record_files_found``, ``record_files_read``. ``folder``: where the warehouse writes (named
    by a full disk's error).
    """
    from searchflow.ingest.records import land_record_lines

    stats["files_found"] = len(find_files(root))
    files = plan_files(con, root)
    stats["files_read"] = len(files)
    yield from _file_chunks(con, files, batch_id, folder=folder, chunk_lines=chunk_lines)
    found = find_record_files(root)
    stats["record_files_found"] = len(found)
    records = plan_files(con, root, found)
    stats["record_files_read"] = len(records)
    yield from _file_chunks(
        con, records, batch_id, folder=folder, chunk_lines=chunk_lines, land=land_record_lines
    )


def _file_chunks(
    con: duckdb.DuckDBPyConnection,
    files: list[InputFile],
    batch_id: str,
    *,
    folder: Path,
    chunk_lines: int | None,
    land: Any = None,
) -> Iterator[Chunk]:
    """Stage ``files`` and yield their chunks (landed by ``land`` when given)."""
    if not files:
        return
    try:
        try:
            stage_lines(con, files)
        except (duckdb.Error, OSError) as exc:
            if is_disk_full(exc):
                raise disk_full_error(exc, folder, 2 * sum(f.size for f in files)) from None
            raise
        # Lines consumed by earlier runs (the CSV reader reads a file whole) are no chunk's
        # work: without them each run's first chunk holds new lines, so runs stopped after one
        # chunk still progress.
        con.execute(
            "DELETE FROM _ingest_csv USING _ingest_files f "
            "WHERE _ingest_csv.fi = f.fi AND _ingest_csv.rowid - f.first_row + 1 <= f.done"
        )
        rest = con.execute(
            "SELECT EXISTS (SELECT 1 FROM _ingest_split) OR EXISTS (SELECT 1 FROM _ingest_files "
            "WHERE fi NOT IN (SELECT DISTINCT fi FROM _ingest_csv))"
        ).fetchone()[0]
        ranges = chunk_ranges(*_csv_rows(con), chunk_lines or JSONL_READ_LINES, rest)
        share = sum(f.size for f in files) // len(ranges) + 1
        for rows in ranges:
            stage_chunk(con, rows)
            read = con.execute("SELECT fi FROM _ingest_chunk_files WHERE lines > done").fetchall()
            fresh = {fi for (fi,) in read}
            yield Chunk(
                size_bytes=share,
                parents=frozenset(f.parent for f in files if f.parent and f.index in fresh),
                bookkeeping=bookkeeping(batch_id, utc_now(), files),
                land=land,
            )
    finally:
        drop_stage(con)
