"""State has owners: per database (``LineageState``, session listeners), per open run
(``ActiveRun``), and no module-level mutable state beyond the documented process owners."""

from __future__ import annotations

import importlib
import pkgutil
import types
from pathlib import Path

import pytest
from models import Project
from sqlalchemy import event, select

import lineage_nb as ln
from lineage_nb import db as db_module
from lineage_nb.errors import IntegrityError
from lineage_nb.lineage import context, reads, stamping
from lineage_nb.lineage.state import state_of
from lineage_nb.orm import signals

#: Module-level objects that own process-wide state on purpose, and why.
PROCESS_OWNERS = {
    # the default database of active-record calls (``ln.connect()`` sets it)
    ("lineage_nb.db", "_default"),
    # the process fallback of the current run/cell and the runs this process has open
    ("lineage_nb.lineage.context", "_process"),
    # the extension loaded into the kernel's one IPython shell
    ("lineage_nb.ipython.extension", "_state"),
}
#: Modules whose module-level objects are public, stateless by design (blinker signals).
STATELESS_OBJECT_MODULES = {"lineage_nb.orm.signals"}


def _modules() -> list[types.ModuleType]:
    found = [ln]
    for info in pkgutil.walk_packages(ln.__path__, "lineage_nb."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        found.append(importlib.import_module(info.name))
    return found


def test_no_module_level_mutable_state_beyond_owners() -> None:
    """Module globals are constants (UPPER_CASE), ContextVars, caches keyed by class or one of
    the documented process owners; no lowercase dict/list/set and no stray state object."""
    offenders = []
    for module in _modules():
        for name, value in vars(module).items():
            if name.startswith("__") or (module.__name__, name) in PROCESS_OWNERS:
                continue
            if module.__name__ in STATELESS_OBJECT_MODULES:
                continue
            if isinstance(value, (types.ModuleType, type, types.FunctionType)):
                continue
            if name.lstrip("_").isupper():
                continue  # a constant by convention
            if isinstance(value, (dict, list, set, bytearray)):
                offenders.append(f"{module.__name__}.{name}: {type(value).__name__}")
            elif type(value).__module__.startswith("lineage_nb"):
                offenders.append(f"{module.__name__}.{name}: {type(value).__name__} instance")
    assert offenders == []


def test_globals_are_rebound_only_by_owners() -> None:
    """``global`` statements exist only for the documented process owners."""
    import ast

    package = Path(ln.__file__).parent
    found = set()
    for path in package.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Global):
                found.update((module, name) for name in node.names)
    assert found <= PROCESS_OWNERS


def test_state_is_per_database(db: ln.Database, tmp_path: Path) -> None:
    """Two databases keep separate user caches; a database's state is made once."""
    other = ln.Database(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        assert state_of(db) is state_of(db)
        assert state_of(db) is not state_of(other)
        assert state_of(db).users  # connect() looked the current user up
        assert state_of(other).users == {}
    finally:
        other.close()


def test_run_rows_carry_no_process_state(db: ln.Database) -> None:
    """What only this process knows of a run lives in its ActiveRun, not on the row."""
    run = ln.track("state-test")
    assert [key for key in vars(run) if key.startswith("_ln")] == []
    active = context.get_active()
    assert active is not None and active.run is run and active.db is db
    assert context.active_of(run) is active
    ln.finish()
    assert context.active_of(run) is None and context.get_active() is None


def test_listeners_are_per_database_and_closed_with_it(backend: str, tmp_path: Path) -> None:
    """connect() installs lineage's session listeners and signal receivers on that database's
    own Session class; close() removes them; another database keeps stamping."""
    from conftest import database_url

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ln.connect(database_url(backend, tmp_path / "a"))
    second = ln.connect(database_url(backend, tmp_path / "b"))
    hooks = [
        ("before_flush", stamping._before_flush),
        ("after_flush", stamping._after_flush),
        ("do_orm_execute", reads._before_read),
    ]
    try:
        assert first.session_class is not second.session_class
        for identifier, fn in hooks:
            assert event.contains(first.session_class, identifier, fn)
            assert not event.contains(db_module.LineageSession, identifier, fn)
        assert signals.bulk_insert.receivers_for(first.session_class)
        first.close()
        for identifier, fn in hooks:
            assert not event.contains(first.session_class, identifier, fn)
            assert event.contains(second.session_class, identifier, fn)
        assert list(signals.bulk_insert.receivers_for(first.session_class)) == []
        assert list(signals.records_read.receivers_for(first.session_class)) == []

        run = ln.track("after-close", db=second)
        Project(name="p").save()
        Project.bulk_create([{"name": "q"}])
        with second.session() as session:
            stamped = session.scalars(select(Project.run_id).order_by(Project.name)).all()
        assert stamped == [run.id, run.id]
        ln.finish()
    finally:
        second.close()
        first.close()


def test_atomic_translates_errors_of_connected_databases_only(tmp_path: Path) -> None:
    """ln.connect() gives the database the ORM's error translation; a bare Database has none."""
    connected = ln.connect(f"sqlite:///{tmp_path / 'c.db'}")
    bare = ln.Database(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        assert connected.error_translators and bare.error_translators == []
        Project(name="dup").save()
        with pytest.raises(IntegrityError):
            with connected.atomic():
                Project(name="dup").save()
    finally:
        bare.close()
        connected.close()


def test_run_bound_through_the_public_contextvar_stamps_its_writes(db: ln.Database) -> None:
    """A copy of an open run (reloaded from the database) bound with
    ``ln.context.current_run.set`` in a copied context is the run of that context's writes,
    and finish() there closes it, not the process-wide run."""
    import contextvars
    import threading

    first: list[ln.Run] = []
    opener = threading.Thread(target=lambda: first.append(ln.track("thread-run")))
    opener.start()
    opener.join()
    main = ln.track("main-run")
    copy = ln.Run.get(first[0].id)

    def in_copied_context() -> tuple[int | None, int | None]:
        ln.context.current_run.set(copy)
        project = Project(name="bound").save()
        finished = ln.finish()
        return project.run_id, finished.id if finished is not None else None

    stamped, finished_id = contextvars.copy_context().run(in_copied_context)
    assert (stamped, finished_id) == (first[0].id, first[0].id)
    assert first[0].status == "completed"  # the process's own copy knows it finished
    assert context.active_of(first[0]) is None
    assert context.get_run() is main and main.status == "started"
    ln.finish()


def test_finish_of_a_reloaded_copy_stops_the_heartbeat(db_url: str, tmp_path: Path) -> None:
    """finish(run=copy) finds the run this process opened (by uid): its heartbeat stops."""
    from lineage_nb.lineage.liveness import heartbeat_of

    db = ln.connect(f"sqlite:///{tmp_path / 'beat.db'}")
    try:
        run = ln.track("beating")
        heartbeat = heartbeat_of(db)
        assert run.id in heartbeat._runs
        ln.finish(run=ln.Run.get(run.id))
        assert run.id not in heartbeat._runs
        assert run.status == "completed" and ln.context.get_run() is None
    finally:
        db.close()


def test_close_ends_the_heartbeat_and_forgets_the_databases_runs(tmp_path: Path) -> None:
    """Closing a database wakes and ends its heartbeat thread at once and its open runs are no
    longer this process's open runs."""
    import time

    from lineage_nb.lineage.liveness import heartbeat_of

    db = ln.connect(f"sqlite:///{tmp_path / 'close.db'}")
    run = ln.track("left-open")
    heartbeat = heartbeat_of(db)
    thread = heartbeat._thread
    assert thread is not None and thread.is_alive()
    assert any(a.run is run for a in context.open_runs())
    db.close()
    deadline = time.monotonic() + 5  # far below the 60 s interval it would otherwise sleep
    while thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not thread.is_alive()
    assert all(a.run is not run for a in context.open_runs())
