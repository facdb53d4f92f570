"""``%load_ext lineage_nb`` on a real ipykernel: runs, cells, errors, shutdown, restart, kill."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from models import Project
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbkernel import FILES, TESTS, NotebookKernel, cell_errors, cell_text
from sqlalchemy import select

import lineage_nb as ln
from lineage_nb.export.openlineage import openlineage_events


def _read(db_url: str) -> ln.Database:
    return ln.connect(db_url, create=False)


def _run_row(db: ln.Database, run_id: int) -> ln.Run:
    with db.session() as session:
        return session.execute(select(ln.Run).where(ln.Run.id == run_id)).unique().scalar_one()


def _events_by_name(db: ln.Database) -> dict[str, tuple[int | None, int | None, str]]:
    """Project name -> (run_id, cell, action) of its insert event."""
    with db.session() as session:
        names = dict(session.execute(select(Project.id, Project.name)).all())
        events = session.execute(
            select(ln.RecordEvent).where(ln.RecordEvent.table == "project")
        ).scalars()
        return {
            names[int(e.pk)]: (e.run_id, e.cell, e.action) for e in events if e.action == "insert"
        }


@pytest.mark.kernel
def test_extension_stamps_run_and_cell_everywhere(db_url: str, tmp_path: Path) -> None:
    """Cells, await cells, threads and widget callbacks write with the run and cell; errors noted."""
    notebook = tmp_path / "tracking.ipynb"
    shutil.copyfile(FILES / "tracking.ipynb", notebook)
    with NotebookKernel(tmp_path, db_url, notebook=notebook) as kernel:
        cells = kernel.run_file(notebook)
        load, setup, plain, awaiting, thread, buttons, failing, after = cells
        assert "tracking run" in cell_text(load, "stdout"), cell_text(load)
        assert not any(cell_errors(c) for c in cells if c is not failing), [
            cell_errors(c) for c in cells
        ]
        assert cell_errors(failing) == ["ValueError: boom"]
        started = json.loads(cell_text(setup, "stdout"))
        model_id = cell_text(buttons, "stdout").strip()
        kernel.send_comm_click(model_id)
        check = kernel.run(
            "import time\n"
            "for _ in range(100):\n"
            "    if Project.filter(name='button-frontend').count():\n"
            "        break\n"
            "    time.sleep(0.05)\n"
            "print(Project.filter(name='button-frontend').count())"
        )
        assert cell_text(check, "stdout").strip() == "1", cell_text(check)
        watcher = _read(db_url)  # a record this run did not write, so it can be an input
        outside = Project(name="outside").save()
        read = kernel.run(f"print(Project.get({outside.id}).name)")
        assert cell_text(read, "stdout").strip() == "outside", cell_text(read)
        try:  # the cell's inputs are stored when the cell ends
            with watcher.engine.connect() as connection:
                stored = connection.execute(
                    select(ln.RunInput.table, ln.RunInput.pk).where(
                        ln.RunInput.run_id == started["run"]
                    )
                ).all()
        finally:
            watcher.close()
        assert [tuple(row) for row in stored] == [("project", str(outside.id))]
        syntax = kernel.run("1 +")
        assert cell_errors(syntax)[0].startswith("SyntaxError")
        assert json.loads(cell_text(after, "stdout")) == {
            "run": started["run"],
            "status": "started",
        }
    db = _read(db_url)
    try:
        run = _run_row(db, started["run"])
        assert (run.status, run.pid) == ("completed", started["pid"])
        assert run.finished_at is not None and run.finished_at >= run.started_at
        assert run.errored_cells == [failing.execution_count, syntax.execution_count]
        assert (run.transform.key, run.transform.type, run.transform.version) == (
            "tracking.ipynb",
            "notebook",
            "1",
        )
        assert run.created_by.handle == "tester"
        events = _events_by_name(db)
        rid = started["run"]
        assert events == {
            "cell": (rid, plain.execution_count, "insert"),
            "after-await": (rid, awaiting.execution_count, "insert"),
            "async-save": (rid, awaiting.execution_count, "insert"),
            "thread": (rid, thread.execution_count, "insert"),
            "button-in-cell": (rid, buttons.execution_count, "insert"),
            "button-frontend": (rid, None, "insert"),
            "after-error": (rid, after.execution_count, "insert"),
            "outside": (None, None, "insert"),  # written by this test, outside the run
        }
        assert [c.execution_count for c in cells] == list(range(1, 9))
    finally:
        db.close()


@pytest.mark.kernel
def test_extension_run_ends_on_restart_kill_and_unload(db_url: str, tmp_path: Path) -> None:
    """Restart completes the run, a killed kernel's run is aborted next start, unload completes."""
    notebook = tmp_path / "minimal.ipynb"
    shutil.copyfile(FILES / "minimal.ipynb", notebook)

    def open_run(kernel: NotebookKernel) -> tuple[int, int]:
        cells = kernel.run_file(notebook)
        assert not any(cell_errors(c) for c in cells), [cell_errors(c) for c in cells]
        run_id, pid = cell_text(cells[1], "stdout").split()
        return int(run_id), int(pid)

    kernel = NotebookKernel(tmp_path, db_url, notebook=notebook).start()
    try:
        first, first_pid = open_run(kernel)
        kernel.restart()  # Jupyter's "Restart kernel": atexit runs, unload does not
        second, second_pid = open_run(kernel)
        assert second != first and second_pid != first_pid
        db = _read(db_url)
        assert _run_row(db, first).status == "completed"
        assert _run_row(db, second).status == "started"
        kernel.kill()
        assert _run_row(db, second).status == "started"  # nothing ran in the killed kernel
    finally:
        kernel.shutdown()
    with NotebookKernel(tmp_path, db_url, notebook=notebook) as kernel:
        third, _pid = open_run(kernel)
        aborted = _run_row(db, second)
        assert aborted.status == "aborted"
        assert aborted.finished_at is not None
        unload = kernel.run("%unload_ext lineage_nb")
        assert f"run {third} completed" in cell_text(unload, "stdout")
        assert _run_row(db, third).status == "completed"
        finished_at = _run_row(db, third).finished_at
        after = kernel.run(
            "from models import Project\nln.get_database().create_all()\n"
            "Project(name='after-unload').save()\nprint(ln.context.get_run())"
        )
        assert cell_errors(after) == [] and cell_text(after, "stdout").strip() == "None"
        assert _events_by_name(db)["after-unload"] == (None, None, "insert")  # unhooked
    assert _run_row(db, third).finished_at == finished_at  # shutdown did not finish it again
    db.close()


@pytest.mark.kernel
def test_extension_unreachable_database_is_one_line(tmp_path: Path) -> None:
    """A database that cannot be reached: one line, no traceback, cells keep working."""
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    with NotebookKernel(tmp_path, url) as kernel:
        load = kernel.run("%load_ext lineage_nb")
        assert cell_errors(load) == []
        lines = cell_text(load, "stderr").strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            "lineage_nb: not tracking this notebook: "
        ), lines
        status = kernel.run("%lineage status\nprint(1 + 1)")
        assert cell_errors(status) == []
        assert "run      : none open" in cell_text(status, "stdout")
        assert cell_text(status, "stdout").strip().endswith("2")


def test_import_lineage_nb_does_not_import_ipython() -> None:
    """A plain script importing lineage_nb (and using it) loads neither IPython nor ipywidgets."""
    code = (
        "import sys, lineage_nb as ln\n"
        "db = ln.connect('sqlite://'); ln.track(); ln.finish()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('IPython', 'ipywidgets', 'ipykernel', 'nbclient', 'lineage_nb.ipython'))\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def _runner_env(db_url: str) -> dict[str, str]:
    """A kernel environment as nbclient / nbconvert / papermill give it: no JPY_SESSION_NAME."""
    env = {k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"}
    env["LINEAGE_NB_DATABASE_URL"] = db_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


def _execute(notebook: Path, db_url: str, *, allow_errors: bool) -> nbformat.NotebookNode:
    """Execute ``notebook`` the way ``jupyter nbconvert --execute`` does (nbclient, whole file,
    kernel shut down at the end); returns the executed document."""
    document = nbformat.read(str(notebook), as_version=4)
    client = NotebookClient(
        document,
        timeout=60,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(notebook.parent)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    try:
        client.execute(env=_runner_env(db_url))
    except CellExecutionError:
        assert not allow_errors
    return document


@pytest.mark.kernel
def test_headless_run_that_stops_on_an_error_ends_errored(db_url: str, tmp_path: Path) -> None:
    """nbclient stops at cell 3's error: the run ends errored (OpenLineage FAIL); when the
    runner goes on after errors, or a user works interactively, it ends completed with the
    errored cell listed."""
    notebook = tmp_path / "stops_on_error.ipynb"
    shutil.copyfile(FILES / "stops_on_error.ipynb", notebook)
    stopped = _execute(notebook, db_url, allow_errors=False)
    assert cell_errors(stopped.cells[2]) == ["RuntimeError: cell 3 fails"]
    assert stopped.cells[3].outputs == []  # execution stopped there
    first = int(cell_text(stopped.cells[1], "stdout"))
    went_on = _execute(notebook, db_url, allow_errors=True)
    assert cell_text(went_on.cells[3], "stdout") == "after the error\n"
    second = int(cell_text(went_on.cells[1], "stdout"))
    with NotebookKernel(tmp_path, db_url, notebook=notebook) as kernel:  # Jupyter Server's env
        cells = [kernel.run(c.source) for c in stopped.cells[:3]]
        third = int(cell_text(cells[1], "stdout"))
    db = _read(db_url)
    try:
        errored, completed, interactive = (_run_row(db, i) for i in (first, second, third))
        assert (errored.status, errored.errored_cells) == ("errored", [3])
        assert (completed.status, completed.errored_cells) == ("completed", [3])
        assert (interactive.status, interactive.errored_cells) == ("completed", [3])
        states = [e.eventType.value for e in openlineage_events(errored)]
        assert states == ["START", "FAIL"]
        assert [e.eventType.value for e in openlineage_events(completed)] == ["START", "COMPLETE"]
    finally:
        db.close()
