"""Faults: killed writers, exceptions at flush time, server restarts, full disks, bad files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pg_server
import psycopg
import pytest
from models import Project, Sample, Specimen
from paths import FILES, TESTS
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

import lineage_nb as ln
from lineage_nb.db import LineageSession
from lineage_nb.errors import ConfigurationError, LineageWarning, OperationalError
from lineage_nb.lineage.liveness import mark_dead_runs
from lineage_nb.lineage.verify import verify

WORKERS = TESTS / "lineage_workers.py"
BULK_ROWS = 50_000


def _counts(db: ln.Database) -> tuple[int, int]:
    """(samples, record events) in the database."""
    with db.session() as session:
        samples = session.scalar(select(func.count()).select_from(Sample))
        events = session.scalar(select(func.count()).select_from(ln.RecordEvent))
    return int(samples or 0), int(events or 0)


@pytest.mark.slow
def test_sigkill_mid_bulk_create_leaves_nothing(db: ln.Database) -> None:
    """SIGKILL inside a 50,000-row bulk_create: no row and no event of it; the run is aborted."""
    project = Project(name="p").save()
    before = _counts(db)
    url = db.url.render_as_string(hide_password=False)
    child = subprocess.Popen(
        [sys.executable, str(WORKERS), "bulk", url, str(BULK_ROWS), str(project.id)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    run_id = json.loads(child.stdout.readline())["run_id"]
    assert json.loads(child.stdout.readline()) == "mid"  # inside the transaction, 3 batches in
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert _counts(db) == before
    with db.session() as session:
        leftover = session.scalar(
            select(func.count()).select_from(ln.RecordEvent).where(ln.RecordEvent.run_id == run_id)
        )
        assert leftover == 0
        assert session.get(ln.Run, run_id).status == "started"
    with pytest.warns(LineageWarning, match=f"run {run_id}"):
        aborted = mark_dead_runs(db)
    assert [r.id for r in aborted] == [run_id]
    assert [r.status for r in ln.runs() if r.id == run_id] == ["aborted"]
    Sample.bulk_create([{"name": "after", "value": 1.0, "project_id": project.id}])
    assert _counts(db)[0] == before[0] + 1
    assert verify(db) == []


@contextlib.contextmanager
def _listening(target: Any, name: str, fn: Callable[..., Any]) -> Iterator[None]:
    event.listen(target, name, fn)
    try:
        yield
    finally:
        event.remove(target, name, fn)


class Injected(RuntimeError):
    """The fault these tests inject."""


def test_exception_at_flush_rolls_back_rows_and_events(db: ln.Database, run: ln.Run) -> None:
    """An exception after the rows and events were flushed leaves none of them behind."""
    project = Project(name="p").save()
    before = _counts(db)

    def boom(session: Any, flush_context: Any) -> None:
        raise Injected("injected at flush time")

    sample = Sample(name="s", value=1.0, project_id=project.id)
    with _listening(LineageSession, "after_flush", boom):
        with pytest.raises(Injected):
            sample.save()
        with pytest.raises(Injected), ln.atomic():
            Sample(name="a", value=1.0, project_id=project.id).save()
            Sample(name="b", value=2.0, project_id=project.id).save()
    assert _counts(db) == before
    assert sample.pk is None
    sample.save()
    assert _counts(db) == (before[0] + 1, before[1] + 1)
    assert verify(db) == []


def test_failure_half_way_through_bulk_rolls_back_rows_and_events(
    db: ln.Database, run: ln.Run
) -> None:
    """A row refused half-way through a bulk_create rolls back every row and every event of it."""
    project = Project(name="p").save()
    before = _counts(db)
    rows = [{"name": f"n{i}", "value": float(i), "project_id": project.id} for i in range(1000)]
    rows[300] = {**rows[300], "project_id": project.id + 1000}
    with pytest.raises(ln.errors.LineageError):
        Sample.bulk_create(rows)
    assert _counts(db) == before
    rows[300]["project_id"] = project.id
    Sample.bulk_create([dict(r) for r in rows])
    assert _counts(db) == (before[0] + 1000, before[1] + 1000)
    assert verify(db) == []


def _disk_full(backend: str) -> Exception:
    if backend == "sqlite":
        return sqlite3.OperationalError("database or disk is full")
    return psycopg.errors.DiskFull("could not extend file: No space left on device")


def test_full_disk_gives_our_error(db: ln.Database, run: ln.Run, backend: str) -> None:
    """A write error 'disk full' from the driver gives OperationalError and writes nothing."""
    project = Project(name="p").save()
    before = _counts(db)

    def full(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        if statement.startswith("INSERT INTO sample"):
            raise _disk_full(backend)

    with _listening(db.engine, "do_execute", full), _listening(db.engine, "do_executemany", full):
        with pytest.raises(OperationalError, match="disk holding the database is full") as info:
            Sample(name="s", value=1.0, project_id=project.id).save()
    assert "Free disk space" in str(info.value)
    assert _counts(db) == before
    Sample(name="s", value=1.0, project_id=project.id).save()
    assert verify(db) == []


def test_full_disk_when_opening_a_run(db: ln.Database, backend: str) -> None:
    """track() on a full disk gives our error naming the cause, and leaves no half-open run."""
    previous = ln.context.get_run()
    with db.session() as session:
        runs_before = session.scalar(select(func.count()).select_from(ln.Run))

    def full(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        if statement.startswith("INSERT INTO lineage_run"):
            raise _disk_full(backend)

    with _listening(db.engine, "do_execute", full):
        with pytest.raises(OperationalError, match="disk holding the database is full") as info:
            ln.track("nightly-import", db=db)
    assert "Free disk space" in str(info.value)
    assert ln.context.get_run() is previous
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ln.Run)) == runs_before


@pytest.mark.sqlite_only
def test_full_disk_on_small_filesystem(backend: str, tmp_path: Path) -> None:
    """On a real 1 MiB tmpfs, the write that does not fit fails cleanly; earlier data stays."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        db = ln.connect(f"sqlite:///{mount_point / 'full.db'}")
        stored = 0
        with pytest.raises(OperationalError, match="full") as info:
            for index in range(1000):
                Specimen(label=f"s{index}", notes="x" * 50_000).save()
                stored += 1
        assert 0 < stored < 1000
        assert "nothing of it was written" in str(info.value)
        assert Specimen.filter().count() == stored
        assert verify(db) == []
        db.close()
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _read_only_url(db: ln.Database, backend: str) -> str:
    url = db.url.render_as_string(hide_password=False)
    if backend == "sqlite":
        return f"sqlite:///file:{db.url.database}?mode=ro&uri=true"
    name = db.url.database
    with pg_server.connect(url) as conn:
        conn.execute(
            psycopg.sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
                psycopg.sql.Identifier(name)
            )
        )
    return url


def test_read_only_database_gives_our_error(db: ln.Database, backend: str) -> None:
    """A read-only database can be read; a write names the problem and writes nothing."""
    project = Project(name="p").save()
    url = _read_only_url(db, backend)
    db.close()
    read_only = ln.connect(url)
    try:
        assert Project.get(project.id).name == "p"
        with pytest.raises(OperationalError, match="read-only") as info:
            Sample(name="s", value=1.0, project_id=project.id).save()
        assert "permissions" in str(info.value)
        assert Sample.filter().count() == 0
    finally:
        read_only.close()


@pytest.mark.sqlite_only
def test_corrupt_database_file(backend: str, tmp_path: Path) -> None:
    """A file that is not a SQLite database gives ConfigurationError saying so."""
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(ConfigurationError, match="not a database") as info:
        ln.connect(f"sqlite:///{path}")
    assert "corrupt" in str(info.value)
    directory = tmp_path / "dir.db"
    directory.mkdir()
    with pytest.raises(ConfigurationError, match="unable to open"):
        ln.connect(f"sqlite:///{directory}")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "Cannot read the notebook"),
        (b'{"cells": [', "Cannot read the notebook"),
        (b'{"foo": 1}', "Cannot read the notebook"),
        (None, "Cannot read the notebook"),
    ],
    ids=["binary", "truncated-json", "not-a-notebook", "directory"],
)
def test_unreadable_notebook_gives_our_error(
    db: ln.Database, tmp_path: Path, content: bytes | None, expected: str
) -> None:
    """track() on a corrupt or unreadable notebook raises ConfigurationError naming the file."""
    path = tmp_path / "broken.ipynb"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=expected) as info:
        ln.track(str(path))
    assert info.value.value == str(path)
    assert ln.context.get_run() is None


def _restart(cluster: pg_server.ThrowawayCluster) -> None:
    argv = [
        str(cluster.bin_dir / "pg_ctl"),
        "-D",
        str(cluster.data_dir),
        "-l",
        str(cluster.log_file),
        "-m",
        "fast",
        "-w",
        "-t",
        "60",
        "restart",
    ]
    subprocess.run(
        pg_server._cmd(argv, cluster.run_as),
        cwd=cluster.base_dir,
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.slow
def test_reconnect_after_postgres_restart() -> None:
    """After a server restart the next write works; the write that hit the restart raised ours."""
    cluster = pg_server._start_cluster()  # a private server: the shared one must keep running
    try:
        url = make_url(cluster.url).set(database="restart_test").render_as_string(False)
        with pg_server.connect(cluster.url) as conn:
            conn.execute("CREATE DATABASE restart_test")
        db = ln.connect(url)
        run = ln.track(__file__)
        Project(name="before").save()
        _restart(cluster)
        Project(name="after-restart").save()
        with pytest.raises(OperationalError, match="Lost the connection") as info:
            with ln.atomic():
                Project(name="in-block").save()
                _restart(cluster)
                Project(name="hit-the-restart").save()
        assert "reconnects" in str(info.value)
        Project(name="next").save()
        assert [p.name for p in Project.filter().order_by("id").all()] == [
            "before",
            "after-restart",
            "next",
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ln.finish(run=run)
        assert verify(db) == []
        db.close()
    finally:
        cluster.stop()


@contextlib.contextmanager
def _server_connection_killed_at_commit(db: ln.Database) -> Iterator[None]:
    """Inside the block, every COMMIT finds its server connection terminated from elsewhere."""

    def kill(conn: Any) -> None:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with pg_server.connect(db.url) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (pid,))

    event.listen(db.engine, "commit", kill)
    try:
        yield
    finally:
        event.remove(db.engine, "commit", kill)


def test_connection_lost_at_commit_says_outcome_unknown(db: ln.Database, backend: str) -> None:
    """A failure at COMMIT is reported as an unknown outcome, never as "nothing was written".

    The server connection is killed from another session just before COMMIT. (SQLite commits
    in-process: a failed COMMIT is a rollback, said as such; see the full-disk tests.)
    """
    if backend == "sqlite":
        pytest.skip("SQLite has no server connection to lose at COMMIT")
    project = Project(name="first").save()
    with _server_connection_killed_at_commit(db), pytest.raises(OperationalError) as info:
        Sample(name="at commit", value=1.0, project=project).save()
    message = str(info.value)
    assert "outcome is unknown" in message and "nothing" not in message.lower()
    assert "before running the call again" in str(info.value.hint)
    Sample(name="after", value=2.0, project=project).save()  # the database is usable again
    assert "after" in [s.name for s in Sample.objects().all()]


def test_connection_lost_at_atomic_commit_says_outcome_unknown(
    db: ln.Database, backend: str
) -> None:
    """The COMMIT of an ln.atomic() block that loses its connection: our error, outcome unknown."""
    if backend == "sqlite":
        pytest.skip("SQLite has no server connection to lose at COMMIT")
    with _server_connection_killed_at_commit(db), pytest.raises(OperationalError) as info:
        with ln.atomic():
            Project(name="in the block").save()
    assert "outcome is unknown" in str(info.value)
    Project(name="after").save()


def test_full_disk_at_atomic_commit_is_ours(db: ln.Database, backend: str) -> None:
    """The COMMIT of an ln.atomic() block refused for a full disk: our error naming the cause."""
    refused_commit = db.engine.dialect.do_commit

    def full(dbapi_connection: Any) -> None:
        dbapi_connection.rollback()  # what the server does with a commit it cannot write
        raise _disk_full(backend)

    db.engine.dialect.do_commit = full  # type: ignore[method-assign]
    try:
        with pytest.raises(OperationalError, match="disk holding the database is full"):
            with ln.atomic():
                Project(name="in the block").save()
    finally:
        db.engine.dialect.do_commit = refused_commit  # type: ignore[method-assign]
    assert Project.filter(name="in the block").count() == 0
    Project(name="after").save()


def test_database_error_inside_atomic_is_ours(db: ln.Database) -> None:
    """A raw statement failing inside ln.atomic() surfaces as our error naming the problem."""
    from sqlalchemy import text

    with pytest.raises(ln.errors.LineageError) as info, ln.atomic() as session:
        session.execute(text("INSERT INTO project (id, name, created_by_id) VALUES (1, NULL, 1)"))
    assert not isinstance(info.value, ConfigurationError)
    assert "null" in str(info.value).lower()


def test_ctrl_c_during_bulk_create_stays_ctrl_c_and_blocks_no_writer(db_url: str) -> None:
    """SIGINT at random moments of bulk_create (12 times, the tracebacks kept as IPython keeps
    them): each is a KeyboardInterrupt, never a LineageError (sqlite3 reports Ctrl-C inside a
    trigger's context function as "user-defined function raised exception"), and right after it
    another writer writes (SQLite: no write lock left behind by a half-closed connection;
    PostgreSQL: no pooled connection left mid-command)."""
    script = FILES / "interrupt_bulk_create.py"
    done = subprocess.run(
        [sys.executable, str(script), db_url, "12", "7"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    last = done.stdout.strip().splitlines()[-1]
    counts = dict(zip(last.split()[::2], map(int, last.split()[1::2]), strict=True))
    assert counts["interrupted"] >= 6, done.stderr
    assert (counts["blocked"], counts["other"]) == (0, 0), done.stderr
