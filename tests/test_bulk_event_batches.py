"""Bulk inserts write their record events in batches (bounded memory) without breaking the chain."""

from __future__ import annotations

import datetime as dt

import pytest
from models import Project, Sample
from sqlalchemy import select

import lineage_nb as ln
from lineage_nb.lineage import chain, stamping
from lineage_nb.lineage.verify import verify


def test_bulk_events_batched_keep_one_chain(
    db: ln.Database, run: ln.Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stamping, "EVENT_BATCH", 3)
    sizes: list[int] = []
    write = stamping.write_events

    def spy(session: object, stamp: object, rows: list[dict[str, object]]) -> None:
        sizes.append(len(rows))
        write(session, stamp, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(stamping, "write_events", spy)
    project = Project(name="batched").save()
    samples = Sample.bulk_create(
        [{"name": f"s{i}", "value": float(i), "project_id": project.id} for i in range(10)]
    )
    with db.session() as session:
        events = session.scalars(
            select(ln.RecordEvent)
            .where(ln.RecordEvent.table == "sample")
            .order_by(ln.RecordEvent.id)
        ).all()
    assert sizes[-4:] == [3, 3, 3, 1]  # the project's own event came first
    assert [e.pk for e in events] == [str(s["id"]) for s in samples]
    assert all(e.run_id == run.id and e.action == "insert" for e in events)
    assert [e.changes["name"] for e in events] == [[None, f"s{i}"] for i in range(10)]
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash  # links across batch boundaries too
    assert verify(db) == []


def test_event_hash_same_moment_cached_per_object() -> None:
    """The hash of two rows with equal but distinct timestamps is the same (cache is by value)."""
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
    twin = dt.datetime(2026, 1, 2, 4, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    row = {"run_id": 1, "user_id": 1, "table": "t", "pk": "1", "action": "insert",
           "changes": {"b": [None, 2], "a": [None, "é"]}, "cell": None}
    first = chain.event_hash({**row, "at": at}, None)
    assert chain.event_hash({**row, "at": twin}, None) == first
    later = chain.event_hash({**row, "at": at + dt.timedelta(microseconds=1)}, None)
    assert later != first
    assert chain.event_hash({**row, "at": at}, None) == first
