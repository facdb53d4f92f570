"""HTML cards of records, runs, transforms and users: compact, with a lineage line, escaped."""

from __future__ import annotations

import datetime as dt
import re

from models import Project, Sample

import lineage_nb as ln
from lineage_nb.views.html import lineage_line, record_html, run_html, transform_html, user_html

XSS = "<img src=x onerror=alert(1)>"
WHEN = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}"


def test_record_html_has_lineage_line(db: ln.Database, run: ln.Run) -> None:
    """The line reads 'created by tester in run N of <key> vV, cell [7], <date time>'."""
    ln.context.set_cell(7)
    project = Project(name="p").save()
    page = project._repr_html_()
    expected = rf"created by tester in run {run.id} of {re.escape(run.transform.label)}, cell \[7\], {WHEN}"
    assert re.search(expected, page), page
    assert f"Project {project.id}" in page
    assert "<th>name</th><td>p</td>" in page


def test_record_html_mentions_last_update(db: ln.Database, run: ln.Run) -> None:
    """After an update in another cell the line adds 'last updated by ... cell [9]'."""
    ln.context.set_cell(8)
    sample = Sample(name="s", value=1.0, project=Project(name="p").save()).save()
    ln.context.set_cell(9)
    sample.update(value=2.0)
    line = lineage_line(sample)
    assert "cell [8]" in line
    assert re.search(rf"; last updated by tester in run {run.id} of .*, cell \[9\], {WHEN}", line)


def test_record_html_outside_run(db: ln.Database) -> None:
    """Without a run the line says so instead of naming one."""
    project = Project(name="p").save()
    assert lineage_line(project).startswith("created by tester outside any run, ")


def test_record_html_escapes_values(db: ln.Database, run: ln.Run) -> None:
    """A field holding markup is shown as text."""
    project = Project(name=XSS).save()
    page = record_html(project)
    assert XSS not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_record_html_shows_loaded_related_label(db: ln.Database, run: ln.Run) -> None:
    """After load_all() a foreign key shows the related record's label next to it."""
    sample = Sample(name="s", value=1.0, project=Project(name="Alpha").save()).save()
    page = Sample.get(sample.id).load_all()._repr_html_()
    assert f"<th>project_id</th><td>{sample.project_id} (Alpha)</td>" in page


def test_record_html_unsaved(db: ln.Database) -> None:
    """An unsaved record is shown with 'not saved yet' and no query error."""
    page = record_html(Project(name="new"))
    assert "not saved yet" in page and "(unsaved)" in page


def test_run_html_summary(db: ln.Database) -> None:
    """A run card names transform, user, status and counts of events written and inputs read."""
    project = Project(name="p").save()
    run = ln.track(__file__)
    Project.get(project.id)
    Project(name="q").save()
    ln.finish(run=run)
    page = run_html(ln.runs()[0])
    assert re.search(
        rf"run {run.id} of {re.escape(run.transform.label)} by tester, started {WHEN}, completed {WHEN}",
        page,
    )
    assert "<th>wrote / read</th><td>1 events / 1 records</td>" in page
    assert page == ln.runs()[0]._repr_html_()


def test_transform_and_user_html_escape(db: ln.Database) -> None:
    """Transform and user cards escape every value."""
    transform = ln.Transform(key=f"{XSS}.py", version="1", type="script", source_hash="x" * 64)
    user = ln.User(
        handle=XSS, name="A <b>", created_at=dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    )
    for page in (
        transform_html(transform),
        user_html(user),
        transform._repr_html_(),
        user._repr_html_(),
    ):
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
        assert "<img src" not in page
    assert "since 2026-01-02 00:00" in user_html(user)
    assert "A &lt;b&gt;" in user_html(user)
