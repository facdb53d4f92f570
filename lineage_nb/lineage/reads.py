"""A run's inputs: every read of a tracked model inside a run, pinned to the version read.

What counts as a read: every ORM ``SELECT`` of a tracked model through a lineage_nb session
(``get``, ``load``, ``load_all``, ``Query.all/first/one``, iteration, ``session.get``,
``session.scalars(select(M))``, relationship loads, ``refresh_from_db``; sync or async) and every
``df()``. Reads that only show data (the widget browser, HTML reprs, lineage queries, exports,
the CLI) run inside :func:`untracked_reads`, which users may use too.

Pinning: before a read statement runs, its *watermark* is taken on the same connection: the
newest event id committed (and, on PostgreSQL, the transactions then in progress, so their events
are known as unseen). The version a record was read at is then its
newest event the read could see. A write committed while the read ran counts as unseen, so a
result errs toward stale, never toward fresh.

Reading stays a read: records are noted in memory on their run and written (one row per table
and watermark, keys packed by :mod:`._keyset`) at the next of: the run's next tracked write, in
the same transaction; the end of a notebook cell; the run's ``finish()``; any lineage query in this
process; :data:`MAX_PENDING` records waiting. A process killed mid-run loses its last notes, as
it loses its open writes.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast

import numpy as np
from sqlalchemy import Connection, Table, event, inspect, text, types
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, SessionTransaction
from sqlalchemy.orm.attributes import instance_state

from ..db import Database, database_of
from ..orm import signals
from ..orm.model import Model
from ..orm.model_cache import per_model
from . import _keyset, capture, context
from .context import ActiveRun
from .driver import DriverInsert
from .schema import RunInput
from .types import utcnow

__all__ = [
    "MAX_PENDING",
    "NOT_A_READ",
    "Read",
    "begin_read",
    "install",
    "key_text",
    "note_rows",
    "untracked_reads",
    "write_in_session",
    "write_now",
    "write_pending",
]

#: Records waiting beyond this are written at once, in the reading transaction.
MAX_PENDING = 100_000

_OPTION = "lineage_nb_read"
_LAST = "lineage_nb_last_read"
#: Execution option marking a statement's rows as not read by the run (past states, displays).
NOT_A_READ = _OPTION
_INSERT = DriverInsert(
    RunInput.__table__,  # type: ignore[arg-type]
    ("run_id", "table", "pk", "keys", "count", "watermark", "snapshot", "at"),
)
_untracked: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lineage_nb_untracked_reads", default=False
)


class untracked_reads:
    """Reads inside this block are not the run's inputs (looking at data is not using it).

    A sync and async context manager::

        with ln.untracked_reads():
            Sample.df()          # shown, not used: not an input

    lineage_nb's own display paths (the browser widget, HTML reprs, exports, the CLI) read this
    way.
    """

    def __init__(self) -> None:
        self._tokens: list[contextvars.Token[bool]] = []

    def __enter__(self) -> untracked_reads:
        self._tokens.append(_untracked.set(True))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _untracked.reset(self._tokens.pop())

    async def __aenter__(self) -> untracked_reads:
        return self.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(kind, error, tb)


def reads_enabled_for(session: Session) -> bool:
    """Whether reads on ``session`` are inputs of a run now."""
    return _reading_run(session) is not None


@contextmanager
def _untracked_block() -> Iterator[None]:
    token = _untracked.set(True)
    try:
        yield
    finally:
        _untracked.reset(token)


@dataclass(eq=False)
class Read:
    """One read statement's records, before they are written: its watermark and the keys."""

    watermark: int | None
    snapshot: str | None
    at: dt.datetime
    dialect: Any
    #: model class -> identity tuples of records loaded as ORM objects
    records: dict[type, list[tuple[Any, ...]]] = field(default_factory=dict)
    #: (table, integer keys) or (table, key texts) of rows read into DataFrames
    rows: list[tuple[str, np.ndarray | list[str]]] = field(default_factory=list)
    size: int = 0

    def add(self, record: Any) -> None:
        identity = instance_state(record).key
        if identity is not None and isinstance(record, Model):
            self.records.setdefault(type(record), []).append(identity[1])
            self.size += 1


def key_text(cls: type, dialect: Any) -> Callable[[Sequence[Any]], str]:
    """The key renderer (:func:`capture.key_renderer`) of model ``cls`` on ``dialect``."""

    def compute() -> Callable[[Sequence[Any]], str]:
        mapper: Mapper[Any] = inspect(cls)
        return capture.key_renderer([c.type for c in mapper.primary_key], dialect)

    return per_model(cls, f"key_text_{dialect.name}", compute)


def _table_of(cls: type) -> str:
    return cast(Table, inspect(cls).local_table).name


def _reading_run(session: Session) -> ActiveRun | None:
    if _untracked.get():
        return None
    db = database_of(session)
    if db is None or not db.lineage:
        return None
    active = context.get_active()
    return active if active is not None and active.serves(db) else None


def _watermark(connection: Connection) -> tuple[int | None, str | None]:
    """``(newest event id, transactions in progress)``: on PostgreSQL an event at or below the
    watermark was unseen only if its transaction was still in progress (later transactions get
    later ids), so only the snapshot's in-progress list is kept (None when empty, so reads with
    nothing in flight share a row)."""
    if connection.dialect.name == "postgresql":
        row = connection.execute(
            text(
                "SELECT (SELECT max(e.id) FROM lineage_record_event AS e), "
                "(SELECT pg_catalog.string_agg(x::text, ',' ORDER BY x) "
                "FROM pg_catalog.pg_snapshot_xip(pg_catalog.pg_current_snapshot()) AS x)"
            )
        ).one()
        return row[0], row[1]
    return connection.execute(text("SELECT max(id) FROM lineage_record_event")).scalar(), None


def begin_read(session: Session) -> Read | None:
    """A :class:`Read` for a read statement about to run on ``session``, registered on the bound
    run; None when reads are not inputs here (no run, another database, untracked)."""
    active = _reading_run(session)
    if active is None:
        return None
    if active.reads.size() >= MAX_PENDING:  # memory stays bounded: write what waits, here
        write_in_session(session, active)
    connection = session.connection()
    with _untracked_block():
        watermark, snapshot = _watermark(connection)
    read = Read(watermark, snapshot, utcnow(), connection.dialect)
    active.reads.add(read)
    return read


def note_rows(
    read: Read, model: type, rows: Sequence[Sequence[Any]], positions: Sequence[int]
) -> None:
    """Note the records of ``rows`` (key values at ``positions``) as read by ``read``."""
    if not issubclass(model, Model) or not rows:
        return
    table = _table_of(model)
    mapper: Mapper[Any] = inspect(model)
    if len(positions) == 1 and isinstance(mapper.primary_key[0].type, types.Integer):
        (at,) = positions
        keys: np.ndarray | list[str] = np.fromiter((r[at] for r in rows), np.int64, len(rows))
    else:
        render = key_text(model, read.dialect)
        keys = [render([r[p] for p in positions]) for r in rows]
    read.rows.append((table, keys))
    read.size += len(rows)


def _before_read(state: ORMExecuteState) -> None:
    """Pin an ORM read of a tracked model: its watermark, before the statement runs."""
    if not state.is_select or _untracked.get() or _OPTION in state.execution_options:
        return
    if not any(issubclass(m.class_, Model) for m in state.all_mappers):
        return
    read = begin_read(state.session)
    if read is not None:
        state.update_execution_options(**{_OPTION: read})
        state.session.info[_LAST] = read


def _records_read(_sender: type, *, session: Session, records: list[Any]) -> None:
    """Records the ORM layer read by column (``refresh_from_db``) or walked (``load_all``)."""
    read = session.info.get(_LAST)
    if read is not None and reads_enabled_for(session):
        for record in records:
            read.add(record)


def _loaded(record: Any, query_context: Any) -> None:
    read = query_context.execution_options.get(_OPTION)
    if read is not None:
        read.add(record)


def _refreshed(record: Any, query_context: Any, attributes: Any) -> None:
    _loaded(record, query_context)


# -- writing -------------------------------------------------------------------------------------
def _groups(run_id: int, reads: list[Read]) -> list[tuple[Any, ...]]:
    """Rows of ``lineage_run_input`` for ``reads``: one per table and watermark."""
    by_group: dict[tuple[str, int | None, str | None], tuple[dt.datetime, list[Any]]] = {}
    for read in reads:
        for cls, identities in read.records.items():
            render = key_text(cls, read.dialect)
            texts = [render(identity) for identity in identities]
            group = by_group.setdefault(
                (_table_of(cls), read.watermark, read.snapshot), (read.at, [])
            )
            group[1].append(texts)
        for table, keys in read.rows:
            group = by_group.setdefault((table, read.watermark, read.snapshot), (read.at, []))
            group[1].append(keys)
    rows = []
    for (table, watermark, snapshot), (at, parts) in by_group.items():
        arrays = [p for p in parts if isinstance(p, np.ndarray)]
        if len(arrays) == len(parts):
            merged = _keyset.sorted_unique(np.concatenate(arrays) if arrays else [])
            count, single = int(merged.size), (str(merged[0]) if merged.size == 1 else None)
            packed = _keyset.encode_integers(merged, prepared=True) if count > 1 else None
        else:
            unique = {
                str(k) for p in parts for k in (p.tolist() if isinstance(p, np.ndarray) else p)
            }
            count = len(unique)
            single = next(iter(unique)) if count == 1 else None
            packed = _keyset.encode(unique) if count > 1 else None
        if count:
            rows.append((run_id, table, single, packed, count, watermark, snapshot, at))
    return rows


def write(connection: Connection, run_id: int, reads: list[Read]) -> None:
    """Insert ``reads`` of run ``run_id`` on ``connection`` (one executemany)."""
    dialect = connection.dialect
    rows = [(*row[:7], _INSERT.process(dialect, "at", row[7])) for row in _groups(run_id, reads)]
    _INSERT.execute(connection, rows)


_TAKEN = "lineage_nb_reads_taken"


def write_in_session(session: Session, active: ActiveRun) -> None:
    """Write the waiting reads of ``active`` in ``session``'s transaction (given back if it
    rolls back)."""
    reads = active.reads.take()
    if not reads:
        return
    innermost = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_TAKEN, []).append((innermost, active, reads))
    write(session.connection(), active.run.id, reads)


def _committed(session: Session) -> None:
    session.info.pop(_TAKEN, None)


def _rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """Give back the reads written inside the rolled-back transaction or savepoint."""
    kept = []
    for taken in session.info.pop(_TAKEN, ()):
        transaction: SessionTransaction | None = taken[0]
        while transaction is not None and transaction is not previous_transaction:
            transaction = transaction.parent
        if transaction is None:  # written outside what was rolled back: still in the database
            kept.append(taken)
            continue
        _innermost, active, reads = taken
        active.reads.give_back(reads)
    if kept:
        session.info[_TAKEN] = kept


def write_pending(session: Session) -> None:
    """Write the waiting reads of this process's runs on ``session``'s database, in its transaction."""
    db = database_of(session)
    for active in context.open_runs():
        if db is None or active.serves(db):
            write_in_session(session, active)


def write_now(db: Database) -> None:
    """Write the waiting reads of this process's runs on ``db`` in a transaction of their own."""
    if not any(active.reads.reads for active in context.open_runs()):
        return
    with db.session() as session, session.begin():
        write_pending(session)


def install(db: Database) -> None:
    """Note the reads of ``db``'s sessions (listeners removed when ``db`` is closed).

    The ORM load events are per model class, not per database: installed once, they only act
    on statements a listener of this module pinned.
    """
    db.listen_sessions("do_orm_execute", _before_read)
    db.listen_sessions("after_commit", _committed)
    db.listen_sessions("after_soft_rollback", _rolled_back)
    signals.records_read.connect(_records_read, sender=db.session_class, weak=False)
    db.on_close(functools.partial(signals.records_read.disconnect, _records_read, db.session_class))
    for identifier, fn in (("load", _loaded), ("refresh", _refreshed)):
        if not event.contains(Model, identifier, fn):
            event.listen(Model, identifier, fn, propagate=True)
