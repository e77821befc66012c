"""The Great Expectations context: the committed ``expectations/`` project, runtime output elsewhere.

``expectations/great_expectations.yml`` keeps suites, validation definitions and checkpoints in the
repository (reviewed like code) and points the validation-results store and the Data Docs site at
``${SEARCHFLOW_QUALITY_HOME}``, which we fill with ``$SEARCHFLOW_HOME/quality`` through GX's
``runtime_environment``. Loading the project writes nothing into the repository.

The Postgres data source's connection string is ``${SEARCHFLOW_GX_POSTGRES_URL}``, filled the same
way, so no credential is ever written; GX insists on a ``user:password`` URL, see :func:`gx_postgres_url`.

Importing GX costs seconds, so the context is built once per process and per (home, Postgres).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from searchflow.config import Settings
from searchflow.errors import SearchflowError

PROJECT_DIR = Path(__file__).resolve().parents[2] / "expectations"
# A syntactically valid URL for contexts that never touch Postgres (no connection is made on load).
_NO_POSTGRES = "postgresql+psycopg2://unset:unset@127.0.0.1:5432/unset"

_CONTEXTS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def quality_home(settings: Settings) -> Path:
    """``$SEARCHFLOW_HOME/quality``: validation results, Data Docs, history, quarantine fallbacks."""
    path = settings.home_path / "quality"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_docs_dir(settings: Settings) -> Path:
    return quality_home(settings) / "data_docs"


def validations_dir(settings: Settings) -> Path:
    return quality_home(settings) / "validations"


def gx_postgres_url(url: str) -> str:
    """The URL in the form GX's Postgres data source accepts.

    GX validates the URL as ``postgresql+psycopg2://user:password@host/db``: a URL without a password
    (trust or peer authentication, as on the local servers) gets an empty one, which such servers
    ignore; a socket URL (``?host=/path``) keeps its query.
    """
    parts = urlsplit(url)
    scheme = "postgresql+psycopg2"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" not in userinfo:
            userinfo += ":"
        netloc = f"{userinfo}@{hostport}"
    else:
        import getpass

        netloc = f"{getpass.getuser()}:@{netloc or '127.0.0.1'}"
    return urlunsplit(parts._replace(scheme=scheme, netloc=netloc))


def get_context(settings: Settings, postgres_url: str | None = None) -> Any:
    """The GX file context for these settings (cached per process)."""
    if not (PROJECT_DIR / "great_expectations.yml").exists():
        raise SearchflowError(
            f"the Great Expectations project {PROJECT_DIR} is missing; "
            "run from a SearchFlow checkout (the expectations/ folder is part of it)"
        )
    home = quality_home(settings)
    pg = gx_postgres_url(postgres_url) if postgres_url else _NO_POSTGRES
    key = (str(home), pg)
    with _LOCK:
        if key not in _CONTEXTS:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
            import logging

            import great_expectations as gx

            logging.getLogger("great_expectations").setLevel(logging.WARNING)

            _CONTEXTS[key] = gx.get_context(
                context_root_dir=str(PROJECT_DIR),
                runtime_environment={
                    "SEARCHFLOW_QUALITY_HOME": str(home),
                    "SEARCHFLOW_GX_POSTGRES_URL": pg,
                },
            )
        return _CONTEXTS[key]
