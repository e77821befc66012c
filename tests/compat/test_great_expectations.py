"""What searchflow.compat.great_expectations relies on in GX: fails loudly when an upgrade changes it.

The index builder overrides a private method, the site builder is built the way a private method
builds it, and the asset name is computed as a private function computes it. Each test names the
GX member it guards; the last one builds real Data Docs through the cached index.
"""

from __future__ import annotations

import inspect
import json

from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
)
from great_expectations.render.renderer import site_builder as gx_site_builder

from searchflow.compat import great_expectations as compat
from searchflow.config import Settings


def test_the_overridden_index_method_is_still_called_with_the_same_arguments() -> None:
    base = gx_site_builder.DefaultSiteIndexBuilder
    method = getattr(base, compat.OVERRIDDEN, None)
    assert method is not None, f"GX removed DefaultSiteIndexBuilder.{compat.OVERRIDDEN}"
    params = list(inspect.signature(method).parameters)
    assert params == ["self", "index_links_dict", "validation_and_profiling_result_site_keys"]
    assert compat.OVERRIDDEN in inspect.getsource(base.build), "build() no longer calls it"
    ours = list(
        inspect.signature(compat.CachedSiteIndexBuilder._add_validations_to_index_links).parameters
    )
    assert ours == params


def test_the_index_entry_api_takes_what_the_override_passes() -> None:
    params = inspect.signature(
        gx_site_builder.DefaultSiteIndexBuilder.add_resource_info_to_index_links_dict
    ).parameters
    passed = {
        "index_links_dict", "expectation_suite_name", "section_name", "batch_identifier",
        "run_id", "validation_success", "run_time", "run_name", "asset_name", "batch_kwargs",
        "batch_spec",
    }  # fmt: skip
    assert passed <= set(params)
    assert callable(gx_site_builder.resource_key_passes_run_name_filter)


def test_asset_name_agrees_with_gxs_private_resolver() -> None:
    resolve = getattr(gx_site_builder, "_resolve_asset_name")  # noqa: B009 - the guarded private
    metas = [
        {"batch_kwargs": {"data_asset_name": "from_kwargs"}},
        {"batch_spec": {"data_asset_name": "from_spec"}},
        {"active_batch_definition": {"data_asset_name": "ingestion__batch"}},
        {},
    ]
    for meta in metas:
        result = ExpectationSuiteValidationResult(
            success=True, results=[], suite_name="s", meta=meta
        )
        assert compat.asset_name(result) == resolve(result), meta


def test_site_builder_matches_the_one_build_data_docs_makes(settings: Settings) -> None:
    from searchflow.quality.context import get_context
    from searchflow.quality.docs import SITE

    context = get_context(settings)
    private = getattr(context, "_init_site_builder_for_data_docs_site_creation")  # noqa: B009
    theirs = private(site_name=SITE, site_config=context.variables.data_docs_sites[SITE])
    ours = compat.site_builder(context, SITE)
    assert type(ours) is type(theirs)
    assert type(ours.site_index_builder) is compat.CachedSiteIndexBuilder
    assert type(theirs.site_index_builder) is compat.CachedSiteIndexBuilder
    assert ours.get_resource_url(only_if_exists=False) == theirs.get_resource_url(
        only_if_exists=False
    )


def test_the_cached_index_lists_every_validation_and_reads_each_once(settings: Settings) -> None:
    from searchflow import warehouse
    from searchflow.quality import gate
    from tests.quality.helpers import land_raw

    for batch_id in ("ing-a", "ing-b"):  # the same ids: each is gated before the next lands
        land_raw(settings, batch_id=batch_id)
        gate("ingestion", settings, {"batch_id": batch_id})
        with warehouse.session(settings) as con:
            con.execute("DELETE FROM raw.search_events; DELETE FROM raw.click_events")
            con.execute("DELETE FROM raw.conversion_events")
    docs = settings.home_path / "quality" / "data_docs"
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert "ingestion-ing-a" in index and "ingestion-ing-b" in index
    cache = json.loads((docs / compat.CACHE_NAME).read_text(encoding="utf-8"))
    assert len(cache) == 2
    assert {e["asset_name"] for e in cache.values()} == {"ingestion__batch"}
    assert all(e["success"] is True for e in cache.values())
