"""Replay of the event log: the version each input was read at, time travel, staleness, diffs.

Events hold every change (:mod:`.capture`): an insert no values (the row holds them), an update
the changed fields' old and new values, a delete the whole old row. So a record's state at a
past point is its current row (or the row its delete kept) with the later events undone, newest
first. States are compared as events render values (JSON); typed records come back through the
database (:func:`capture.rows_from_json_sql`), so every column type round-trips as stored.

A *point* is a ``datetime`` (the committed state at that instant; events count by their time
stamp) or a :class:`Run` (the tables *as that run saw them*: each record it read at the version
it read, every other record as it stood when the run started). Nothing here writes to the
user's tables, and nothing here is a read of the run's inputs.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    MetaData,
    Select,
    Table,
    Text,
    bindparam,
    func,
    inspect,
    literal_column,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session, aliased

from ..db import get_database
from ..errors import ValidationError
from ..orm.loading import detached
from ..orm.model import Model
from ..orm.registry import mapped_classes
from ..orm.session_scope import run_sync
from . import _keyset, capture, reads
from .schema import RecordEvent, Run, RunInput
from .stamping import record_key

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "InputVersion",
    "as_of_query",
    "changed_inputs_of",
    "diff",
    "input_versions",
    "is_stale",
    "record_as_of",
    "run_inputs",
    "stale",
    "stale_inputs",
]

#: Keys per ``IN (...)`` list: well under every backend's parameter and recursion limits.
_CHUNK = 500


@dataclass(frozen=True)
class _Event:
    id: int
    table: str
    pk: str
    action: str
    changes: dict[str, Any] | None
    run_id: int | None
    user_id: int
    at: dt.datetime
    xid: int | None  # PostgreSQL: the writing transaction (xmin)


@dataclass(frozen=True)
class _Read:
    run_id: int
    table: str
    pk: str
    watermark: int | None
    snapshot: str | None
    at: dt.datetime


def _utc(value: dt.datetime) -> dt.datetime:
    return (
        value.replace(tzinfo=dt.timezone.utc)
        if value.tzinfo is None
        else value.astimezone(dt.timezone.utc)
    )


class _Snapshot:
    """The transactions in progress when a read began (``pg_snapshot_xip``, comma-separated):
    an event at or below the read's watermark was unseen only if written by one of them."""

    def __init__(self, text: str) -> None:
        self.in_progress = {int(x) & 0xFFFFFFFF for x in text.split(",") if x}

    def sees(self, xid32: int) -> bool:
        return xid32 not in self.in_progress


def _seen_by(read: _Read, event: _Event, snapshots: dict[str, _Snapshot]) -> bool:
    """Whether ``read`` could see ``event``."""
    if read.watermark is None:  # a read from before schema revision 0006: by time
        return _utc(event.at) <= _utc(read.at)
    if event.id > read.watermark:
        return False
    if read.snapshot is not None and event.xid is not None:
        snapshot = snapshots.get(read.snapshot)
        if snapshot is None:
            snapshot = snapshots[read.snapshot] = _Snapshot(read.snapshot)
        return snapshot.sees(event.xid)
    return True


# -- loading events and reads ----------------------------------------------------------------------
_EVENT_FIELDS = ("id", "table", "pk", "action", "changes", "run_id", "user_id", "at")


def _event_columns_for(dialect: str) -> list[Any]:
    """The columns an :class:`_Event` is read from; on PostgreSQL also the writing transaction's
    id (``xmin``), which tells whether a read could see the event."""
    events: Table = RecordEvent.__table__  # type: ignore[assignment]
    columns: list[Any] = [events.c[name] for name in _EVENT_FIELDS]
    if dialect == "postgresql":
        xmin: Any = literal_column(f"{events.name}.xmin")
        columns.append(sql_cast(sql_cast(xmin, Text), events.c.id.type))
    return columns


def _event_columns(session: Session) -> list[Any]:
    return _event_columns_for(session.get_bind().dialect.name)


@functools.cache
def _events_statement(dialect: str) -> Select[Any]:
    """Every event of the records ``:pks`` of table ``:table``, oldest first (built once)."""
    events: Table = RecordEvent.__table__  # type: ignore[assignment]
    columns = _event_columns_for(dialect)
    return (
        select(*columns)
        .where(
            events.c.table == bindparam("table"), events.c.pk.in_(bindparam("pks", expanding=True))
        )
        .order_by(events.c.id)
    )


def _events_of(session: Session, table: str, pks: Iterable[str]) -> dict[str, list[_Event]]:
    """Every event of the records ``pks`` of ``table``, oldest first."""
    found: dict[str, list[_Event]] = {}
    keys = sorted(set(pks))
    connection = session.connection()
    statement = _events_statement(connection.dialect.name)
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        for row in connection.execute(statement, {"table": table, "pks": chunk}):
            event = _event(row)
            found.setdefault(event.pk, []).append(event)
    return found


def _event(row: Sequence[Any]) -> _Event:
    xid = row[8] if len(row) > 8 else None
    return _Event(
        id=row[0],
        table=row[1],
        pk=row[2],
        action=row[3],
        changes=row[4],
        run_id=row[5],
        user_id=row[6],
        at=row[7],
        xid=None if xid is None else int(xid),
    )


@functools.cache
def _reads_statement() -> Select[Any]:
    """Every read of the runs ``:runs``, in the order written (built once)."""
    inputs: Table = RunInput.__table__  # type: ignore[assignment]
    columns = [
        inputs.c[n] for n in ("run_id", "table", "pk", "keys", "watermark", "snapshot", "at")
    ]
    return (
        select(*columns)
        .where(inputs.c.run_id.in_(bindparam("runs", expanding=True)))
        .order_by(inputs.c.id)
    )


def _reads_of(session: Session, run_ids: Iterable[int]) -> list[_Read]:
    """Every record ``run_ids`` read, once per read, in the order read."""
    ids = sorted(set(run_ids))
    found: list[_Read] = []
    connection = session.connection()
    for start in range(0, len(ids), _CHUNK):
        rows = connection.execute(_reads_statement(), {"runs": ids[start : start + _CHUNK]})
        for run_id, table, pk, packed, watermark, snapshot, at in rows:
            keys = [pk] if pk is not None else _keyset.decode(packed) if packed else []
            found.extend(_Read(run_id, table, key, watermark, snapshot, at) for key in keys)
    return found


def readers_of(session: Session, table: str, pk: str, *, packed_limit: int) -> set[int]:
    """The runs that read the record ``(table, pk)``.

    A run's read of one record keeps its key (an indexed lookup); a read of many keeps a packed
    key set, and only the newest ``packed_limit`` of those are unpacked to look for the key, so
    the answer can miss old bulk readers of a large log.
    """
    single = set(
        session.execute(
            select(RunInput.run_id).where(RunInput.table == table, RunInput.pk == pk)
        ).scalars()
    )
    packed = session.execute(
        select(RunInput.run_id, RunInput.keys)
        .where(RunInput.table == table, RunInput.keys.is_not(None))
        .order_by(RunInput.id.desc())
        .limit(packed_limit)
    ).all()
    found = {run_id for run_id, keys in packed if keys is not None and pk in _keyset.decode(keys)}
    return single | found


class QueryMemo:
    """The reads and events already fetched while one answer is built (a lineage graph walks the
    same runs and records at several levels): each is asked of the database once."""

    def __init__(self) -> None:
        self._reads: dict[int, list[_Read]] = {}
        self._events: dict[tuple[str, str], list[_Event]] = {}

    def reads_of(self, session: Session, run_ids: Iterable[int]) -> list[_Read]:
        """:func:`_reads_of`, for runs not asked before."""
        ids = sorted(set(run_ids))
        missing = [run_id for run_id in ids if run_id not in self._reads]
        for run_id in missing:
            self._reads[run_id] = []
        for read in _reads_of(session, missing) if missing else []:
            self._reads[read.run_id].append(read)
        return [read for run_id in ids for read in self._reads[run_id]]

    def events_of(
        self, session: Session, table: str, pks: Iterable[str]
    ) -> dict[str, list[_Event]]:
        """:func:`_events_of`, for records not asked before."""
        keys = set(pks)
        missing = [pk for pk in keys if (table, pk) not in self._events]
        if missing:
            fetched = _events_of(session, table, missing)
            for pk in missing:
                self._events[(table, pk)] = fetched.get(pk, [])
        return {pk: self._events[(table, pk)] for pk in keys if self._events[(table, pk)]}

    def known_events(self, table: str, pk: str) -> list[_Event] | None:
        """The events of a record if they were fetched (None: not asked yet)."""
        return self._events.get((table, pk))


# -- versioned inputs ----------------------------------------------------------------------------
@dataclass
class InputVersion:
    """A record a run read at one version (its first read of it), and what changed since then
    by other runs."""

    run_id: int
    table: str
    pk: str
    at: dt.datetime
    watermark: int | None
    read_version: int | None
    current_version: int | None
    changes: list[_Event] = field(default_factory=list)

    @property
    def changed_since(self) -> bool:
        return bool(self.changes)

    def before(self, event: _Event) -> bool:
        """Whether this version was read before ``event`` was written."""
        if self.watermark is None:
            return _utc(self.at) <= _utc(event.at)
        return self.watermark < event.id

    def what_changed(self) -> str:
        """``deleted``, ``changed: a, b`` or ``deleted and inserted again`` (empty: unchanged)."""
        if not self.changes:
            return ""
        if self.changes[-1].action == "delete":
            return "deleted"
        fields = sorted({f for e in self.changes if e.action == "update" for f in e.changes or {}})
        if fields:
            return "changed: " + ", ".join(fields)
        return "deleted and inserted again"


def input_versions(
    session: Session,
    run_ids: Iterable[int],
    *,
    only: set[tuple[str, str]] | None = None,
    reads_found: list[_Read] | None = None,
    memo: QueryMemo | None = None,
) -> list[InputVersion]:
    """The inputs of ``run_ids`` (of them, the records ``only``): each record once per version
    read. Records a run wrote itself before reading them (its own outputs) are left out."""
    memo = memo or QueryMemo()
    found_reads = reads_found if reads_found is not None else memo.reads_of(session, run_ids)
    if only is not None:
        found_reads = [r for r in found_reads if (r.table, r.pk) in only]
    by_table: dict[str, set[str]] = {}
    for read in found_reads:
        by_table.setdefault(read.table, set()).add(read.pk)
    events = {table: memo.events_of(session, table, pks) for table, pks in by_table.items()}
    snapshots: dict[str, _Snapshot] = {}
    versions: dict[tuple[int, str, str, int | None], InputVersion] = {}
    for read in found_reads:
        history = events[read.table].get(read.pk, [])
        seen = [e for e in history if _seen_by(read, e, snapshots)]
        version = seen[-1] if seen else None
        if version is not None and version.run_id == read.run_id:
            continue  # the run's own output
        key = (read.run_id, read.table, read.pk, None if version is None else version.id)
        if key in versions:
            continue  # this version was read before
        unseen = [
            e for e in history if e.run_id != read.run_id and not _seen_by(read, e, snapshots)
        ]
        versions[key] = InputVersion(
            read.run_id,
            read.table,
            read.pk,
            read.at,
            read.watermark,
            key[3],
            history[-1].id if history else None,
            unseen,
        )
    return sorted(versions.values(), key=lambda v: (v.run_id, v.at, v.table, v.pk))


def _frame(rows: Sequence[Sequence[Any]], dtypes: dict[str, Any]) -> pd.DataFrame:
    """A frame of ``rows`` (tuples of values in the order of ``dtypes``): one column per name of
    ``dtypes``, of that dtype (``"Int64"``: nullable integers; ``object``: the values as given)."""
    import pandas as pd

    return pd.DataFrame(
        {
            name: pd.Series([row[index] for row in rows], dtype=dtype)
            for index, (name, dtype) in enumerate(dtypes.items())
        }
    )


def inputs_frame(run: Run) -> pd.DataFrame:
    """``run``'s inputs: table, pk, at, read_version, current_version, changed_since."""
    import pandas as pd

    def build(session: Session) -> list[InputVersion]:
        reads.write_pending(session)
        return input_versions(session, [run.id])

    with reads.untracked_reads():
        versions = run_sync(build)
    frame = _frame(
        [
            (v.table, v.pk, _utc(v.at), v.read_version, v.current_version, v.changed_since)
            for v in versions
        ],
        {
            "table": "string",
            "pk": "string",
            "at": object,
            "read_version": "Int64",
            "current_version": "Int64",
            "changed_since": "bool",
        },
    )
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


# -- staleness ---------------------------------------------------------------------------------
def _newest_versions(
    versions: Iterable[InputVersion],
) -> dict[tuple[int, str, str], InputVersion]:
    """Of ``versions``, the newest read of each record by each run ``(run_id, table, pk)``."""
    newest: dict[tuple[int, str, str], InputVersion] = {}
    for version in versions:
        key = (version.run_id, version.table, version.pk)
        known = newest.get(key)
        if known is None or (version.read_version or 0) > (known.read_version or 0):
            newest[key] = version
    return newest


def _changed_inputs(
    versions: Iterable[InputVersion], written: _Event, key: tuple[str, str]
) -> list[InputVersion]:
    """Of a run's inputs, the newest version of each record read before ``written`` was written
    (the record ``key`` itself aside), where that version has changed since."""
    read_before = (
        v
        for v in versions
        if v.run_id == written.run_id and v.before(written) and (v.table, v.pk) != key
    )
    return [v for v in _newest_versions(read_before).values() if v.changed_since]


#: A run that read more records than this is checked for changes by the events written since
#: its reads (one range query), not record by record.
_SMALL_RUN = 2000


def _changed_since_reads(session: Session, reads_found: list[_Read]) -> set[tuple[str, str]]:
    """Records of ``reads_found`` with an event by another run above their read's watermark."""
    read_keys: dict[tuple[str, str], int] = {}
    for read in reads_found:
        mark = read.watermark if read.watermark is not None else 0
        key = (read.table, read.pk)
        read_keys[key] = min(mark, read_keys.get(key, mark))
    if not read_keys:
        return set()
    lowest = min(read_keys.values())
    tables = sorted({t for t, _pk in read_keys})
    run_id = reads_found[0].run_id
    rows = session.execute(
        select(RecordEvent.table, RecordEvent.pk, RecordEvent.id)
        .where(RecordEvent.id > lowest, RecordEvent.table.in_(tables))
        .where(RecordEvent.run_id.is_distinct_from(run_id))
    )
    return {(t, pk) for t, pk, event_id in rows if event_id > read_keys.get((t, pk), event_id)}


def _stale_inputs(
    session: Session, record: Any, memo: QueryMemo | None = None
) -> list[InputVersion]:
    reads.write_pending(session)
    memo = memo or QueryMemo()
    key = record_key(record, session.get_bind().dialect)
    history = memo.events_of(session, key[0], [key[1]]).get(key[1], [])
    written = history[-1] if history else None
    if written is None or written.run_id is None:
        return []
    found_reads = memo.reads_of(session, [written.run_id])
    only = None
    if len(found_reads) > _SMALL_RUN:  # a large fan-in: only the records changed since
        only = _changed_since_reads(session, found_reads)
    versions = input_versions(
        session, [written.run_id], only=only, reads_found=found_reads, memo=memo
    )
    return _changed_inputs(versions, written, key)


def changed_inputs_of(
    session: Session, record: Any, memo: QueryMemo | None = None
) -> list[InputVersion]:
    """In ``session``: the changed inputs of the run that last wrote ``record`` (see
    :func:`stale_inputs`)."""
    return _stale_inputs(session, record, memo)


def run_inputs(
    session: Session,
    run_ids: Iterable[int],
    *,
    versions_up_to: int = 2000,
    memo: QueryMemo | None = None,
) -> dict[int, dict[tuple[str, str], bool]]:
    """Per run, the records it read and whether the newest version it read changed since.

    A run that read more than ``versions_up_to`` records gets no change marks (all False) and
    its own outputs are left out by what it wrote, not by version: cheap for huge fan-ins.
    """
    found: dict[int, dict[tuple[str, str], bool]] = {}
    by_run: dict[int, set[tuple[str, str]]] = {}
    memo = memo or QueryMemo()
    found_reads = memo.reads_of(session, run_ids)
    for read in found_reads:
        by_run.setdefault(read.run_id, set()).add((read.table, read.pk))
    small = {r for r, keys in by_run.items() if len(keys) <= versions_up_to}
    small_reads = [r for r in found_reads if r.run_id in small]
    versions = input_versions(session, small, reads_found=small_reads, memo=memo)
    for (run_id, table, pk), version in _newest_versions(versions).items():
        found.setdefault(run_id, {})[(table, pk)] = version.changed_since
    for run_id in set(by_run) - set(small):
        written = set(
            session.execute(
                select(RecordEvent.table, RecordEvent.pk)
                .where(RecordEvent.run_id == run_id)
                .distinct()
            ).tuples()
        )
        found[run_id] = {key: False for key in by_run[run_id] if key not in written}
    return found


def is_stale(record: Any) -> bool:
    """Whether the run that last wrote ``record`` read an input that changed or went since."""
    with reads.untracked_reads():
        return bool(run_sync(lambda s: _stale_inputs(s, record)))


def stale_inputs(record: Any) -> pd.DataFrame:
    """The changed inputs of the run that last wrote ``record``: table, pk, read_version,
    current_version, change."""

    with reads.untracked_reads():
        found = run_sync(lambda s: _stale_inputs(s, record))
    return _frame(
        [(v.table, v.pk, v.read_version, v.current_version, v.what_changed()) for v in found],
        {
            "table": "string",
            "pk": "string",
            "read_version": "Int64",
            "current_version": "Int64",
            "change": "string",
        },
    )


def stale(model: type | None = None) -> pd.DataFrame:
    """Every stale record (its last writer read an input changed since): table, pk, run_id,
    changed_inputs. ``model`` limits it to one model's records."""

    table = _table_name(model) if model is not None else None

    def build(session: Session) -> list[tuple[str, str, int, int]]:
        reads.write_pending(session)
        readers = [r for (r,) in session.execute(select(RunInput.run_id).distinct())]
        versions = input_versions(session, readers)
        changed_runs = sorted({v.run_id for v in versions if v.changed_since})
        if not changed_runs:
            return []
        later = aliased(RecordEvent)
        newer = select(later.id).where(
            later.table == RecordEvent.table, later.pk == RecordEvent.pk, later.id > RecordEvent.id
        )
        statement = (
            select(*_event_columns(session))
            .where(RecordEvent.run_id.in_(changed_runs), RecordEvent.action != "delete")
            .where(~newer.exists())
            .order_by(RecordEvent.id)
        )
        if table is not None:
            statement = statement.where(RecordEvent.table == table)
        rows = []
        for row in session.execute(statement):
            written = _event(row)
            changed = _changed_inputs(versions, written, (written.table, written.pk))
            if changed and written.run_id is not None:
                rows.append((written.table, written.pk, written.run_id, len(changed)))
        return rows

    with reads.untracked_reads():
        rows = run_sync(build)
    return _frame(
        rows, {"table": "string", "pk": "string", "run_id": "Int64", "changed_inputs": "Int64"}
    )


# -- points in time ----------------------------------------------------------------------------
class _Point:
    """Which events a point in time saw: everything below ``lower``, and above it ``seen()``."""

    lower: int | None  # None: the point saw every event

    def seen(self, event: _Event) -> bool:
        raise NotImplementedError


class _Instant(_Point):
    def __init__(self, session: Session, when: dt.datetime) -> None:
        self.when = when
        self.lower = session.execute(
            select(func.min(RecordEvent.id)).where(RecordEvent.at > when)
        ).scalar()

    def seen(self, event: _Event) -> bool:
        return _utc(event.at) <= self.when


class _AsRunSaw(_Point):
    def __init__(self, session: Session, run: Run) -> None:
        reads.write_pending(session)
        self.start = _Instant(session, _utc(run.started_at))
        self.reads: dict[tuple[str, str], _Read] = {}
        for read in _reads_of(session, [run.id]):  # its first read of each record
            self.reads.setdefault((read.table, read.pk), read)
        self.snapshots: dict[str, _Snapshot] = {}
        bounds = [b for b in [self.start.lower] if b is not None]
        for read in self.reads.values():
            if read.watermark is not None:
                bounds.append(read.watermark + 1)
            else:
                bounds.append(self.start.lower or 0)
        self.lower = min(bounds) if bounds else None

    def seen(self, event: _Event) -> bool:
        read = self.reads.get((event.table, event.pk))
        if read is not None:
            return _seen_by(read, event, self.snapshots)
        return self.start.seen(event)


def _point(session: Session, when: Any, argument: str = "when") -> _Point:
    if isinstance(when, Run):
        found = session.get(Run, when.id)
        if found is None or found.uid != when.uid:
            raise ValidationError(
                {
                    argument: [
                        (
                            f"run {when.id} is not a run of this database; pass a run of the "
                            "connected database or a datetime."
                        )
                    ]
                },
                field=argument,
                value=when.label,
            )
        return _AsRunSaw(session, found)
    if isinstance(when, dt.datetime):
        return _Instant(session, _utc(when))
    raise ValidationError(
        {argument: [f"expected a datetime or a Run, got {type(when).__name__} {when!r}."]},
        field=argument,
        value=when,
    )


# -- states ------------------------------------------------------------------------------------
def _table_name(model: type) -> str:
    if not (isinstance(model, type) and issubclass(model, Model)):
        raise ValidationError(
            {"model": [f"expected an ln.Model class, got {model!r}."]}, field="model", value=model
        )
    return cast(Table, inspect(model).local_table).name


def _changed_keys(session: Session, table: str, points: Sequence[_Point]) -> set[str]:
    """Keys of ``table`` with an event one of ``points`` did not see."""
    lowers = [p.lower for p in points if p.lower is not None]
    if not lowers:
        return set()
    statement = (
        select(*_event_columns(session))
        .where(RecordEvent.table == table, RecordEvent.id >= min(lowers))
        .order_by(RecordEvent.id)
    )
    changed = set()
    for row in session.execute(statement):
        event = _event(row)
        if event.pk not in changed and any(not p.seen(event) for p in points):
            changed.add(event.pk)
    return changed


def _table_of(model: type) -> Table:
    _table_name(model)
    return cast(Table, inspect(model).local_table)


def _current_rows(session: Session, table: Table, pks: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Current rows of ``pks`` as JSON objects rendered as events render them."""
    statement = sql_text(capture.current_rows_sql(table, session.get_bind().dialect.name))
    found: dict[str, dict[str, Any]] = {}
    step = _CHUNK * 20
    for start in range(0, len(pks), step):
        chunk = json.dumps(list(pks[start : start + step]))
        for pk, values in session.execute(statement, {"keys": chunk}):
            found[str(pk)] = values if isinstance(values, dict) else json.loads(values)
    return found


def _stamp_values(table: Table, event: _Event, dialect: Any) -> dict[str, Any]:
    """The stamp columns of the version ``event`` wrote, rendered as events render values."""
    stamps = capture.stamp_columns(table)
    values: dict[str, Any] = {}
    if "run_id" in stamps:
        values["run_id"] = event.run_id
    if "updated_by_id" in stamps:
        values["updated_by_id"] = event.user_id
    if "updated_at" in stamps and event.action != "delete":
        at = _utc(event.at)
        # SQLite's DateTime storage text; PostgreSQL parses ISO 8601
        values["updated_at"] = (
            at.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect.name == "sqlite" else at.isoformat()
        )
    return values


def _state(
    table: Table, current: dict[str, Any] | None, history: list[_Event], point: _Point, dialect: Any
) -> dict[str, Any] | None:
    """A record's state at ``point``: ``current`` with the events ``point`` did not see undone."""
    state = None if current is None else dict(current)
    seen: _Event | None = None
    for event in reversed(history):
        if point.seen(event):
            seen = seen or event
            continue
        if event.action == "insert":
            state = None
        elif event.action == "delete":
            state = {name: pair[0] for name, pair in (event.changes or {}).items()}
        elif state is not None:
            for name, pair in (event.changes or {}).items():
                state[name] = pair[0]
    if state is not None and seen is not None and seen.action != "delete":
        state.update(_stamp_values(table, seen, dialect))
    return state


def _states(
    session: Session, table: Table, pks: Sequence[str], points: Sequence[_Point]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, dict[str, Any] | None]]]:
    """Current rows of ``pks`` and, for each point, their states there."""
    dialect = session.get_bind().dialect
    current = _current_rows(session, table, pks)
    events = _events_of(session, table.name, pks)
    states = [
        {pk: _state(table, current.get(pk), events.get(pk, []), point, dialect) for pk in pks}
        for point in points
    ]
    return current, states


def _typed_rows_statement(
    model: type, changed: list[str], rows: list[dict[str, Any]], *, only_rows: bool = False
) -> Any:
    """A subquery of ``model``'s table with the rows of ``changed`` keys replaced by ``rows``
    (typed by the database); with ``only_rows``, just ``rows``."""
    table = cast(Table, inspect(model).local_table)
    dialect = get_database().engine.dialect.name
    params: dict[str, Any] = {"ln_rows": json.dumps(rows)}
    if not only_rows:
        params["ln_changed"] = json.dumps(changed)
    sql = capture.rows_sql(table, dialect, replacing=not only_rows)
    return sql_text(sql).bindparams(**params).columns(*table.c).subquery("as_of")


def as_of_query(model: type, when: Any) -> Any:
    """An aliased entity of ``model`` over its table as it stood at ``when``."""
    table = _table_name(model)

    def build(session: Session) -> tuple[list[str], list[dict[str, Any]]]:
        point = _point(session, when)
        changed = sorted(_changed_keys(session, table, [point]))
        _current, (states,) = _states(session, _table_of(model), changed, [point])
        return changed, [s for s in states.values() if s is not None]

    with reads.untracked_reads():
        changed, rows = run_sync(build)
    return aliased(model, _typed_rows_statement(model, changed, rows))


def record_as_of(record: Any, when: Any) -> Any:
    """``record`` as it stood at ``when`` (None if it did not exist then), as a detached copy."""
    model = type(record)

    def build(session: Session) -> Any:
        point = _point(session, when)
        key = record_key(record, session.get_bind().dialect)
        _current, (states,) = _states(session, _table_of(model), [key[1]], [point])
        state = states[key[1]]
        if state is None:
            return None
        subquery = _typed_rows_statement(model, [], [state], only_rows=True)
        row = session.connection().execute(select(subquery)).one()
        return detached(model, dict(row._mapping))

    with reads.untracked_reads():
        return run_sync(build)


# -- diffs -------------------------------------------------------------------------------------
def _tables(session: Session, models: list[type] | None) -> list[Table]:
    """The tables to compare: those of ``models``, or every table with events (the registered
    model's table where one is imported, else reflected from the database)."""
    if models is not None:
        return [_table_of(m) for m in models]
    known = {
        name: _table_of(cls) for name, cls in mapped_classes().items() if issubclass(cls, Model)
    }
    existing = set(inspect(session.get_bind()).get_table_names())
    names = session.execute(select(RecordEvent.table).distinct()).scalars()
    metadata = MetaData()
    return [
        known[name] if name in known else Table(name, metadata, autoload_with=session.connection())
        for name in sorted(set(names) & existing)
    ]


def diff(a: Any, b: Any, *, models: Iterable[type] | None = None) -> pd.DataFrame:
    """What differs between points ``a`` and ``b`` (``datetime`` or ``Run``): one row per changed
    field (``action`` ``changed``), or per record ``added``/``removed`` (the row's values in
    ``new``/``old``); columns ``table, pk, action, field, old, new``. ``models`` limits it to
    their tables (default: every table with recorded events). Values are shown as the event log
    stores them (JSON: timestamps as text). Lineage stamp columns are not compared."""

    chosen = None if models is None else list(models)
    for model in chosen or ():
        _table_name(model)

    def build(session: Session) -> list[tuple[Any, ...]]:
        points = [_point(session, a, "a"), _point(session, b, "b")]
        rows: list[tuple[Any, ...]] = []
        for table in _tables(session, chosen):
            changed = sorted(_changed_keys(session, table.name, points))
            if not changed:
                continue
            _current, (before, after) = _states(session, table, changed, points)
            stamps = capture.stamp_columns(table)
            for pk in changed:
                old, new = before[pk], after[pk]
                if old is None and new is None:
                    continue
                if old is None:
                    rows.append((table.name, pk, "added", None, None, new))
                elif new is None:
                    rows.append((table.name, pk, "removed", None, old, None))
                else:
                    for name in old:
                        if name not in stamps and old[name] != new.get(name):
                            rows.append((table.name, pk, "changed", name, old[name], new.get(name)))
        return rows

    with reads.untracked_reads():
        rows = run_sync(build)
    return _frame(
        rows,
        {
            "table": "string",
            "pk": "string",
            "action": "string",
            "field": "string",
            "old": object,
            "new": object,
        },
    )
