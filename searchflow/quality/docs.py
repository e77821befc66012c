"""Data Docs for the validation just run, at a cost that does not grow with the history.

GX's ``context.build_data_docs(resource_identifiers=...)`` renders only the new results' pages, but
each call builds a new ``SiteBuilder``, whose Jinja views compile every template again, and its
index builder re-reads every stored validation result to list it. So :func:`build` keeps one
``SiteBuilder`` per context for the process, and the site's index builder
(:class:`searchflow.compat.great_expectations.CachedSiteIndexBuilder`, named in
``expectations/great_expectations.yml``) reads each stored result once. The pages written are then
made to work offline (:mod:`searchflow.quality.offline`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from searchflow.compat.great_expectations import site_builder
from searchflow.quality import offline

SITE = "local_site"

_BUILDERS: dict[int, Any] = {}
_LOCK = threading.Lock()


def build(context: Any, resource_identifiers: list[Any]) -> None:
    """Render the pages of these validation results and the index (templates compiled once)."""
    with _LOCK:
        builder = _BUILDERS.get(id(context))
        if builder is None:
            builder = _BUILDERS[id(context)] = site_builder(context, SITE)
        builder.build(resource_identifiers=resource_identifiers, build_index=True)
        index = _path(builder.target_store.get_url_for_resource(only_if_exists=False))
        pages = [
            _path(
                builder.target_store.get_url_for_resource(
                    resource_identifier=key, only_if_exists=False
                )
            )
            for key in resource_identifiers
        ]
        offline.localize(index.parent, [index, *pages])


def _path(url: str) -> Path:
    """A ``file://`` URL of the site store as a local path."""
    return Path(unquote(urlsplit(url).path))
