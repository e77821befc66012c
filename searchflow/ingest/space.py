"""A full disk while ingesting: one clear line naming the folder and the space it needs.

DuckDB reports a full disk as an ``IOException`` (a write of its file, WAL or temp files) or, when
its temp directory hits ``max_temp_directory_size``, as an out-of-memory error; Python writes (the
Postgres reader's scratch file) raise ``OSError`` with ``ENOSPC``. All become a
:class:`~searchflow.errors.SearchflowError` that says where, how much is free and how much the
chunk needed, and that committed chunks are kept.
"""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

import duckdb

from searchflow.errors import SearchflowError

NO_SPACE = ("no space left on device", "max_temp_directory_size", "disk is full", "disk full")
_QUOTED_PATH = re.compile(r"""["'](/[^"']+)["']""")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or DuckDB's temp space) is full."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    if isinstance(exc, duckdb.Error | OSError):
        text = str(exc).lower()
        return any(marker in text for marker in NO_SPACE)
    return False


def _folder(exc: BaseException, default: Path) -> Path:
    """The folder the failed write was in: from the error when it names a file, else ``default``."""
    name = getattr(exc, "filename", None)
    match = _QUOTED_PATH.search(str(exc)) if name is None else None
    path = Path(name) if name else Path(match.group(1)) if match else None
    if path is None:
        return default
    return path if path.is_dir() else path.parent


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def disk_full_error(exc: BaseException, default: Path, needed: int) -> SearchflowError:
    """The one-line error for a full disk; ``needed``: about how much the chunk had to write."""
    folder = _folder(exc, default)
    try:
        free = _size(shutil.disk_usage(folder).free)
    except OSError:
        free = "unknown"
    return SearchflowError(
        f"no space left in {folder} ({free} free) while landing: this chunk needs about "
        f"{_size(needed)} there; free some space (or point SEARCHFLOW_HOME or "
        "SEARCHFLOW_WAREHOUSE at a larger disk) and rerun: committed chunks are kept"
    )
