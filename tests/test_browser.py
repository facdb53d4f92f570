"""The widget browser and lineage picture in a real headless Chromium (Playwright).

The page is a static ``ipywidgets.embed`` export whose widget JavaScript
(``@jupyter-widgets/html-manager``'s ``dist/embed.js``) is installed from the npm registry into a
cache directory at setup time; every non-local request is blocked and asserted absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comm
import pytest
from models import Project, Sample

import lineage_nb as ln

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"
XSS = "<img src=x onerror=alert(1)>"


def npm_cache() -> Path:
    """Where the npm widget bundle is installed (outside the repository)."""
    default = Path.home() / ".cache" / "lineage_nb" / "npm"
    return Path(os.environ.get("LINEAGE_NB_NPM_CACHE", default))


@pytest.fixture(scope="session")
def embed_js() -> Path:
    """``dist/embed.js`` of the html-manager, installed with npm on first use."""
    cache = npm_cache()
    script = cache / "node_modules" / "@jupyter-widgets" / "html-manager" / "dist" / "embed.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("browser tests need npm (apt-get install npm) to fetch " + HTML_MANAGER)
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", str(cache),
             HTML_MANAGER], check=True, timeout=900, stdin=subprocess.DEVNULL,
        )
    assert script.exists(), f"npm install of {HTML_MANAGER} did not produce {script}"
    return script


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"browser tests need {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A page that blocks and remembers every non-local request and every dialog."""

    def __init__(self, chromium: Any) -> None:
        self.context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        self.blocked: list[str] = []
        self.dialogs: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("dialog", self._dialog)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(("file://", "data:", "about:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def page(chromium: Any) -> Iterator[Page]:
    """A fresh page; afterwards, no request may have left the machine."""
    opened = Page(chromium)
    yield opened
    opened.context.close()
    assert opened.blocked == [], f"non-local requests: {opened.blocked}"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go (``LINEAGE_NB_SCREENSHOTS`` to keep them)."""
    folder = Path(os.environ.get("LINEAGE_NB_SCREENSHOTS", tmp_path / "shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _export(widget: Any, path: Path, embed_js: Path) -> Path:
    from ipywidgets.embed import dependency_state, embed_minimal_html

    embed_minimal_html(path, views=[widget], state=dependency_state([widget]), title="browse",
                       requirejs=False, embed_url=embed_js.as_uri(), cors=False)
    return path


@pytest.fixture
def samples(db: ln.Database, run: ln.Run, monkeypatch: pytest.MonkeyPatch) -> list[Sample]:
    """12 samples of project 'Alpha'; the 4th holds markup in its name."""
    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: comm.DummyComm())
    project = Project(name="Alpha").save()
    return Sample.bulk_create(
        [Sample(name=XSS if i == 3 else f"s{i:02d}", value=float(i), project=project)
         for i in range(12)]
    )


def test_browser_shows_rows_detail_and_picture(
    samples: list[Sample], page: Page, embed_js: Path, tmp_path: Path, shots: Path
) -> None:
    """Rows, the selected record's detail and its lineage picture render; markup stays text."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.table.select_row(3)
    html_file = _export(browser, tmp_path / "browse.html", embed_js)
    tab = page.page
    tab.goto(html_file.as_uri())
    tab.wait_for_selector(".widget-gridbox", timeout=30_000)
    grid = tab.locator(".widget-gridbox")
    for name in ("s00", "s09", XSS):
        assert grid.get_by_text(name, exact=True).is_visible(), name
    assert grid.get_by_text("s10", exact=True).count() == 0  # page 2
    assert tab.get_by_text("page 1 of 2 · 12 rows").is_visible()
    title = f"Sample {samples[3].id}: {XSS}"
    assert tab.get_by_text(title, exact=True).first.is_visible()
    assert tab.get_by_text("project: Project").first.is_visible()
    picture = tab.locator("svg").filter(has_text="Lineage of")
    assert picture.is_visible()
    assert picture.get_by_text(XSS).first.is_visible()
    tab.screenshot(path=str(shots / "browser.png"), full_page=True, timeout=30_000)
    assert (shots / "browser.png").stat().st_size > 20_000
    assert tab.evaluate("document.querySelectorAll('img').length") == 0
    assert page.dialogs == []


def test_lineage_picture_in_browser(
    samples: list[Sample], page: Page, tmp_path: Path, shots: Path
) -> None:
    """The saved lineage picture renders with every label inside the drawing."""
    picture = samples[3].view_lineage()
    html_file = picture.save(tmp_path / "lineage.html")
    tab = page.page
    tab.goto(html_file.as_uri())
    svg = tab.locator("svg")
    box = svg.bounding_box()
    assert box is not None and box["width"] > 300
    for label in (f"Sample {samples[3].id}", XSS, "tester", "conftest.py v1", "started"):
        element = svg.locator("text", has_text=label).first
        assert element.is_visible(), label
        inner = element.bounding_box()
        assert inner is not None
        assert box["x"] <= inner["x"] and inner["x"] + inner["width"] <= box["x"] + box["width"]
    svg.screenshot(path=str(shots / "lineage.png"), timeout=30_000)
    assert (shots / "lineage.png").stat().st_size > 5_000
    assert tab.evaluate("document.querySelectorAll('img, script').length") == 0
    assert page.dialogs == []
