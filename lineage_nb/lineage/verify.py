"""Tamper evidence: seals over the event log, checked by ``lineage-nb verify``.

Events are written by database triggers, so hashing happens in bulk, not per row: :func:`seal`
hashes every event written since the last seal (in id order) into one running SHA-256 chained to
the previous seal's hash, and stores a :class:`~lineage_nb.lineage.schema.Seal` (count, last event
id, hash). ``finish()`` seals. :func:`verify` recomputes every seal from the events: an edited,
deleted, inserted or reordered event in a sealed range breaks the seal that covers it. Events
written since the last seal are reported as not sealed yet, not as broken.

Events from before version 0.2 also carry a per-run hash chain (``hash``/``prev_hash``); those
chains are still checked as they were written.

Seals live in the same database as the events, so someone able to rewrite both could recompute
every seal. :func:`anchor` gives the current head of the log (seal id, events covered, hash, time)
to keep *outside* the database (a file, a git commit, a message); ``verify(anchor=head)`` then
proves the log still extends that head unchanged: the seal chain recomputed from the events must
reach the anchored hash at the anchored seal, so an edit, insertion, deletion or reordering of
events up to the anchor is caught even after every seal was recomputed.

Examples:
    >>> import lineage_nb as ln
    >>> from lineage_nb.lineage.verify import verify
    >>> verify(ln.connect("sqlite://"))
    []
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ..db import Database, get_database
from ..errors import ValidationError
from .schema import RecordEvent, Run, Seal
from .types import utcnow

__all__ = ["BrokenLink", "anchor", "describe", "event_hash", "seal", "unsealed_count", "verify"]

_EVENTS: Table = RecordEvent.__table__  # type: ignore[assignment]
_SEALS: Table = Seal.__table__  # type: ignore[assignment]
_BATCH = 5_000
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


@dataclass(frozen=True)
class BrokenLink:
    """A place where the log does not hold.

    Attributes:
        table: the table of the record the event is about ("" for a seal).
        pk: that record's key text ("" for a seal).
        run_id: the run whose old chain is broken (None for a seal).
        event_id: the offending event (None: a whole range or run).
        message: what is wrong.
    """

    table: str
    pk: str
    run_id: int | None
    event_id: int | None
    message: str

    def __str__(self) -> str:
        where = f"run {self.run_id}" if self.run_id is not None else "log"
        if self.event_id is None:
            return f"{where}: {self.message}"
        return f"{where}: event {self.event_id} ({self.table} pk={self.pk}): {self.message}"


def _timestamp(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
    return str(value)


def _content(row: Any) -> bytes:
    """The canonical bytes of one event as sealed (every column but the old chain's)."""
    return _encode([
        row.id, row.run_id, row.user_id, row.table, row.pk, row.action, row.changes, row.cell,
        _timestamp(row.at),
    ]).encode("utf-8", "surrogatepass")


def _chain_hash(prev_hash: str | None, tail: str) -> str:
    text_ = "[" + _encode(prev_hash) + tail
    return hashlib.sha256(text_.encode("utf-8", "surrogatepass")).hexdigest()


def event_hash(row: dict[str, Any], prev_hash: str | None) -> str:
    """The per-run chain hash of an event written before version 0.2 (as it was computed then)."""
    content = [
        row.get("run_id"), row.get("user_id"), row.get("table"), row.get("pk"), row.get("action"),
        row.get("changes"), row.get("cell"), _timestamp(row.get("at")),
    ]
    return _chain_hash(prev_hash, "," + _encode(content)[1:])


def _events(connection: Connection, after: int, upto: int | None = None) -> Iterator[Any]:
    statement = select(_EVENTS).where(_EVENTS.c.id > after).order_by(_EVENTS.c.id)
    if upto is not None:
        statement = statement.where(_EVENTS.c.id <= upto)
    yield from connection.execute(statement, execution_options={"yield_per": _BATCH})


def _digest(previous: str, rows: Iterable[Any]) -> tuple[str, int, int]:
    """``(hash, count, last id)`` of ``rows`` chained to ``previous``."""
    running = hashlib.sha256(previous.encode())
    count, last = 0, 0
    for row in rows:
        running.update(_content(row))
        running.update(b"\n")
        count, last = count + 1, row.id
    return running.hexdigest(), count, last


def _last_seal(connection: Connection) -> Any:
    return connection.execute(select(_SEALS).order_by(_SEALS.c.id.desc()).limit(1)).first()


def seal(db: Database | None = None, *, wait_s: float = 2.0) -> int:
    """Seal the events written since the last seal; returns how many it sealed (0: none, or busy).

    On PostgreSQL it waits up to ``wait_s`` for open writing transactions to end (their events
    must be in the range it seals); if they do not, it seals nothing now. On a team database set
    up by ``setup-postgres`` only the owner may lock the event table: members seal nothing.
    """
    db = db or get_database()
    try:
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT set_config('lock_timeout', :ms, true)"),
                    {"ms": f"{int(wait_s * 1000)}ms"},
                )
                connection.execute(
                    text("LOCK TABLE lineage_record_event IN SHARE ROW EXCLUSIVE MODE")
                )
            last = _last_seal(connection)
            after, previous, prev_id = (
                (last.last_event_id, last.hash, last.id) if last is not None else (0, "", 0)
            )
            digest, count, last_id = _digest(previous, _events(connection, after))
            if count == 0:
                return 0
            connection.execute(insert(_SEALS).values(
                prev_id=prev_id, last_event_id=last_id, count=count, hash=digest, at=utcnow(),
            ))
            return count
    except SAIntegrityError:  # another process sealed the same range first
        return 0
    except DBAPIError as error:
        reason = str(error.orig).lower()
        if "lock" in reason:  # writers stayed open: seal on a later call
            return 0
        if "permission denied" in reason:  # a member of a team database: its owner seals
            return 0
        raise


def unsealed_count(db: Database | None = None) -> int:
    """How many events were written since the last seal."""
    db = db or get_database()
    with db.engine.connect() as connection:
        last = _last_seal(connection)
        after = last.last_event_id if last is not None else 0
        return int(
            connection.execute(select(func.count()).where(_EVENTS.c.id > after)).scalar_one()
        )


def anchor(db: Database | None = None) -> dict[str, Any]:
    """Seal what is not sealed yet and return the log's head, to keep outside the database.

    Returns:
        ``{"seal": id, "events": events covered, "last_event_id": id, "hash": sha256 hex,
        "at": ISO time (UTC)}``: JSON-ready; pass it to :func:`verify` later. ``seal`` is 0 and
        ``hash`` empty for a log with no events yet.
    """
    db = db or get_database()
    seal(db)
    with db.engine.connect() as connection:
        last = _last_seal(connection)
        events = connection.execute(select(func.coalesce(func.sum(_SEALS.c.count), 0))).scalar()
    return {
        "seal": 0 if last is None else int(last.id),
        "events": int(events or 0),
        "last_event_id": 0 if last is None else int(last.last_event_id),
        "hash": "" if last is None else str(last.hash),
        "at": utcnow().isoformat(timespec="seconds"),
    }


def _check_anchor(head: dict[str, Any], heads: dict[int, tuple[str, int]]) -> list[BrokenLink]:
    """Whether the seal chain reaches the anchored hash at the anchored seal (each seal is
    checked against its events separately, so a chain that holds is the events' own)."""
    try:
        seal_id, expected, last_event = int(head["seal"]), str(head["hash"]), int(head["last_event_id"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValidationError(
            {"anchor": [f"is not an anchor from ln.anchor() ({error!r})."]},
            field="anchor", value=head,
        ) from error
    if seal_id == 0:
        return []
    found = heads.get(seal_id)
    if found is None:
        message = f"the anchored seal {seal_id} is gone: the log no longer extends the anchor."
    elif found != (expected, last_event):
        message = (
            f"the log no longer extends the anchor: seal {seal_id} is now {found[0][:12]}… up "
            f"to event {found[1]}, the anchor says {expected[:12]}… up to "
            f"event {last_event}; events up to the anchor were changed, inserted, deleted or "
            "reordered (even if the seals were recomputed)."
        )
    else:
        return []
    return [BrokenLink(table="", pk="", run_id=None, event_id=None, message=message)]


def _verify_seals(
    connection: Connection, heads: dict[int, tuple[str, int]] | None = None
) -> list[BrokenLink]:
    """Check each seal against its events; ``heads`` collects each seal's (hash, last event)."""
    broken = []
    previous, after, expected_prev = "", 0, 0
    for row in connection.execute(select(_SEALS).order_by(_SEALS.c.id)).all():
        if row.prev_id != expected_prev:
            broken.append(_seal_link(row, f"follows seal {row.prev_id}, not seal {expected_prev}: "
                                          "a seal was deleted or inserted."))
        sealed = row._mapping["count"]
        digest, count, _last = _digest(previous, _events(connection, after, row.last_event_id))
        if heads is not None:
            heads[row.id] = (row.hash, row.last_event_id)
        if (digest, count) != (row.hash, sealed):
            problem = (
                f"covers {sealed} events but {count} are there: events were deleted or inserted"
                if count != sealed
                else "its events do not match its hash: an event was changed after it was sealed"
            )
            broken.append(_seal_link(row, f"{problem} (events {after + 1}..{row.last_event_id})."))
        previous, after, expected_prev = row.hash, row.last_event_id, row.id
    return broken


def _seal_link(row: Any, message: str) -> BrokenLink:
    return BrokenLink(table="", pk="", run_id=None, event_id=None, message=f"seal {row.id} {message}")


def _check_old(row: dict[str, Any], expected_prev: str | None, previous_id: int | None) -> str | None:
    """Why an old (pre-0.2, hashed) event breaks its run's chain (None when the link holds)."""
    if row["prev_hash"] != expected_prev:
        if previous_id is None:
            return (
                "is the run's first event left but points to an earlier one: events before it "
                "were deleted."
            )
        return (
            f"does not point to the run's previous event {previous_id}: an event between them "
            "was deleted or inserted, or that event's hash was changed."
        )
    if event_hash(row, row["prev_hash"]) != row["hash"]:
        return "its content does not match its hash: the event was changed after it was written."
    return None


def _verify_old_chains(connection: Connection) -> list[BrokenLink]:
    heads = {
        run_id: head
        for run_id, head in connection.execute(
            select(Run.id, Run.chain_head).where(Run.chain_head.is_not(None))
        )
    }
    statement = (
        select(_EVENTS).where(_EVENTS.c.hash.is_not(None)).order_by(_EVENTS.c.run_id, _EVENTS.c.id)
    )
    broken: list[BrokenLink] = []
    runs: dict[int | None, list[dict[str, Any]]] = {}
    result = connection.execute(statement, execution_options={"yield_per": _BATCH})
    for mapping in result.mappings():
        runs.setdefault(mapping["run_id"], []).append(dict(mapping))
    for run_id, rows in runs.items():
        last: dict[str, Any] | None = None
        for row in rows:
            expected = None if run_id is None or last is None else last["hash"]
            previous = None if run_id is None or last is None else last["id"]
            problem = _check_old(row, expected, previous)
            if problem is not None:
                broken.append(_link(row, problem))
                break
            last = row
        else:
            head = heads.pop(run_id, None) if run_id is not None else None
            if run_id is not None and last is not None and head not in (None, last["hash"]):
                broken.append(_link(last, (
                    "is the run's last event left, but the run's chain head is a later event: "
                    "events after it were deleted."
                )))
        if run_id is not None:
            heads.pop(run_id, None)
    for run_id in sorted(heads):
        broken.append(BrokenLink(
            table="", pk="", run_id=run_id, event_id=None,
            message="has a chain head but no hashed record events: all its events were deleted.",
        ))
    return broken


def verify(db: Database | None = None, *, anchor: dict[str, Any] | None = None) -> list[BrokenLink]:
    """Recompute every seal, and the old per-run chains; return what does not hold.

    Args:
        db: the database (default: the one from ``ln.connect()``).
        anchor: a head from :func:`anchor` kept outside the database: the log must still extend
            it unchanged.

    Returns:
        One :class:`BrokenLink` per broken seal, old chain or anchor; an empty list: intact.

    Raises:
        ValidationError: ``anchor`` is not a head from :func:`anchor`.
    """
    db = db or get_database()
    heads: dict[int, tuple[str, int]] = {}
    with db.engine.connect() as connection:
        broken = _verify_seals(connection, heads) + _verify_old_chains(connection)
    if anchor is not None:
        broken += _check_anchor(anchor, heads)
    return broken


def _link(row: dict[str, Any], message: str) -> BrokenLink:
    return BrokenLink(
        table=row["table"], pk=row["pk"], run_id=row["run_id"], event_id=row["id"],
        message=message,
    )


def describe(links: Iterable[BrokenLink], unsealed: int = 0) -> str:
    """A report for people: one line per broken seal or chain, or a line saying all holds."""
    lines = [f"BROKEN {link}" for link in links]
    if lines:
        return "\n".join(lines)
    tail = f" ({unsealed} events written since the last seal are not sealed yet)" if unsealed else ""
    return "OK: every seal and event chain is intact." + tail
