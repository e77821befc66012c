"""Every use of Great Expectations beyond its public API, in one place.

GX builds Data Docs through a ``SiteBuilder``: ``context.build_data_docs`` makes a new one on every
call (its Jinja views compile every template again), and its index builder re-reads and re-parses
every stored validation result to list it, so a build grows with the history. We keep one builder
per process and cache what the index needs of each result. GX has no public hook for either:

- :func:`site_builder` builds the site's ``SiteBuilder`` the way GX's own (private)
  ``_init_site_builder_for_data_docs_site_creation`` does, through the public
  ``instantiate_class_from_config``;
- :func:`asset_name` is what GX's private ``_resolve_asset_name`` computes, from public fields;
- :class:`CachedSiteIndexBuilder` overrides the private ``_add_validations_to_index_links`` of
  ``DefaultSiteIndexBuilder`` (named in ``expectations/great_expectations.yml``).

``tests/compat/test_great_expectations.py`` fails when GX changes what these rely on.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
)
from great_expectations.data_context.util import instantiate_class_from_config
from great_expectations.render.renderer.site_builder import (
    DefaultSiteIndexBuilder,
    resource_key_passes_run_name_filter,
)

CACHE_NAME = ".index_links.json"
# The private method of DefaultSiteIndexBuilder that CachedSiteIndexBuilder replaces.
OVERRIDDEN = "_add_validations_to_index_links"


def site_builder(context: Any, site_name: str) -> Any:
    """The ``SiteBuilder`` of one Data Docs site, configured as ``build_data_docs`` configures it."""
    return instantiate_class_from_config(
        config=context.variables.data_docs_sites[site_name],
        runtime_environment={
            "data_context": context,
            "root_directory": context.root_directory,
            "site_name": site_name,
        },
        config_defaults={
            "class_name": "SiteBuilder",
            "module_name": "great_expectations.render.renderer.site_builder",
        },
    )


def asset_name(result: ExpectationSuiteValidationResult) -> str | None:
    """The data asset a validation result is about, as the Data Docs index names it."""
    batch_kwargs = result.meta.get("batch_kwargs") or {}
    batch_spec = result.meta.get("batch_spec") or {}
    return (
        batch_kwargs.get("data_asset_name")
        or batch_spec.get("data_asset_name")
        or result.asset_name
    )


def _cache_key(validation_result_key: Any) -> str:
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

    def _summary(self, key: Any) -> dict[str, Any] | None:
        """Success and asset name of one stored result (None when the store no longer has it)."""
        result = self.data_context.get_validation_result(
            batch_identifier=key.batch_identifier,
            expectation_suite_name=key.expectation_suite_identifier.name,
            run_id=key.run_id,
            validation_results_store_name=self.source_stores.get("validations"),
        )
        if not isinstance(result, ExpectationSuiteValidationResult):
            return None
        return {"success": bool(result.success), "asset_name": asset_name(result)}

    def _listed(self, keys: list[Any]) -> list[Any]:
        """The result keys the index lists: the site's run-name filter, newest first, its limit."""
        config = self.site_section_builders_config.get("validations")
        name_filter = config.get("run_name_filter") if isinstance(config, dict) else None
        kept = [k for k in keys if resource_key_passes_run_name_filter(k, name_filter)]
        kept.sort(key=lambda k: k.run_id.run_time, reverse=True)
        return kept[: self.validation_results_limit] if self.validation_results_limit else kept

    def _add_validations_to_index_links(
        self, index_links_dict: OrderedDict, validation_and_profiling_result_site_keys: list
    ) -> None:
        config = self.site_section_builders_config.get("validations", "None")
        if not config or config in ("None", "none", "false", "False", False):
            return super()._add_validations_to_index_links(
                index_links_dict, validation_and_profiling_result_site_keys
            )
        cache = self._load_cache()
        changed = False
        for key in self._listed(validation_and_profiling_result_site_keys):
            entry = cache.get(_cache_key(key))
            if entry is None:
                entry = self._summary(key)
                if entry is None:
                    continue
                cache[_cache_key(key)] = entry
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
