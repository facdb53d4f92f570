"""track()/finish() for scripts: transform identity and versions, environment, users, dead runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from models import Project
from sqlalchemy import func, select

import lineage_nb as ln
from lineage_nb.errors import ValidationError
from lineage_nb.lineage.runs import LineageWarning

TESTS = Path(__file__).parent


def write_script(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def test_track_script_identity_and_versions(db: ln.Database, tmp_path: Path) -> None:
    """A script's key is its path; same source keeps the version, changed source bumps it."""
    script = write_script(tmp_path / "analysis.py", "x = 1\n")
    first = ln.track(script)
    assert first.transform.source_code == "x = 1\n"
    assert first.transform.version == "1" and first.transform.type == "script"
    assert first.transform.key.endswith("analysis.py")
    ln.finish()
    again = ln.track(script)
    assert again.transform_id == first.transform_id
    ln.finish()
    script.write_text("x = 2\n")
    changed = ln.track(script)
    assert changed.transform.version == "2" and changed.transform_id != first.transform_id
    assert changed.transform.key == first.transform.key
    ln.finish()


def test_run_records_environment_and_times(db: ln.Database, tmp_path: Path) -> None:
    """A run stores python version, packages, host, pid, start/finish times and status."""
    run = ln.track(write_script(tmp_path / "env.py", "pass\n"))
    assert run.status == "started" and run.finished_at is None
    assert run.python_version == sys.version.split()[0]
    assert run.environment is not None and "SQLAlchemy" in run.environment["packages"]
    assert run.pid == os.getpid() and run.host
    ln.finish("errored")
    stored = ln.Run.get(run.id)
    assert stored.status == "errored"
    assert stored.finished_at is not None and stored.finished_at >= stored.started_at


def test_user_from_env_and_explicit(db: ln.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user handle comes from LINEAGE_NB_USER, or track(user=...)."""
    script = write_script(tmp_path / "u.py", "pass\n")
    monkeypatch.setenv("LINEAGE_NB_USER", "alice")
    run = ln.track(script)
    assert run.created_by.handle == "alice"
    assert Project(name="by alice").save().created_by_id == run.created_by_id
    ln.finish()
    bob = ln.track(script, user="bob")
    assert bob.created_by.handle == "bob"
    assert ln.User.get(Project(name="by bob").save().created_by_id).handle == "bob"
    ln.finish()


def test_track_while_open_says_what_it_does(db: ln.Database, tmp_path: Path) -> None:
    """track() with a run open finishes it as completed and warns about it."""
    script = write_script(tmp_path / "twice.py", "pass\n")
    first = ln.track(script)
    with pytest.warns(LineageWarning, match=f"finished the open run {first.id}"):
        second = ln.track(script)
    assert ln.Run.get(first.id).status == "completed"
    assert ln.context.get_run() is second
    ln.finish()


def test_finish_rejects_unknown_status(db: ln.Database, run: ln.Run) -> None:
    """finish() with an unknown status raises ValidationError naming the allowed ones."""
    with pytest.raises(ValidationError, match="completed"):
        ln.finish("done")
    assert ln.finish() is run
    assert ln.finish() is None


def _child(db_url: str, body: str) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(TESTS)!r})
        import lineage_nb as ln
        from models import Project
        ln.connect({db_url!r})
        run = ln.track({str(TESTS / 'test_lineage_runs.py')!r})
        Project(name="child %d" % os.getpid()).save()
        print(run.id, flush=True)
        """
    ) + textwrap.dedent(body)
    env = {**os.environ, "LINEAGE_NB_USER": "child"}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)


def test_dead_process_run_becomes_aborted(db: ln.Database, db_url: str) -> None:
    """A run whose process was SIGKILLed is marked aborted, as of its last event, by a later track()."""
    child = _child(db_url, "os.kill(os.getpid(), signal.SIGKILL)\n")
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    dead_id = int(out.split()[0])
    assert ln.Run.get(dead_id).status == "started"
    with pytest.warns(LineageWarning, match=f"run {dead_id}"):
        ln.track(TESTS / "test_lineage_runs.py")
    dead = ln.Run.get(dead_id)
    last_event = ln.RecordEvent.filter(run_id=dead_id).order_by("-id").first()
    assert dead.status == "aborted"
    assert last_event is not None and dead.finished_at == last_event.at == dead.last_seen_at
    ln.finish()


def test_live_process_run_is_left_alone(db: ln.Database, db_url: str) -> None:
    """A run of a process that is still alive stays started."""
    child = _child(db_url, "time.sleep(60)\n")
    try:
        assert child.stdout is not None
        live_id = int(child.stdout.readline().split()[0])
        ln.track(TESTS / "test_lineage_runs.py")
        assert ln.Run.get(live_id).status == "started"
        ln.finish()
    finally:
        child.kill()
        child.wait()


def test_track_a_name_without_a_file(db: ln.Database) -> None:
    """ln.track("nightly-import") is a transform of type job keyed by the name, version 1 on
    every run; a missing path still fails naming it."""
    first = ln.track("nightly-import")
    ln.finish()
    second = ln.track("nightly-import")
    ln.finish()
    assert (first.transform.key, first.transform.type, first.transform.version) == (
        "nightly-import", "job", "1")
    assert second.transform_id == first.transform_id
    with pytest.raises(ln.errors.ConfigurationError, match="missing/script.py"):
        ln.track("missing/script.py")


def test_tracking_finishes_completed_or_errored(db: ln.Database) -> None:
    with ln.tracking("block") as run:
        assert ln.context.get_run() is run
    assert run.status == "completed" and ln.context.get_run() is None
    with pytest.raises(RuntimeError), ln.tracking("block") as failed:
        raise RuntimeError("boom")
    assert ln.Run.get(failed.id).status == "errored"


async def test_async_tracking(db: ln.Database) -> None:
    async with ln.tracking("async-block") as run:
        assert ln.context.get_run() is run
    assert ln.Run.get(run.id).status == "completed"


def test_cells_are_stored_once_per_text_and_code_finds_the_writing_cell(db: ln.Database) -> None:
    """record_cell keeps each executed cell; equal sources are stored once; record.code() is the
    cell that last wrote the record, history_df has its cell_source."""
    import datetime as dt

    from models import Project

    from lineage_nb.lineage.cells import record_cell

    run = ln.track("cells")
    now = dt.datetime.now(dt.timezone.utc)
    ln.context.set_cell(1)
    project = Project(name="from cell 1").save()
    record_cell(db, run, execution_count=1, source="project = Project(...).save()",
                started_at=now, finished_at=now, status="ok")
    ln.context.set_cell(2)
    project.update(name="from cell 2")
    for count in (2, 3):  # the same text twice
        record_cell(db, run, execution_count=count, source="project.update(...)",
                    started_at=now, finished_at=now, status="error" if count == 3 else "ok")
    ln.context.set_cell(None)
    ln.finish()
    cells = run.cells_df()
    assert list(cells["execution_count"]) == [1, 2, 3]
    assert list(cells["status"]) == ["ok", "ok", "error"]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ln.Cell)) == 3
        assert session.scalar(select(func.count()).select_from(ln.CellSource)) == 2
    assert project.code() == "project.update(...)"
    assert list(project.history_df()["cell_source"]) == [
        "project = Project(...).save()", "project.update(...)"]
    with pytest.raises(ValueError, match="status"):
        record_cell(db, run, execution_count=9, source="x", started_at=now, finished_at=now,
                    status="weird")
