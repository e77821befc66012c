"""Drive the dashboards in a real browser: for the browser tests, the page-render benchmark and the
README's screenshots.

It serves ``searchflow dashboard`` on a free port and opens it in the system's Chromium through
Playwright (a development dependency, imported only here): Playwright's own browser download
cannot work offline, Debian's ``chromium`` package can.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

HEALTH_SECONDS = 90
RENDER_SECONDS = 60
SCREENSHOT_HEIGHT = 2000
TRACEBACK = re.compile(r"Traceback \(most recent call last\)")


def chromium() -> str | None:
    """The system Chromium's executable, or None when it is not installed."""
    for candidate in ("chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def unavailable() -> str | None:
    """Why a browser cannot be driven here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if chromium() is None:
        return "no chromium on this machine (Debian: apt-get install -y chromium)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(
    home: Path,
    *,
    env: dict[str, str] | None = None,
    port: int | None = None,
    command: list[str] | None = None,
) -> Iterator[str]:
    """Run ``searchflow dashboard`` for ``home`` on a free port (or ``command``, given the port as
    its last argument); yields its URL once healthy and stops exactly that process afterwards."""
    port = port or free_port()
    environment = {**os.environ, **(env or {}), "SEARCHFLOW_HOME": str(home)}
    if command is not None:
        command = [*command, str(port)]
    else:
        command = [sys.executable, "-m", "searchflow.cli", "dashboard", "--port", str(port)]
    log = open(Path(home) / f"dashboard-{port}.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + HEALTH_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"searchflow dashboard exited with {process.returncode}: "
                    f"{(Path(home) / f'dashboard-{port}.log').read_text(errors='replace')[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"searchflow dashboard did not answer on {url} in time")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass
class Reading:
    """What one page showed."""

    url: str
    title: str
    metrics: dict[str, str]
    text: str
    seconds: float
    failures: list[str] = field(default_factory=list)  # tracebacks and error boxes shown
    foreign_requests: list[str] = field(default_factory=list)  # requests off the dashboard host


@contextmanager
def browser(height: int = 1100) -> Iterator[object]:
    """A headless Chromium page (Playwright), ``height`` pixels tall, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=chromium(), args=["--no-sandbox"], headless=True
        )
        try:
            context = instance.new_context(viewport={"width": 1440, "height": height})
            yield context.new_page()
        finally:
            instance.close()


# Rendered: the script has finished, the title is there, no element is still a loading skeleton,
# and every chart has drawn (Vega-Lite draws into a canvas or an svg after the script ends).
_IDLE = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app && app.getAttribute('data-test-script-state');
    if (state !== 'notRunning' || !document.querySelector('h1')) return false;
    if (document.querySelector('[data-testid="stSkeleton"]')) return false;
    const charts = document.querySelectorAll('[data-testid="stVegaLiteChart"]');
    return Array.from(charts).every(c => !!c.querySelector('canvas, svg'));
}"""


def _settle(page) -> float:
    """Wait until Streamlit has run the page's script and drawn its elements: the script is idle
    and stays idle a moment (a page's first load may rerun it once). Returns the
    ``time.perf_counter()`` at which the page became idle for good, so the moment spent checking
    that it stays idle is not counted as rendering."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=RENDER_SECONDS * 1000)
    for _ in range(20):
        page.wait_for_function(_IDLE, timeout=RENDER_SECONDS * 1000)
        idle_at = time.perf_counter()
        page.wait_for_timeout(300)
        if page.evaluate(_IDLE):
            return idle_at
    return time.perf_counter()


def read(page, url: str, screenshot: Path | None = None) -> Reading:
    """Load ``url`` in ``page`` and read its title, KPIs, text and any error shown."""
    host = urlsplit(url).netloc
    foreign: list[str] = []

    def note(request) -> None:
        target = urlsplit(request.url)
        if target.scheme in {"http", "https", "ws", "wss"} and target.netloc != host:
            foreign.append(request.url)

    page.on("request", note)
    started = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded")
    seconds = _settle(page) - started
    page.remove_listener("request", note)
    metrics = {}
    for metric in page.query_selector_all('[data-testid="stMetric"]'):
        label = metric.query_selector('[data-testid="stMetricLabel"]')
        value = metric.query_selector('[data-testid="stMetricValue"]')
        if label and value:
            metrics[label.inner_text().strip()] = value.inner_text().strip()
    text = page.inner_text("body")
    failures = [
        e.inner_text()[:500] for e in page.query_selector_all('[data-testid="stException"]')
    ]
    if TRACEBACK.search(text) and not failures:
        failures.append(TRACEBACK.search(text).group(0))
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    title = page.query_selector("h1").inner_text().strip()
    return Reading(url, title, metrics, text, seconds, failures, foreign)


def page_links(page, url: str) -> list[str]:
    """The navigation's links, as the root page shows them (absolute URLs, in order)."""
    page.goto(url, wait_until="domcontentloaded")
    _settle(page)
    hrefs = page.eval_on_selector_all(
        '[data-testid="stSidebarNav"] a, [data-testid="stSidebarNavLink"]',
        "links => links.map(a => a.href)",
    )
    return list(dict.fromkeys(hrefs))


def visit_all(url: str, screenshots: Path | None = None) -> list[Reading]:
    """Open the root URL, follow every navigation link, and read each page."""
    # Streamlit scrolls inside its own container, so a screenshot shows what the viewport holds
    with browser(height=1100 if screenshots is None else SCREENSHOT_HEIGHT) as page:
        links = page_links(page, url)
        readings = []
        for link in links:
            name = urlsplit(link).path.strip("/") or "overview"
            shot = None if screenshots is None else screenshots / f"dashboard-{name}.png"
            readings.append(read(page, link, shot))
        return readings
