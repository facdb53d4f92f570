"""Tamper evidence: seals over the event log (and old per-run chains), checked by ``verify``."""

from __future__ import annotations

import asyncio
import threading

import pytest
from models import Project, Sample, Specimen
from sqlalchemy import func, select, text

import lineage_nb as ln
from lineage_nb.lineage.verify import BrokenLink, describe, seal, unsealed_count, verify


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


def _sql(db: ln.Database, statement: str, **params: object) -> None:
    with db.engine.begin() as connection:
        connection.execute(text(statement), params)


def test_verify_intact_log(db: ln.Database, run: ln.Run) -> None:
    """Inserts, updates, deletes, bulk inserts and atomic blocks: sealed, and every seal holds."""
    _write_some(run)
    events = _events(db, run.id)
    assert len(events) == 11
    assert unsealed_count(db) == 11
    assert "11 events written since the last seal" in describe(verify(db), unsealed_count(db))
    assert seal(db) == 11
    assert seal(db) == 0
    assert unsealed_count(db) == 0
    assert verify(db) == []
    assert describe([]).startswith("OK")
    ln.finish(run=run)  # finish seals what the run wrote after the last seal
    assert unsealed_count(db) == 0


def test_verify_catches_deleted_last_events(db: ln.Database, run: ln.Run) -> None:
    """Deleting the newest sealed events breaks the seal that covered them."""
    _write_some(run)
    events = _events(db, run.id)
    seal(db)
    _sql(db, "DELETE FROM lineage_record_event WHERE id >= :id", id=events[-2].id)
    broken = verify(db)
    assert len(broken) == 1
    assert "covers 11 events but 9 are there" in broken[0].message


def test_verify_catches_edited_event(db: ln.Database, run: ln.Run) -> None:
    """Changing a sealed event's content with raw SQL breaks its seal."""
    sample = _write_some(run)
    seal(db)
    target = [e for e in _events(db, run.id) if e.pk == str(sample.id) and e.action == "update"][0]
    _sql(db, "UPDATE lineage_record_event SET action = :action WHERE id = :id",
         action="insert", id=target.id)
    broken = verify(db)
    assert broken == [BrokenLink(table="", pk="", run_id=None, event_id=None,
                                 message=broken[0].message)]
    assert "changed after it was sealed" in broken[0].message
    assert f"events 1..{target.id}" in broken[0].message or "events 1.." in broken[0].message
    assert describe(broken).startswith("BROKEN log: seal 1")


def test_verify_catches_inserted_event(db: ln.Database, run: ln.Run) -> None:
    """An event forged into a sealed range (an id in it) breaks that seal."""
    _write_some(run)
    events = _events(db, run.id)
    seal(db)
    _sql(db, "DELETE FROM lineage_record_event WHERE id = :id", id=events[5].id)
    assert seal(db) == 0
    _sql(db, 'INSERT INTO lineage_record_event (id, run_id, user_id, "table", pk, action, at) '
             "SELECT :id, run_id, user_id, 'sample', '999', 'insert', at "
             "FROM lineage_record_event WHERE id = :other", id=events[5].id, other=events[4].id)
    broken = verify(db)
    assert len(broken) == 1 and "changed after it was sealed" in broken[0].message


def test_verify_catches_deleted_event_and_seal(db: ln.Database, run: ln.Run) -> None:
    """Deleting an event from the middle, or a whole seal, is reported."""
    _write_some(run)
    events = _events(db, run.id)
    seal(db)
    Project(name="later").save()
    seal(db)
    assert verify(db) == []
    _sql(db, "DELETE FROM lineage_seal WHERE id = 1")
    assert ["a seal was deleted" in b.message for b in verify(db)] == [True, False]
    _sql(db, "DELETE FROM lineage_record_event WHERE id = :id", id=events[0].id)
    assert any("events were deleted or inserted" in b.message for b in verify(db))


def test_verify_reports_each_broken_seal(db: ln.Database) -> None:
    """Two tampered ranges give two broken seals; untouched seals are not reported."""
    runs = []
    for index in range(3):
        runs.append(ln.track(__file__))
        Project(name=f"p{index}").save()
        Project(name=f"q{index}").save()
        ln.finish()
    for run in (runs[0], runs[2]):
        _sql(db, "UPDATE lineage_record_event SET pk = :pk WHERE run_id = :run", pk="42", run=run.id)
    broken = verify(db)
    assert [b.message.split()[1] for b in broken] == ["1", "3"]


def test_verify_old_chains_still_checked(db: ln.Database, run: ln.Run) -> None:
    """Events from before the seal log keep their per-run hash chain, and it is still checked."""
    from lineage_nb.lineage.verify import event_hash

    _write_some(run)
    events = _events(db, run.id)
    previous = None
    for event in events[:3]:  # give the first three the hashes an old version wrote
        row = {c.key: getattr(event, c.key) for c in ln.RecordEvent.__table__.c}
        digest = event_hash(row, previous)
        _sql(db, "UPDATE lineage_record_event SET hash = :h, prev_hash = :p WHERE id = :id",
             h=digest, p=previous, id=event.id)
        previous = digest
    assert verify(db) == []
    _sql(db, "UPDATE lineage_record_event SET cell = 7 WHERE id = :id", id=events[1].id)
    broken = verify(db)
    assert [(b.run_id, b.event_id) for b in broken] == [(run.id, events[1].id)]


def test_verify_threads_in_one_run(db: ln.Database, run: ln.Run) -> None:
    """Eight threads writing into one run concurrently still build one unbroken log."""
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
    assert seal(db) == count
    assert verify(db) == []


async def test_verify_async_tasks_in_one_run(db: ln.Database, run: ln.Run) -> None:
    """Concurrent asyncio tasks writing into one run neither deadlock nor break the log."""
    project = await Project(name="async").asave()

    async def work(worker: int) -> None:
        for index in range(15):
            await Sample(name=f"a{worker}-{index}", value=index, project_id=project.id).asave()

    await asyncio.wait_for(asyncio.gather(*(work(w) for w in range(6))), timeout=120)
    assert len(_events(db, run.id)) == 1 + 6 * 15
    assert verify(db) == []
    await db.async_engine.dispose()


def test_verify_rolled_back_savepoint_keeps_log(db: ln.Database, run: ln.Run) -> None:
    """A rolled-back savepoint and a failed transaction leave no gap in the log."""
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
    kept = {s.id: s.name for s in Sample.filter().all()}
    inserted = [int(e.pk) for e in _events(db, run.id) if e.table == "sample"]
    assert [kept[pk] for pk in inserted] == ["kept", "after", "last"]
    assert seal(db) == 4
    assert verify(db) == []


def _forked_writer(project_id: int, worker: int) -> None:
    ln.get_database().engine.dispose(close=False)  # never share the parent's connections
    for index in range(30):
        Sample(name=f"f{worker}-{index}", value=index, project_id=project_id).save()


def test_verify_forked_processes_in_one_run(db: ln.Database, run: ln.Run) -> None:
    """Forked worker processes writing into the parent's run still build one unbroken log."""
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
    """If the run's row is gone, its event cannot reference it and the record is not kept either."""
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM lineage_run WHERE id = :id"), {"id": run.id})
    with pytest.raises(ln.errors.LineageError):
        Specimen(label="orphan").save()
    assert Specimen.filter().count() == 0


def test_anchor_catches_a_rewrite_with_recomputed_seals(db: ln.Database, run: ln.Run) -> None:
    """Someone who edits an event and recomputes every seal passes verify(); an anchor kept
    outside the database catches it. A log that only grew since the anchor still extends it."""
    sample = _write_some(run)
    head = ln.anchor()
    assert head["seal"] >= 1 and head["events"] == head["last_event_id"] and len(head["hash"]) == 64
    Sample(name="later", value=9.0, project_id=sample.project_id).save()
    seal(db)
    assert ln.verify(anchor=head) == []  # grown, not changed
    first = _events(db, run.id)[0]
    _sql(db, "UPDATE lineage_record_event SET cell = 99 WHERE id = :id", id=first.id)
    _sql(db, "DELETE FROM lineage_seal")  # the rewriter recomputes every seal
    seal(db)
    assert ln.verify() == []
    broken = ln.verify(anchor=head)
    assert len(broken) == 1 and "no longer extends the anchor" in str(broken[0])


def test_anchor_of_an_empty_log_and_bad_anchors(db: ln.Database) -> None:
    head = ln.anchor()
    assert (head["seal"], head["events"], head["hash"]) == (0, 0, "")
    assert ln.verify(anchor=head) == []
    with pytest.raises(ln.errors.ValidationError, match="anchor"):
        ln.verify(anchor={"seal": "x"})
    gone = {**head, "seal": 12345, "hash": "0" * 64, "last_event_id": 1}
    assert "is gone" in str(ln.verify(anchor=gone)[0])
