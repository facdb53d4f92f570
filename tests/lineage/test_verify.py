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
                select(ln.RecordEvent)
                .where(ln.RecordEvent.run_id == run_id)
                .order_by(ln.RecordEvent.id)
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
    target = next(e for e in _events(db, run.id) if e.pk == str(sample.id) and e.action == "update")
    _sql(
        db,
        "UPDATE lineage_record_event SET action = :action WHERE id = :id",
        action="insert",
        id=target.id,
    )
    broken = verify(db)
    assert broken == [
        BrokenLink(table="", pk="", run_id=None, event_id=None, message=broken[0].message)
    ]
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
    _sql(
        db,
        'INSERT INTO lineage_record_event (id, run_id, user_id, "table", pk, action, at) '
        "SELECT :id, run_id, user_id, 'sample', '999', 'insert', at "
        "FROM lineage_record_event WHERE id = :other",
        id=events[5].id,
        other=events[4].id,
    )
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
        _sql(
            db, "UPDATE lineage_record_event SET pk = :pk WHERE run_id = :run", pk="42", run=run.id
        )
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
        _sql(
            db,
            "UPDATE lineage_record_event SET hash = :h, prev_hash = :p WHERE id = :id",
            h=digest,
            p=previous,
            id=event.id,
        )
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


# -- Merkle seals and inclusion proofs ------------------------------------------------------------


def _rfc9162_root(leaves: list[bytes]) -> bytes:
    """MTH of RFC 9162 section 2.1.1, written as the RFC states it (split at the largest power
    of two below n), as a reference for the level-by-level implementation."""
    import hashlib

    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _rfc9162_root(leaves[:k]) + _rfc9162_root(leaves[k:])).digest()


def test_merkle_root_paths_and_streaming_follow_rfc9162(monkeypatch: pytest.MonkeyPatch) -> None:
    """For every size up to 40 and every leaf: the root is RFC 9162's, the audit path leads
    there and has at most ceil(log2 n) hashes, a path for another index does not; the streamed
    tree (subtrees of 4 leaves, fed in uneven batches) gives the same root."""
    import hashlib
    import math

    from lineage_nb.lineage import verify as v

    monkeypatch.setattr(v, "_SUBTREE", 4)
    for size in range(1, 41):
        leaves = [hashlib.sha256(b"\x00" + str(i).encode()).digest() for i in range(size)]
        root = v.merkle_root(leaves)
        assert root == _rfc9162_root(leaves)
        tree = v._Tree()
        for start in range(0, size, 3):
            tree.extend(leaves[start : start + 3])
        assert (tree.count, tree.root()) == (size, root)
        for index in range(size):
            path = v._audit_path(leaves, index)
            assert len(path) <= math.ceil(math.log2(size))
            assert v._path_root(leaves[index], index, size, path) == root
            if size > 1:
                other = (index + 1) % size
                assert v._path_root(leaves[index], other, size, path) != root


def test_proof_of_a_record(db: ln.Database, run: ln.Run) -> None:
    """record.proof() seals the log if needed and proves the record's newest event (or a given
    one) with a short audit path; the proof checks without the database, also from JSON, and
    any change to it makes it fail."""
    import json
    import math

    from lineage_nb.lineage.verify import check_proof

    sample = _write_some(run)
    assert unsealed_count(db) == 11
    proof = sample.proof()
    assert unsealed_count(db) == 0  # sealed to prove
    mine = [e for e in _events(db, run.id) if e.table == "sample" and e.pk == str(sample.id)]
    assert (proof.event_id, proof.table, proof.pk) == (mine[-1].id, "sample", str(sample.id))
    assert (proof.seal_id, proof.size, proof.prev_hash) == (1, 11, "")
    assert len(proof.path) <= math.ceil(math.log2(11)) and len(proof.root) == 64
    assert json.loads(proof.content)[:6] == [
        mine[-1].id,
        run.id,
        mine[-1].user_id,
        "sample",
        str(sample.id),
        "update",
    ]
    assert proof.verify() and check_proof(json.loads(json.dumps(proof.as_dict())))
    first = sample.proof(event_id=mine[0].id)
    assert (first.event_id, first.index) == (mine[0].id, mine[0].id - 1) and first.verify()
    assert first.path != proof.path
    data = proof.as_dict()
    forged = [
        {**data, "content": data["content"].replace('"update"', '"insert"')},
        {**data, "path": [data["path"][0][::-1], *data["path"][1:]]},
        {**data, "index": data["index"] ^ 1},
        {**data, "size": data["size"] + 1},
        {**data, "prev_hash": "0" * 64},
        {**data, "event_id": data["event_id"] + 1},
        {**data, "path": data["path"][:-1]},
        {"content": data["content"]},
    ]
    assert [check_proof(f) for f in forged] == [False] * len(forged)
    other = Project.filter(name="p").first()
    assert other is not None
    with pytest.raises(ln.errors.ValidationError, match="not an event of sample"):
        sample.proof(event_id=other.history()[0].id)
    with pytest.raises(ln.errors.NotFound, match="no recorded events"):
        Sample(name="never saved", value=0.0, project_id=other.id, id=10_000).proof()


def test_proof_fails_once_its_seal_was_tampered(db: ln.Database, run: ln.Run) -> None:
    """After another event of the seal is edited, a fresh proof of the record no longer leads to
    the seal's stored root; a proof taken before still checks (it is about the log as sealed),
    and verify() reports the seal."""
    sample = _write_some(run)
    before = sample.proof()
    events = _events(db, run.id)
    _sql(db, "UPDATE lineage_record_event SET cell = 3 WHERE id = :id", id=events[0].id)
    after = sample.proof()
    assert before.verify() and not after.verify()
    assert after.leaf_hash == before.leaf_hash and after.path != before.path
    assert "changed after it was sealed" in verify(db)[0].message


def test_verify_catches_reordered_events(db: ln.Database, run: ln.Run) -> None:
    """Two sealed events that swap places (their ids exchanged, content untouched) break the seal,
    and the proof of a record whose event moved no longer checks."""
    sample = _write_some(run)
    before = sample.proof()
    moved = before.event_id
    _sql(db, "UPDATE lineage_record_event SET id = :tmp WHERE id = :a", tmp=10_000, a=moved - 1)
    _sql(db, "UPDATE lineage_record_event SET id = :a WHERE id = :b", a=moved - 1, b=moved)
    _sql(db, "UPDATE lineage_record_event SET id = :b WHERE id = :tmp", b=moved, tmp=10_000)
    broken = verify(db)
    assert len(broken) == 1 and "changed after it was sealed" in broken[0].message
    assert before.verify() and not sample.proof(event_id=moved - 1).verify()


def test_seals_checked_in_one_pass_report_an_emptied_seal(db: ln.Database) -> None:
    """Consecutive seals are checked together; a seal whose events were all deleted is reported
    on its own (covers 2, 0 there) and the seals around it hold."""
    for index in range(3):
        ln.track(__file__)
        Project(name=f"p{index}").save()
        Project(name=f"q{index}").save()
        ln.finish()
    with db.engine.connect() as connection:
        middle = connection.execute(
            text("SELECT last_event_id FROM lineage_seal WHERE id = 2")
        ).scalar()
    _sql(db, "DELETE FROM lineage_record_event WHERE id IN (:a, :b)", a=middle - 1, b=middle)
    broken = verify(db)
    assert [b.message.split(" ", 2)[:2] for b in broken] == [["seal", "2"]]
    assert "covers 2 events but 0 are there" in broken[0].message


def test_verify_ignores_the_session_time_zone(db: ln.Database, db_url: str, run: ln.Run) -> None:
    """PostgreSQL renders event times as UTC for hashing: a session in another time zone
    recomputes the same seals."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite stores times as UTC text; there is no session time zone")
    _write_some(run)
    seal(db)
    name = db.engine.url.database
    _sql(db, f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Kathmandu'")
    other = ln.Database(db_url)
    try:
        with other.engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW timezone").scalar() == "Asia/Kathmandu"
        assert verify(other) == []
    finally:
        other.close()


@pytest.mark.sqlite_only
def test_verify_reports_an_unreadable_event(db: ln.Database, run: ln.Run) -> None:
    """A BLOB written into a sealed event by raw SQL (SQLite lets any column hold one) is reported
    as a broken seal, not raised."""
    _write_some(run)
    seal(db)
    _sql(db, "UPDATE lineage_record_event SET pk = x'00ff' WHERE id = 2")
    broken = verify(db)
    assert len(broken) == 1 and "cannot be read as they were sealed" in broken[0].message


# -- what verify reports without failing ------------------------------------------------------------


def test_events_written_outside_a_run_are_counted_not_broken(
    db: ln.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Raw SQL into a tracked table with no run open is recorded with no run; verify counts it
    as written outside a run, and the CLI says so and exits 0."""
    from lineage_nb.cli import main
    from lineage_nb.lineage.verify import status

    ln.track(__file__)
    Project(name="in a run").save()
    ln.finish()
    _sql(db, "INSERT INTO project (name) VALUES ('raw one'), ('raw two')")
    assert seal(db) == 2
    assert verify(db) == []
    state = status(db)
    assert (state.events, state.seals, state.unsealed, state.outside_run) == (3, 2, 0, 2)
    assert "2 events were written outside a run" in describe([], state)
    code = main(["verify", "--database", db.url.render_as_string(hide_password=False)])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("OK") and "2 events were written outside a run" in out
    assert "unchained" not in out
