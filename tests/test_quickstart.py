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
    save_cell = by_source['soil = Project(name="Soil survey").save()'].execution_count
    update_cell = by_source["a1.update(value=0.47)"].execution_count
    outputs = {k: {m for o in c.outputs for m in o.get("data", {})} for k, c in by_source.items()}
    assert "image/svg+xml" in outputs["a1.view_lineage()"]
    assert "application/vnd.jupyter.widget-view+json" in outputs["ln.widgets.browse(Sample)"]
    assert (tmp_path / "samples.csv").read_text().startswith("id,name,value")

    db = ln.connect(db_url, create=False)
    try:
        with db.session() as session:
            run = session.execute(select(ln.Run)).unique().scalar_one()
            events = session.execute(
                select(ln.RecordEvent.table, ln.RecordEvent.pk, ln.RecordEvent.action,
                       ln.RecordEvent.cell, ln.RecordEvent.run_id).order_by(ln.RecordEvent.id)
            ).all()
    finally:
        db.close()
    assert (run.status, run.transform.key, run.transform.version) == (
        "completed", "quickstart.ipynb", "1"
    )
    assert run.errored_cells == [] and run.created_by.handle == "tester"
    assert "%load_ext lineage_nb" in (run.transform.source_code or "")
    assert [tuple(e) for e in events] == [
        ("project", "1", "insert", save_cell, run.id),
        ("sample", "1", "insert", save_cell, run.id),
        ("sample", "2", "insert", save_cell, run.id),
        ("sample", "1", "update", update_cell, run.id),
    ]
