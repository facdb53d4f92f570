"""Check the per-run hash chains of record events: ``lineage-nb verify``.

Every event stores the hash of its content and of the run's previous event (see
:mod:`lineage_nb.lineage.chain`). :func:`verify` walks each run's events in id order, recomputes
the hashes and reports, per run, the first link that does not hold: an edited event, a deleted
or inserted one in the middle of a chain, an event without a hash, or a chain that ends before
the run's stored head (its last events were deleted).

Examples:
    >>> import lineage_nb as ln
    >>> from lineage_nb.lineage.verify import verify
    >>> verify(ln.connect("sqlite://"))
    []
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select

from ..db import Database, get_database
from .chain import event_hash
from .schema import RecordEvent, Run

__all__ = ["BrokenLink", "describe", "verify"]

_EVENTS: Table = RecordEvent.__table__  # type: ignore[assignment]
_BATCH = 5_000


@dataclass(frozen=True)
class BrokenLink:
    """The first event of a run whose chain link does not hold.

    Attributes:
        table: the table of the record the event is about.
        pk: that record's primary key (as text).
        run_id: the run whose chain is broken (None: an event written outside a run).
        event_id: the id of the offending ``lineage_record_event`` row (None: the run has no
            events left at all).
        message: what is wrong with it.
    """

    table: str
    pk: str
    run_id: int | None
    event_id: int | None
    message: str

    def __str__(self) -> str:
        run = f"run {self.run_id}" if self.run_id is not None else "no run"
        if self.event_id is None:
            return f"{run}: {self.message}"
        return f"{run}: event {self.event_id} ({self.table} pk={self.pk}): {self.message}"


def _check(row: dict[str, Any], expected_prev: str | None, previous_id: int | None) -> str | None:
    """Why ``row`` breaks its chain (None when the link holds)."""
    if row["hash"] is None:
        return "has no hash: it was not written by lineage_nb, or its hash was removed."
    if row["prev_hash"] != expected_prev:
        if previous_id is None:
            return (
                "is the run's first event left but points to an earlier one: events before it "
                "were deleted."
            )
        if row["prev_hash"] is None:
            return f"does not point to the run's previous event {previous_id}."
        return (
            f"does not point to the run's previous event {previous_id}: an event between them "
            "was deleted or inserted, or that event's hash was changed."
        )
    if event_hash(row, row["prev_hash"]) != row["hash"]:
        return "its content does not match its hash: the event was changed after it was written."
    return None


def _heads(db: Database) -> dict[int, str]:
    """The stored chain head of every run that has one."""
    statement = select(Run.id, Run.chain_head).where(Run.chain_head.is_not(None))
    with db.engine.connect() as connection:
        return {run_id: head for run_id, head in connection.execute(statement) if head is not None}


def _rows(db: Database) -> Iterator[dict[str, Any]]:
    statement = select(_EVENTS).order_by(_EVENTS.c.run_id, _EVENTS.c.id)
    with db.engine.connect() as connection:
        result = connection.execution_options(yield_per=_BATCH).execute(statement)
        for row in result.mappings():
            yield dict(row)


def verify(db: Database | None = None) -> list[BrokenLink]:
    """Walk every run's event chain; return the first broken link of each broken chain.

    Args:
        db: the database (default: the one from ``ln.connect()``).

    Returns:
        One :class:`BrokenLink` per broken chain, in run order; an empty list means intact.
    """
    db = db or get_database()
    heads = _heads(db)
    broken: list[BrokenLink] = []
    current: int | None = None  # the run being walked
    last: dict[str, Any] | None = None  # its last event so far
    failed = False

    def check_end() -> None:
        """After a run's events: its stored head must be its last event's hash."""
        if current is None:
            return
        head = heads.pop(current, None)
        if last is not None and not failed and head != last["hash"]:
            broken.append(_link(last, (
                "is the run's last event left, but the run's chain head is a later event: "
                "events after it were deleted."
            )))

    for row in _rows(db):
        run_id = row["run_id"]
        if run_id is None:  # written outside a run: each event stands alone
            problem = _check(row, None, None)
            if problem is not None:
                broken.append(_link(row, problem))
            continue
        if run_id != current:
            check_end()
            current, last, failed = run_id, None, False
        if not failed:
            problem = _check(row, last["hash"] if last else None, last["id"] if last else None)
            if problem is not None:
                broken.append(_link(row, problem))
                failed = True
        last = row
    check_end()
    for run_id in sorted(heads):  # a head but no events at all
        broken.append(BrokenLink(
            table="", pk="", run_id=run_id, event_id=None,
            message="has a chain head but no record events: all its events were deleted.",
        ))
    return sorted(broken, key=lambda link: (link.run_id is None, link.run_id or 0))


def _link(row: dict[str, Any], message: str) -> BrokenLink:
    return BrokenLink(
        table=row["table"], pk=row["pk"], run_id=row["run_id"], event_id=row["id"],
        message=message,
    )


def describe(links: Iterable[BrokenLink]) -> str:
    """A report for people: one line per broken chain, or a line saying all chains hold."""
    lines = [f"BROKEN {link}" for link in links]
    return "\n".join(lines) if lines else "OK: every run's event chain is intact."
