"""Stamp rows with their run, user and time, and give the capture triggers their context.

Record events are written by database triggers (:mod:`lineage_nb.lineage.capture`), for every
write path. What stays in Python is cheap and per write, never I/O inside a flush:

- the transaction context (run, user, cell) each connection hands its triggers, resolved once
  per transaction by :func:`resolver_for` before the transaction's first statement;
- ``run_id`` / ``created_*`` / ``updated_*`` set on ORM objects in ``before_flush`` and on
  ``bulk_create`` rows from that same context, so the objects know the values the row holds;
- writing the run's waiting inputs with its next write (see :mod:`lineage_nb.lineage.reads`).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import functools
import math
import uuid
from typing import Any, cast

from sqlalchemy import Connection, Table, inspect
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.orm.attributes import flag_modified, instance_state

from ..db import Database, database_of
from ..errors import ValidationError
from ..orm import signals
from ..orm.model import Model
from ..orm.model_cache import per_model
from . import capture, context, reads
from .capture import Resolver, context_of
from .context import ActiveRun
from .types import utcnow
from .users import user_id_for

__all__ = ["install", "json_safe", "record_key", "resolver_for"]

_AUTO_COLUMNS = frozenset({"run_id", "created_by_id", "created_at", "updated_at", "updated_by_id"})


def _database(session: Session) -> Database | None:
    db = database_of(session)
    return db if db is not None and db.lineage else None


def resolver_for(db: Database) -> Resolver:
    """``(run_id, user_id, cell)`` of the run bound in the calling context, for ``db``'s triggers.

    The user is the run's user; without a run, the current user of ``db`` (looked up on the
    writing connection itself when not cached, so nothing waits on a second connection).
    """

    def resolve(connection: Connection | None) -> tuple[int | None, int, int | None]:
        active = _stamp_run(db)
        cell = context.get_cell()
        if active is not None:
            return active.run.id, active.run.created_by_id, cell
        return None, user_id_for(db, connection), cell

    return resolve


def _tracked(obj: Any) -> bool:
    return isinstance(obj, Model)


def record_key(obj: Any, dialect: Any = None) -> tuple[str, str]:
    """``(table name, key text)`` of a mapped record, as the capture triggers store the key.

    A single-column key is the stored value's text; a composite key a JSON array (unambiguous
    whatever the values contain). ``dialect`` defaults to the connected database's.
    """
    if dialect is None:
        from ..db import get_database

        dialect = get_database().engine.dialect
    mapper = inspect(type(obj))
    values = mapper.primary_key_from_instance(obj)
    return mapper.local_table.name, reads.key_text(type(obj), dialect)(values)


def json_safe(value: Any) -> Any:
    """A JSON-storable rendering of a column value (exports of ``changes`` and the like)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID, dt.timedelta)):
        return str(value)
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return (
            "base64:" + base64.b64encode(data[:1024]).decode() + ("…" if len(data) > 1024 else "")
        )
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return repr(value)


def _stamped_columns(cls: type) -> tuple[bool, bool]:
    """``(tracks run, tracks updates)``: the model has the mixins' marked stamp columns."""

    def compute() -> tuple[bool, bool]:
        stamps = capture.stamp_columns(cast(Table, inspect(cls).local_table))
        return "run_id" in stamps, "updated_at" in stamps

    return per_model(cls, "stamped_columns", compute)


class _Stamp:
    """The values a write stamps on its rows: the writing connection's transaction context."""

    __slots__ = ("at", "run_id", "user_id")

    def __init__(self, db: Database, connection: Connection) -> None:
        ctx = context_of(connection)
        if ctx.values is None:
            ctx.values = resolver_for(db)(connection)
        self.run_id, self.user_id, _cell = ctx.values
        self.at = utcnow()


def _stamp_new(obj: Any, stamp: _Stamp) -> None:
    values = instance_state(obj).dict
    if _stamped_columns(type(obj))[0]:
        if values.get("created_by_id") is None:
            obj.created_by_id = stamp.user_id
        if values.get("created_at") is None:
            obj.created_at = stamp.at
    _stamp_update(obj, stamp)


def _check_created_unchanged(obj: Any) -> None:
    state = instance_state(obj)
    for key in ("created_at", "created_by_id"):
        if key in state.committed_state and state.attrs[key].history.deleted:
            raise ValidationError(
                {key: ["is set once when the record is inserted and cannot change."]},
                model=type(obj).__name__,
                value=state.dict.get(key),
            )


def _stamp_update(obj: Any, stamp: _Stamp) -> None:
    """Set the update stamps as values of the flush itself (flagged even when unchanged, so the
    columns' ``onupdate`` SQL, there for Core statements, is not used and nothing is expired)."""
    tracks_run, tracks_updates = _stamped_columns(type(obj))
    if tracks_run:
        obj.run_id = stamp.run_id
        flag_modified(obj, "run_id")
    if tracks_updates:
        obj.updated_at = stamp.at
        obj.updated_by_id = stamp.user_id
        flag_modified(obj, "updated_by_id")


def _modified(session: Session, obj: Any) -> bool:
    return _tracked(obj) and session.is_modified(obj, include_collections=False)


def _before_flush(session: Session, flush_context: UOWTransaction, instances: Any) -> None:
    db = _database(session)
    if db is None:
        return
    new = [o for o in session.new if _tracked(o)]
    dirty = [o for o in session.dirty if _modified(session, o)]
    if not (new or dirty):
        return
    stamp = _Stamp(db, session.connection())
    for obj in new:
        _stamp_new(obj, stamp)
    for obj in dirty:
        _check_created_unchanged(obj)
        _stamp_update(obj, stamp)


def _after_flush(session: Session, flush_context: UOWTransaction) -> None:
    """The run's waiting inputs land with its write, in the same transaction."""
    db = _database(session)
    active = _stamp_run(db) if db is not None else None
    if active is not None and (session.new or session.dirty or session.deleted):
        reads.write_in_session(session, active)


def _stamp_bulk(
    _sender: type, *, session: Session, model: type, rows: list[dict[str, Any]]
) -> None:
    db = _database(session)
    if db is None or not issubclass(model, Model):
        return
    stamp = _Stamp(db, session.connection())
    tracks_run, tracks_updates = _stamped_columns(model)
    for row in rows:
        if tracks_run:
            row["run_id"] = stamp.run_id
            if row.get("created_by_id") is None:
                row["created_by_id"] = stamp.user_id
            if row.get("created_at") is None:
                row["created_at"] = stamp.at
        if tracks_updates:
            row["updated_at"] = stamp.at
            row["updated_by_id"] = stamp.user_id


def _bulk_written(
    _sender: type, *, session: Session, model: type, rows: list[dict[str, Any]]
) -> None:
    db = _database(session)
    active = _stamp_run(db) if db is not None else None
    if active is not None and issubclass(model, Model):
        reads.write_in_session(session, active)


def _stamp_run(db: Database | None) -> ActiveRun | None:
    """The open run whose writes go to ``db`` now, if any."""
    active = context.get_active()
    return active if active is not None and db is not None and active.serves(db) else None


def install(db: Database) -> None:
    """Stamp the writes of ``db``'s sessions (listeners removed when ``db`` is closed)."""
    db.listen_sessions("before_flush", _before_flush)
    db.listen_sessions("after_flush", _after_flush)
    for signal, receiver in (
        (signals.bulk_insert, _stamp_bulk),
        (signals.bulk_inserted, _bulk_written),
    ):
        signal.connect(receiver, sender=db.session_class, weak=False)
        db.on_close(functools.partial(signal.disconnect, receiver, sender=db.session_class))
