"""Stamping at the session level: TracksRun columns and one RecordEvent per write, same transaction."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from models import Project, Sample, Specimen
from sqlalchemy import select, text
from sqlalchemy.orm import Mapped, mapped_column
from sqlcount import sent

import lineage_nb as ln
from lineage_nb.errors import UsageError, ValidationError


def events(table: str) -> list[ln.RecordEvent]:
    return ln.RecordEvent.filter(table=table).order_by("id").all()


def test_insert_stamps_run_user_time_and_event(db: ln.Database, run: ln.Run) -> None:
    """save() stamps run, created_by, created_at and writes an insert event (no copy of values)."""
    project = Project(name="p").save()
    user = ln.User.get(project.created_by_id)
    assert (project.run_id, user.handle) == (run.id, "tester")
    assert project.created_at.tzinfo is not None
    [insert] = events("project")
    assert (insert.action, insert.pk, insert.run_id, insert.user_id) == (
        "insert",
        str(project.id),
        run.id,
        user.id,
    )
    assert insert.changes is None  # the row holds the values
    assert insert.hash is None  # events are sealed in bulk, not chained one by one


def test_update_event_has_old_and_new_and_keeps_created(
    db: ln.Database, run: ln.Run, tmp_path: Path
) -> None:
    """An update records {field: [old, new]}; created_* stay, updated_* and run change."""
    project = Project(name="p").save()
    sample = Sample(name="s", value=1.0, project=project).save()
    created = (sample.created_at, sample.created_by_id)
    ln.finish()
    script = tmp_path / "second_script.py"
    script.write_text("print('second')\n")
    second = ln.track(script)
    time.sleep(0.01)
    sample.update(value=2.5)
    stored = Sample.get(sample.id)
    assert (stored.created_at, stored.created_by_id) == created
    assert stored.run_id == second.id
    assert stored.updated_at > created[0]
    insert, update = events("sample")
    assert update.action == "update"
    assert update.changes == {"value": [1.0, 2.5]}
    assert (insert.run_id, update.run_id) == (run.id, second.id)


def test_created_fields_cannot_change(db: ln.Database, run: ln.Run) -> None:
    """Changing created_at or created_by after insert is refused; nothing is written."""
    project = Project(name="p").save()
    project.created_by_id = project.created_by_id + 1
    with pytest.raises(ValidationError) as info:
        project.save()
    assert info.value.field == "created_by_id"
    assert len(events("project")) == 1


def test_delete_event_keeps_last_values(db: ln.Database, run: ln.Run) -> None:
    """A delete leaves an event holding the record's last values."""
    project = Project(name="doomed").save()
    project.delete()
    assert [e.action for e in events("project")] == ["insert", "delete"]
    assert events("project")[-1].changes["name"] == ["doomed", None]


def test_untracked_columns_model_still_gets_events(db: ln.Database, run: ln.Run) -> None:
    """A model without TracksRun still leaves events (run and user on the event)."""
    specimen = Specimen(label="x").save()
    [insert] = events("specimen")
    assert (insert.pk, insert.run_id) == (str(specimen.id), run.id)


def test_no_run_still_writes_with_user(db: ln.Database) -> None:
    """Without a run, writes succeed with run=None and the user stamped."""
    project = Project(name="no run").save()
    assert project.run_id is None
    assert ln.User.get(project.created_by_id).handle == "tester"
    [insert] = events("project")
    assert insert.run_id is None and insert.user_id == project.created_by_id


def test_rollback_leaves_neither_row_nor_event(db: ln.Database, run: ln.Run) -> None:
    """A rolled-back transaction leaves no row and no event; a commit leaves both."""
    with pytest.raises(RuntimeError):
        with ln.atomic():
            Project(name="rolled back").save()
            assert len(events("project")) == 1  # visible inside the transaction
            raise RuntimeError
    assert Project.objects().count() == 0 and events("project") == []
    with ln.atomic():
        Project(name="kept").save()
    assert Project.objects().count() == 1 and len(events("project")) == 1


def test_plain_sqlalchemy_session_is_tracked(db: ln.Database, run: ln.Run) -> None:
    """Writes through db.session() with plain SQLAlchemy code are stamped and evented."""
    with db.session() as session, session.begin():
        project = Project(name="plain")
        session.add(project)
        session.flush()
        session.add(Sample(name="s", value=1.0, project=project))
    with db.session() as session, session.begin():
        sample = session.execute(select(Sample)).scalar_one()
        sample.value = 3.0
    with db.session() as session, session.begin():
        session.delete(session.execute(select(Sample)).scalar_one())
    assert [e.action for e in events("sample")] == ["insert", "update", "delete"]
    assert Project.objects().one().run_id == run.id
    assert all(e.run_id == run.id for e in events("sample"))


def test_bulk_create_events_come_from_the_database(db: ln.Database, run: ln.Run) -> None:
    """bulk_create of 1,000 rows: the triggers write the 1,000 events, Python sends none."""
    project = Project(name="bulk").save()
    with sent(db) as seen:
        Sample.bulk_create([{"name": f"s{i}", "project_id": project.id} for i in range(1_000)])
    assert not [s for s in seen if "lineage_record_event" in s.sql]
    assert len(events("sample")) == 1_000
    assert Sample.filter(run_id=run.id).count() == 1_000


def test_cell_number_is_stamped(db: ln.Database, run: ln.Run) -> None:
    """The current notebook cell (execution count) is recorded on events."""
    ln.context.set_cell(7)
    Project(name="in cell 7").save()
    assert events("project")[0].cell == 7


def test_tracked_save_costs_at_most_one_statement_more(db: ln.Database, run: ln.Run) -> None:
    """A tracked save() sends its INSERT and at most the context statement; none per save after."""
    with sent(db) as alone:
        Project(name="alone").save()
    writes = [s.sql for s in alone if not s.sql.lstrip().upper().startswith(("BEGIN", "COMMIT"))]
    assert writes[-1].lstrip().upper().startswith("INSERT INTO PROJECT")
    assert len(writes) <= 2, writes  # the INSERT, plus set_config on PostgreSQL
    checkouts: list[object] = []
    listener = lambda *_args: checkouts.append(1)  # noqa: E731
    from sqlalchemy import event

    event.listen(db.engine, "checkout", listener)
    try:
        with sent(db) as inside, ln.atomic():
            for i in range(5):
                Project(name=f"inside {i}").save()
    finally:
        event.remove(db.engine, "checkout", listener)
    assert len(checkouts) == 1  # one session and connection for the whole block
    inserts = [s for s in inside if s.sql.lstrip().upper().startswith("INSERT INTO PROJECT")]
    context = [s for s in inside if "set_config" in s.sql]
    assert len(inserts) == 5 and len(context) == (1 if db.dialect == "postgresql" else 0)


class _OwnRunColumn(ln.Model):
    """A user model with a column that happens to be called run_id: lineage leaves it alone."""

    __tablename__ = "own_run_column"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None]


def test_model_with_its_own_run_id_keeps_it(db: ln.Database, run: ln.Run) -> None:
    """A user's own run_id column is not a stamp: save, bulk_create and raw SQL keep its value."""
    db.create_all()
    record = _OwnRunColumn(run_id=4242).save()
    _OwnRunColumn.bulk_create([{"run_id": 77}])
    with db.session() as session, session.begin():
        session.execute(text("UPDATE own_run_column SET run_id = run_id + 1"))
    assert sorted(r.run_id for r in _OwnRunColumn.objects().all()) == [78, 4243]
    assert record.run_id == 4242
    assert [e.action for e in events("own_run_column")] == ["insert", "insert", "update", "update"]


def test_own_stamp_column_on_a_tracked_model_is_an_error() -> None:
    """Defining run_id (or created_at...) on a TracksRun model is refused at class definition."""
    with pytest.raises(UsageError) as info:

        class ClashRun(ln.Model, ln.TracksRun):
            __tablename__ = "clash_run"
            id: Mapped[int] = mapped_column(primary_key=True)
            run_id: Mapped[int | None] = mapped_column(nullable=True)

    assert "run_id" in str(info.value) and "TracksRun" in str(info.value)
    with pytest.raises(UsageError) as info:

        class ClashUpdated(ln.TracksUpdates, ln.Model):
            __tablename__ = "clash_updated"
            id: Mapped[int] = mapped_column(primary_key=True)
            updated_at: Mapped[str | None]

    assert "updated_at" in str(info.value) and "TracksUpdates" in str(info.value)
    assert not {"clash_run", "clash_updated"} & set(ln.Model.metadata.tables)  # none half-made


def test_two_threads_two_users_stamp_their_own(db: ln.Database, tmp_path: Path) -> None:
    """Two threads, each in its own run of a different user, interleave writes: each row and
    event carries the user of the run that wrote it."""
    script = tmp_path / "threads.py"
    script.write_text("print('threads')\n")
    start = threading.Barrier(2)
    errors: list[BaseException] = []
    runs: dict[str, int] = {}

    def work(handle: str) -> None:
        try:
            run = ln.track(script, user=handle)
            runs[handle] = run.id
            start.wait()
            for i in range(20):
                Project(name=f"{handle} {i}").save()
                time.sleep(0.001)
            ln.finish(run=run)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(h,)) for h in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    users = {u.id: u.handle for u in ln.User.objects().all()}
    for project in Project.objects().all():
        handle = project.name.split()[0]
        assert (users[project.created_by_id], project.run_id) == (handle, runs[handle])
    for event_row in events("project"):
        assert event_row.run_id == runs[users[event_row.user_id]]


def test_new_user_inside_atomic_rolled_back_is_not_remembered(
    db: ln.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user first seen inside ln.atomic() is created on the writing connection (no second
    connection waiting on the lock); rolled back, it is created again by the next write."""
    monkeypatch.setenv("LINEAGE_NB_USER", "newcomer")
    started = time.monotonic()
    with pytest.raises(RuntimeError), ln.atomic():
        Project(name="rolled back").save()
        raise RuntimeError
    assert time.monotonic() - started < 5
    project = Project(name="kept").save()
    assert ln.User.get(project.created_by_id).handle == "newcomer"
    assert [e.user_id for e in events("project")] == [project.created_by_id]
