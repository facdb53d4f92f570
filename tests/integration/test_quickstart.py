"""``notebooks/quickstart.ipynb`` runs top to bottom headless on a real kernel and records lineage."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from sqlalchemy import select

import lineage_nb as ln
from lineage_nb.demo import QUICKSTART, execute_notebook


@pytest.mark.kernel
def test_quickstart_runs_headless_and_records_lineage(db_url: str, tmp_path: Path) -> None:
    """Every cell runs without error; the run completed with each record's cell stamped."""
    executed = execute_notebook(QUICKSTART, tmp_path, db_url, timeout=120)
    document = nbformat.read(str(executed), as_version=4)
    code = [c for c in document.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    by_source = {c.source.split("\n")[0]: c for c in code}
    summary_cell = by_source['soil = Project.filter(name="Soil survey").one()'].execution_count
    outputs = {k: {m for o in c.outputs for m in o.get("data", {})} for k, c in by_source.items()}
    assert "image/svg+xml" in outputs["summary.view_lineage()"]
    assert "application/vnd.jupyter.widget-view+json" in outputs["ln.widgets.browse(Sample)"]
    assert (tmp_path / "samples.csv").read_text().startswith("id,name,value")
    stale_text = "".join(
        o.get("text", "")
        for o in by_source['print("summary is stale:", summary.is_stale())'].outputs
    )
    assert "summary is stale: True" in stale_text

    from models import Sample  # the same table as the quickstart's Sample

    db = ln.connect(db_url, create=False)
    try:
        with db.session() as session:
            runs = {r.transform.key: r for r in session.execute(select(ln.Run)).unique().scalars()}
            events = session.execute(
                select(
                    ln.RecordEvent.table,
                    ln.RecordEvent.pk,
                    ln.RecordEvent.action,
                    ln.RecordEvent.cell,
                    ln.RecordEvent.run_id,
                ).order_by(ln.RecordEvent.id)
            ).all()
        notebook, ingest, correct = (
            runs[k] for k in ("quickstart.ipynb", "ingest.py", "correct.py")
        )
        inputs = notebook.inputs_df()
        cells = notebook.cells_df()
        raw_code = Sample.get(1).code()
        history = Sample.get(1).history_df()
    finally:
        db.close()
    assert (notebook.status, notebook.transform.version) == ("completed", "1")
    assert (ingest.transform.type, correct.transform.type) == ("script", "script")
    assert {r.status for r in runs.values()} == {"completed"}
    assert notebook.errored_cells == [] and notebook.created_by.handle == "tester"
    assert "%load_ext lineage_nb" in (notebook.transform.source_code or "")
    assert [tuple(e) for e in events] == [
        ("project", "1", "insert", None, ingest.id),
        ("sample", "1", "insert", None, ingest.id),
        ("sample", "2", "insert", None, ingest.id),
        ("sample", "3", "insert", None, ingest.id),
        ("summary", "1", "insert", summary_cell, notebook.id),
        ("sample", "1", "update", None, correct.id),
    ]
    # the code that ran: every executed cell with its exact source, in order
    executed = [c for c in code if c.execution_count is not None]
    assert list(cells["execution_count"]) == [c.execution_count for c in executed]
    assert list(cells["source"]) == [c.source for c in executed]
    assert set(cells["status"]) == {"ok"}
    by_count = dict(zip(cells["execution_count"], cells["source"], strict=True))
    assert by_count[summary_cell].startswith('soil = Project.filter(name="Soil survey").one()')
    assert raw_code is not None and 'Sample.filter(name="A1").one().update' in raw_code
    assert history["cell_source"].isna().all()  # script runs: no cell
    read = {
        (t, p, int(v))
        for t, p, v in zip(inputs["table"], inputs["pk"], inputs["read_version"], strict=True)
    }
    assert {("sample", "1", 2), ("sample", "2", 3), ("sample", "3", 4), ("project", "1", 1)} <= read


@pytest.mark.kernel
def test_quickstart_runs_twice_on_one_database(tmp_path: Path) -> None:
    """A second run of the quickstart on the same database works; the lineage shows both."""
    url = f"sqlite:///{tmp_path / 'lineage.db'}"
    for attempt in ("first", "second"):
        executed = execute_notebook(QUICKSTART, tmp_path / attempt, url, timeout=120)
        document = nbformat.read(str(executed), as_version=4)
        errors = [
            o
            for c in document.cells
            if c.cell_type == "code"
            for o in c.outputs
            if o.output_type == "error"
        ]
        assert errors == [], attempt
    db = ln.connect(url, create=False)
    try:
        runs = ln.runs_df(limit=None)
        summaries = ln.stale()
    finally:
        db.close()
    keys = sorted(runs["transform_key"])
    assert keys == sorted(["quickstart.ipynb"] * 2 + ["ingest.py"] * 2 + ["correct.py"] * 2)
    assert set(runs["status"]) == {"completed"}
    assert list(summaries["table"]) == ["summary", "summary"]  # both runs' summaries are stale
