"""The widget browser and lineage picture in a real headless Chromium (Playwright).

Two pages: a live voila server running a notebook that shows ``ln.widgets.browse`` (clicks go
through the kernel and back), and a static ``ipywidgets.embed`` export whose widget JavaScript
(``@jupyter-widgets/html-manager``'s ``dist/embed.js``) is installed from the npm registry into a
cache directory at setup time. Every non-local request is blocked and asserted absent.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
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
LOCAL = ("file://", "data:", "about:", "blob:", "http://127.0.0.1:", "ws://127.0.0.1:")
TESTS = Path(__file__).resolve().parent


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


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser).

    Module scope: Playwright's sync API keeps an event loop running in this thread while it is
    open, which would break every later asyncio test.
    """
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
        if url.startswith(LOCAL):
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


# -- live: voila serving a notebook -------------------------------------------------------------
NOTEBOOK_CODE = """\
import lineage_nb as ln
from models import Sample

ln.connect()
ln.widgets.browse(Sample, page_size=10)
"""


def _voila_template(root: Path) -> None:
    """Voila's ``lab`` template minus its two CDN stylesheet links, as template ``lnb``."""
    from jupyter_core.paths import jupyter_path

    found = [Path(p) / "index.html.j2" for p in jupyter_path("voila", "templates", "lab")]
    source = next(p for p in found if p.exists()).read_text(encoding="utf-8")
    kept = "\n".join(line for line in source.splitlines() if "cdn.jsdelivr.net" not in line)
    target = root / "voila" / "templates" / "lnb"
    target.mkdir(parents=True, exist_ok=True)
    (target / "index.html.j2").write_text(kept, encoding="utf-8")
    (target / "conf.json").write_text('{"base_template": "lab"}', encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def voila_url(samples: list[Sample], db_url: str, tmp_path: Path) -> Iterator[str]:
    """A voila server on 127.0.0.1 showing the browser of the test database's samples."""
    try:
        import nbformat
        import voila  # noqa: F401
    except ImportError as error:
        pytest.fail(f"browser tests need voila (pip install voila): {error}")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(NOTEBOOK_CODE)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, tmp_path / "browse.ipynb")
    _voila_template(tmp_path / "jupyter")
    port = _free_port()
    env = {**os.environ, "LINEAGE_NB_DATABASE_URL": db_url, "PYTHONPATH": str(TESTS),
           "JUPYTER_PATH": str(tmp_path / "jupyter")}
    log = (tmp_path / "voila.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "voila", "browse.ipynb", "--no-browser", f"--port={port}",
         "--Voila.ip=127.0.0.1", "--template=lnb"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("voila did not start:\n" + (tmp_path / "voila.log").read_text())
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_live_browser_round_trip(
    voila_url: str, samples: list[Sample], page: Page, shots: Path
) -> None:
    """Clicking a row, next page and the filter go through the kernel and update the view."""
    tab = page.page
    tab.goto(voila_url, timeout=60_000)
    tab.wait_for_selector(".widget-gridbox", timeout=90_000)
    grid = tab.locator(".widget-gridbox")
    assert grid.get_by_text("s00", exact=True).is_visible()
    assert tab.get_by_text("Select a row to see the record.").is_visible()

    grid.get_by_role("button", name=str(samples[2].id), exact=True).click()
    tab.get_by_text(f"Sample {samples[2].id}: s02", exact=True).first.wait_for(timeout=30_000)
    lineage = tab.locator("svg").filter(has_text=f"Lineage of Sample {samples[2].id}")
    lineage.wait_for(timeout=30_000)
    tab.locator("table.lnb-history").get_by_text("insert").wait_for(timeout=30_000)
    tab.get_by_role("button", name="project: Project").first.wait_for(timeout=30_000)

    grid.get_by_role("button", name=str(samples[3].id), exact=True).click()
    header = tab.get_by_text(f"Sample {samples[3].id}: {XSS}", exact=True).first
    header.wait_for(timeout=30_000)
    tab.locator("svg").filter(has_text=f"Lineage of Sample {samples[3].id}").wait_for(timeout=30_000)
    tab.screenshot(path=str(shots / "voila-browser.png"), full_page=True, timeout=30_000)

    tab.get_by_role("button", name="next ▶").click()
    tab.get_by_text("page 2 of 2 · 12 rows").wait_for(timeout=30_000)
    grid.get_by_text("s11", exact=True).wait_for(timeout=30_000)

    tab.get_by_placeholder("filter (text or id)…").fill("S1")
    tab.get_by_placeholder("filter (text or id)…").press("Enter")
    tab.get_by_text("page 1 of 1 · 2 rows").wait_for(timeout=30_000)
    grid.get_by_text("s10", exact=True).wait_for(timeout=30_000)
    grid.get_by_text("s00", exact=True).wait_for(state="hidden", timeout=30_000)

    assert (shots / "voila-browser.png").stat().st_size > 20_000
    assert tab.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert page.dialogs == []
