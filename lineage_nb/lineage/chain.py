"""The per-run hash chain of record events (tamper evidence).

Each event stores ``hash = sha256(prev_hash + content)`` where ``prev_hash`` is the hash of the
run's previous event. Writers of one run in this process take the run's lock from the first
linked event of a transaction until that transaction ends, so concurrent threads still build
one unbroken chain; a rolled-back transaction gives its links back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, SessionTransaction

from ..db import LineageSession
from ..errors import LineageError
from .schema import RecordEvent

__all__ = ["event_hash", "link"]

LOCK_TIMEOUT_S = 120.0
_HELD = "lineage_nb_chains"


@dataclass
class _Chain:
    lock: threading.Lock = field(default_factory=threading.Lock)
    last: str | None = None
    loaded: bool = False


_chains: dict[tuple[str, int], _Chain] = {}
_registry_lock = threading.Lock()


def _timestamp(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
    return str(value)


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
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _chain_for(db_key: str, run_id: int) -> _Chain:
    with _registry_lock:
        return _chains.setdefault((db_key, run_id), _Chain())


def link(session: Session, db_key: str, rows: list[dict[str, Any]]) -> None:
    """Fill ``prev_hash`` and ``hash`` of event ``rows`` (in order), per run."""
    held: dict[tuple[str, int], str | None] = session.info.setdefault(_HELD, {})
    previous: dict[int | None, str | None] = {}
    for row in rows:
        run_id = row.get("run_id")
        if run_id is None:
            row["prev_hash"], row["hash"] = None, event_hash(row, None)
            continue
        if run_id not in previous:
            chain = _acquire(session, db_key, run_id, held)
            previous[run_id] = chain.last
        row["prev_hash"] = previous[run_id]
        row["hash"] = previous[run_id] = event_hash(row, previous[run_id])
    for run_id, last in previous.items():
        if run_id is not None:
            _chain_for(db_key, run_id).last = last


def _acquire(
    session: Session, db_key: str, run_id: int, held: dict[tuple[str, int], str | None]
) -> _Chain:
    chain = _chain_for(db_key, run_id)
    if (db_key, run_id) not in held:
        if not chain.lock.acquire(timeout=LOCK_TIMEOUT_S):
            raise LineageError(
                f"Timed out after {LOCK_TIMEOUT_S:.0f}s waiting for another transaction of run "
                f"{run_id} to finish writing its lineage.",
                hint="Commit or close the other session that writes to this run.",
            )
        held[(db_key, run_id)] = chain.last if chain.loaded else None
    if not chain.loaded:
        chain.last = session.connection().execute(
            select(RecordEvent.hash)
            .where(RecordEvent.run_id == run_id)
            .order_by(RecordEvent.id.desc())
            .limit(1)
        ).scalar()
        chain.loaded = True
    return chain


@event.listens_for(LineageSession, "after_commit")
def _committed(session: Session) -> None:
    session.info["lineage_nb_committed"] = True


@event.listens_for(LineageSession, "after_soft_rollback")
def _savepoint_rolled_back(session: Session, previous: SessionTransaction) -> None:
    for key in session.info.get(_HELD, {}):
        _chains[key].loaded = False  # reload the run's last hash inside the transaction


@event.listens_for(LineageSession, "after_transaction_end")
def _release(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None or transaction.nested:
        return
    held: dict[tuple[str, int], str | None] = session.info.pop(_HELD, {})
    committed = session.info.pop("lineage_nb_committed", False)
    for key, before in held.items():
        chain = _chains[key]
        if not committed:
            chain.last, chain.loaded = before, before is not None
        chain.lock.release()
