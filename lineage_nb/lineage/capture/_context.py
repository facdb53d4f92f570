"""The per-connection transaction context the capture triggers read (run, user, cell, time)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection

__all__ = ["TransactionContext", "context_of", "sqlite_timestamp"]

_KEY = "lineage_nb_context"


def sqlite_timestamp(moment: dt.datetime) -> str:
    """``moment`` in UTC as SQLAlchemy stores a SQLite ``DateTime`` (what ``UTCDateTime`` reads)."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


class TransactionContext:
    """What the current transaction of one DBAPI connection writes as its lineage context.

    Owned by the connection (kept in its pool record's ``info``). ``values`` is resolved once per
    transaction, before its first statement; :meth:`reset` forgets it at commit and rollback.

    Attributes:
        values: ``(run_id, user_id, cell)``, or None until resolved.
        sent: the values were sent to the server for this transaction (PostgreSQL).
        busy: lineage_nb is running its own statement on the connection (no recursion).
        interrupted: what one of the SQLite context functions raised (sqlite3 reports only
            "user-defined function raised exception"); a KeyboardInterrupt is raised again in its
            place (see :func:`~._sqlite.on_error`).
    """

    __slots__ = ("_now", "busy", "interrupted", "sent", "values")

    def __init__(self) -> None:
        self.values: tuple[int | None, int, int | None] | None = None
        self.sent = False
        self.busy = False
        self.interrupted: BaseException | None = None
        self._now: str | None = None

    def reset(self) -> None:
        """Forget this transaction's context (it committed or rolled back)."""
        self.values = None
        self.sent = False
        self._now = None

    def statement_started(self) -> None:
        """A new statement starts: its events get a new time."""
        self._now = None

    def now_text(self) -> str:
        """The time of the current statement, as SQLite stores it (one value per statement)."""
        if self._now is None:
            self._now = sqlite_timestamp(dt.datetime.now(dt.timezone.utc))
        return self._now


def context_of(conn: Connection | Any) -> TransactionContext:
    """The :class:`TransactionContext` of a SQLAlchemy ``Connection`` or pool record (created on use)."""
    info = conn.info
    found = info.get(_KEY)
    if found is None:
        found = info[_KEY] = TransactionContext()
    return found
