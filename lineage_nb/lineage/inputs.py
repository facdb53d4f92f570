"""The records a run read (its inputs), gathered in memory and written in batches.

Reading records (``get``, ``load``, ``load_all``) must stay a read: no extra statement, and on
SQLite no write lock taken by a SELECT. So each read only notes the records it returned on its
run; the notes are written (one executemany, duplicates ignored) at the next of:

- the run's next tracked write, in the same transaction (so a derived record always lands
  together with the inputs it may have come from);
- the end of a notebook cell (the IPython extension), the run's ``finish()``;
- any lineage query in this process (graphs, ``inputs_df()``, cards, exports);
- :data:`MAX_PENDING` notes waiting (memory stays bounded).

A run whose process is killed loses the notes of its last moments, as it loses its open writes.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref

from sqlalchemy import Connection, event
from sqlalchemy.orm import Session, SessionTransaction

from ..db import Database, LineageSession
from .driver import DriverInsert
from .schema import Run, RunInput

__all__ = [
    "MAX_PENDING",
    "SEPARATOR",
    "PendingInputs",
    "note_read",
    "note_written",
    "pending_for",
    "write",
    "write_in_session",
    "write_now",
    "write_pending",
]

#: Notes waiting beyond this are written at once, in the reading transaction.
MAX_PENDING = 100_000

_INSERT = DriverInsert(
    RunInput.__table__,  # type: ignore[arg-type]
    ("run_id", "table", "pk", "at"),
    ignore_conflicts=True,
)
_create_lock = threading.Lock()
#: Runs of this process with notes waiting (weak: a dropped run's notes go with it).
_waiting: weakref.WeakSet[Run] = weakref.WeakSet()


#: Joins table and primary key in a note: one ``str`` per record read, which (unlike a tuple)
#: the garbage collector does not track, so noting 10,000 records adds no GC work.
SEPARATOR = "\x1f"

_Batch = list[tuple[dt.datetime, list[str]]]


class PendingInputs:
    """One run's inputs: what it has noted already and what still waits to be written.

    Records are noted as ``f"{table}{SEPARATOR}{pk}"``.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.outputs: set[str] = set()
        self.waiting: _Batch = []  # (when read, notes read then)
        self.count = 0

    def take(self) -> _Batch:
        """Remove and return the waiting notes (the caller writes them or gives them back)."""
        with self.lock:
            batch, self.waiting, self.count = self.waiting, [], 0
        return batch

    def give_back(self, batch: _Batch) -> None:
        """Put notes taken by :meth:`take` back (their transaction did not commit)."""
        with self.lock:
            self.waiting[:0] = batch
            self.count += sum(len(notes) for _at, notes in batch)


def pending_for(run: Run) -> PendingInputs:
    """The :class:`PendingInputs` of ``run`` (created on first use)."""
    found: PendingInputs | None = getattr(run, "_ln_inputs", None)
    if found is None:
        with _create_lock:
            found = getattr(run, "_ln_inputs", None)
            if found is None:
                found = PendingInputs()
                run._ln_inputs = found  # type: ignore[attr-defined]
    return found


def note_read(run: Run, notes: list[str], at: dt.datetime) -> int:
    """Note records (``f"{table}{SEPARATOR}{pk}"``) as read by ``run`` at ``at``.

    Records the run wrote itself are not its inputs (else ``lineage()`` would loop run → record
    → run), and each record is noted once per run. Returns how many notes now wait.
    """
    pending = pending_for(run)
    with pending.lock:
        seen, outputs = pending.seen, pending.outputs
        fresh = [note for note in notes if note not in seen and note not in outputs]
        if fresh:
            seen.update(fresh)
            pending.waiting.append((at, fresh))
            pending.count += len(fresh)
        count = pending.count
    if count:
        _waiting.add(run)
    return count


def note_written(run: Run, notes: list[str]) -> None:
    """Note records ``run`` inserted: they are its outputs, never its inputs."""
    pending = pending_for(run)
    with pending.lock:
        pending.outputs.update(notes)


def write(connection: Connection, run: Run, batch: _Batch) -> None:
    """Insert ``batch`` of ``run``'s notes on ``connection`` (one executemany, duplicates ignored)."""
    dialect = connection.dialect
    rows = []
    for at, notes in batch:
        stamp = _INSERT.process(dialect, "at", at)
        for note in notes:
            table, pk = note.split(SEPARATOR, 1)
            rows.append((run.id, table, pk, stamp))
    _INSERT.execute(connection, rows)


_TAKEN = "lineage_nb_inputs_taken"


def write_in_session(session: Session, run: Run) -> None:
    """Write ``run``'s waiting notes in ``session``'s transaction (given back if it rolls back)."""
    pending = pending_for(run)
    batch = pending.take()
    if not batch:
        return
    innermost = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_TAKEN, []).append((innermost, run, pending, batch))
    write(session.connection(), run, batch)


@event.listens_for(LineageSession, "after_commit")
def _committed(session: Session) -> None:
    session.info.pop(_TAKEN, None)


@event.listens_for(LineageSession, "after_soft_rollback")
def _rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """Give back the notes written inside the rolled-back transaction or savepoint."""
    kept = []
    for taken in session.info.pop(_TAKEN, ()):
        transaction: SessionTransaction | None = taken[0]
        while transaction is not None and transaction is not previous_transaction:
            transaction = transaction.parent
        if transaction is None:  # written outside what was rolled back: still in the database
            kept.append(taken)
            continue
        _innermost, run, pending, batch = taken
        pending.give_back(batch)
        _waiting.add(run)
    if kept:
        session.info[_TAKEN] = kept


def write_pending(session: Session) -> None:
    """Write the waiting notes of this process's runs on ``session``'s database, in its transaction."""
    db = session.info.get("lineage_nb_db")
    url = db.url if isinstance(db, Database) else None
    for run in list(_waiting):
        run_db = getattr(run, "_ln_db", None)
        if run_db is not None and url is not None and run_db.url != url:
            continue
        _waiting.discard(run)
        write_in_session(session, run)


def write_now(db: Database) -> None:
    """Write the waiting notes of this process's runs on ``db`` in a transaction of their own."""
    if not _waiting:
        return
    with db.session() as session, session.begin():
        write_pending(session)
