"""``UTCDateTime``: aware UTC datetimes in, the same instants out, on both backends."""

from __future__ import annotations

import datetime as dt

import pytest
from models import Project
from sqlalchemy import text

import lineage_nb as ln

UTC = dt.timezone.utc


def test_timestamps_round_trip_as_aware_utc(db: ln.Database) -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))
    moments = [
        dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds
        dt.datetime(2026, 6, 1, 12, 0, 0, 1, tzinfo=berlin),
    ]
    ids = [Project(name=f"p{i}", created_at=m).save().id for i, m in enumerate(moments)]
    for pk, moment in zip(ids, moments, strict=True):
        read = Project.get(pk).created_at
        assert read == moment and read.tzinfo == UTC, (read, moment)


@pytest.mark.sqlite_only
def test_sqlite_text_written_by_other_tools_still_reads(db: ln.Database) -> None:
    """Stored text in another layout than SQLAlchemy's is parsed the general way."""
    project = Project(name="p").save()
    for stored, expected in (
        ("2026-01-02 03:04:05", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02 03:04:05.000001", dt.datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=UTC)),
        ("2026-01-02 03:04:05.123", dt.datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)),
    ):
        with db.engine.begin() as connection:
            connection.execute(
                text("UPDATE project SET created_at = :at WHERE id = :id"),
                {"at": stored, "id": project.id},
            )
        read = Project.get(project.id).created_at
        assert read == expected and read.tzinfo == UTC
