"""Stamp rows and write record events inside the same flush, at the SQLAlchemy session level.

``before_flush`` sets ``run_id``/``created_*``/``updated_*``; ``after_flush`` writes one
:class:`RecordEvent` per inserted, updated or deleted tracked record with one executemany on the
session's connection, so the events commit or roll back with the rows. ``bulk_create`` and reads
reach the same code through the ORM layer's internal signals.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import math
import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, event, inspect
from sqlalchemy.orm import Mapper, Session, UOWTransaction
from sqlalchemy.orm.attributes import instance_state

from ..db import Database, LineageSession
from ..errors import ValidationError
from ..orm import signals
from ..orm.model import Model
from ..orm.model_cache import per_model
from . import chain, context, inputs
from .runs import user_id_for
from .schema import Run
from .types import utcnow

__all__ = ["json_safe", "record_key"]

_STAMP = "lineage_nb_stamp"
_AUTO_COLUMNS = frozenset(
    {"run_id", "created_by_id", "created_at", "updated_at", "updated_by_id"}
)


#: Events of a bulk insert are chained and written this many at a time.
EVENT_BATCH = 5_000


@dataclass(frozen=True)
class _Stamp:
    run: Run | None
    user_id: int
    cell: int | None
    at: dt.datetime


def _database(session: Session) -> Database | None:
    db = session.info.get("lineage_nb_db")
    return db if isinstance(db, Database) and db.lineage else None


def _stamp_for(db: Database) -> _Stamp:
    return _Stamp(_stamp_run(db), user_id_for(db), context.get_cell(), utcnow())


def _tracked(obj: Any) -> bool:
    return isinstance(obj, Model)


def record_key(obj: Any) -> tuple[str, str]:
    """``(table name, primary key as text)`` of a mapped record; composite keys joined by ``,``."""
    mapper = inspect(type(obj))
    values = mapper.primary_key_from_instance(obj)
    return mapper.local_table.name, ",".join(str(v) for v in values)


#: Exact types ``json_safe`` returns unchanged (a fast path for bulk inserts).
_PLAIN = frozenset({str, int, bool})


def json_safe(value: Any) -> Any:
    """A JSON-storable rendering of a column value for ``RecordEvent.changes``."""
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
        return "base64:" + base64.b64encode(data[:1024]).decode() + ("…" if len(data) > 1024 else "")
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return repr(value)


def _stamped_columns(cls: type) -> tuple[bool, bool]:
    """``(tracks run, tracks updates)`` of a model: has ``run_id`` / ``updated_at`` columns."""

    def compute() -> tuple[bool, bool]:
        mapper: Mapper[Any] = inspect(cls)
        return "run_id" in mapper.attrs, "updated_at" in mapper.attrs

    return per_model(cls, "stamped_columns", compute)


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
                model=type(obj).__name__, value=state.dict.get(key),
            )


def _stamp_update(obj: Any, stamp: _Stamp) -> None:
    tracks_run, tracks_updates = _stamped_columns(type(obj))
    if tracks_run:
        obj.run_id = stamp.run.id if stamp.run is not None else None
    if tracks_updates:
        obj.updated_at = stamp.at
        obj.updated_by_id = stamp.user_id


def _modified(session: Session, obj: Any) -> bool:
    return _tracked(obj) and session.is_modified(obj, include_collections=False)


@event.listens_for(LineageSession, "before_flush")
def _before_flush(session: Session, flush_context: UOWTransaction, instances: Any) -> None:
    db = _database(session)
    if db is None:
        return
    new = [o for o in session.new if _tracked(o)]
    dirty = [o for o in session.dirty if _modified(session, o)]
    deleted = [o for o in session.deleted if _tracked(o)]
    if not (new or dirty or deleted):
        return
    stamp = _stamp_for(db)
    session.info[_STAMP] = stamp
    for obj in new:
        _stamp_new(obj, stamp)
    for obj in dirty:
        _check_created_unchanged(obj)
        _stamp_update(obj, stamp)


def _changes(obj: Any, action: str) -> dict[str, list[Any]]:
    state = instance_state(obj)
    changes: dict[str, list[Any]] = {}
    values = state.dict
    if action == "insert":
        for key in _column_keys(type(obj)):
            if values.get(key) is not None:
                changes[key] = [None, json_safe(values[key])]
        return changes
    # an update or delete: only attributes with a pending change have history to look at
    changed = state.committed_state
    for key in _column_keys(type(obj)):
        if action == "delete":
            old = values.get(key)
            if key in changed:
                history = state.attrs[key].history
                old = history.deleted[0] if history.deleted else old
            changes[key] = [json_safe(old), None]
        elif key in changed:
            history = state.attrs[key].history
            if history.added:
                old = history.deleted[0] if history.deleted else None
                new = history.added[0]
                if old != new or not history.deleted:
                    changes[key] = [json_safe(old), json_safe(new)]
    return changes


def _column_keys(cls: type) -> list[str]:
    """Column attribute keys of a model that events record (the lineage stamps left out)."""

    def compute() -> list[str]:
        mapper: Mapper[Any] = inspect(cls)
        return [attr.key for attr in mapper.column_attrs if attr.key not in _AUTO_COLUMNS]

    return per_model(cls, "event_keys", compute)


def _event_row(obj: Any, action: str, stamp: _Stamp, changes: dict[str, list[Any]]) -> dict[str, Any]:
    table, pk = record_key(obj)
    return {
        "run_id": stamp.run.id if stamp.run is not None else None,
        "user_id": stamp.user_id,
        "table": table,
        "pk": pk,
        "action": action,
        "changes": changes,
        "cell": stamp.cell,
        "at": stamp.at,
    }


def write_events(session: Session, stamp: _Stamp, rows: list[dict[str, Any]]) -> None:
    """Chain and insert event ``rows`` with one executemany on the session's connection."""
    if not rows:
        return
    if stamp.run is not None:
        inputs.write_in_session(session, stamp.run)
    chain.insert_events(session.connection(), stamp.run.id if stamp.run else None, rows)
    if stamp.run is not None:
        sep = inputs.SEPARATOR
        inserted = [f"{r['table']}{sep}{r['pk']}" for r in rows if r["action"] == "insert"]
        inputs.note_written(stamp.run, inserted)


@event.listens_for(LineageSession, "after_flush")
def _after_flush(session: Session, flush_context: UOWTransaction) -> None:
    stamp: _Stamp | None = session.info.pop(_STAMP, None)
    if stamp is None:
        return
    rows = []
    for obj in session.new:
        if _tracked(obj):
            rows.append(_event_row(obj, "insert", stamp, _changes(obj, "insert")))
    for obj in session.dirty:
        if _modified(session, obj):
            changes = _changes(obj, "update")
            if changes:
                rows.append(_event_row(obj, "update", stamp, changes))
    for obj in session.deleted:
        if _tracked(obj):
            rows.append(_event_row(obj, "delete", stamp, _changes(obj, "delete")))
    write_events(session, stamp, rows)


@signals.bulk_insert.connect
def _stamp_bulk(session: Session, *, model: type, rows: list[dict[str, Any]]) -> None:
    db = _database(session)
    if db is None or not issubclass(model, Model):
        return
    stamp = _stamp_for(db)
    session.info["lineage_nb_bulk_stamp"] = stamp
    keys = inspect(model).attrs
    run_id = stamp.run.id if stamp.run is not None else None
    tracks_run, tracks_updates = "run_id" in keys, "updated_at" in keys
    for row in rows:
        if tracks_run:
            row["run_id"] = run_id
            row.setdefault("created_by_id", stamp.user_id)
            if row.get("created_at") is None:
                row["created_at"] = stamp.at
        if tracks_updates:
            row["updated_at"] = stamp.at
            row["updated_by_id"] = stamp.user_id


@signals.bulk_inserted.connect
def _bulk_events(session: Session, *, model: type, rows: list[dict[str, Any]]) -> None:
    stamp: _Stamp | None = session.info.pop("lineage_nb_bulk_stamp", None)
    if stamp is None:
        return
    mapper: Mapper[Any] = inspect(model)
    table = cast(Table, mapper.local_table).name
    pk_keys = [mapper.get_property_by_column(c).key for c in mapper.primary_key]
    run_id = stamp.run.id if stamp.run is not None else None
    events: list[dict[str, Any]] = []
    single_pk = pk_keys[0] if len(pk_keys) == 1 else None
    for row in rows:
        if len(events) == EVENT_BATCH:  # write as we go: peak memory stays one batch of events
            write_events(session, stamp, events)
            events = []
        pk = str(row[single_pk]) if single_pk else ",".join(str(row[k]) for k in pk_keys)
        changes = {
            k: [None, v if type(v) in _PLAIN else json_safe(v)]
            for k, v in row.items()
            if v is not None and k not in _AUTO_COLUMNS
        }
        events.append({
            "run_id": run_id, "user_id": stamp.user_id, "table": table, "pk": pk,
            "action": "insert", "changes": changes, "cell": stamp.cell, "at": stamp.at,
        })
    write_events(session, stamp, events)


@signals.records_deleted.connect
def _delete_events(session: Session, *, records: list[Any]) -> None:
    db = _database(session)
    tracked = [r for r in records if _tracked(r)]
    if db is None or not tracked:
        return
    stamp = _stamp_for(db)
    write_events(session, stamp, [_event_row(r, "delete", stamp, _changes(r, "delete")) for r in tracked])


@signals.records_read.connect
def _record_inputs(session: Session, *, records: list[Any]) -> None:
    db = _database(session)
    if db is None:
        return
    run = _stamp_run(db)
    if run is None:
        return
    if inputs.note_read(run, _loaded_keys(records), utcnow()) >= inputs.MAX_PENDING:
        inputs.write_in_session(session, run)


def _table_name(cls: type) -> str:
    """The table name :func:`record_key` uses for records of mapped class ``cls``."""
    return cast(Table, inspect(cls).local_table).name


def _loaded_keys(records: list[Any]) -> list[str]:
    """Notes (``table`` + ``inputs.SEPARATOR`` + ``pk``) of the tracked records just read.

    Taken from the identity keys (~1 µs a record), and built as strings: no GC-tracked objects.
    """
    prefixes: dict[type, str | None] = {}
    notes = []
    for record in records:
        cls = type(record)
        if cls not in prefixes:
            tracked = issubclass(cls, Model)
            prefixes[cls] = _table_name(cls) + inputs.SEPARATOR if tracked else None
        prefix = prefixes[cls]
        if prefix is None:
            continue
        identity = instance_state(record).key
        if identity is None:
            notes.append(inputs.SEPARATOR.join(record_key(record)))
            continue
        values = identity[1]
        notes.append(prefix + (str(values[0]) if len(values) == 1 else ",".join(map(str, values))))
    return notes


def _stamp_run(db: Database) -> Run | None:
    run = context.get_run()
    run_db = getattr(run, "_ln_db", None)
    if run is None or (run_db is not None and run_db is not db and run_db.url != db.url):
        return None
    return run
