"""Column types the ORM gives user models where SQLAlchemy's own would not round-trip.

``UTCDateTime`` replaces ``DateTime(timezone=True)`` in ``ln.Model`` tables: SQLite has no
timestamp type, and SQLAlchemy stores an aware datetime there as its wall-clock text without the
offset (12:00+05:00 read back as naive 12:00: another instant). Stored in UTC, read back aware.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, Dialect
from sqlalchemy.types import TypeDecorator

__all__ = ["UTCDateTime", "aware_datetime_columns"]


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware, on SQLite too.

    Naive values are refused: they have no defined instant.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError(f"expected a timezone-aware datetime, got {value!r}")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """On SQLite, parse the stored UTC text straight to an aware datetime (one C call a row).

        Reading timestamps is on every row of every frame and ``load_all``; the generic path
        (SQLAlchemy's parser, then :meth:`process_result_value`) costs several times as much.
        """
        generic = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite":
            return generic
        parse = dt.datetime.fromisoformat

        def process(value: Any) -> dt.datetime | None:
            if value is None:
                return None
            if isinstance(value, str) and len(value) == 26:  # "YYYY-MM-DD HH:MM:SS.ffffff"
                try:
                    return parse(value + "+00:00")
                except ValueError:
                    pass
            return generic(value) if generic is not None else value

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        moment: dt.datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=dt.timezone.utc)
        return moment.astimezone(dt.timezone.utc)


def aware_datetime_columns(table: Any) -> None:
    """Give ``table``'s plain ``DateTime(timezone=True)`` columns the UTC-storing type."""
    for column in table.columns:
        if type(column.type) is DateTime and column.type.timezone:
            column.type = UTCDateTime()
