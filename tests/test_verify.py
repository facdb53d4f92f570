"""Tamper evidence: per-run hash chains of record events, checked by ``verify``."""

from __future__ import annotations

import asyncio
import threading

import pytest
from models import Project, Sample, Specimen
from sqlalchemy import func, select, text

import lineage_nb as ln
from lineage_nb.lineage.chain import event_hash
from lineage_nb.lineage.verify import BrokenLink, describe, verify


def _events(db: ln.Database, run_id: int) -> list[ln.RecordEvent]:
    with db.session() as session:
        return list(
            session.scalars(
                select(ln.RecordEvent).where(ln.RecordEvent.run_id == run_id).order_by(
                    ln.RecordEvent.id
                )
            )
        )


def _write_some(run: ln.Run) -> Sample:
    project = Project(name="p").save()
    sample = Sample(name="s", value=1.0, project=project).save()
    sample.update(value=2.0)
    Sample.bulk_create([{"name": f"b{i}", "value": i, "project_id": project.id} for i in range(5)])
    with ln.atomic():
        Sample(name="in-block", value=3.0, project_id=project.id).save()
    extra = Sample(name="gone", value=4.0, project_id=project.id).save()
    extra.delete()
    return sample


def test_verify_intact_chain(db: ln.Database, run: ln.Run) -> None:
    """Inserts, updates, deletes, bulk inserts and atomic blocks leave every chain intact."""
    _write_some(run)
    events = _events(db, run.id)
    assert len(events) == 11
    assert events[0].prev_hash is None
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
    assert verify(db) == []
    assert describe([]).startswith("OK")
    with db.engine.connect() as connection:
        head = connection.execute(
            select(ln.Run.chain_head).where(ln.Run.id == run.id)
        ).scalar_one()
    assert head == events[-1].hash


def test_verify_catches_deleted_last_events(db: ln.Database, run: ln.Run) -> None:
    """Deleting a run's newest events leaves a chain shorter than the run's stored head."""
    _write_some(run)
    events = _events(db, run.id)
    with db.engine.begin() as connection:
        connection.execute(
            text("DELETE FROM lineage_record_event WHERE id >= :id AND run_id = :run"),
            {"id": events[-2].id, "run": run.id},
        )
    broken = verify(db)
    assert [(b.run_id, b.event_id) for b in broken] == [(run.id, events[-3].id)]
    assert "events after it were deleted" in broken[0].message
    with db.engine.begin() as connection:
        connection.execute(
            text("DELETE FROM lineage_record_event WHERE run_id = :run"), {"run": run.id}
        )
    broken = verify(db)
    assert [(b.run_id, b.event_id) for b in broken] == [(run.id, None)]
    assert "all its events were deleted" in str(broken[0])


def test_verify_catches_edited_event(db: ln.Database, run: ln.Run) -> None:
    """Changing an event's content with raw SQL is reported at that event."""
    sample = _write_some(run)
    target = [e for e in _events(db, run.id) if e.pk == str(sample.id) and e.action == "update"][0]
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE lineage_record_event SET action = :action WHERE id = :id"),
            {"action": "insert", "id": target.id},
        )
    broken = verify(db)
    assert broken == [
        BrokenLink(
            table="sample", pk=str(sample.id), run_id=run.id, event_id=target.id,
            message=broken[0].message,
        )
    ]
    assert "changed after it was written" in broken[0].message
    assert f"event {target.id}" in describe(broken)


def test_verify_catches_forged_hash(db: ln.Database, run: ln.Run) -> None:
    """Rewriting an event together with a recomputed own hash breaks the next event's link."""
    _write_some(run)
    events = _events(db, run.id)
    victim, following = events[3], events[4]
    row = {c.key: getattr(victim, c.key) for c in ln.RecordEvent.__table__.c}
    row["changes"] = {"value": [None, 999]}
    forged = event_hash(row, victim.prev_hash)
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE lineage_record_event SET changes = :changes, hash = :hash WHERE id = :id"),
            {"changes": '{"value": [null, 999]}', "hash": forged, "id": victim.id},
        )
    broken = verify(db)
    assert [(b.run_id, b.event_id) for b in broken] == [(run.id, following.id)]
    assert "previous event" in broken[0].message


def test_verify_catches_deleted_event(db: ln.Database, run: ln.Run) -> None:
    """Deleting an event from the middle of a chain is reported at the event after the gap."""
    _write_some(run)
    events = _events(db, run.id)
    with db.engine.begin() as connection:
        connection.execute(
            text("DELETE FROM lineage_record_event WHERE id = :id"), {"id": events[5].id}
        )
    broken = verify(db)
    assert [(b.table, b.pk, b.event_id) for b in broken] == [
        (events[6].table, events[6].pk, events[6].id)
    ]


def test_verify_catches_missing_first_event_and_hash(db: ln.Database, run: ln.Run) -> None:
    """Deleting a run's first event, or blanking a hash, is reported."""
    _write_some(run)
    events = _events(db, run.id)
    with db.engine.begin() as connection:
        connection.execute(
            text("DELETE FROM lineage_record_event WHERE id = :id"), {"id": events[0].id}
        )
    assert [b.event_id for b in verify(db)] == [events[1].id]
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE lineage_record_event SET hash = NULL WHERE id = :id"), {"id": events[1].id}
        )
    broken = verify(db)
    assert [b.event_id for b in broken] == [events[1].id]
    assert "no hash" in broken[0].message


def test_verify_reports_each_broken_run(db: ln.Database) -> None:
    """Two tampered runs give two links; untouched runs are not reported."""
    runs = []
    for index in range(3):
        runs.append(ln.track(__file__))
        Project(name=f"p{index}").save()
        Project(name=f"q{index}").save()
        ln.finish()
    with db.engine.begin() as connection:
        for run in (runs[0], runs[2]):
            connection.execute(
                text("UPDATE lineage_record_event SET pk = :pk WHERE run_id = :run"),
                {"pk": "42", "run": run.id},
            )
    assert [b.run_id for b in verify(db)] == [runs[0].id, runs[2].id]


def test_verify_threads_in_one_run(db: ln.Database, run: ln.Run) -> None:
    """Eight threads writing into one run concurrently still build one unbroken chain."""
    project = Project(name="shared").save()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for index in range(40):
                Sample(name=f"w{worker}-{index}", value=index, project_id=project.id).save()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.session() as session:
        count = session.scalar(
            select(func.count()).select_from(ln.RecordEvent).where(ln.RecordEvent.run_id == run.id)
        )
    assert count == 1 + 8 * 40
    assert verify(db) == []


async def test_verify_async_tasks_in_one_run(db: ln.Database, run: ln.Run) -> None:
    """Concurrent asyncio tasks writing into one run neither deadlock nor break the chain."""
    project = await Project(name="async").asave()

    async def work(worker: int) -> None:
        for index in range(15):
            await Sample(name=f"a{worker}-{index}", value=index, project_id=project.id).asave()

    await asyncio.wait_for(asyncio.gather(*(work(w) for w in range(6))), timeout=120)
    assert len(_events(db, run.id)) == 1 + 6 * 15
    assert verify(db) == []
    await db.async_engine.dispose()


def test_verify_rolled_back_savepoint_keeps_chain(db: ln.Database, run: ln.Run) -> None:
    """A rolled-back savepoint and a failed transaction leave no gap in the chain."""
    project = Project(name="p").save()
    with ln.atomic():
        Sample(name="kept", value=1.0, project_id=project.id).save()
        with pytest.raises(RuntimeError), ln.atomic():
            Sample(name="dropped", value=2.0, project_id=project.id).save()
            raise RuntimeError("roll back the savepoint")
        Sample(name="after", value=3.0, project_id=project.id).save()
    with pytest.raises(RuntimeError), ln.atomic():
        Sample(name="lost", value=5.0, project_id=project.id).save()
        raise RuntimeError("roll back all")
    Sample(name="last", value=6.0, project_id=project.id).save()
    names = [e.changes["name"][1] for e in _events(db, run.id) if e.table == "sample"]
    assert names == ["kept", "after", "last"]
    assert verify(db) == []


def _forked_writer(project_id: int, worker: int) -> None:
    ln.get_database().engine.dispose(close=False)  # never share the parent's connections
    for index in range(30):
        Sample(name=f"f{worker}-{index}", value=index, project_id=project_id).save()


def test_verify_forked_processes_in_one_run(db: ln.Database, run: ln.Run) -> None:
    """Forked worker processes writing into the parent's run still build one unbroken chain."""
    import multiprocessing

    project = Project(name="forked").save()
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_forked_writer, args=(project.id, w)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert len(_events(db, run.id)) == 1 + 3 * 30
    assert verify(db) == []


def test_write_into_a_deleted_run_keeps_nothing(db: ln.Database, run: ln.Run) -> None:
    """If the run's row is gone, chaining the event fails and the record is not kept either."""
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM lineage_run WHERE id = :id"), {"id": run.id})
    with pytest.raises(ln.errors.OperationalError, match=f"Run {run.id} is not in lineage_run"):
        Specimen(label="orphan").save()
    assert Specimen.filter().count() == 0
