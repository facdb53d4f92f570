"""track()/finish() for scripts: transform identity and versions, environment, users, dead runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from models import Project
from paths import TESTS
from sqlalchemy import func, select

import lineage_nb as ln
from lineage_nb.errors import LineageWarning, ValidationError
from lineage_nb.lineage.liveness import HEARTBEAT_ENV, MISSED_BEATS, STALE_MARGIN, process_start


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


def test_user_from_env_and_explicit(
    db: ln.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
        run = ln.track({str(Path(__file__))!r})
        Project(name="child %d" % os.getpid()).save()
        print(run.id, flush=True)
        """
    ) + textwrap.dedent(body)
    env = {**os.environ, "LINEAGE_NB_USER": "child"}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )


def test_dead_process_run_becomes_aborted(db: ln.Database, db_url: str) -> None:
    """A run whose process was SIGKILLed is marked aborted, as of its last event, by a later track()."""
    child = _child(db_url, "os.kill(os.getpid(), signal.SIGKILL)\n")
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    dead_id = int(out.split()[0])
    assert ln.Run.get(dead_id).status == "started"
    with pytest.warns(LineageWarning, match=f"run {dead_id}"):
        ln.track(Path(__file__))
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
        ln.track(Path(__file__))
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
        "nightly-import",
        "job",
        "1",
    )
    assert second.transform_id == first.transform_id
    with pytest.raises(ln.errors.ConfigurationError, match=r"missing/script\.py"):
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
    record_cell(
        db,
        run,
        execution_count=1,
        source="project = Project(...).save()",
        started_at=now,
        finished_at=now,
        status="ok",
    )
    ln.context.set_cell(2)
    project.update(name="from cell 2")
    for count in (2, 3):  # the same text twice
        record_cell(
            db,
            run,
            execution_count=count,
            source="project.update(...)",
            started_at=now,
            finished_at=now,
            status="error" if count == 3 else "ok",
        )
    ln.context.set_cell(None)
    ln.finish()
    cells = run.cells_df()
    assert list(cells["execution_count"]) == [1, 2, 3]
    assert list(cells["status"]) == ["ok", "ok", "error"]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ln.Cell)) == 3
        assert session.scalar(select(func.count()).select_from(ln.CellSource)) == 2
    assert project.code() == "project.update(...)"
    card = Project.get(project.id)._repr_html_()
    assert "code that wrote it" in card and "<pre>project.update(...)</pre>" in card
    assert list(project.history_df()["cell_source"]) == [
        "project = Project(...).save()",
        "project.update(...)",
    ]
    with pytest.raises(ValueError, match="status"):
        record_cell(
            db, run, execution_count=9, source="x", started_at=now, finished_at=now, status="weird"
        )


def _started_run(db: ln.Database, **columns: object) -> int:
    """A ``started`` run row as another process would have left it; returns its id."""
    import datetime as dt
    import uuid

    transform = (
        ln.Transform.filter(key="liveness").first()
        or ln.Transform(key="liveness", version="1", type="job", source_hash="0" * 64).save()
    )
    user = ln.User.filter(handle="tester").first()
    assert user is not None
    values: dict[str, object] = {
        "host": socket.gethostname(),
        "pid": None,
        "process_start": None,
        "heartbeat_seconds": None,
        "last_seen_at": None,
        "started_at": dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1),
    }
    values.update(columns)
    with db.session() as session, session.begin():
        run = ln.Run(
            uid=str(uuid.uuid4()),
            transform_id=transform.id,
            status="started",
            created_by_id=user.id,
            errored_cells=[],
            **values,
        )
        session.add(run)
        session.flush()
        return run.id


def _after_connect(db_url: str, ids: dict[str, int]) -> dict[str, ln.Run]:
    """Connect anew (which sweeps dead runs) and read each run."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh = ln.connect(db_url)
    try:
        found = {name: ln.Run.get(run_id) for name, run_id in ids.items()}
    finally:
        fresh.close()
    said = " ".join(str(w.message) for w in caught if issubclass(w.category, LineageWarning))
    for name, run_id in ids.items():  # each aborted run is named in a warning, no other
        assert (f"run {run_id} " in said) is (found[name].status == "aborted"), (name, said)
    return found


@pytest.mark.skipif(process_start(os.getpid()) is None, reason="needs /proc (Linux)")
def test_connect_aborts_runs_of_dead_reused_and_silent_processes(
    db: ln.Database, db_url: str
) -> None:
    """connect() marks aborted: a dead pid, a live pid that now belongs to a later process
    (start time differs, ours included), another host's run whose heartbeat is too old. Live
    processes, fresh heartbeats and runs that never promised one stay started."""
    import datetime as dt

    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        sleeper_start = process_start(sleeper.pid)
        assert sleeper_start is not None
        now = dt.datetime.now(dt.timezone.utc)
        interval = 60
        stale = now - (
            MISSED_BEATS * dt.timedelta(seconds=interval) + STALE_MARGIN + dt.timedelta(seconds=30)
        )
        ids = {
            "dead pid": _started_run(db, pid=dead_pid.pid),
            "reused pid": _started_run(db, pid=sleeper.pid, process_start="old-boot:12345"),
            "reused own pid": _started_run(db, pid=os.getpid(), process_start="old-boot:1"),
            "silent host": _started_run(
                db, host="elsewhere.example", pid=1, heartbeat_seconds=interval, last_seen_at=stale
            ),
            "live pid": _started_run(db, pid=sleeper.pid, process_start=sleeper_start),
            "live pid, start unknown": _started_run(db, pid=sleeper.pid),
            "own process": _started_run(
                db, pid=os.getpid(), process_start=process_start(os.getpid())
            ),
            "beating host": _started_run(
                db,
                host="elsewhere.example",
                pid=1,
                heartbeat_seconds=interval,
                last_seen_at=now - dt.timedelta(seconds=interval),
            ),
            "host without heartbeat": _started_run(
                db, host="elsewhere.example", pid=1, last_seen_at=stale
            ),
        }
        found = _after_connect(db_url, ids)
        assert {name: run.status for name, run in found.items()} == {
            "dead pid": "aborted",
            "reused pid": "aborted",
            "reused own pid": "aborted",
            "silent host": "aborted",
            "live pid": "started",
            "live pid, start unknown": "started",
            "own process": "started",
            "beating host": "started",
            "host without heartbeat": "started",
        }
        silent = found["silent host"]
        assert silent.finished_at == silent.last_seen_at == stale
    finally:
        sleeper.kill()
        sleeper.wait()


def test_cli_runs_shows_a_dead_run_aborted(
    db: ln.Database, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lineage-nb runs` connects, so a run whose process is gone is listed as aborted."""
    from lineage_nb.cli import main

    child = _child(db_url, "os.kill(os.getpid(), signal.SIGKILL)\n")
    out, _ = child.communicate(timeout=60)
    dead_id = int(out.split()[0])
    assert ln.Run.get(dead_id).status == "started"
    with pytest.warns(LineageWarning, match=f"run {dead_id} "):
        assert main(["runs", "--database", db_url]) == 0
    listed = capsys.readouterr().out
    [row] = [line for line in listed.splitlines() if line.split()[:1] == [str(dead_id)]]
    assert "aborted" in row.split()


def test_track_stores_process_start_and_beats(
    db: ln.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stores its process start and heartbeat interval; a daemon thread moves
    last_seen_at forward while it is open, and stops at finish()."""
    import time

    monkeypatch.setenv(HEARTBEAT_ENV, "1")
    run = ln.track("beating")
    stored = ln.Run.get(run.id)
    assert stored.process_start == process_start(os.getpid())
    assert stored.heartbeat_seconds == 1
    first_seen = stored.last_seen_at
    assert first_seen is not None
    for _ in range(50):
        time.sleep(0.1)
        if ln.Run.get(run.id).last_seen_at != first_seen:
            break
    assert ln.Run.get(run.id).last_seen_at > first_seen
    ln.finish()
    finished = ln.Run.get(run.id).last_seen_at
    time.sleep(2.5)
    assert ln.Run.get(run.id).last_seen_at == finished  # no beat after finish


def _notebook_file(path: Path, cells: list[str]) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), str(path))
    return path


def _ran(db: ln.Database, notebook: Path, cells: list[str]) -> ln.Run:
    """A run of ``notebook`` that executed ``cells`` (stored as the extension stores them)."""
    import datetime as dt

    from lineage_nb.lineage.cells import record_cell

    run = ln.track(notebook)
    now = dt.datetime.now(dt.timezone.utc)
    for count, source in enumerate(cells, start=1):
        record_cell(
            db,
            run,
            execution_count=count,
            source=source,
            started_at=now,
            finished_at=now,
            status="ok",
        )
    finished = ln.finish()
    assert finished is run
    return run


def test_notebook_version_is_the_code_that_ran(db: ln.Database, tmp_path: Path) -> None:
    """At finish() a notebook run's transform is the hash of the cells it executed, in order:
    the file's version when they match, another version when different code ran (an existing
    one when that code ran before), never the file's code read at track()."""
    from lineage_nb.lineage.identity import notebook_code

    code_a, code_b = ["x = 1", "print(x)"], ["x = 2", "print(x)"]
    notebook = _notebook_file(tmp_path / "analysis.ipynb", code_a)
    as_filed = _ran(db, notebook, code_a)
    edited = _ran(db, notebook, code_b)  # cells changed in the editor, file not saved
    again = _ran(db, notebook, code_b)
    assert (as_filed.transform.version, edited.transform.version) == ("1", "2")
    assert as_filed.transform.source_hash == notebook_code(code_a)[1]
    assert edited.transform.source_hash == notebook_code(code_b)[1] != notebook_code(code_a)[1]
    assert edited.transform.source_code == "x = 2\n\n# %% ----\n\nprint(x)"
    assert again.transform_id == edited.transform_id
    assert ln.Run.get(edited.id).transform_id == edited.transform_id  # stored, not only in memory
    _notebook_file(notebook, ["y = 1"])  # saved meanwhile; this run still executed code A
    stale = _ran(db, notebook, code_a)
    assert stale.transform_id == as_filed.transform_id
    fresh = _ran(db, notebook, ["y = 1", "print(y)"])  # new code: the version read at track()
    with db.session() as session:
        rows = session.execute(
            select(ln.Transform.version, ln.Transform.source_hash).order_by(ln.Transform.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("1", notebook_code(code_a)[1]),
        ("2", notebook_code(code_b)[1]),
        ("3", notebook_code(["y = 1", "print(y)"])[1]),  # the unused file version is gone
    ]
    assert fresh.transform.version == "3"
    untouched = ln.track(notebook)  # no recorded cell: the file's version stays
    ln.finish()
    assert ln.Run.get(untouched.id).transform.source_hash == notebook_code(["y = 1"])[1]
