"""Data Docs work from file:// with no network: checked in a real headless browser.

Debian's chromium (``apt-get install -y chromium``) driven by Playwright; every request the page
makes is recorded, and any http(s) one is aborted and fails the test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from searchflow.config import Settings
from searchflow.errors import GateFailed
from searchflow.quality import gate, offline
from tests.quality.helpers import land_raw

CHROMIUM = "/usr/bin/chromium"
JQUERY = "https://code.jquery.com/jquery-3.7.1.min.js"


def _gated_site(settings: Settings) -> Path:
    """A site with a passed and a failed validation."""
    land_raw(settings, batch_id="ing-ok")
    gate("ingestion", settings, {"batch_id": "ing-ok"})
    land_raw(settings, batch_id="ing-bad", searches=0, clicks=0, conversions=0, dead_letters=9)
    with pytest.raises(GateFailed):
        gate("ingestion", settings, {"batch_id": "ing-bad"})
    return settings.home_path / "quality" / "data_docs"


def test_every_cdn_file_is_committed_with_a_licence() -> None:
    for url, relative in offline.CDN.items():
        path = offline.ASSETS / relative
        assert path.is_file(), f"{url} -> {path} is missing"
        package = offline.ASSETS / relative.split("/")[0]
        assert any(p.name.startswith("LICENSE") for p in package.iterdir()), package
    fonts = offline.ASSETS / "fontawesome-free@6.6.0" / "webfonts"
    assert {p.name for p in fonts.glob("*.woff2")} >= {"fa-solid-900.woff2", "fa-regular-400.woff2"}


def test_built_pages_reference_no_remote_file(settings: Settings) -> None:
    site = _gated_site(settings)
    pages = list(site.rglob("*.html"))
    assert len(pages) == 3  # the index and two validations
    for page in pages:
        html = page.read_text(encoding="utf-8")
        for url in offline.CDN:
            assert f'"{url}"' not in html, (page, url)
        assert "amazonaws.com" not in html and "integrity=" not in html
    css = (site / "static" / "styles" / "data_docs_default_styles.css").read_text()
    assert "amazonaws.com" not in css
    assert (site / "static" / "vendor" / offline.STAMP).exists()


def test_a_site_built_before_is_rewritten_when_it_gets_the_assets(settings: Settings) -> None:
    site = _gated_site(settings)
    shutil.rmtree(site / "static" / "vendor")
    index = site / "index.html"
    index.write_text(index.read_text().replace("static/vendor/jquery@3.7.1/jquery.min.js", JQUERY))
    land_raw(settings, batch_id="ing-3", searches=0, clicks=0, conversions=0, dead_letters=1)
    with pytest.raises(GateFailed):
        gate("ingestion", settings, {"batch_id": "ing-3"})
    assert JQUERY not in index.read_text()
    assert (site / "static" / "vendor" / "jquery@3.7.1" / "jquery.min.js").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install -y chromium)"
)
def test_the_index_lists_the_validations_offline_in_a_browser(
    settings: Settings, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    site = _gated_site(settings)
    requested: list[str] = []
    remote: list[str] = []

    def route(r):  # every request: file:// ones go through, anything else is refused
        requested.append(r.request.url)
        if r.request.url.startswith(("http://", "https://")):
            remote.append(r.request.url)
            return r.abort()
        return r.continue_()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", route)
            page.goto((site / "index.html").as_uri())
            page.wait_for_selector("table.table tbody tr", timeout=30_000)
            text = page.inner_text("body")
            icons = page.evaluate(
                "() => [...document.querySelectorAll('i.fas, i.fa')]"
                ".map(i => getComputedStyle(i, '::before').fontFamily)"
            )
            bootstrap = page.evaluate(
                "() => getComputedStyle(document.querySelector('nav.navbar')).display"
            )
            page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
            shutil.copy(tmp_path / "index.png", settings.home_path / "index.png")
            page.goto(next((site / "validations").rglob("*.html")).as_uri())
            page.wait_for_load_state("load")
            page_icons = page.evaluate(
                "() => [...document.querySelectorAll('i.fas, i.fa')]"
                ".map(i => getComputedStyle(i, '::before').content)"
            )
        finally:
            browser.close()
    assert remote == [], remote
    assert any(u.endswith("bootstrap-table.min.js") for u in requested)
    assert "ingestion-ing-ok" in text and "ingestion-ing-bad" in text, text[:2000]
    assert icons and all("Font Awesome" in f for f in icons), icons
    assert bootstrap == "flex"
    assert page_icons and all(c not in ("none", "normal", "") for c in page_icons), page_icons
