"""Column types shared by the lineage tables and mixins."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Integer

from ..orm.column_types import UTCDateTime

__all__ = ["BigIntegerPK", "UTCDateTime", "utcnow"]

#: An auto-incrementing 64-bit key on PostgreSQL that is still SQLite's rowid alias.
BigIntegerPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.timezone.utc)
