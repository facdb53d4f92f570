"""Concurrent writers: processes and threads, each in its own run; nothing lost, nothing escapes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from models import Project, Sample
from paths import TESTS
from sqlalchemy import select, text
from sqlalchemy.orm import Session

import lineage_nb as ln
from lineage_nb import db as db_module
from lineage_nb.errors import OperationalError
from lineage_nb.lineage.verify import verify
from lineage_nb.orm import session_scope
from lineage_nb.orm.session_scope import run_sync

WORKERS = TESTS / "lineage_workers.py"
PROCESSES, PROCESS_SAVES = 4, 500
THREADS, THREAD_SAVES = 16, 500


def _check_complete(db: ln.Database, runs_by_worker: dict[int, int], saves: int) -> None:
    """Every sample and its insert event exist, and both point at the run of the worker."""
    with db.session() as session:
        samples = session.execute(select(Sample.id, Sample.name, Sample.run_id)).all()
        events = {
            (e.pk): e
            for e in session.scalars(
                select(ln.RecordEvent).where(
                    ln.RecordEvent.table == "sample", ln.RecordEvent.action == "insert"
                )
            )
        }
    assert len(samples) == len(runs_by_worker) * saves
    assert len(events) == len(samples)
    for sample_id, name, run_id in samples:
        worker = int(name[1:].split("-")[0])
        assert run_id == runs_by_worker[worker], name
        assert events[str(sample_id)].run_id == run_id, name
    assert len(set(runs_by_worker.values())) == len(runs_by_worker)
    assert verify(db) == []


@pytest.mark.slow
def test_processes_save_concurrently(db: ln.Database) -> None:
    """4 processes × 500 save() into one database: every row and event present, nothing raised."""
    project = Project(name="shared").save()
    url = db.url.render_as_string(hide_password=False)
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKERS),
                "saves",
                url,
                str(w),
                str(PROCESS_SAVES),
                str(project.id),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(PROCESSES)
    ]
    runs_by_worker: dict[int, int] = {}
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err
        assert "locked" not in err and "serializ" not in err.lower(), err
        report = json.loads(out.strip().splitlines()[-1])
        runs_by_worker[report["worker"]] = report["run_id"]
    _check_complete(db, runs_by_worker, PROCESS_SAVES)
    statuses = {r.id: r.status for r in ln.runs()}
    assert all(statuses[run_id] == "completed" for run_id in runs_by_worker.values())


@pytest.mark.slow
def test_threads_save_concurrently(db: ln.Database) -> None:
    """16 threads (own connections) × 500 save(), each thread in its own run: nothing lost."""
    project = Project(name="shared").save()
    runs_by_worker: dict[int, int] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(worker: int) -> None:
        try:
            run = ln.track(__file__)
            runs_by_worker[worker] = run.id
            start.wait()
            for index in range(THREAD_SAVES):
                Sample(name=f"w{worker}-{index}", value=float(index), project_id=project.id).save()
            ln.finish(run=run)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    _check_complete(db, runs_by_worker, THREAD_SAVES)
    statuses = {r.id: r.status for r in ln.runs()}
    assert all(statuses[run_id] == "completed" for run_id in runs_by_worker.values())


def _hold_sqlite_write_lock(path: str, seconds: float, ready: threading.Event) -> None:
    import sqlite3

    connection = sqlite3.connect(path, isolation_level=None, timeout=5)
    connection.execute("BEGIN IMMEDIATE")
    ready.set()
    time.sleep(seconds)
    connection.execute("ROLLBACK")
    connection.close()


@pytest.mark.sqlite_only
def test_sqlite_locked_is_retried(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save() that finds the file locked longer than the busy timeout is retried with backoff."""
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(session_scope, "RETRY_ATTEMPTS", 30)
    sleeps: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(session_scope.time, "sleep", lambda s: (sleeps.append(s), real_sleep(s)))
    path = str(tmp_path / "locked.db")
    db = ln.connect(f"sqlite:///{path}")
    project = Project(name="p").save()
    ready = threading.Event()
    holder = threading.Thread(target=_hold_sqlite_write_lock, args=(path, 0.8, ready))
    holder.start()
    ready.wait()
    sample = Sample(name="late", value=1.0, project_id=project.id).save()
    holder.join()
    assert sleeps, "expected at least one retry"
    assert Sample.get(sample.id).name == "late"
    assert len(sample.history()) == 1
    db.close()


@pytest.mark.sqlite_only
def test_sqlite_locked_gives_up_clearly(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the lock outlasts the retries, our error says so and nothing was written."""
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 20)
    monkeypatch.setattr(session_scope, "RETRY_ATTEMPTS", 3)
    path = str(tmp_path / "locked.db")
    db = ln.connect(f"sqlite:///{path}")
    project = Project(name="p").save()
    ready = threading.Event()
    holder = threading.Thread(target=_hold_sqlite_write_lock, args=(path, 3.0, ready))
    holder.start()
    ready.wait()
    sample = Sample(name="never", value=1.0, project_id=project.id)
    with pytest.raises(OperationalError, match="Gave up after 3 attempts") as info:
        sample.save()
    holder.join()
    assert info.value.attempts == 3
    assert "database is locked" in str(info.value)
    assert sample.id is None and sample.pk is None
    assert Sample.filter(name="never").count() == 0
    sample.save()  # the same object saves once the lock is gone
    assert Sample.filter(name="never").count() == 1
    db.close()


def test_deadlock_is_retried(
    db: ln.Database, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two units of work locking rows in opposite order: the one the backend aborts is rerun."""
    barrier_timeout = 2.0
    if backend == "sqlite":  # one writer at a time: the second waits, retries, then goes through
        monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
        monkeypatch.setattr(session_scope, "RETRY_ATTEMPTS", 30)
        db.engine.dispose()
        barrier_timeout = 0.3
    a, b = Project(name="a").save(), Project(name="b").save()
    both_locked = threading.Barrier(2, timeout=barrier_timeout)
    attempts: dict[str, int] = {"ab": 0, "ba": 0}
    errors: list[BaseException] = []

    def unit(order: str, first: int, second: int) -> Any:
        def fn(session: Session) -> None:
            attempts[order] += 1
            session.execute(
                text("UPDATE project SET name = name || :s WHERE id = :id"),
                {"s": order, "id": first},
            )
            if attempts[order] == 1:
                try:
                    both_locked.wait()
                except threading.BrokenBarrierError:
                    pass
            session.execute(
                text("UPDATE project SET name = name || :s WHERE id = :id"),
                {"s": order, "id": second},
            )

        def go() -> None:
            try:
                run_sync(fn)
            except BaseException as error:
                errors.append(error)

        return go

    threads = [
        threading.Thread(target=unit("ab", a.id, b.id)),
        threading.Thread(target=unit("ba", b.id, a.id)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert attempts["ab"] + attempts["ba"] >= 3  # one of them ran again
    assert sorted(Project.get(a.id).name.replace("a", "", 1)) == sorted("abba")
    assert sorted(Project.get(b.id).name.replace("b", "", 1)) == sorted("abba")


def test_read_modify_write_in_atomic_loses_nothing(db: ln.Database) -> None:
    """Threads each read a value and write it + 1 inside ln.atomic(): no increment is lost.

    SQLite: the block holds the write lock from its start (reads are inside the transaction).
    PostgreSQL: isolation="serializable" turns a lost update into an OperationalError that the
    caller runs again (READ COMMITTED, the default, would lose updates, as documented).
    """
    workers, increments = 4, 15
    project = Project(name="0").save()
    errors: list[BaseException] = []
    isolation = "serializable" if db.dialect == "postgresql" else None

    def work() -> None:
        try:
            for _ in range(increments):
                while True:
                    try:
                        with ln.atomic(isolation=isolation):
                            current = Project.get(project.id)
                            current.update(name=str(int(current.name) + 1))
                        break
                    except OperationalError:
                        time.sleep(0.01)  # a conflicting block won: read again
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Project.get(project.id).name == str(workers * increments)


def test_atomic_refuses_unknown_isolation(db: ln.Database) -> None:
    """A misspelt isolation level is refused, naming it."""
    with pytest.raises(ln.errors.UsageError, match="serialisable"):
        ln.atomic(isolation="serialisable")
