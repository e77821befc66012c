"""DuckDB's PostgreSQL extension, loaded from its PyPI wheel instead of DuckDB's extension server.

With ``SEARCHFLOW_WAREHOUSE_URL`` set, the warehouse lives in PostgreSQL and every stage reaches it
through an in-memory DuckDB connection that attaches the database (``ATTACH ... (TYPE postgres)``).
``INSTALL postgres`` would download the extension into ``~/.duckdb`` at run time; the package
``duckdb-extension-postgres-scanner`` ships the same signed file, and ``LOAD '<file>'`` takes it
from there. Its layout (``extensions/v<duckdb version>/postgres_scanner.duckdb_extension``) is no
documented API, so the lookup lives here and ``tests/compat/test_duckdb_postgres.py`` fails when
it changes. An extension loads only into the DuckDB version it was built for: pyproject.toml pins
both packages to the same version.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

EXTENSION_FILE = "postgres_scanner.duckdb_extension"


class ExtensionMissing(RuntimeError):
    """The PostgreSQL extension for this DuckDB version is not installed."""


def extension_path() -> Path:
    """The extension file for the running DuckDB version, from the installed wheel."""
    try:
        import duckdb_extension_postgres_scanner as package
    except ImportError:
        raise ExtensionMissing(
            "duckdb-extension-postgres-scanner is not installed; run `make install` "
            "(the PostgreSQL warehouse needs it)"
        ) from None
    folder = Path(package.__file__).resolve().parent / "extensions"
    path = folder / f"v{duckdb.__version__}" / EXTENSION_FILE
    if not path.is_file():
        found = sorted(p.parent.name for p in folder.glob(f"*/{EXTENSION_FILE}"))
        raise ExtensionMissing(
            f"duckdb-extension-postgres-scanner has no extension for DuckDB {duckdb.__version__} "
            f"(found: {', '.join(found) or 'none'}); pin both packages to the same version"
        )
    return path


def load(con: duckdb.DuckDBPyConnection) -> None:
    """Load the extension into ``con`` (no download, nothing written under the home folder)."""
    con.execute(f"LOAD '{_literal(str(extension_path()))}'")


def attach(con: duckdb.DuckDBPyConnection, url: str, name: str, *, read_only: bool = False) -> None:
    """Attach the PostgreSQL database at ``url`` as catalog ``name`` and make it the default."""
    load(con)
    options = "TYPE postgres" + (", READ_ONLY" if read_only else "")
    con.execute(f"ATTACH '{_literal(url)}' AS \"{name}\" ({options})")
    con.execute(f'USE "{name}"')


def _literal(text: str) -> str:
    return text.replace("'", "''")


def in_use(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con``'s default database is an attached PostgreSQL database."""
    row = con.execute(
        "SELECT type FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return bool(row) and str(row[0]).lower() == "postgres"
