"""ln.widgets.browse: paged table, filter, sort, detail pane; state asserted in Python."""

from __future__ import annotations

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
        rows = ("SELECT 's' || g, g, :p, :u, now() "
                "FROM generate_series(CAST(:first AS INTEGER), CAST(:last AS INTEGER)) AS g")
    else:
        rows = ("WITH RECURSIVE g(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM g "
                "WHERE i < :last) SELECT 's' || i, i, :p, :u, '2026-01-01 00:00:00' FROM g")
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
        [Sample(name=XSS if i == 3 else f"s{i:02d}", value=float(i), project=project)
         for i in range(45)]
    )
    Measurement(reading=1.5, sample_id=records[0].id).save()
    return records


def test_browse_first_page(samples: list[Sample]) -> None:
    """The first page shows page_size rows with FK labels in place of the key columns."""
    browser = ln.widgets.browse(Sample, page_size=10)
    table = browser.table
    assert (table.page, table.page_count, table.total) == (0, 5, 45)
    assert table.pks == [str(s.id) for s in samples[:10]]
    assert table.columns[:3] == ["id", "name", "value"]
    assert "project" in table.columns and "project_id" not in table.columns
    project_col = table.columns.index("project")
    assert table.cells[0][project_col].value == "Alpha"
    assert table.cells[3][1].value == XSS  # a Label shows it as text
    assert table.status.value == "page 1 of 5 · 45 rows"
    assert table.prev_button.disabled and not table.next_button.disabled


def test_browse_pages(samples: list[Sample]) -> None:
    """next/prev buttons move a page; the last page hides the unused rows."""
    table = ln.widgets.browse(Sample, page_size=10).table
    table.next_button.click()
    assert table.page == 1 and table.pks[0] == str(samples[10].id)
    table.go(99)
    assert table.page == 4 and len(table.pks) == 5
    assert table.row_buttons[5].layout.display == "none"
    assert all(cell.layout.display == "none" for cell in table.cells[5])
    assert all(cell.layout.display is None for cell in table.cells[4])  # each cell its own layout
    assert table.next_button.disabled
    table.prev_button.click()
    assert table.page == 3 and table.row_buttons[5].layout.display is None


def test_browse_filter_and_sort(samples: list[Sample]) -> None:
    """The filter box narrows rows (case-insensitive, % is literal); headers sort both ways."""
    table = ln.widgets.browse(Sample, page_size=10).table
    table.go(2)
    table.filter_box.value = "S1"
    assert table.page == 0 and table.total == 10
    assert [c[1].value for c in table.cells[:2]] == ["s10", "s11"]
    table.filter_text = "%"
    assert table.total == 0 and table.pks == []
    table.filter_text = ""
    table.headers[table.columns.index("value")].click()
    assert table.sort_column == "value" and table.pks[0] == str(samples[0].id)
    assert table.headers[table.columns.index("value")].description == "value ▲"
    table.headers[table.columns.index("value")].click()
    assert table.sort_descending and table.pks[0] == str(samples[-1].id)
    table.sort_by("project")  # a label column sorts by its foreign key
    assert table.error == "" and len(table.pks) == 10


def test_browse_selection_fills_detail(samples: list[Sample]) -> None:
    """Selecting a row shows its fields, related records, history and lineage picture."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.table.row_buttons[0].click()
    first = samples[0]
    detail = browser.detail
    assert browser.table.selected == str(first.id)
    assert browser.table.row_buttons[0].button_style == "info"
    assert detail.title == f"Sample {first.id}: s00"
    assert "created by tester in run" in detail.fields.value
    assert "project: Project" in detail.related[0] and detail.related[0].endswith("Alpha")
    assert any(label.startswith("measurements: Measurement") for label in detail.related)
    assert "<td>insert</td>" in detail.history.value
    assert detail.lineage.value.startswith("<svg") and f"Sample {first.id}" in detail.lineage.value
    assert detail.error == "" and browser.error == ""


def test_browse_escapes_markup_in_detail(samples: list[Sample]) -> None:
    """A name holding markup is escaped in fields, history and picture."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.table.select_row(3)
    record = browser.detail.record
    record.update(name=record.name + " ")  # an update event carries the markup in its changes
    browser.detail.show(record)
    for html in (browser.detail.fields.value, browser.detail.history.value,
                 browser.detail.lineage.value, browser.detail.header.value):
        assert XSS not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_detail_related_navigation_and_back(samples: list[Sample]) -> None:
    """Clicking a related record opens it in the detail pane; back returns."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.table.select_row(0)
    detail = browser.detail
    detail.related_box.children[0].click()  # project: Project 1: Alpha
    assert detail.title.endswith(": Alpha") and detail.title.startswith("Project")
    assert detail.trail == [f"Sample {samples[0].id}: s00"]
    assert sum(label.startswith("samples: ") for label in detail.related) == 20  # capped
    assert "… and 25 more samples" in [getattr(c, "value", "") for c in detail.related_box.children]
    run_button = next(b for b in detail.related_box.children
                      if getattr(b, "description", "").startswith("run: "))
    run_button.click()
    assert detail.title.startswith("run ") and "wrote / read" in detail.fields.value
    detail.back_button.click()
    detail.back_button.click()
    assert detail.title == f"Sample {samples[0].id}: s00" and detail.back_button.disabled


def test_browse_errors_are_shown_not_raised(samples: list[Sample]) -> None:
    """Failing callbacks put a readable, escaped message in the widget instead of a traceback."""
    browser = ln.widgets.browse(Sample, page_size=10)
    browser.table.sort_by("<nope>")
    assert browser.table.error.startswith("ValidationError: Sample.<nope>: cannot sort")
    assert "&lt;nope&gt;" in browser.table.error_box.value
    browser.show_record("999999")
    assert browser.error.startswith("NotFound:") and "999999" in browser.error
    browser.table.sort_column = "name"
    assert browser.table.error == "" and browser.table.error_box.value == ""


def test_browse_frontend_state_drives_table(samples: list[Sample]) -> None:
    """A frontend set_state of page updates the rows and sends the new state."""
    table = ln.widgets.browse(Sample, page_size=10).table
    table.comm.messages.clear()
    table.set_state({"page": 2})
    assert table.pks[0] == str(samples[20].id)
    sent = [m["state"] for m in table.comm.messages if m.get("method") == "update"]
    assert any("pks" in state for state in sent)


def test_browse_query_source(samples: list[Sample]) -> None:
    """browse() of a query pages through that query's rows only."""
    table = ln.widgets.browse(Sample.filter(Sample.value >= 40), page_size=10).table
    assert table.total == 5 and table.cells[0][1].value == "s40"


def test_browse_rejects_other_sources(db: ln.Database) -> None:
    """Browsing something that is neither a model nor a query names the value."""
    with pytest.raises(ln.errors.ValidationError) as info:
        ln.widgets.browse(42)
    assert info.value.field == "source" and info.value.value == 42


def test_browse_pages_with_count_and_limit_offset(samples: list[Sample], db: ln.Database) -> None:
    """Each page costs a COUNT and one LIMIT/OFFSET SELECT, nothing per row.

    (PostgreSQL first reads the table's size estimate; 45 rows are too few to use it.)
    """
    table = ln.widgets.browse(Sample, page_size=10).table
    with sent(db) as seen:
        table.go(3)
    selects = [
        _upper(s.sql) for s in seen
        if _upper(s.sql).startswith("SELECT") and "PG_CLASS" not in _upper(s.sql)
    ]
    assert len(selects) == 2, selects
    assert "COUNT(" in selects[0]
    assert "LIMIT" in selects[1] and "OFFSET" in selects[1]


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
    """An unfiltered big PostgreSQL table shows the planner's estimate; SQLite counts."""
    with sent(db) as seen:
        table = ln.widgets.browse(Sample, page_size=20).table
    assert len(table.pks) == 20 and table.cells[0][1].value == "s1"
    assert not table.next_button.disabled and table.prev_button.disabled
    if db.dialect == "sqlite":
        assert len(counts(seen)) == 1 and not table.estimated
        assert table.status.value == "page 1 of 150 · 3,000 rows"
        return
    assert counts(seen) == [], counts(seen)
    [(sql, parameters)] = [(_upper(s.sql), s.parameters) for s in seen if "PG_CLASS" in _upper(s.sql)]
    assert "AS REGCLASS" in sql and "SAMPLE" not in sql and parameters == {"name": "sample"}
    assert table.estimated and (table.page_count, table.total) == (150, 3_000)
    assert table.status.value == "page 1 of about 150 · about 3,000 rows"
    with sent(db) as seen:
        table.next_button.click()
    assert counts(seen) == [] and table.page == 1 and table.estimated
    assert table.cells[0][1].value == "s21"


def test_browse_estimate_is_corrected_by_the_pages_seen(db: ln.Database, big: Project) -> None:
    """A stale estimate: a full page with more rows adds pages; the real end is exact."""
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL's planner estimate")
    fill_samples(db, big, 3_000, first=3_001)  # not analyzed: the estimate stays 3,000
    table = ln.widgets.browse(Sample, page_size=20).table
    table.go(table.page_count - 1)
    assert (table.page, table.page_count, table.estimated) == (149, 151, True)
    assert not table.next_button.disabled
    table.next_button.click()
    assert table.page == 150 and table.cells[0][1].value == "s3001"
    table.set_state({"page": 299})  # the last page is full and nothing follows: exact
    assert (table.page_count, table.total, table.estimated) == (300, 6_000, False)
    assert table.status.value == "page 300 of 300 · 6,000 rows" and table.next_button.disabled

    with db.engine.begin() as connection:  # the estimate stays 3,000 over 2,000 rows
        connection.execute(text("DELETE FROM sample WHERE value > :last"), {"last": 2_000})
    table = ln.widgets.browse(Sample, page_size=20).table
    assert (table.page_count, table.estimated) == (150, True)
    with sent(db) as seen:
        table.go(149)  # past the end: counted, then the last page
    assert len(counts(seen)) == 1
    assert (table.page, table.page_count, table.total, table.estimated) == (99, 100, 2_000, False)
    assert table.cells[19][1].value == "s2000" and table.next_button.disabled
    assert table.status.value == "page 100 of 100 · 2,000 rows"


def test_browse_filtered_big_table_counts_exactly(db: ln.Database, big: Project) -> None:
    """Filter text, or a query with conditions, counts its rows exactly."""
    table = ln.widgets.browse(Sample, page_size=20).table
    with sent(db) as seen:
        table.filter_text = "s29"  # s29, s290–s299, s2900–s2999
    assert len(counts(seen)) == 1 and not table.estimated
    assert table.status.value == "page 1 of 6 · 111 rows"
    table.filter_text = ""
    assert table.estimated == (db.dialect == "postgresql") and table.total == 3_000
    with sent(db) as seen:
        query_table = ln.widgets.browse(Sample.filter(Sample.value > 1_000), page_size=20).table
    assert len(counts(seen)) == 1 and not query_table.estimated
    assert query_table.status.value == "page 1 of 100 · 2,000 rows"


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
        table = ln.widgets.browse(Sample, page_size=20).table
    assert len(counts(seen)) == 1 and not table.estimated and table.total == 3_000
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM sample WHERE value > :last"), {"last": 900})
        connection.execute(text("ANALYZE sample"))
    with sent(db) as seen:
        table = ln.widgets.browse(Sample, page_size=20).table
    assert len(counts(seen)) == 1 and not table.estimated
    assert table.status.value == "page 1 of 45 · 900 rows"


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
            assert len(browser.table.pks) == 20
        return best

    fill(1_000)
    small = open_time()
    fill(1_000_000)
    large = open_time()
    assert large < 10 * small + 0.5, f"1k rows: {small:.3f}s, 1M rows: {large:.3f}s"


def test_widgets_import_lazily() -> None:
    """Importing lineage_nb and lineage_nb.widgets does not import ipywidgets."""
    code = ("import sys, lineage_nb, lineage_nb.widgets; "
            "assert 'ipywidgets' not in sys.modules, 'ipywidgets imported'")
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
