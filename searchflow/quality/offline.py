"""Data Docs that work from ``file://`` with no network.

GX's page templates load Bootstrap, bootstrap-table (which renders the index's list of
validations), Font Awesome (the pass/fail icons), jQuery, popper, the date picker, the dark theme
and Vega from CDNs, and the logo from GX's S3 bucket. Offline, the index lists no validation and
the pages show no status icons. The exact files those templates reference are committed in
``expectations/data_docs_assets/`` (from their npm packages, with their licences; see the README
there). After each build :func:`localize` copies them into the site (``static/vendor/``) and
rewrites the references of the pages just written to relative paths; the first time a site gets
the assets, every page already in it is rewritten too.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[2] / "expectations" / "data_docs_assets"
VENDOR = Path("static") / "vendor"
STAMP = ".assets"

# Each CDN address GX 1.24's templates load -> the committed file (relative to ASSETS). The
# bootstrap-table 1.19.0 filter-control styles are served by 1.19.1's identical-purpose files.
CDN: dict[str, str] = {
    "https://cdn.jsdelivr.net/npm/vega@5": "vega@5.33.1/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite@5.23.0/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed@6.29.0/vega-embed.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "fontawesome-free@6.6.0/css/all.min.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js@1.12.9/popper.min.js",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap@4.3.1/js/bootstrap.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap@4.3.1/css/bootstrap.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table@1.19.1/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table@1.19.1/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table@1.19.1/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table@1.19.1/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table@1.19.1/extensions/filter-control/bootstrap-table-filter-control.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker@1.9.0/js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker@1.9.0/css/bootstrap-datepicker.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark@1.1.0/bootstrap-prefers-dark.css",
}  # fmt: skip
# GX's logo: its S3 bucket -> the copy GX itself puts in every site (static/images/).
_GX_IMAGES = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/([\w.-]+)(\?[^\"')]*)?"
)
_LOCAL_LOGO = "logo-long.png"
# A <script> or <link> tag loading one of the CDN addresses (attributes in any order).
_TAG = re.compile(r"<(script|link)\b[^>]*?\b(?:src|href)=\"(https://[^\"]+)\"[^>]*>")
_CHECKS = re.compile(r"\s+(?:integrity|crossorigin)=\"[^\"]*\"")


def _stamp() -> str:
    """Identifies the committed asset set, so a site whose copy is older gets the new one."""
    digest = hashlib.sha256()
    for path in sorted(p for p in ASSETS.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(ASSETS)).encode())
        digest.update(str(path.stat().st_size).encode())
    return digest.hexdigest()[:16]


def install(site: Path) -> bool:
    """Copy the assets into ``site/static/vendor`` unless that copy is current; True if copied."""
    target = site / VENDOR
    stamp = _stamp()
    marker = target / STAMP
    if marker.exists() and marker.read_text(encoding="utf-8") == stamp:
        return False
    tmp = site / "static" / f".vendor-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(ASSETS, tmp)
    (tmp / STAMP).write_text(stamp, encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    return True


def rewrite(html: str, page: Path, site: Path) -> str:
    """The page with every CDN load pointing at the site's vendored copy (relative paths)."""
    vendor = Path(os.path.relpath(site / VENDOR, page.parent)).as_posix()
    images = Path(os.path.relpath(site / "static" / "images", page.parent)).as_posix()

    def tag(match: re.Match[str]) -> str:
        url = match.group(2)
        if url not in CDN:
            return match.group(0)
        return _CHECKS.sub("", match.group(0)).replace(url, f"{vendor}/{CDN[url]}")

    html = _TAG.sub(tag, html)
    return _GX_IMAGES.sub(f"{images}/{_LOCAL_LOGO}", html)


def _rewrite_file(path: Path, site: Path) -> None:
    text = path.read_text(encoding="utf-8")
    new = rewrite(text, path, site)
    if new != text:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(path)


def localize(site: Path, pages: Iterable[Path]) -> None:
    """Make these pages (and GX's stylesheet) of the site load only local files.

    When the site gets (new) assets, every page in it is rewritten, so that a site built before
    keeps working offline too.
    """
    if install(site):
        pages = site.rglob("*.html")
    for page in pages:
        if page.exists():
            _rewrite_file(page, site)
    styles = site / "static" / "styles" / "data_docs_default_styles.css"
    if styles.exists():  # copied by GX on every build; its dark theme takes the logo from S3
        _rewrite_file(styles, site)
