"""ln.widgets.browse: paged table, filter, sort, detail pane; state asserted in Python."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import comm
import ipywidgets
import pytest
from models import Measurement, Project, Sample
from sqlalchemy import text
from sqlcount import Sent, sent

import lineage_nb as ln
from lineage_nb.widgets import _source

XSS = "<img src=x onerror=alert(1)>"


class DummyComm:
    """A comm that records what the widget sends to the frontend."""

    comm_id = "dummy"
    kernel = "Truthy"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.messages: list[dict[str, Any]] = []

    def open(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_msg(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send(self, data: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> None:
        self.messages.append(data or {})

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def dummy_comm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every widget gets a DummyComm (no kernel needed)."""
    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: DummyComm())
    monkeypatch.setattr(ipywidgets.Widget, "_repr_mimebundle_", lambda self, **kw: None)
    yield


def fill_samples(db: ln.Database, project: Project, count: int, *, first: int = 1) -> None:
    """Insert samples ``s<first>``… (value = the number) with one ``INSERT ... SELECT``."""
    user_id = Project.get(project.id).created_by_id
    if db.dialect == "postgresql":
        rows = (
            "SELECT 's' || g, g, :p, :u, now() "
            "FROM generate_series(CAST(:first AS INTEGER), CAST(:last AS INTEGER)) AS g"
        )
    else:
        rows = (
            "WITH RECURSIVE g(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM g "
            "WHERE i < :last) SELECT 's' || i, i, :p, :u, '2026-01-01 00:00:00' FROM g"
        )
    with db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO sample (name, value, project_id, created_by_id, created_at) " + rows),
            {"first": first, "last": first + count - 1, "p": project.id, "u": user_id},
        )


def _upper(sql: str) -> str:
    return " ".join(sql.split()).upper()


def counts(seen: list[Sent]) -> list[str]:
    """The recorded statements that count rows."""
    return [_upper(s.sql) for s in seen if "COUNT(" in _upper(s.sql)]


@pytest.fixture
def samples(db: ln.Database, run: ln.Run) -> list[Sample]:
    """45 samples of project 'Alpha' (the 4th named with markup) and a measurement of the first."""
    project = Project(name="Alpha").save()
    records = Sample.bulk_create(
        [
            Sample(name=XSS if i == 3 else f"s{i:02d}", value=float(i), project=project)
            for i in range(45)
        ]
    )
    Measurement(reading=1.5, sample_id=records[0].id).save()
    return records


def page_of(browser: Any, column: str) -> list[str | None]:
    """The shown text of ``column`` on the current page."""
    index = [c["name"] for c in browser.columns].index(column)
    return [row[index] for row in browser.rows]


def test_browse_first_page(samples: list[Sample]) -> None:
    """The first page: page_size rows of display text, FK labels in place of the key columns."""
    browser = ln.widgets.browse(Sample, page_size=10)
    assert (browser.page, browser.page_count, browser.total) == (0, 5, 45)
    assert browser.row_keys == [str(s.id) for s in samples[:10]]
    names = [c["name"] for c in browser.columns]
    assert names[:4] == ["id", "name", "value", "project"] and "project_id" not in names
    kinds = {c["name"]: c["kind"] for c in browser.columns}
    assert kinds["value"] == "number" and kinds["project"] == "label"
    assert kinds["created_at"] == "date" and kinds["id"] == "integer"
    assert page_of(browser, "project") == ["Alpha"] * 10
    assert page_of(browser, "name")[3] == XSS  # plain text; the front end uses textContent
    assert page_of(browser, "value")[:3] == ["0", "1", "2"]
    assert all(isinstance(v, (str, type(None))) for row in browser.rows for v in row)


def test_browse_is_one_widget(samples: list[Sample]) -> None:
    """One anywidget, its ESM and CSS read from the package's static files."""
    from ipywidgets.widgets.widget import _instances

    from lineage_nb.widgets.browser import STATIC

    before = len(_instances)
    browser = ln.widgets.browse(Sample, page_size=100)
    assert len(_instances) - before <= 2  # the browser and its Layout
    assert browser._esm == (STATIC / "browser.js").read_text(encoding="utf-8")
    assert browser._css == (STATIC / "browser.css").read_text(encoding="utf-8")
    assert "innerHTML" not in browser._esm and "textContent" in browser._esm
    assert "import " not in browser._esm.split("export default")[0].replace("// ", "")


def test_browse_pages(samples: list[Sample]) -> None:
    """go() and a page trait change move a page; the last page is short; past it clamps."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.page = 1
    assert browser.row_keys[0] == str(samples[10].id)
    browser.go(99)
    assert browser.page == 4 and len(browser.rows) == 5
    browser.page = 99  # what a front end could send: the last page
    assert browser.page == 4 and browser.row_keys[-1] == str(samples[-1].id)


def test_browse_pages_cost_one_query_each(samples: list[Sample], db: ln.Database) -> None:
    """A page turn is one LIMIT/OFFSET SELECT (the count is known); a filter adds one COUNT."""
    browser = ln.widgets.browse(Sample, page_size=10)
    with sent(db) as seen:
        browser.go(3)
    selects = [_upper(s.sql) for s in seen if _upper(s.sql).startswith("SELECT")]
    assert len(selects) == 1, selects
    assert "LIMIT" in selects[0] and "OFFSET" in selects[0] and "COUNT(" not in selects[0]
    with sent(db) as seen:
        browser.filter("name", "s1")
    assert len(counts(seen)) == 1 and browser.page == 0 and browser.total == 10


def test_browse_filter_text_and_label(samples: list[Sample]) -> None:
    """Text contains (case-insensitive, % literal); a label column finds the project's name."""
    other = Project(name="Beta").save()
    Sample(name="b1", value=0.25, project=other).save()
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.filter("name", "S1")
    assert browser.total == 10 and page_of(browser, "name")[:2] == ["s10", "s11"]
    browser.filter("name", "%")
    assert browser.total == 0 and browser.rows == []
    browser.filters = {"project": "bet"}
    assert browser.total == 1 and page_of(browser, "project") == ["Beta"]
    browser.filters = {}
    browser.search = "Beta"  # the search box also matches labels
    assert browser.total == 1 and page_of(browser, "name") == ["b1"]
    browser.search = "alpha"
    assert browser.total == 45


def test_browse_filter_numbers_as_shown(samples: list[Sample]) -> None:
    """A float is found by the text the table shows; ranges and comparisons work."""
    Sample(name="third", value=1 / 3, project=samples[0].project).save()
    browser = ln.widgets.browse(Sample, page_size=10)
    shown = page_of(ln.widgets.browse(Sample.filter(name="third")), "value")[0]
    assert shown == "0.3333333333"
    browser.filter("value", shown)
    assert page_of(browser, "name") == ["third"]
    browser.filters = {}
    browser.search = shown
    assert page_of(browser, "name") == ["third"]
    browser.search = ""
    browser.filters = {"value": "3"}  # 3.0 is shown as 3; neither 2.7 nor 0.333... match it
    Sample(name="near", value=2.7, project=samples[0].project).save()
    browser.filters = {"value": "3.0"}
    assert page_of(browser, "name") == [XSS]
    browser.filters = {"value": "40..42"}
    assert page_of(browser, "value") == ["40", "41", "42"]
    browser.filters = {"value": ">=43"}
    assert page_of(browser, "value") == ["43", "44"]
    browser.filters = {"value": "<0.5"}
    assert sorted(page_of(browser, "name")) == ["s00", "third"]
    browser.filters = {"id": str(samples[5].id)}
    assert browser.row_keys == [str(samples[5].id)]


def test_browse_filter_nulls_and_dates(samples: list[Sample]) -> None:
    """null / not null on any column; dates by year, month, day and ranges."""
    Sample(name="no value", value=None, project=samples[0].project).save()
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.filters = {"value": "null"}
    assert page_of(browser, "name") == ["no value"] and page_of(browser, "value") == [None]
    browser.filters = {"value": "not null"}
    assert browser.total == 45
    year = samples[0].created_at.year
    browser.filters = {"created_at": str(year)}
    assert browser.total == 46
    browser.filters = {"created_at": f">{year}"}
    assert browser.total == 0
    browser.filters = {"created_at": f"{year - 1}-12..{year}"}
    assert browser.total == 46
    day = f"{samples[0].created_at:%Y-%m-%d}"
    browser.filters = {"created_at": day}
    assert browser.total >= 1 and all(v.startswith(day) for v in page_of(browser, "created_at"))


def test_browse_bad_filter_names_column_and_value(samples: list[Sample]) -> None:
    """A filter that does not parse is a ValidationError naming the column and the value."""
    source = ln.widgets.browse(Sample).source
    with pytest.raises(ln.errors.ValidationError) as info:
        source.condition("value", "abc", "sqlite")
    assert info.value.field == "value" and info.value.value == "abc"
    with pytest.raises(ln.errors.ValidationError) as info:
        source.condition("created_at", "2026-13-45", "sqlite")
    assert info.value.field == "created_at"
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.filter("value", "1..x")
    assert browser.error.startswith("ValidationError: value: filter '1..x'")
    browser.filters = {}
    assert browser.error == "" and browser.total == 45


def test_browse_filter_values_are_bound(samples: list[Sample], db: ln.Database) -> None:
    """Filter and search text reach the database only as bound parameters."""
    browser = ln.widgets.browse(Sample, page_size=10)
    evil = "x'); DROP TABLE sample; --"
    with sent(db) as seen:
        browser.filters = {"name": evil, "project": evil}
        browser.search = evil
    assert browser.total == 0 and browser.error == ""
    assert all("DROP TABLE" not in s.sql.upper() for s in seen)
    assert any(evil in str(s.parameters) for s in seen)
    assert Sample.filter().count() == 45


def test_browse_sort(samples: list[Sample]) -> None:
    """Headers sort both ways; a label column sorts by the label text."""
    beta = Project(name="Aardvark").save()
    Sample(name="zz", value=-1.0, project=beta).save()
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.sort_by("value")
    assert browser.sort_column == "value" and page_of(browser, "name")[0] == "zz"
    browser.sort_by("value")
    assert browser.sort_descending and page_of(browser, "value")[0] == "44"
    browser.sort_by("project")
    assert not browser.sort_descending and page_of(browser, "project")[0] == "Aardvark"
    browser.sort_by("project")
    assert page_of(browser, "project")[0] == "Alpha"
    browser.sort_by("<nope>")
    assert browser.error.startswith("ValidationError: Sample.<nope>: no column")


def test_browse_summaries(samples: list[Sample]) -> None:
    """Summaries (SQL): histogram of numbers and dates, top values of text and labels; they
    follow the filters."""
    browser = ln.widgets.browse(Sample, page_size=10)
    assert browser.summaries == {}
    browser.show_summaries = True
    value = browser.summaries["value"]
    assert value["type"] == "histogram" and value["count"] == 45 and value["nulls"] == 0
    assert sum(b[2] for b in value["bins"]) == 45 and value["min"] == "0" and value["max"] == "44"
    project = browser.summaries["project"]
    assert project == {"type": "top", "nulls": 0, "distinct": 1, "values": [["Alpha", 45]]}
    assert browser.summaries["created_at"]["type"] == "histogram"
    assert sum(b[2] for b in browser.summaries["created_at"]["bins"]) == 45
    browser.filter("value", "<10")
    assert sum(b[2] for b in browser.summaries["value"]["bins"]) == 10
    assert browser.summaries["name"]["distinct"] == 10


def test_browse_download(
    samples: list[Sample], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download writes the filtered, sorted view (all pages) with ln.export and sends it."""
    monkeypatch.chdir(tmp_path)
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.filter("name", "s1")
    browser.sort_by("value")
    browser.sort_by("value")
    browser.comm.messages.clear()
    browser._message(browser, {"action": "download", "format": "csv"}, [])
    path = tmp_path / browser.download["name"]
    assert browser.download["path"] == str(path) and path.parent == tmp_path
    frame = ln.export.read_csv(path)
    assert frame["name"].tolist() == [f"s{i}" for i in range(19, 9, -1)]
    assert "project" in frame.columns
    parquet = browser.save("parquet")
    assert parquet is not None and len(__import__("pandas").read_parquet(parquet)) == 10
    files = [m for m in browser.comm.messages if m.get("method") == "custom"]
    assert files and files[0]["content"]["name"] == path.name
    browser._message(browser, {"action": "download", "format": "exe"}, [])
    assert browser.error.startswith("ValidationError: format: cannot download as 'exe'")


def test_browse_selection_fills_detail(samples: list[Sample]) -> None:
    """Selecting a row shows fields, staleness, related records, history with cell source,
    inputs, outputs and the lineage picture."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.select_row(0)
    first = samples[0]
    detail = browser.detail
    assert browser.selected == str(first.id) and browser.error == ""
    assert detail["title"] == f"Sample {first.id}: s00"
    assert ["name", "s00"] in detail["fields"]
    assert detail["line"].startswith("created by tester in run")
    assert detail["stale"]["stale"] is False
    labels = [f"{r['group']}: {r['label']}" for r in detail["related"]]
    assert f"project: Project {first.project_id}: Alpha" in labels
    assert any(label.startswith("measurements: Measurement") for label in labels)
    assert detail["history"][0]["action"] == "insert"
    assert detail["svg"].startswith("<svg") and f"Sample {first.id}" in detail["svg"]
    runs = [name for name in detail["nodes"] if name.startswith("run|")]
    assert runs and all(f'data-node="{name}"' in detail["svg"] for name in detail["nodes"])
    assert f"record|sample|{first.id}" not in detail["nodes"]  # the record shown itself


def test_detail_history_inputs_outputs_and_staleness(db: ln.Database) -> None:
    """A record written from inputs shows them, its history's cell source, the records its
    readers wrote, and turns stale when an input changes."""
    ln.track("ingest")
    project = Project(name="P").save()
    raw = Sample(name="raw", value=1.0, project=project).save()
    ln.finish()
    ln.track("derive")
    read = Sample.get(raw.id)
    derived = Sample(name="derived", value=read.value * 2, project=project).save()
    ln.finish()
    ln.track("fix")
    Sample.get(raw.id).update(value=5.0)
    ln.finish()

    browser = ln.widgets.browse(Sample, page_size=10)
    browser.select(derived.id)
    detail = browser.detail
    assert any(i["label"] == f"Sample {raw.id}" for i in detail["inputs"]), detail["inputs"]
    assert detail["stale"]["stale"] is True and "stale" in detail["stale"]["text"]
    assert detail["stale"]["inputs"][0][:2] == ["sample", str(raw.id)]
    browser.select(raw.id)
    outputs = [o["label"] for o in browser.detail["outputs"]]
    assert f"Sample {derived.id}" in outputs
    assert [e["action"] for e in browser.detail["history"]] == ["insert", "update"]


def test_detail_shows_cell_source(db: ln.Database) -> None:
    """The history of a record written by a notebook cell carries that cell's source."""
    import datetime as dt

    from lineage_nb.lineage.cells import record_cell

    run = ln.track("cells")
    now = dt.datetime.now(dt.timezone.utc)
    ln.context.set_cell(7)
    project = Project(name="celled").save()
    record_cell(
        db,
        run,
        execution_count=7,
        source="project = Project(name='celled').save()",
        started_at=now,
        finished_at=now,
        status="ok",
    )
    ln.context.set_cell(None)
    ln.finish()
    browser = ln.widgets.browse(Project)
    browser.select(project.id)
    history = browser.detail["history"]
    assert history and history[0]["cell"] == "7"
    assert history[0]["source"] == "project = Project(name='celled').save()"


def test_browse_detail_keeps_markup_as_text(samples: list[Sample]) -> None:
    """Markup in a name is data: plain text in the detail, escaped in the picture's SVG."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.select_row(3)
    detail = browser.detail
    assert detail["title"] == f"Sample {samples[3].id}: {XSS}"
    assert ["name", XSS] in detail["fields"]
    assert XSS not in detail["svg"] and "&lt;img src=x onerror=alert(1)&gt;" in detail["svg"]


def test_detail_related_navigation_and_back(samples: list[Sample]) -> None:
    """Opening a related record, a picture node and going back; the trail is shown."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.select_row(0)
    project = next(r for r in browser.detail["related"] if r["group"] == "project")
    browser._message(browser, {"action": "open", "target": project["target"]}, [])
    detail = browser.detail
    assert detail["title"].startswith("Project") and detail["title"].endswith(": Alpha")
    assert detail["trail"] == [f"Sample {samples[0].id}: s00"]
    assert sum(r["group"] == "samples" for r in detail["related"]) == 20  # capped
    assert detail["more"] == [["samples", 25]]
    run_node = next(t for name, t in detail["nodes"].items() if name.startswith("run|"))
    browser.open_target(run_node)
    assert browser.detail["title"].startswith("run ") and browser.detail["kind"] == "run"
    assert len(browser.detail["outputs"]) == 21  # 20 shown and "… and N more"
    browser._message(browser, {"action": "back"}, [])
    browser.back()
    assert browser.detail["title"] == f"Sample {samples[0].id}: s00"
    assert browser.detail["trail"] == []
    browser.open_target(999)
    assert browser.error.startswith("ValidationError")


def test_picture_group_expands_and_its_records_open(samples: list[Sample], run: ln.Run) -> None:
    """The run's picture draws its 45 samples as one group node; expanding it (by data-node)
    draws one node per sample, each opening its record; back returns to the expanded picture."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.select_row(0)
    browser.open_target(browser.detail["nodes"][f"run|{run.id}"])
    detail = browser.detail
    group = f"records|sample|{run.id}|wrote"
    assert detail["kind"] == "run" and detail["groups"] == [group], detail["groups"]
    assert f'data-node="{group}" data-count="45"' in detail["svg"]
    assert not any(name.startswith("record|sample|") for name in detail["nodes"])
    browser._message(browser, {"action": "expand", "node": group}, [])
    detail = browser.detail
    assert browser.error == "" and detail["expanded"] == [group] and detail["groups"] == []
    assert detail["title"].startswith("run ") and detail["trail"] == [
        f"Sample {samples[0].id}: s00"
    ]
    shown = {name for name in detail["nodes"] if name.startswith("record|sample|")}
    assert shown == {f"record|sample|{s.id}" for s in samples}
    assert "data-count" not in detail["svg"]
    browser.open_target(detail["nodes"][f"record|sample|{samples[7].id}"])
    assert browser.detail["title"] == f"Sample {samples[7].id}: s07"
    browser.back()
    assert browser.detail["kind"] == "run" and browser.detail["expanded"] == [group]
    assert f"record|sample|{samples[7].id}" in browser.detail["nodes"]
    browser.back()
    assert browser.detail["title"] == f"Sample {samples[0].id}: s00"
    assert browser.detail["expanded"] == [] and browser.detail["trail"] == []
    browser.expand_group("run|1")  # not a group
    assert browser.error.startswith("ValidationError: node: no group 'run|1'")
    browser._message(browser, {"action": "expand", "node": 3}, [])  # not a name: ignored
    assert browser.detail["title"] == f"Sample {samples[0].id}: s00"


def test_picture_group_of_inputs_expands(db: ln.Database) -> None:
    """A group the graph layer made (40 inputs of one run) expands to its 40 records and stays
    expanded although the picture would group them by their other neighbours."""
    writer = ln.track("write")
    project = Project(name="many").save()
    Sample.bulk_create([Sample(name=f"s{i}", value=float(i), project=project) for i in range(40)])
    ln.finish()
    reader = ln.track("read")
    Sample.filter(project_id=project.id).df()
    derived = Project(name="derived").save()
    ln.finish()
    browser = ln.widgets.browse(Project)
    browser.select(derived.id)
    group = f"records|sample|{reader.id}"
    assert browser.detail["groups"] == [group]
    assert f'data-node="{group}" data-count="40"' in browser.detail["svg"]
    browser.expand_group(group)
    detail = browser.detail
    assert browser.error == "" and detail["groups"] == [] and "data-count" not in detail["svg"]
    samples = [name for name in detail["nodes"] if name.startswith("record|sample|")]
    assert len(samples) == 40 and f"run|{writer.id}" in detail["nodes"]
    browser.open_target(detail["nodes"][samples[0]])
    assert browser.detail["title"].startswith("Sample ")


def test_browse_errors_are_shown_not_raised(samples: list[Sample]) -> None:
    """Failing callbacks put a message in the error trait instead of raising."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.select("999999")
    assert browser.error.startswith("NotFound:") and "999999" in browser.error
    browser.sort_by("name")
    assert browser.error == ""


def test_browse_frontend_state_drives_table(samples: list[Sample]) -> None:
    """A front end's set_state of page, filters and selection updates rows and detail."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.comm.messages.clear()
    browser.set_state({"page": 2})
    assert browser.row_keys[0] == str(samples[20].id)
    sent_state = [m["state"] for m in browser.comm.messages if m.get("method") == "update"]
    assert any("rows" in state for state in sent_state)
    browser.set_state({"filters": {"name": "s4"}})
    assert browser.page == 0 and browser.total == 5
    browser.set_state({"selected": str(samples[40].id)})
    assert browser.detail["title"] == f"Sample {samples[40].id}: s40"


def test_browse_saved_state_is_small(samples: list[Sample]) -> None:
    """The widget's whole saved state (code, page, detail with picture) stays small."""
    from ipywidgets.embed import dependency_state

    browser = ln.widgets.browse(Sample, page_size=20)
    browser.select_row(0)
    browser.show_summaries = True
    state = dependency_state([browser], drop_defaults=False)
    size = len(json.dumps(state))
    assert size <= 50_000, size


def test_browse_query_source(samples: list[Sample]) -> None:
    """browse() of a query pages through that query's rows only."""
    browser = ln.widgets.browse(Sample.filter(Sample.value >= 40), page_size=10)
    assert browser.total == 5 and page_of(browser, "name")[0] == "s40"
    browser.filter("name", "s44")
    assert browser.total == 1


def test_browse_rejects_other_sources(db: ln.Database) -> None:
    """Browsing something that is neither a model nor a query names the value."""
    with pytest.raises(ln.errors.ValidationError) as info:
        ln.widgets.browse(42)
    assert info.value.field == "source" and info.value.value == 42


@pytest.fixture
def big(db: ln.Database, monkeypatch: pytest.MonkeyPatch) -> Project:
    """3,000 analyzed samples, with the estimate threshold lowered to 1,000 rows."""
    monkeypatch.setattr(_source, "ESTIMATE_ABOVE", 1_000)
    project = Project(name="big").save()
    fill_samples(db, project, 3_000)
    with db.engine.begin() as connection:
        connection.execute(text("ANALYZE sample"))
    return project


def test_browse_big_table_shows_estimate_without_count(db: ln.Database, big: Project) -> None:
    """An unfiltered big, analyzed table shows the planner's estimate (PostgreSQL's
    pg_class.reltuples, SQLite's sqlite_stat1), read with the table's name as a bound value."""
    with sent(db) as seen:
        table = ln.widgets.browse(Sample, page_size=20)
    assert len(table.row_keys) == 20 and page_of(table, "name")[0] == "s1"
    assert table.page == 0 and table.page_count > 1
    assert counts(seen) == [], counts(seen)
    marker = "PG_CLASS" if db.dialect == "postgresql" else "SQLITE_STAT1 WHERE"
    [(sql, parameters)] = [(_upper(s.sql), s.parameters) for s in seen if marker in _upper(s.sql)]
    assert "FROM SAMPLE" not in sql
    assert parameters in ({"name": "sample"}, ("sample",))
    assert table.estimated and (table.page_count, table.total) == (150, 3_000)
    with sent(db) as seen:
        table.go(table.page + 1)
    assert counts(seen) == [] and table.page == 1 and table.estimated
    assert page_of(table, "name")[0] == "s21"


def test_browse_estimate_is_corrected_by_the_pages_seen(db: ln.Database, big: Project) -> None:
    """A stale estimate: a full page with more rows adds pages; the real end is exact."""
    fill_samples(db, big, 3_000, first=3_001)  # not analyzed: the estimate stays 3,000
    table = ln.widgets.browse(Sample, page_size=20)
    table.go(table.page_count - 1)
    assert (table.page, table.page_count, table.estimated) == (149, 151, True)
    assert table.page < table.page_count - 1
    table.go(table.page + 1)
    assert table.page == 150 and page_of(table, "name")[0] == "s3001"
    table.set_state({"page": 299})  # the last page is full and nothing follows: exact
    assert (table.page_count, table.total, table.estimated) == (300, 6_000, False)
    assert (table.page, table.page_count) == (299, 300) and table.page == table.page_count - 1

    with db.engine.begin() as connection:  # the estimate stays 3,000 over 2,000 rows
        connection.execute(text("DELETE FROM sample WHERE value > :last"), {"last": 2_000})
    table = ln.widgets.browse(Sample, page_size=20)
    assert (table.page_count, table.estimated) == (150, True)
    with sent(db) as seen:
        table.go(149)  # past the end: counted, then the last page
    assert len(counts(seen)) == 1
    assert (table.page, table.page_count, table.total, table.estimated) == (99, 100, 2_000, False)
    assert page_of(table, "name")[19] == "s2000" and table.page == table.page_count - 1
    assert (table.page, table.page_count) == (99, 100)


def test_browse_filtered_big_table_counts_exactly(db: ln.Database, big: Project) -> None:
    """Filter text, or a query with conditions, counts its rows exactly."""
    table = ln.widgets.browse(Sample, page_size=20)
    with sent(db) as seen:
        table.search = "s29"  # s29, s290–s299, s2900–s2999
    assert len(counts(seen)) == 1 and not table.estimated
    assert (table.page_count, table.total) == (6, 111)
    table.search = ""
    assert table.estimated and table.total == 3_000
    with sent(db) as seen:
        query_table = ln.widgets.browse(Sample.filter(Sample.value > 1_000), page_size=20)
    assert len(counts(seen)) == 1 and not query_table.estimated
    assert (query_table.page_count, query_table.total) == (100, 2_000)


def test_browse_small_or_unanalyzed_table_counts_exactly(
    db: ln.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never analyzed (reltuples -1) or estimated at most the threshold: an exact COUNT."""
    monkeypatch.setattr(_source, "ESTIMATE_ABOVE", 1_000)
    project = Project(name="small").save()
    if db.dialect == "postgresql":
        with db.engine.begin() as connection:
            connection.execute(text("ALTER TABLE sample SET (autovacuum_enabled = false)"))
    fill_samples(db, project, 3_000)
    with sent(db) as seen:
        table = ln.widgets.browse(Sample, page_size=20)
    assert len(counts(seen)) == 1 and not table.estimated and table.total == 3_000
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM sample WHERE value > :last"), {"last": 900})
        connection.execute(text("ANALYZE sample"))
    with sent(db) as seen:
        table = ln.widgets.browse(Sample, page_size=20)
    assert len(counts(seen)) == 1 and not table.estimated
    assert (table.page_count, table.total) == (45, 900)


@pytest.mark.slow
def test_browse_million_rows_costs_like_thousand(db: ln.Database) -> None:
    """Opening a 1,000,000-row table takes about as long as a 1,000-row one."""
    project = Project(name="p").save()

    def fill(n: int) -> None:
        with db.engine.begin() as connection:
            connection.execute(text("DELETE FROM sample"))
        fill_samples(db, project, n)
        with db.engine.begin() as connection:  # as autovacuum would: the planner's estimate
            connection.execute(text("ANALYZE sample"))

    def open_time() -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            browser = ln.widgets.browse(Sample, page_size=20)
            best = min(best, time.perf_counter() - started)
            assert len(browser.row_keys) == 20
        return best

    fill(1_000)
    small = open_time()
    fill(1_000_000)
    large = open_time()
    assert large < 10 * small + 0.5, f"1k rows: {small:.3f}s, 1M rows: {large:.3f}s"


def test_widgets_import_lazily() -> None:
    """Importing lineage_nb and lineage_nb.widgets does not import ipywidgets."""
    code = (
        "import sys, lineage_nb, lineage_nb.widgets; "
        "assert 'ipywidgets' not in sys.modules, 'ipywidgets imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_browse_without_ipywidgets_says_what_to_install() -> None:
    """Without ipywidgets, browse() raises ConfigurationError naming the extra to install."""
    code = (
        "import sys; sys.modules['ipywidgets'] = None\n"
        "import lineage_nb as ln\n"
        "try:\n    ln.widgets.browse(object)\nexcept ln.errors.ConfigurationError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "pip install 'lineage_nb[jupyter]'" in done.stdout
