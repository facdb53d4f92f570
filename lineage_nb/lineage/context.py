"""Where the current run (and notebook cell) lives: ContextVars with a process-wide fallback.

``current_run`` is a ``contextvars.ContextVar``: asyncio tasks and cells see the run bound when the
extension loaded. Plain threads and callbacks that do not inherit the context fall back to the
process-wide active run, so their writes are stamped too.

Each run this process opened has one :class:`ActiveRun`: the run row plus what only this process
knows of it (its database, the thread that opened it, the reads not written yet). The ActiveRun
is bound next to the run in this context; the process fallback (:class:`_Process`, the one owner
of process-wide run state) keeps the fallback run and cell and every run the process has open.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from ..db import Database, default_database, get_database

if TYPE_CHECKING:
    from .schema import Run

__all__ = [
    "ActiveRun",
    "PendingReads",
    "active_of",
    "current_cell",
    "current_run",
    "get_active",
    "get_cell",
    "get_run",
    "open_runs",
    "set_cell",
    "set_run",
    "unbind",
]

current_run: contextvars.ContextVar[Run | None] = contextvars.ContextVar(
    "lineage_nb_current_run", default=None
)
current_cell: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "lineage_nb_current_cell", default=None
)
_current_active: contextvars.ContextVar[ActiveRun | None] = contextvars.ContextVar(
    "lineage_nb_current_active_run", default=None
)


class PendingReads:
    """One run's reads not written yet (see :mod:`lineage_nb.lineage.reads`), thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reads: list[Any] = []

    def add(self, read: Any) -> None:
        with self.lock:
            self.reads.append(read)

    def take(self) -> list[Any]:
        with self.lock:
            reads, self.reads = self.reads, []
        return reads

    def give_back(self, reads: list[Any]) -> None:
        with self.lock:
            self.reads[:0] = reads

    def size(self) -> int:
        """How many records the waiting reads hold."""
        with self.lock:
            return sum(read.size for read in self.reads)


@dataclass(eq=False)
class ActiveRun:
    """A run this process opened, with what only this process knows of it."""

    run: Run
    db: Database
    #: the thread that opened it (``track()`` in that thread replaces it)
    thread: int = field(default_factory=threading.get_ident)
    #: whether opening it created its transform (a notebook's provisional version)
    new_transform: bool = False
    reads: PendingReads = field(default_factory=PendingReads)

    def serves(self, db: Database) -> bool:
        """Whether writes and reads through ``db`` belong to this run (same database)."""
        return self.db is db or self.db.url == db.url


class _Process:
    """The process-wide fallback: its active run and cell, and the runs this process has open."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: ActiveRun | None = None
        self.cell: int | None = None
        self.opened: dict[int, ActiveRun] = {}  # id(run) -> its ActiveRun, while open


_process = _Process()


def _started(active: ActiveRun | None) -> ActiveRun | None:
    return active if active is not None and active.run.status == "started" else None


def get_active() -> ActiveRun | None:
    """The open run bound to this context, else the process-wide active one, else None.

    A run bound through the public ``current_run`` ContextVar counts as bound here: it is found
    with what this process knows of it (matched by its ``uid``), or adopted as a run of the
    default database.
    """
    run = current_run.get()
    if run is not None and run.status == "started":
        active = _current_active.get()
        if active is None or active.run is not run:
            active = active_of(run) or _adopt(run)
        return active
    return _started(_process.active)


def get_run() -> Run | None:
    """The run bound to this context, else the process-wide active run, else None."""
    fallback = _process.active.run if _process.active is not None else None
    for run in (current_run.get(), fallback):
        if run is not None and run.status == "started":
            return run
    return None


def active_of(run: Run) -> ActiveRun | None:
    """The :class:`ActiveRun` of ``run`` (this object, or another copy of the same run: same
    ``uid``) when this process opened it and it is still open."""
    with _process.lock:
        found = _process.opened.get(id(run))
        if found is None and run.uid is not None:
            found = next((a for a in _process.opened.values() if a.run.uid == run.uid), None)
        return found


def _adopt(run: Run) -> ActiveRun | None:
    """``run`` as an open run of the default database (None: no database is connected)."""
    db = default_database()
    if db is None:
        return None
    active = ActiveRun(run, db)
    with _process.lock:
        _process.opened[id(run)] = active
    return active


def open_runs() -> Iterator[ActiveRun]:
    """The runs this process has open (a snapshot); finished runs and runs of closed databases
    are forgotten here."""
    with _process.lock:
        for key, active in list(_process.opened.items()):
            if active.run.status != "started" or active.db.closed:
                del _process.opened[key]
        found = list(_process.opened.values())
    return iter(found)


def set_run(run: Run | ActiveRun | None) -> None:
    """Bind ``run`` to this context and make it the process-wide active run (None unbinds).

    A :class:`Run` this process opened is bound with what the process knows of it; any other
    run is bound as a run of the default database.
    """
    active = run if isinstance(run, ActiveRun) or run is None else active_of(run)
    if active is None and run is not None:
        active = ActiveRun(cast("Run", run), get_database())
    current_run.set(run.run if isinstance(run, ActiveRun) else run)
    _current_active.set(active)
    with _process.lock:
        _process.active = active
        if active is not None:
            _process.opened[id(active.run)] = active


def unbind(run: Run) -> None:
    """Unbind ``run`` from this context and from the process fallback, wherever it is bound, and
    forget it as open. Another thread's run in the process fallback is left alone."""
    if current_run.get() is run:
        current_run.set(None)
    current = _current_active.get()
    if current is not None and current.run is run:
        _current_active.set(None)
    with _process.lock:
        if _process.active is not None and _process.active.run is run:
            _process.active = None
        _process.opened.pop(id(run), None)


def get_cell() -> int | None:
    """The notebook cell (execution count) being executed, if any."""
    cell = current_cell.get()
    return cell if cell is not None else _process.cell


def set_cell(cell: int | None) -> None:
    """Record the executing cell's execution count (the IPython extension calls this)."""
    current_cell.set(cell)
    _process.cell = cell
