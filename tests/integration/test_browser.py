"""The widget browser and lineage picture in a real headless Chromium (Playwright).

Two pages: a live voila server running a notebook that shows ``ln.widgets.browse`` (clicks go
through the kernel and back), and a static ``ipywidgets.embed`` export whose widget JavaScript
(``@jupyter-widgets/html-manager``'s ``dist/embed-amd.js`` and ``requirejs``) is installed from the
npm registry into a cache directory at setup time; the browser is an anywidget, whose AMD module
comes from the anywidget Python package's nbextension. Every non-local request is blocked and
asserted absent.
"""

from __future__ import annotations

import json
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
from paths import TESTS

import lineage_nb as ln

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"
REQUIREJS = "requirejs@2.3.7"
XSS = "<img src=x onerror=alert(1)>"
LOCAL = ("file://", "data:", "about:", "blob:", "http://127.0.0.1:", "ws://127.0.0.1:")


def npm_cache() -> Path:
    """Where the npm widget bundle is installed (outside the repository)."""
    default = Path.home() / ".cache" / "lineage_nb" / "npm"
    return Path(os.environ.get("LINEAGE_NB_NPM_CACHE", default))


@pytest.fixture(scope="session")
def embed_js() -> Path:
    """``dist/embed-amd.js`` of the html-manager (with requirejs beside it), installed with npm
    on first use."""
    cache = npm_cache()
    script = cache / "node_modules" / "@jupyter-widgets" / "html-manager" / "dist" / "embed-amd.js"
    require = cache / "node_modules" / "requirejs" / "require.js"
    if not (script.exists() and require.exists()):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("browser tests need npm (apt-get install npm) to fetch " + HTML_MANAGER)
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--prefix",
                str(cache),
                HTML_MANAGER,
                REQUIREJS,
            ],
            check=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
    assert script.exists(), f"npm install of {HTML_MANAGER} did not produce {script}"
    assert require.exists(), f"npm install of {REQUIREJS} did not produce {require}"
    return script


def anywidget_amd() -> Path:
    """The anywidget front end as an AMD module (the Python package's classic-notebook bundle)."""
    from jupyter_core.paths import jupyter_path

    for folder in jupyter_path("nbextensions", "anywidget"):
        found = Path(folder) / "index.js"
        if found.exists():
            return found
    pytest.fail("anywidget's nbextensions/anywidget/index.js is missing (pip install anywidget)")


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
    """A static page of ``widget``: its whole state (its ESM code too) and the view, rendered by
    the html-manager with requirejs; anywidget's module is a local file."""
    from ipywidgets.embed import dependency_state, embed_data

    data = embed_data(
        views=[widget], state=dependency_state([widget], drop_defaults=False), drop_defaults=False
    )
    require = embed_js.parents[3] / "requirejs" / "require.js"
    amd = anywidget_amd().with_suffix("")

    def script_json(value: Any) -> str:
        return json.dumps(value).replace("</", "<\\/")

    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>browse</title>
<script src="{require.as_uri()}"></script>
<script>require.config({{paths: {{anywidget: {json.dumps(amd.as_uri())}}}}});</script>
<script src="{embed_js.as_uri()}"></script>
<script type="application/vnd.jupyter.widget-state+json">{script_json(data["manager_state"])}</script>
</head><body style="margin:8px">
<script type="application/vnd.jupyter.widget-view+json">{script_json(data["view_specs"][0])}</script>
</body></html>"""
    path.write_text(page, encoding="utf-8")
    return path


@pytest.fixture
def samples(db: ln.Database, run: ln.Run, monkeypatch: pytest.MonkeyPatch) -> list[Sample]:
    """12 samples of project 'Alpha'; the 4th holds markup in its name."""
    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: comm.DummyComm())
    project = Project(name="Alpha").save()
    return Sample.bulk_create(
        [
            Sample(name=XSS if i == 3 else f"s{i:02d}", value=float(i), project=project)
            for i in range(12)
        ]
    )


def _fills_width(tab: Any) -> float:
    """The table's width over the width of the element the widget was given."""
    return float(
        tab.evaluate(
            "(() => { const t = document.querySelector('.lnb-tablewrap');"
            " const c = document.querySelector('.lnb-browser').parentElement.parentElement;"
            " return t.getBoundingClientRect().width / c.getBoundingClientRect().width; })()"
        )
    )


def test_browser_shows_rows_detail_and_picture(
    samples: list[Sample], page: Page, embed_js: Path, tmp_path: Path, shots: Path
) -> None:
    """Static export: rows, summaries, the selected record's detail and its lineage picture
    render from the saved state alone; markup stays text; the table fills the width."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.show_summaries = True
    browser.select_row(3)
    html_file = _export(browser, tmp_path / "browse.html", embed_js)
    assert html_file.stat().st_size < 80_000
    tab = page.page
    tab.goto(html_file.as_uri())
    tab.wait_for_selector(".lnb-table .lnb-row", timeout=60_000)
    table = tab.locator(".lnb-table tbody")
    for name in ("s00", "s09", XSS):
        assert table.get_by_text(name, exact=True).is_visible(), name
    assert table.get_by_text("s10", exact=True).count() == 0  # page 2
    assert tab.locator(".lnb-row").count() == 10
    assert tab.get_by_text("page 1 of 2 · 12 rows").is_visible()
    assert tab.locator(".lnb-row.lnb-selected").get_by_text(XSS, exact=True).is_visible()
    assert tab.locator(".lnb-hist").count() >= 3  # id, value, created_at ...
    title = f"Sample {samples[3].id}: {XSS}"
    assert tab.locator(".lnb-detail-title").inner_text() == title
    assert tab.get_by_role(
        "button", name=f"project: Project {samples[3].project_id}: Alpha"
    ).is_visible()
    picture = tab.locator(".lnb-picture svg")
    assert picture.is_visible() and "Lineage of" in (picture.text_content() or "")
    assert picture.get_by_text(XSS).first.is_visible()
    assert tab.locator(".lnb-picture .lnb-clickable").count() >= 2  # run, transform, user
    assert _fills_width(tab) >= 0.95
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
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, tmp_path / "browse.ipynb")
    _voila_template(tmp_path / "jupyter")
    port = _free_port()
    env = {
        **os.environ,
        "LINEAGE_NB_DATABASE_URL": db_url,
        "PYTHONPATH": str(TESTS),
        "JUPYTER_PATH": str(tmp_path / "jupyter"),
    }
    log = (tmp_path / "voila.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            "browse.ipynb",
            "--no-browser",
            f"--port={port}",
            "--Voila.ip=127.0.0.1",
            "--template=lnb",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
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


def _detail_title(tab: Any, text: str) -> None:
    tab.locator(".lnb-detail-title", has_text=text).wait_for(timeout=30_000)
    assert tab.locator(".lnb-detail-title").inner_text() == text


def _filter(tab: Any, column: str, text: str) -> None:
    box = tab.get_by_label(f"filter {column}", exact=True)
    box.fill(text)
    box.press("Enter")


def _open_run_expand_group_and_open_a_record(tab: Any, third: Sample) -> None:
    """From a sample's picture: its run node opens the run, whose 13 samples are one group node;
    a click on it draws each sample; a click on one opens it; back, back."""
    run_node = tab.locator('.lnb-picture g.lnb-clickable[data-node^="run|"]').first
    run_id = (run_node.get_attribute("data-node") or "").removeprefix("run|")
    run_node.click()
    tab.locator(".lnb-detail-title", has_text=f"run {run_id} ").wait_for(timeout=30_000)
    group = tab.locator(f'.lnb-picture g.lnb-expandable[data-node="records|sample|{run_id}|wrote"]')
    group.wait_for(timeout=30_000)
    assert group.get_attribute("data-count") == "13"
    assert tab.locator(".lnb-picture g[data-node^='record|sample|']").count() == 0
    group.click()
    record = tab.locator(f'.lnb-picture g.lnb-clickable[data-node="record|sample|{third.id}"]')
    record.wait_for(timeout=30_000)
    assert tab.locator(".lnb-picture g[data-node^='record|sample|']").count() == 13
    assert tab.locator(".lnb-picture g[data-count]").count() == 0
    assert tab.locator(".lnb-detail-title").inner_text().startswith(f"run {run_id} ")
    record.click()
    _detail_title(tab, f"Sample {third.id}: third")
    tab.get_by_role("button", name="◀ back").click()
    tab.locator(".lnb-detail-title", has_text=f"run {run_id} ").wait_for(timeout=30_000)
    tab.locator(f'.lnb-picture g[data-node="record|sample|{third.id}"]').wait_for(timeout=30_000)
    assert tab.locator(".lnb-picture g[data-count]").count() == 0  # still expanded
    tab.get_by_role("button", name="◀ back").click()


def test_live_browser_round_trip(
    voila_url: str, samples: list[Sample], page: Page, shots: Path, tmp_path: Path
) -> None:
    """Selecting, paging, sorting, filtering (a label and a float), detail navigation and back,
    the keyboard and a download go through the kernel and back."""
    beta = Project(name="Beta").save()
    third = Sample(name="third", value=1 / 3, project=beta).save()
    tab = page.page
    tab.goto(voila_url, timeout=60_000)
    tab.wait_for_selector(".lnb-table .lnb-row", timeout=90_000)
    rows = tab.locator(".lnb-table .lnb-row")
    assert rows.first.get_by_text("s00", exact=True).is_visible()
    assert tab.get_by_text("Select a row").is_visible()
    assert _fills_width(tab) >= 0.95

    rows.filter(has_text="s02").click()
    _detail_title(tab, f"Sample {samples[2].id}: s02")
    tab.locator(".lnb-picture svg").filter(has_text=f"Lineage of Sample {samples[2].id}").wait_for(
        timeout=30_000
    )
    tab.locator("table.lnb-history").get_by_text("insert").wait_for(timeout=30_000)
    project = tab.get_by_role("button", name=f"project: Project {samples[2].project_id}: Alpha")
    project.click()
    _detail_title(tab, f"Project {samples[2].project_id}: Alpha")
    tab.get_by_role("button", name="◀ back").click()
    _detail_title(tab, f"Sample {samples[2].id}: s02")
    assert tab.get_by_role("button", name="◀ back").is_disabled()
    _open_run_expand_group_and_open_a_record(tab, third)
    _detail_title(tab, f"Sample {samples[2].id}: s02")

    rows.filter(has_text=XSS).click()
    _detail_title(tab, f"Sample {samples[3].id}: {XSS}")
    tab.locator(".lnb-picture svg").filter(has_text=f"Lineage of Sample {samples[3].id}").wait_for(
        timeout=30_000
    )
    tab.screenshot(path=str(shots / "voila-browser.png"), full_page=True, timeout=30_000)

    status = tab.locator(".lnb-status")
    assert status.inner_text() == "page 1 of 2 · 13 rows"
    tab.get_by_role("button", name="next ▶").click()
    tab.locator(".lnb-status", has_text="page 2 of 2 · 13 rows").wait_for(timeout=30_000)
    rows.filter(has_text="third").wait_for(timeout=30_000)
    tab.get_by_role("button", name="◀ prev").click()
    tab.locator(".lnb-status", has_text="page 1 of 2").wait_for(timeout=30_000)

    tab.get_by_role("button", name="value", exact=True).click()
    tab.get_by_role("button", name="value ▲").wait_for(timeout=30_000)
    tab.get_by_role("button", name="value ▲").click()
    tab.get_by_role("button", name="value ▼").wait_for(timeout=30_000)
    rows.first.get_by_text("s11", exact=True).wait_for(timeout=30_000)

    _filter(tab, "project", "bet")  # the label, not the key
    tab.locator(".lnb-status", has_text="page 1 of 1 · 1 rows").wait_for(timeout=30_000)
    assert rows.count() == 1 and rows.first.get_by_text("third").is_visible()
    _filter(tab, "project", "")
    tab.locator(".lnb-status", has_text="· 13 rows").wait_for(timeout=30_000)
    shown = "0.3333333333"
    _filter(tab, "value", shown)  # the float as the table shows it
    tab.locator(".lnb-status", has_text="· 1 rows").wait_for(timeout=30_000)
    rows.first.get_by_text(shown, exact=True).wait_for(timeout=30_000)
    assert rows.count() == 1
    _filter(tab, "value", "5..7")
    tab.locator(".lnb-status", has_text="· 3 rows").wait_for(timeout=30_000)
    _filter(tab, "value", "abc")
    tab.locator(".lnb-error", has_text="filter 'abc' is not a number").wait_for(timeout=30_000)
    _filter(tab, "value", "")
    tab.locator(".lnb-status", has_text="· 13 rows").wait_for(timeout=30_000)
    search = tab.get_by_label("search all columns")
    search.fill("S1")
    search.press("Enter")
    tab.locator(".lnb-status", has_text="page 1 of 1 · 2 rows").wait_for(timeout=30_000)
    rows.filter(has_text="s10").wait_for(timeout=30_000)
    search.fill("")
    search.press("Enter")
    tab.locator(".lnb-status", has_text="· 13 rows").wait_for(timeout=30_000)

    table = tab.locator("table.lnb-table")
    table.focus()
    for key in ("Home", "ArrowDown", "ArrowDown", "ArrowUp", "Enter"):
        table.press(key)
    second = rows.nth(1).locator("td").nth(1).inner_text()
    tab.locator(".lnb-detail-title", has_text=second).wait_for(timeout=30_000)
    assert tab.locator(".lnb-row.lnb-selected").count() == 1

    tab.get_by_role("button", name="↓ CSV").click()
    link = tab.locator("a.lnb-file")
    link.wait_for(timeout=30_000)
    name = link.inner_text().removeprefix("↓ ")
    assert name.startswith("Sample-") and name.endswith(".csv")
    assert (tmp_path / name).exists() and "third" in (tmp_path / name).read_text()

    assert (shots / "voila-browser.png").stat().st_size > 20_000
    assert tab.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert page.dialogs == []
    del third
