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
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.orm import Session

from ..db import Database, LineageSession
from .driver import DriverInsert
from .schema import Run, RunInput

__all__ = [
    "MAX_PENDING",
    "PendingInputs",
    "note_read",
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


class PendingInputs:
    """One run's inputs: what it has noted already and what still waits to be written."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: set[tuple[str, str]] = set()
        self.outputs: set[tuple[str, str]] = set()
        self.waiting: list[tuple[str, str, dt.datetime]] = []

    def take(self) -> list[tuple[str, str, dt.datetime]]:
        """Remove and return the waiting notes (the caller writes them or gives them back)."""
        with self.lock:
            batch, self.waiting = self.waiting, []
        return batch

    def give_back(self, batch: list[tuple[str, str, dt.datetime]]) -> None:
        """Put notes taken by :meth:`take` back (their transaction did not commit)."""
        with self.lock:
            self.waiting[:0] = batch


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


def note_read(run: Run, keys: list[tuple[str, str]], at: dt.datetime) -> int:
    """Note ``keys`` (``(table, pk)``) as read by ``run`` at ``at``; returns how many now wait.

    Records the run wrote itself are not its inputs (else ``lineage()`` would loop run → record
    → run), and each record is noted once per run.
    """
    pending = pending_for(run)
    with pending.lock:
        seen, outputs, waiting = pending.seen, pending.outputs, pending.waiting
        for key in keys:
            if key in seen or key in outputs:
                continue
            seen.add(key)
            waiting.append((key[0], key[1], at))
        count = len(waiting)
    if count:
        _waiting.add(run)
    return count


def write(connection: Connection, run: Run, batch: list[tuple[str, str, dt.datetime]]) -> None:
    """Insert ``batch`` of ``run``'s notes on ``connection`` (one executemany, duplicates ignored)."""
    if not batch:
        return
    dialect = connection.dialect
    stamps: dict[dt.datetime, Any] = {}  # notes of one read share one timestamp
    rows = []
    for table, pk, at in batch:
        stamp = stamps.get(at)
        if stamp is None:
            stamp = stamps[at] = _INSERT.process(dialect, "at", at)
        rows.append((run.id, table, pk, stamp))
    _INSERT.execute(connection, rows)


_TAKEN = "lineage_nb_inputs_taken"


def write_in_session(session: Session, run: Run) -> None:
    """Write ``run``'s waiting notes in ``session``'s transaction (given back if it rolls back)."""
    pending = pending_for(run)
    batch = pending.take()
    if not batch:
        return
    session.info.setdefault(_TAKEN, []).append((run, pending, batch))
    write(session.connection(), run, batch)


@event.listens_for(LineageSession, "after_commit")
def _committed(session: Session) -> None:
    session.info.pop(_TAKEN, None)


@event.listens_for(LineageSession, "after_rollback")
def _rolled_back(session: Session) -> None:
    for run, pending, batch in session.info.pop(_TAKEN, ()):
        pending.give_back(batch)
        _waiting.add(run)


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
