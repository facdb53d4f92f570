"""Everything shown as HTML (or SVG) from the database is escaped: one test per view."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import pytest
from models import Project, Sample

import lineage_nb as ln
from lineage_nb.lineage.identity import SourceIdentity
from lineage_nb.lineage.users import ensure_user

PAYLOAD = "<script>alert('x')</script><img src=x onerror=alert(1)>&\""
RAW_MARKERS = ("<script", "<img", "onerror=alert(1)>")


def _assert_escaped(markup: str) -> None:
    """The payload is shown (escaped) and never appears as live markup."""
    for marker in RAW_MARKERS:
        assert marker not in markup, marker
    assert "&lt;script&gt;" in markup or "&lt;img" in markup, "the payload is not shown at all"


@pytest.fixture
def hostile(db: ln.Database) -> Iterator[dict[str, Any]]:
    """A run by a user, of a transform, writing records whose every text is the payload."""
    ensure_user(db, PAYLOAD[:100], name=PAYLOAD, email=PAYLOAD)
    identity = SourceIdentity(
        key=PAYLOAD, type="notebook", source_code=PAYLOAD, source_hash="0" * 64
    )
    run = ln.track(identity, user=PAYLOAD[:100])
    ln.context.set_cell(3)
    project = Project(name=PAYLOAD).save()
    sample = Sample(name=PAYLOAD, value=1.0, project=project).save()
    sample.update(name=PAYLOAD + "2")
    ln.context.set_cell(None)
    yield {"run": run, "project": project, "sample": sample}
    ln.finish(run=run)


def test_html_record_view_escapes(hostile: dict[str, Any]) -> None:
    """record._repr_html_(): field values, the lineage line (user, transform key) escaped."""
    sample = Sample.get(hostile["sample"].id).load_all()
    markup = sample._repr_html_()
    _assert_escaped(markup)
    assert html.escape(PAYLOAD + "2") in markup


def test_html_run_view_escapes(hostile: dict[str, Any]) -> None:
    """run._repr_html_(): transform key and user handle escaped."""
    run = next(r for r in ln.runs() if r.id == hostile["run"].id)
    markup = run._repr_html_()
    _assert_escaped(markup)
    assert html.escape(PAYLOAD[:100]) in markup


def test_html_transform_view_escapes(hostile: dict[str, Any]) -> None:
    """transform._repr_html_(): key and label escaped."""
    run = next(r for r in ln.runs() if r.id == hostile["run"].id)
    markup = run.transform._repr_html_()
    _assert_escaped(markup)
    assert html.escape(PAYLOAD) in markup


def test_html_user_view_escapes(hostile: dict[str, Any]) -> None:
    """user._repr_html_(): handle, name and email escaped."""
    run = next(r for r in ln.runs() if r.id == hostile["run"].id)
    markup = run.created_by._repr_html_()
    _assert_escaped(markup)
    assert markup.count(html.escape(PAYLOAD)) >= 2  # name and email


def test_html_lineage_pictures_escape(hostile: dict[str, Any]) -> None:
    """The SVG lineage pictures of a record and of a run escape every label."""
    for picture in (hostile["sample"].view_lineage(), hostile["run"].view_lineage()):
        svg = picture._repr_svg_()
        for marker in RAW_MARKERS:
            assert marker not in svg, marker
        assert "&lt;script&gt;" in svg


def _texts(value: Any) -> list[str]:
    """Every string inside the JSON-like ``value``."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts(v)]
    return []


def test_html_record_history_escapes(hostile: dict[str, Any]) -> None:
    """The widget's detail pane sends data, not markup: history, fields and title carry the
    payload as plain text (the front end sets it with textContent); its one piece of markup, the
    lineage SVG, has it escaped."""
    pytest.importorskip("anywidget")
    from lineage_nb.widgets.detail import Detail

    detail = Detail().show(hostile["sample"])
    svg = detail.pop("svg")
    _assert_escaped(svg)
    texts = _texts(detail)
    update = [h for h in detail["history"] if h["action"] == "update"][-1]
    assert "<script>alert(" in update["changes"] and update["user"] == PAYLOAD
    assert any(PAYLOAD in t for t in _texts(detail["fields"]))
    assert not any("&lt;" in t for t in texts), "pre-escaped text would show as &lt; on screen"


def test_html_widget_browser_escapes(hostile: dict[str, Any]) -> None:
    """ln.widgets.browse: rows, detail and errors are plain text for textContent (never HTML);
    the front end builds every element with textContent and parses only the SVG picture."""
    pytest.importorskip("anywidget")
    from pathlib import Path

    import lineage_nb.widgets as widgets

    browser = ln.widgets.browse(Sample)
    assert any(PAYLOAD in str(cell) for row in browser.rows for cell in row)
    browser.show_record(hostile["sample"].id)
    assert browser.error == ""
    _assert_escaped(browser.detail["svg"])
    browser.show_record(PAYLOAD)  # an unknown key: the error names it, as text
    assert "<script>alert(" in browser.error and "&lt;" not in browser.error
    script = (Path(widgets.__file__).parent / "static" / "browser.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
