"""JSONL reader: ``<dir>/search/*.jsonl``, ``<dir>/click/*.jsonl``, ``<dir>/conversion/*.jsonl``.

Exactly once across re-runs, two ways at once:

* ``raw.ingest_files`` records, per file, its size, mtime and how many complete lines were
  consumed, in the same transaction as the rows. A file whose size and mtime did not change is
  skipped without being opened; a file that grew is read from the line after the last one consumed
  (an appending writer's half-written last line is left for the next run).
* dedup by event_id (and dead-letter id) protects against everything else: a file copied under
  another name, a rewritten file, a crash between two runs.

Lines are read as raw text with DuckDB's CSV reader (one VARCHAR column, a delimiter that never
occurs in text, no quoting), in parallel, into a temp table whose rowid keeps the file order; the
line number is the rowid's distance from the file's first row. Empty lines are not events and are
skipped; a line of blanks is dead-lettered as unparsable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from searchflow.errors import UsageError
from searchflow.ingest.land import lit
from searchflow.warehouse import EVENT_TYPES, RAW_SCHEMA


@dataclass(frozen=True)
class InputFile:
    """One JSONL file as seen now, and how far earlier runs got."""

    index: int
    path: Path
    stream: str | None  # event type of the folder it is in, None elsewhere
    size: int
    mtime_ns: int
    done_lines: int  # complete lines consumed by earlier runs
    ends_with_newline: bool


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


def _ends_with_newline(path: Path, size: int) -> bool:
    if size == 0:
        return True
    with path.open("rb") as handle:
        handle.seek(size - 1)
        return handle.read(1) == b"\n"


def plan_files(con: duckdb.DuckDBPyConnection, root: Path) -> list[InputFile]:
    """Files with something new: unseen, grown, or changed (size or mtime differ)."""
    known = {
        path: (size, mtime_ns, lines)
        for path, size, mtime_ns, lines in con.execute(
            f"SELECT path, size, mtime_ns, lines FROM {RAW_SCHEMA}.ingest_files"
        ).fetchall()
    }
    todo: list[InputFile] = []
    for path, stream in find_files(root):
        stat = path.stat()
        seen = known.get(str(path))
        if seen and seen[0] == stat.st_size and seen[1] == stat.st_mtime_ns:
            continue
        # A file that shrank was rewritten: read it again from the top (dedup protects).
        done = seen[2] if seen and stat.st_size >= seen[0] else 0
        todo.append(
            InputFile(
                index=len(todo),
                path=path,
                stream=stream,
                size=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
                done_lines=done,
                ends_with_newline=_ends_with_newline(path, stat.st_size),
            )
        )
    return todo


def stage_lines(con: duckdb.DuckDBPyConnection, files: list[InputFile]) -> None:
    """Read the files into ``_ingest_lines`` and expose the new lines as ``_ingest_input``.

    Also fills ``_ingest_files`` (per file: complete lines now) for the bookkeeping.
    """
    paths = lit([str(f.path) for f in files])
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _ingest_lines AS
        SELECT file_index AS fi, line
        FROM read_csv({paths}, columns = {{'line': 'VARCHAR'}}, delim = chr(0), quote = '', escape = '',
                      header = false, auto_detect = false, strict_mode = false,
                      new_line = '\\n')
        """
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ingest_file_meta (fi INTEGER, path VARCHAR, stream VARCHAR,"
        " done BIGINT, partial_last BOOLEAN)"
    )
    con.execute(
        "INSERT INTO _ingest_file_meta VALUES "
        + ", ".join(
            f"({f.index}, {lit(str(f.path))}, {lit(f.stream)}, {f.done_lines}, "
            f"{lit(not f.ends_with_newline)})"
            for f in files
        )
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _ingest_files AS
        SELECT m.fi, m.path, m.stream, m.done, m.partial_last,
               coalesce(l.first_row, 0) AS first_row,
               coalesce(l.n, 0) - CASE WHEN m.partial_last AND coalesce(l.n, 0) > 0
                                       THEN 1 ELSE 0 END AS complete
        FROM _ingest_file_meta m
        LEFT JOIN (SELECT fi, min(rowid) AS first_row, count(*) AS n
                   FROM _ingest_lines GROUP BY fi) l USING (fi)
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP VIEW _ingest_input AS
        SELECT l.rowid AS ord, l.line AS raw_text,
               f.path || ':' || (l.rowid - f.first_row + 1) AS source_ref, f.stream
        FROM _ingest_lines l JOIN _ingest_files f USING (fi)
        WHERE l.rowid - f.first_row + 1 > f.done
          AND l.rowid - f.first_row + 1 <= f.complete
          AND l.line IS NOT NULL
        """
    )


def bookkeeping(files: list[InputFile], batch_id: str, ingested_at: datetime) -> list[str]:
    """Statements that record how far each file was read (run inside the landing transaction)."""
    if not files:
        return []
    seen = ", ".join(f"({f.index}, {f.size}, {f.mtime_ns})" for f in files)
    return [
        f"DELETE FROM {RAW_SCHEMA}.ingest_files WHERE path IN (SELECT path FROM _ingest_files)",
        f"""
        INSERT INTO {RAW_SCHEMA}.ingest_files
        SELECT f.path, m.size, m.mtime_ns, greatest(f.complete, f.done),
               {lit(batch_id)}, {lit(ingested_at)}
        FROM _ingest_files f JOIN (VALUES {seen}) m(fi, size, mtime_ns) USING (fi)
        """,
    ]


def drop_stage(con: duckdb.DuckDBPyConnection) -> None:
    """Remove the temp relations of a read (the connection may be reused)."""
    con.execute("DROP VIEW IF EXISTS _ingest_input")
    for name in ("_ingest_lines", "_ingest_file_meta", "_ingest_files"):
        con.execute(f"DROP TABLE IF EXISTS {name}")
