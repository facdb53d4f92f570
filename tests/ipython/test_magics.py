"""``%lineage`` in a real kernel: status, runs, show, finish, export, help and one-line errors."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from nbkernel import FILES, NotebookKernel, cell_data, cell_errors, cell_text
from prov.model import ProvDocument

import lineage_nb as ln
from lineage_nb.ipython.magics import HELP

SETUP = """\
from models import Project, Sample
import lineage_nb as ln
ln.get_database().create_all()
p = Project(name="soil").save()
s = Sample(name="a1", value=1.0, project=p).save()
s.update(value=2.0)
print(ln.context.get_run().id)"""


def _one_error_line(cell: object) -> str:
    """The cell's stderr, which must be exactly one line, with no error output (traceback)."""
    assert cell_errors(cell) == []
    lines = cell_text(cell, "stderr").strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.kernel
def test_lineage_magic_subcommands(db_url: str, tmp_path: Path) -> None:
    """Each subcommand works against the kernel's run; bad input prints one line, no traceback."""
    notebook = tmp_path / "magics.ipynb"
    shutil.copyfile(FILES / "minimal.ipynb", notebook)
    with NotebookKernel(tmp_path, db_url, notebook=notebook) as kernel:
        kernel.run("%load_ext lineage_nb")
        setup = kernel.run(SETUP)
        assert cell_errors(setup) == []
        run_id = int(cell_text(setup, "stdout"))

        assert cell_text(kernel.run("%lineage help"), "stdout").strip() == HELP.strip()
        assert cell_text(kernel.run("%lineage"), "stdout").strip() == HELP.strip()

        status = cell_text(kernel.run("%lineage status"), "stdout")
        assert f"run      : {run_id} of magics.ipynb v1 (started)" in status
        assert "user     : tester" in status
        assert "records  : 3 event(s) written by this run" in status
        assert f"notebook : {notebook.resolve()} (via Jupyter session (__session__))" in status

        runs = cell_data(kernel.run("%lineage runs --limit 5"))
        assert len(runs) == 1 and "magics.ipynb" in runs[0] and "started" in runs[0]
        assert "tester" in runs[0]

        show = kernel.run("%lineage show Sample 1")
        assert cell_errors(show) == []
        shown = "\n".join(cell_data(show))
        assert "Sample(id=1" in shown and "insert" in shown and "update" in shown
        assert "<table" in "\n".join(cell_data(show, "text/html"))

        unknown_model = _one_error_line(kernel.run("%lineage show Nope 1"))
        assert unknown_model.startswith("%lineage show: no model or table named 'Nope' (tables: ")
        assert "sample" in unknown_model
        missing = _one_error_line(kernel.run("%lineage show Sample 999"))
        assert missing.startswith("%lineage show:") and "999" in missing
        assert _one_error_line(kernel.run("%lineage frobnicate")).startswith(
            "%lineage: argument command: invalid choice: 'frobnicate'"
        )
        assert _one_error_line(kernel.run("%lineage runs --limit many")).startswith(
            "%lineage: argument --limit: invalid int value: 'many'"
        )
        bad_status = _one_error_line(kernel.run("%lineage finish done"))
        assert bad_status.startswith("%lineage finish:") and "'done'" in bad_status

        exports = {
            "csv": "%lineage export csv events.csv",
            "model": "%lineage export csv samples.csv --model Sample",
            "parquet": "%lineage export parquet events.parquet",
            "openlineage": "%lineage export openlineage run.ndjson",
            "prov": "%lineage export prov run.json",
            "prov-n": "%lineage export prov run.provn",
        }
        if importlib.util.find_spec("lxml") is not None:
            exports["prov-xml"] = "%lineage export prov run.xml"
        else:
            no_xml = _one_error_line(kernel.run("%lineage export prov run.xml"))
            assert "suffix .xml" in no_xml and "pip install 'prov[xml]'" in no_xml
        for name, line in exports.items():
            cell = kernel.run(line)
            assert cell_errors(cell) == [] and cell_text(cell, "stderr") == "", (name, cell.outputs)
        unknown = _one_error_line(kernel.run("%lineage export prov run.txt"))
        assert unknown.startswith("%lineage export: Cannot tell the PROV format of 'run.txt'")
        wrong = _one_error_line(kernel.run("%lineage export prov x.json --model Sample"))
        assert wrong == "%lineage export: --model does not apply to prov (it exports a run)"

        finished = kernel.run("%lineage finish")
        assert cell_text(finished, "stdout").strip() == f"run {run_id} completed"
        after = cell_text(kernel.run("%lineage status"), "stdout")
        assert "run      : none open (start one with %lineage track)" in after
        no_run = _one_error_line(kernel.run("%lineage export csv again.csv"))
        assert no_run == (
            "%lineage export: No run is open. Pass --run ID, or start one with %lineage track."
        )
        again = kernel.run(f"%lineage export openlineage old.ndjson --run {run_id}")
        assert cell_text(again, "stderr") == ""

    events = ln.export.read_csv(tmp_path / "events.csv")
    assert list(events["action"]) == ["insert", "insert", "update"]
    assert set(events["run_id"]) == {run_id}
    samples = ln.export.read_csv(tmp_path / "samples.csv")
    assert list(samples["name"]) == ["a1"] and list(samples["value"]) == [2.0]
    assert len((tmp_path / "run.ndjson").read_text().splitlines()) == 1  # START (run was open)
    ended = [json.loads(x) for x in (tmp_path / "old.ndjson").read_text().splitlines()]
    assert [e["eventType"] for e in ended] == ["START", "COMPLETE"]
    as_json = ProvDocument.deserialize(tmp_path / "run.json", format="json")
    assert "entity" in json.loads((tmp_path / "run.json").read_text())
    assert ProvDocument.deserialize(tmp_path / "run.provn", format="provn") == as_json
    if importlib.util.find_spec("lxml") is not None:  # PROV-XML, not JSON in a .xml file
        assert (tmp_path / "run.xml").read_text().startswith("<?xml")
        assert ProvDocument.deserialize(tmp_path / "run.xml", format="xml") == as_json
    assert not (tmp_path / "run.txt").exists()
    assert (tmp_path / "events.parquet").stat().st_size > 0


def test_load_ext_in_process_shell(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """In an in-process IPython shell: cells are stamped, errors noted, unload completes the run."""
    from IPython.testing.globalipapp import get_ipython
    from models import Project
    from sqlalchemy import select

    monkeypatch.setenv("LINEAGE_NB_DATABASE_URL", db_url)
    shell = get_ipython()
    shell.run_line_magic("load_ext", "lineage_nb")
    try:
        run = ln.context.get_run()
        assert run is not None and run.status == "started"
        saved = shell.run_cell(
            "from models import Project\nln_db = __import__('lineage_nb').get_database()\n"
            "ln_db.create_all()\nProject(name='in-process').save()",
            store_history=True,
        )
        assert saved.success
        failed = shell.run_cell("raise RuntimeError('x')", store_history=True)
        assert not failed.success
        assert ln.context.get_cell() is None  # cleared after each cell
    finally:
        shell.run_line_magic("unload_ext", "lineage_nb")
    db = ln.get_database()
    with db.session() as session:
        stored = session.execute(select(ln.Run).where(ln.Run.id == run.id)).unique().scalar_one()
        event = session.execute(
            select(ln.RecordEvent).where(ln.RecordEvent.table == Project.__tablename__)
        ).scalar_one()
    assert (stored.status, stored.errored_cells) == ("completed", [failed.execution_count])
    assert (event.run_id, event.cell) == (run.id, saved.execution_count)
    assert ln.context.get_run() is None
