"""The per-run hash chain of record events (tamper evidence), and writing events into it.

Each event stores ``hash = sha256(canonical JSON of [prev_hash, run, user, table, pk, action,
changes, cell, at])`` where ``prev_hash`` is the hash of the run's previous event; the run's row
keeps the newest hash as ``chain_head``. The head is read and advanced inside the writing
transaction, after the database has serialized the run's writers, so threads, asyncio tasks and
separate processes writing into one run build one unbroken chain, and a rolled-back transaction
leaves no trace in it:

- PostgreSQL, one event: one statement locks the run's row (``FOR NO KEY UPDATE``), advances
  the head (hashing with the built-in ``sha256``) and inserts the event.
- Otherwise: read the head (on PostgreSQL locking the run's row; SQLite's single write lock is
  already held, the rows having been written first), chain the events in Python, insert them
  with one executemany, store the new head.

The hashed text is ``"[" + json(prev_hash) + tail`` where :func:`event_tail` is the rest of the
JSON list, rendered in Python, so SQL and :func:`event_hash` (used by ``verify``) agree byte for
byte.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import Connection

from ..errors import OperationalError
from .driver import DriverInsert, first_row, rowcount
from .schema import RecordEvent

__all__ = ["event_hash", "event_tail", "insert_events"]

#: Event columns in the order rows are given to :func:`insert_events`.
COLUMNS = ("run_id", "user_id", "table", "pk", "action", "changes", "cell", "at")


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


def event_tail(row: dict[str, Any]) -> str:
    """The hashed text of an event after its ``prev_hash``: ``,`` + the rest of the JSON list."""
    content = [
        row.get("run_id"),
        row.get("user_id"),
        row.get("table"),
        row.get("pk"),
        row.get("action"),
        row.get("changes"),
        row.get("cell"),
        _timestamp(row.get("at")),
    ]
    return "," + _encode(content)[1:]


def _tails(rows: list[dict[str, Any]], changes: list[str | None]) -> list[str]:
    """:func:`event_tail` of each row, reusing its ``changes`` JSON and the parts rows share.

    The events of one write differ only in ``pk`` and ``changes``: the rest is rendered once.
    """
    shared: dict[tuple[Any, ...], tuple[str, str, str]] = {}
    tails = []
    for row, change in zip(rows, changes, strict=True):
        key = (row["run_id"], row["user_id"], row["table"], row["action"], row["cell"], id(row["at"]))
        parts = shared.get(key)
        if parts is None:
            parts = shared[key] = (
                "," + _encode([row["run_id"], row["user_id"], row["table"]])[1:-1] + ",",
                "," + _encode(row["action"]) + ",",
                "," + _encode([row["cell"], _timestamp(row["at"])])[1:],
            )
        tails.append(parts[0] + _encode(row["pk"]) + parts[1] + (change or "null") + parts[2])
    return tails


def _chain_hash(prev_hash: str | None, tail: str) -> str:
    text = "[" + _encode(prev_hash) + tail
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def event_hash(row: dict[str, Any], prev_hash: str | None) -> str:
    """The hash of one event's content chained to ``prev_hash``."""
    return _chain_hash(prev_hash, event_tail(row))


#: ``'"' || head || '"'`` is ``json(head)`` for a hex digest; SQL NULL is JSON ``null``.
_PG_CHAINED_ONE = """WITH prev AS (
    SELECT chain_head FROM lineage_run WHERE id = %(run_id)s FOR NO KEY UPDATE
), step AS (
    UPDATE lineage_run AS r SET chain_head = encode(sha256(convert_to(
        '[' || COALESCE('"' || prev.chain_head || '"', 'null') || CAST(%(tail)s AS TEXT),
        'UTF8')), 'hex')
    FROM prev WHERE r.id = %(run_id)s
    RETURNING prev.chain_head AS prev_hash, r.chain_head AS hash
)
INSERT INTO lineage_record_event
    (run_id, user_id, "table", pk, action, changes, cell, at, prev_hash, hash)
SELECT CAST(%(run_id)s AS INTEGER), CAST(%(user_id)s AS INTEGER), CAST(%(table)s AS VARCHAR),
    CAST(%(pk)s AS VARCHAR), CAST(%(action)s AS VARCHAR), CAST(%(changes)s AS JSON),
    CAST(%(cell)s AS INTEGER), CAST(%(at)s AS TIMESTAMP WITH TIME ZONE), step.prev_hash, step.hash
FROM step"""

#: (read the head, store the head) per dialect; positional parameters (run id) and (head, run id).
_HEAD_SQL = {
    "sqlite": (
        "SELECT chain_head FROM lineage_run WHERE id = ?",
        "UPDATE lineage_run SET chain_head = ? WHERE id = ?",
    ),
    "postgresql": (
        "SELECT chain_head FROM lineage_run WHERE id = %s FOR NO KEY UPDATE",
        "UPDATE lineage_run SET chain_head = %s WHERE id = %s",
    ),
}

_PLAIN = DriverInsert(  # in the table's column order: rows go to the driver as they are
    RecordEvent.__table__,  # type: ignore[arg-type]
    COLUMNS + ("hash", "prev_hash"),
)


def insert_events(connection: Connection, run_id: int | None, rows: list[dict[str, Any]]) -> None:
    """Chain event ``rows`` of run ``run_id`` (None: no run, no chain) and insert them, in order."""
    if not rows:
        return
    dialect = connection.dialect
    stamps: dict[int, Any] = {}  # the events of one flush or bulk insert share one time
    ats = []
    for row in rows:
        at = stamps.get(id(row["at"]))
        if at is None:
            at = stamps[id(row["at"])] = _PLAIN.process(dialect, "at", row["at"])
        ats.append(at)
    changes = [_encode(row["changes"]) if row["changes"] is not None else None for row in rows]
    tails = _tails(rows, changes)
    if run_id is not None and len(rows) == 1 and dialect.name == "postgresql":
        row = rows[0]
        written = rowcount(connection, _PG_CHAINED_ONE, {
            "run_id": run_id, "user_id": row["user_id"], "table": row["table"], "pk": row["pk"],
            "action": row["action"], "changes": changes[0], "cell": row["cell"], "at": ats[0],
            "tail": tails[0],
        })
        _check_run(written, run_id)
        return
    head: str | None = None
    read_head, store_head = _HEAD_SQL[dialect.name]
    if run_id is not None:
        found = first_row(connection, read_head, (run_id,))
        _check_run(1 if found else 0, run_id)
        head = found[0]
    values = []
    for row, change, at, tail in zip(rows, changes, ats, tails, strict=True):
        new = _chain_hash(head, tail)
        values.append((
            row["run_id"], row["user_id"], row["table"], row["pk"], row["action"], change,
            row["cell"], at, new, head,
        ))
        if run_id is not None:
            head = new
    _PLAIN.execute(connection, values)
    if run_id is not None:
        _check_run(rowcount(connection, store_head, (head, run_id)), run_id)


def _check_run(updated: int, run_id: int) -> None:
    """The chain step found run ``run_id``'s row (0 rows: the run was deleted meanwhile)."""
    if updated != 1:
        raise OperationalError(
            f"Run {run_id} is not in lineage_run, so its record events cannot be chained; "
            "nothing of this write was kept.",
            hint="Start a new run with ln.track(); the current one was deleted.",
        )
