"""The data browser in a real JupyterLab, driven by headless Chromium (Playwright).

One JupyterLab server per module, started here on 127.0.0.1 with a random token, a fresh SQLite
database in ``LINEAGE_NB_DATABASE_URL`` and every Jupyter/IPython directory in a temporary folder
(the user's configuration is never read or written). Each test writes a notebook into the
server's root, opens it in JupyterLab, runs all its cells from the Run menu, and uses the
widget's output: paging, sorting, filtering, selecting, the lineage picture (a group node
expanded, a record node opened), layout facts (the table fills the output area, no edge of the
picture crosses a node box), the dark theme's text contrast (WCAG) and the keyboard. Every
non-local request of the page is blocked and asserted absent; the server and its kernels are
shut down at the end (and killed, by process id, if they do not stop).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
import test_browser
from paths import TESTS
from test_browser import XSS, Page, _free_port

pytestmark = pytest.mark.browser

# test_browser's fixtures: Debian's Chromium, a page that blocks non-local requests, screenshots
chromium = test_browser.chromium
page = test_browser.page
shots = test_browser.shots

SAMPLES = 45
MIN_CONTRAST = 4.5
START_TIMEOUT = 180.0
WAIT = 120_000  # ms: a JupyterLab page, a kernel start or a cell run on a slow machine

SETUP_CELL = """\
import os, sys
sys.path.insert(0, {tests!r})
import lineage_nb as ln
from models import Project, Sample
ln.connect()  # LINEAGE_NB_DATABASE_URL
print("KERNEL_PID", os.getpid())
"""
DATA_CELL = """\
if not Project.filter(name="Alpha").exists():
    ln.track("jupyterlab-test")
    alpha = Project(name="Alpha").save()
    Sample.bulk_create([Sample(name={xss!r} if i == 3 else f"s{{i:02d}}", value=float(i),
                               project=alpha) for i in range({count})])
    ln.finish()
print(Sample.filter().count(), "samples")
"""
BROWSE_CELL = "ln.widgets.browse(Sample, page_size=10)"


@dataclass
class Lab:
    """A running JupyterLab server."""

    url: str
    token: str
    root: Path
    marker: str  # an environment variable's value that marks the server and its kernels
    server: subprocess.Popen[bytes]
    log: Path
    kernels: list[int] = field(default_factory=list)

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            self.url + path.lstrip("/"),
            method=method,
            data=b"" if method == "POST" else None,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def notebook(self, name: str) -> str:
        """Write notebook ``name`` (setup, data, browse) into the root; returns its lab URL."""
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [
            nbformat.v4.new_code_cell(SETUP_CELL.format(tests=str(TESTS))),
            nbformat.v4.new_code_cell(DATA_CELL.format(xss=XSS, count=SAMPLES)),
            nbformat.v4.new_code_cell(BROWSE_CELL),
            nbformat.v4.new_markdown_cell("The end."),  # a cell below the widget's
        ]
        notebook.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nbformat.write(notebook, self.root / name)
        # a workspace of its own: only this notebook open (not those of the tests before)
        return f"{self.url}lab/workspaces/{Path(name).stem}/tree/{name}?token={self.token}"


def _ours(marker: str) -> list[int]:
    """Process ids whose environment holds ``LNB_LAB_TEST=<marker>``: the server we started and
    the kernels it started (they inherit its environment)."""
    needle = f"LNB_LAB_TEST={marker}".encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _stop(lab: Lab) -> list[int]:
    """Shut the server down through its API (it stops its kernels), then terminate what is
    left: the server's process group and each kernel by its id. Returns what had to be killed."""
    started = set(_ours(lab.marker)) | set(lab.kernels)
    try:
        lab.api("api/shutdown", method="POST")
    except OSError:
        pass
    try:
        lab.server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(lab.server.pid, signal.SIGTERM)
        try:
            lab.server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(lab.server.pid, signal.SIGKILL)
            lab.server.wait(timeout=15)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in started):
        time.sleep(0.2)
    killed = [p for p in started if _alive(p)]
    for pid in killed:  # a kernel that outlived its server: its own session, by its id
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return killed


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A JupyterLab server on a free port of 127.0.0.1 with a random token; all of its state
    (config, data, runtime, settings, workspaces, IPython profile, the database) in temp dirs."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root, config, data, runtime = (base / n for n in ("root", "config", "data", "runtime"))
    for folder in (root, config / "labconfig", data, runtime, base / "ipython"):
        folder.mkdir(parents=True, exist_ok=True)
    # no "get news?" prompt over the page (and no news fetched from the internet)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    token, marker, port = secrets.token_hex(16), secrets.token_hex(8), _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER", "LINEAGE_NB_", "IPYTHON"))
    }
    env.update(
        {
            "LINEAGE_NB_DATABASE_URL": f"sqlite:///{base / 'lab.db'}",
            "LINEAGE_NB_USER": "tester",
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_DATA_DIR": str(data),
            "JUPYTER_RUNTIME_DIR": str(runtime),
            "IPYTHONDIR": str(base / "ipython"),
            "JUPYTERLAB_SETTINGS_DIR": str(config / "lab" / "user-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(config / "lab" / "workspaces"),
            "LNB_LAB_TEST": marker,
        }
    )
    log = base / "jupyterlab.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                f"--IdentityProvider.token={token}",  # ServerApp.token's name since server 2.0
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.ip=127.0.0.1",
                "--ServerApp.open_browser=False",
                f"--ServerApp.root_dir={root}",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, ended at teardown
        )
    running = Lab(f"http://127.0.0.1:{port}/", token, root, marker, server, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if "started" in running.api("api/status"):
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + log.read_text(errors="replace"))
            time.sleep(0.5)
        yield running
    finally:
        killed = _stop(running)
    assert killed == [], f"processes outlived the JupyterLab shutdown: {killed}"
    assert _ours(marker) == []


# -- driving JupyterLab -------------------------------------------------------------------------
def _menu(tab: Any, menu: str, command: str, text: str | None = None) -> None:
    """Click ``menu`` in the menu bar, then its item running ``command`` (labelled ``text``)."""
    tab.get_by_role("menuitem", name=menu, exact=True).click()
    item = tab.locator(f'.lm-Menu-item[data-command="{command}"]')
    if text is not None:
        item = item.filter(has_text=text)
    item.first.click()


def _run_notebook(tab: Any, lab: Lab, name: str) -> None:
    """Open notebook ``name`` (written now) in JupyterLab, run all cells from the Run menu and
    wait for the browser widget's rows and an idle kernel."""
    started = time.monotonic()
    tab.goto(lab.notebook(name), timeout=WAIT)
    tab.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=WAIT)
    # the kernel is connected: the status bar names it (the toolbar's indicator says "idle"
    # already before the session exists, and running then asks for a kernel)
    tab.locator(".jp-StatusBar-Widget", has_text=re.compile(r"ipykernel\) \| Idle")).wait_for(
        timeout=WAIT
    )
    idle = tab.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
    idle.wait_for(timeout=WAIT)
    first_prompt = tab.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").first
    try:
        for _attempt in range(3):  # a click while the notebook still connects may do nothing
            _menu(tab, "Run", "runmenu:run-all")
            try:
                tab.wait_for_function(
                    "(el) => /\\[(\\*|\\d+)\\]/.test(el.textContent)",
                    arg=first_prompt.element_handle(timeout=WAIT),
                    timeout=15_000,
                )
                break
            except Exception:
                tab.keyboard.press("Escape")
        tab.locator(".lnb-table .lnb-row").first.wait_for(timeout=WAIT)
        idle.wait_for(timeout=WAIT)
    except Exception:
        tab.screenshot(path=str(lab.log.with_name(f"{name}.failed.png")))
        outputs = tab.evaluate(
            "Array.from(document.querySelectorAll('.jp-Cell'))"
            ".map((c) => c.innerText.slice(0, 500))"
        )
        raise AssertionError(
            f"{name} did not show the browser; cells: {outputs}; screenshot "
            f"{lab.log.with_name(name + '.failed.png')}; server log:\n"
            + lab.log.read_text(errors="replace")[-3000:]
        ) from None
    pid = tab.locator(".jp-OutputArea-output", has_text="KERNEL_PID").first.inner_text()
    lab.kernels.append(int(pid.split()[-1]))
    print(f"{name}: opened and ran in {time.monotonic() - started:.1f} s")


def _status(tab: Any, text: str) -> None:
    tab.locator(".lnb-status", has_text=text).wait_for(timeout=30_000)


WIDTH_RATIO = """(() => {
  const wrap = document.querySelector('.lnb-tablewrap');
  const area = wrap.closest('.jp-OutputArea-output');
  return [wrap.getBoundingClientRect().width, area.getBoundingClientRect().width];
})()"""

# Every edge path of the picture sampled every 2 units: no point may lie inside the box of a
# node other than the edge's own two ends (boxes: the union of each node's shapes' getBBox()).
EDGE_CROSSINGS = """(() => {
  const svg = document.querySelector('.lnb-picture svg');
  const boxes = new Map();
  for (const g of svg.querySelectorAll('g[data-node]')) {
    let box = null;
    for (const shape of g.querySelectorAll('rect, polygon, path')) {
      const b = shape.getBBox();
      box = box === null ? {x0: b.x, y0: b.y, x1: b.x + b.width, y1: b.y + b.height}
        : {x0: Math.min(box.x0, b.x), y0: Math.min(box.y0, b.y),
           x1: Math.max(box.x1, b.x + b.width), y1: Math.max(box.y1, b.y + b.height)};
    }
    boxes.set(g.getAttribute('data-node'), box);
  }
  const crossings = [];
  const edges = svg.querySelectorAll('path.lnb-edge');
  for (const edge of edges) {
    const ends = [edge.getAttribute('data-source'), edge.getAttribute('data-target')];
    const length = edge.getTotalLength();
    for (let at = 0; at <= length; at += 2) {
      const p = edge.getPointAtLength(at);
      for (const [name, b] of boxes) {
        if (ends.includes(name)) continue;
        if (p.x > b.x0 + 0.5 && p.x < b.x1 - 0.5 && p.y > b.y0 + 0.5 && p.y < b.y1 - 0.5) {
          crossings.push(`${ends[0]} -> ${ends[1]} crosses ${name} at ${p.x.toFixed(1)},${p.y.toFixed(1)}`);
          break;
        }
      }
    }
  }
  return {nodes: boxes.size, edges: edges.length, crossings: crossings.slice(0, 10)};
})()"""

# WCAG 2 contrast of an element's text against its background: the backgrounds from the element
# up to the first opaque one, composited; the text colour composited over that.
CONTRAST = """(el) => {
  const parse = (text) => {
    const m = text.match(/rgba?\\(([^)]*)\\)/);
    if (!m) throw new Error('unexpected colour ' + text);
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) => {
    const a = top[3] + under[3] * (1 - top[3]);
    return [0, 1, 2].map((i) => (top[i] * top[3] + under[i] * under[3] * (1 - top[3])) / a).concat([a]);
  };
  const layers = [];
  for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
    const c = parse(getComputedStyle(node).backgroundColor);
    if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  let bg = [255, 255, 255, 1];
  for (const layer of layers.reverse()) bg = over(layer, bg);
  const fg = over(parse(getComputedStyle(el).color), bg);
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [l1, l2] = [lum(fg), lum(bg)];
  return {ratio: (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05),
          fg: fg.slice(0, 3).map(Math.round), bg: bg.slice(0, 3).map(Math.round)};
}"""


def _no_edge_crosses_a_box(tab: Any) -> dict[str, Any]:
    found: dict[str, Any] = tab.evaluate(EDGE_CROSSINGS)
    assert found["nodes"] >= 3 and found["edges"] >= 2, found
    assert found["crossings"] == [], found["crossings"]
    return found


def _contrasts(tab: Any) -> dict[str, dict[str, Any]]:
    """Contrast of the table header, a body cell and the status caption."""
    tab.mouse.move(0, 0)  # no row under the mouse (hover colour)
    targets = {
        "header": tab.locator(".lnb-head th .lnb-sort").nth(1),
        "cell": tab.locator(".lnb-table tbody tr.lnb-row:not(.lnb-selected)")
        .nth(1)
        .locator("td")
        .nth(1),
        "status": tab.locator(".lnb-status"),
    }
    return {name: locator.evaluate(CONTRAST) for name, locator in targets.items()}


# -- tests --------------------------------------------------------------------------------------
def test_jupyterlab_browser_pages_sorts_filters_and_selects(
    lab: Lab, page: Page, shots: Path
) -> None:
    """In JupyterLab: the widget pages, sorts and filters through the kernel; a selected row
    shows its detail and picture; a group node of the run's picture expands and a record node
    opens; the table fills the output area and no picture edge crosses a node box."""
    tab = page.page
    _run_notebook(tab, lab, "browse.ipynb")
    rows = tab.locator(".lnb-table .lnb-row")
    _status(tab, f"page 1 of 5 · {SAMPLES} rows")
    assert rows.count() == 10 and rows.first.get_by_text("s00", exact=True).is_visible()
    assert rows.nth(3).get_by_text(XSS, exact=True).is_visible()  # markup stays text
    table_width, area_width = tab.evaluate(WIDTH_RATIO)
    assert table_width >= 0.95 * area_width, (table_width, area_width)

    tab.get_by_role("button", name="next ▶").click()
    _status(tab, "page 2 of 5")
    rows.first.get_by_text("s10", exact=True).wait_for(timeout=30_000)
    tab.get_by_role("button", name="value", exact=True).click()
    tab.get_by_role("button", name="value ▲").click()
    tab.get_by_role("button", name="value ▼").wait_for(timeout=30_000)
    _status(tab, "page 1 of 5")
    rows.first.get_by_text("s44", exact=True).wait_for(timeout=30_000)
    box = tab.get_by_label("filter name", exact=True)
    box.fill("s4")
    box.press("Enter")
    _status(tab, "page 1 of 1 · 5 rows")
    assert [rows.nth(i).locator("td").nth(1).inner_text() for i in range(5)] == [
        "s44",
        "s43",
        "s42",
        "s41",
        "s40",
    ]

    rows.nth(2).click()
    tab.locator(".lnb-detail-title", has_text=": s42").wait_for(timeout=30_000)
    title = tab.locator(".lnb-detail-title").inner_text()
    assert title.startswith("Sample ") and title.endswith(": s42")
    assert tab.locator(".lnb-row.lnb-selected").count() == 1
    tab.locator(".lnb-picture svg").filter(has_text="Lineage of Sample").wait_for(timeout=30_000)
    sample_picture = _no_edge_crosses_a_box(tab)
    table_width, area_width = tab.evaluate(WIDTH_RATIO)
    assert table_width >= 0.95 * area_width, (table_width, area_width)
    tab.locator(".lnb-browser").screenshot(
        path=str(shots / "jupyterlab-detail.png"), timeout=30_000
    )

    run_node = tab.locator('.lnb-picture g.lnb-clickable[data-node^="run|"]').first
    run_id = (run_node.get_attribute("data-node") or "").removeprefix("run|")
    run_node.click()
    tab.locator(".lnb-detail-title", has_text=f"run {run_id} ").wait_for(timeout=30_000)
    group = tab.locator(f'.lnb-picture g.lnb-expandable[data-node="records|sample|{run_id}|wrote"]')
    assert group.get_attribute("data-count", timeout=30_000) == str(SAMPLES)
    group.click()
    tab.locator(".lnb-picture g[data-node^='record|sample|']").nth(SAMPLES - 1).wait_for(
        timeout=30_000
    )
    assert tab.locator(".lnb-picture g[data-count]").count() == 0
    run_picture = _no_edge_crosses_a_box(tab)
    assert run_picture["nodes"] >= SAMPLES + 3
    tab.locator(".lnb-picture g[data-node^='record|sample|']").filter(has_text="s07").click()
    tab.locator(".lnb-detail-title", has_text=": s07").wait_for(timeout=30_000)
    tab.get_by_role("button", name="◀ back").click()
    tab.locator(".lnb-detail-title", has_text=f"run {run_id} ").wait_for(timeout=30_000)
    tab.screenshot(path=str(shots / "jupyterlab.png"), timeout=30_000)
    print("pictures checked:", sample_picture, run_picture)
    print("light contrast:", _contrasts(tab))
    assert (shots / "jupyterlab.png").stat().st_size > 20_000
    assert page.dialogs == []


def test_jupyterlab_dark_theme_text_contrast(lab: Lab, page: Page, shots: Path) -> None:
    """After Settings → Theme → JupyterLab Dark, the widget follows the theme: the header, a
    cell and the status caption keep a text contrast of at least 4.5:1."""
    tab = page.page
    _run_notebook(tab, lab, "dark.ipynb")
    tab.get_by_role("menuitem", name="Settings", exact=True).click()
    tab.locator('.lm-Menu-item[data-type="submenu"]').filter(has_text=re.compile("^Theme")).hover()
    tab.locator('.lm-Menu-item[data-command="apputils:change-theme"]').filter(
        has_text=re.compile("^JupyterLab Dark$")
    ).click()
    tab.locator('body[data-jp-theme-name="JupyterLab Dark"][data-jp-theme-light="false"]').wait_for(
        state="attached", timeout=60_000
    )
    tab.wait_for_function(
        "() => { const bg = getComputedStyle(document.querySelector('.lnb-browser')).backgroundColor;"
        " const m = bg.match(/\\d+/g); return m && Number(m[0]) + Number(m[1]) + Number(m[2]) < 150; }",
        timeout=60_000,
    )
    tab.locator(".lnb-table .lnb-row").first.click()
    tab.locator(".lnb-picture svg").wait_for(timeout=30_000)
    measured = _contrasts(tab)
    print("dark contrast:", measured)
    for name, found in measured.items():
        assert found["ratio"] >= MIN_CONTRAST, (name, found)
    assert sum(measured["cell"]["bg"]) < 150 and sum(measured["cell"]["fg"]) > 450  # dark
    tab.screenshot(path=str(shots / "jupyterlab-dark.png"), timeout=30_000)
    assert (shots / "jupyterlab-dark.png").stat().st_size > 20_000
    assert page.dialogs == []


NOTEBOOK_STATE = """(() => {
  const notebook = document.querySelector('.jp-Notebook');
  const cells = Array.from(notebook.querySelectorAll(':scope .jp-Cell'));
  return {cells: cells.map((c) => c.classList.contains('jp-MarkdownCell') ? 'markdown' : 'code'),
          active: cells.findIndex((c) => c.classList.contains('jp-mod-active')),
          mode: notebook.classList.contains('jp-mod-commandMode') ? 'command' : 'edit'};
})()"""


def test_jupyterlab_keyboard_stays_in_the_widget(lab: Lab, page: Page) -> None:
    """In JupyterLab, the arrow keys, PageDown and Enter on the focused table move and open the
    selection and keys typed in the search box filter it: JupyterLab's notebook shortcuts (move
    to the next cell, edit it, "1" makes a heading) do not fire."""
    tab = page.page
    _run_notebook(tab, lab, "keys.ipynb")
    rows = tab.locator(".lnb-table .lnb-row")
    rows.first.click()
    tab.locator(".lnb-detail-title", has_text=": s00").wait_for(timeout=30_000)
    before = tab.evaluate(NOTEBOOK_STATE)
    assert before["cells"] == ["code", "code", "code", "markdown"] and before["active"] == 2
    assert tab.evaluate("document.activeElement.classList.contains('lnb-table')")
    for key in ("ArrowDown", "ArrowDown", "Enter"):
        tab.keyboard.press(key)
    tab.locator(".lnb-detail-title", has_text=": s02").wait_for(timeout=30_000)
    tab.keyboard.press("PageDown")
    rows.first.get_by_text("s10", exact=True).wait_for(timeout=30_000)  # the page came back
    tab.keyboard.press("Enter")
    tab.locator(".lnb-detail-title", has_text=": s10").wait_for(timeout=30_000)
    assert tab.evaluate(NOTEBOOK_STATE) == before  # no cell moved to, edited or changed

    search = tab.get_by_label("search all columns")
    search.click()
    tab.keyboard.type("s1")  # "1" in command mode would make the cell a heading
    tab.keyboard.press("Enter")
    _status(tab, "page 1 of 1 · 10 rows")
    after = tab.evaluate(NOTEBOOK_STATE)
    assert after["cells"] == before["cells"] and after["active"] == before["active"], after
    assert page.dialogs == []
