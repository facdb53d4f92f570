"""The per-run hash chain of record events (tamper evidence).

Each event stores ``hash = sha256(prev_hash + content)`` where ``prev_hash`` is the hash of the
run's previous event (by id). The previous hash is read inside the writing transaction, after
the database has serialized the run's writers: on SQLite the transaction already holds the
database's write lock (the record rows were written first); on PostgreSQL a transaction-level
advisory lock on the run is taken first. Threads, asyncio tasks and separate processes writing
into one run therefore still build one unbroken chain, and a rolled-back transaction leaves no
trace in it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from .schema import RecordEvent

__all__ = ["event_hash", "last_hash", "link"]

#: First key of the PostgreSQL advisory lock ``(class, run id)`` that serializes a run's writers.
ADVISORY_LOCK_CLASS = 0x6C6E  # "ln"


def _timestamp(value: Any) -> str:
    global _last_stamp
    if isinstance(value, dt.datetime):
        last = _last_stamp  # one read: threads may replace it meanwhile
        if value is last[0]:  # a flush or bulk insert stamps every event with one time
            return last[1]
        text = value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
        _last_stamp = (value, text)
        return text
    return str(value)


_last_stamp: tuple[Any, str] = (None, "")
#: One encoder for every hash (``json.dumps`` with options builds a new one per call).
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def event_hash(row: dict[str, Any], prev_hash: str | None) -> str:
    """The hash of one event's content chained to ``prev_hash``."""
    content = [
        prev_hash,
        row.get("run_id"),
        row.get("user_id"),
        row.get("table"),
        row.get("pk"),
        row.get("action"),
        row.get("changes"),
        row.get("cell"),
        _timestamp(row.get("at")),
    ]
    text = _encode(content)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


#: Built once (bound parameters): constructing them per write cost as much as running them.
_LAST_HASH = (
    select(RecordEvent.hash)
    .where(RecordEvent.run_id == bindparam("run_id"))
    .order_by(RecordEvent.id.desc())
    .limit(1)
)
_RUN_LOCK = select(func.pg_advisory_xact_lock(ADVISORY_LOCK_CLASS, bindparam("run_id")))


def last_hash(session: Session, run_id: int) -> str | None:
    """The hash of run ``run_id``'s newest event, read after serializing the run's writers."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_RUN_LOCK, {"run_id": run_id})
    return connection.execute(_LAST_HASH, {"run_id": run_id}).scalar()


def link(session: Session, db_key: str, rows: list[dict[str, Any]]) -> None:
    """Fill ``prev_hash`` and ``hash`` of event ``rows`` (in order), per run.

    ``db_key`` is kept for callers; the chain state lives in the database only.
    """
    previous: dict[int, str | None] = {}
    for row in rows:
        run_id = row.get("run_id")
        if run_id is None:
            row["prev_hash"], row["hash"] = None, event_hash(row, None)
            continue
        if run_id not in previous:
            previous[run_id] = last_hash(session, run_id)
        row["prev_hash"] = previous[run_id]
        row["hash"] = previous[run_id] = event_hash(row, previous[run_id])
