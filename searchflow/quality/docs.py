"""Data Docs for the validation just run, at a cost that does not grow with the history.

GX's ``context.build_data_docs(resource_identifiers=...)`` already renders only the new results'
pages, but each call builds a new ``SiteBuilder``, whose Jinja views compile every template again
(about a second per build), and its index builder re-reads and re-parses every stored validation
result to list it (linear in the history). Two fixes, both through GX's own extension points:

- :func:`build` keeps one ``SiteBuilder`` per context for the process, so templates are compiled
  once per process;
- :class:`CachedSiteIndexBuilder` (named in ``expectations/great_expectations.yml``) keeps what the
  index needs of each stored result (success, asset name) in ``data_docs/.index_links.json``, so a
  result is parsed once, the first time it is listed.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
)
from great_expectations.render.renderer.site_builder import (
    DefaultSiteIndexBuilder,
    _resolve_asset_name,
    resource_key_passes_run_name_filter,
)

SITE = "local_site"
CACHE_NAME = ".index_links.json"

_BUILDERS: dict[int, Any] = {}
_LOCK = threading.Lock()


def build(context: Any, resource_identifiers: list[Any]) -> None:
    """Render the pages of these validation results and the index (templates compiled once)."""
    with _LOCK:
        builder = _BUILDERS.get(id(context))
        if builder is None:
            config = context.variables.data_docs_sites[SITE]
            builder = context._init_site_builder_for_data_docs_site_creation(
                site_name=SITE, site_config=config
            )
            _BUILDERS[id(context)] = builder
        builder.build(resource_identifiers=resource_identifiers, build_index=True)


def _key(validation_result_key: Any) -> str:
    return "/".join(str(p) for p in validation_result_key.to_tuple())


class CachedSiteIndexBuilder(DefaultSiteIndexBuilder):
    """The default index, with each listed result's summary read once and kept beside the site."""

    def _cache_path(self) -> Path | None:
        backend = self.target_store.store_backends.get("index_page")
        base = getattr(backend, "full_base_directory", None)
        return Path(base) / CACHE_NAME if base else None

    def _load_cache(self) -> dict[str, dict[str, Any]]:
        path = self._cache_path()
        if path is None or not path.exists():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:  # cut short by a crash: rebuild it
            return {}

    def _save_cache(self, cache: dict[str, dict[str, Any]]) -> None:
        path = self._cache_path()
        if path is None:
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache), encoding="utf-8")
        tmp.replace(path)  # atomic: a concurrent reader sees the old or the new file

    def _add_validations_to_index_links(
        self, index_links_dict: OrderedDict, validation_and_profiling_result_site_keys: list
    ) -> None:
        config = self.site_section_builders_config.get("validations", "None")
        if not config or config in ("None", "none", "false", "False", False):
            return super()._add_validations_to_index_links(
                index_links_dict, validation_and_profiling_result_site_keys
            )
        name_filter = config.get("run_name_filter") if isinstance(config, dict) else None
        keys = [
            k
            for k in validation_and_profiling_result_site_keys
            if resource_key_passes_run_name_filter(k, name_filter)
        ]
        keys.sort(key=lambda k: k.run_id.run_time, reverse=True)
        if self.validation_results_limit:
            keys = keys[: self.validation_results_limit]
        cache = self._load_cache()
        changed = False
        for key in keys:
            entry = cache.get(_key(key))
            if entry is None:
                result = self.data_context.get_validation_result(
                    batch_identifier=key.batch_identifier,
                    expectation_suite_name=key.expectation_suite_identifier.name,
                    run_id=key.run_id,
                    validation_results_store_name=self.source_stores.get("validations"),
                )
                if not isinstance(result, ExpectationSuiteValidationResult):
                    continue
                entry = {
                    "success": bool(result.success),
                    "asset_name": _resolve_asset_name(result),
                }
                cache[_key(key)] = entry
                changed = True
            self.add_resource_info_to_index_links_dict(
                index_links_dict=index_links_dict,
                expectation_suite_name=key.expectation_suite_identifier.name,
                section_name="validations",
                batch_identifier=key.batch_identifier,
                run_id=key.run_id,
                validation_success=entry["success"],
                run_time=key.run_id.run_time,
                run_name=key.run_id.run_name,
                asset_name=entry["asset_name"],
                batch_kwargs={},
                batch_spec={},
            )
        if changed:
            self._save_cache(cache)
