"""Run inputs: reads only note them; they are written with the run's next write, at finish, on
lineage queries, or when too many wait — and a rolled-back write gives them back."""

from __future__ import annotations

import pytest
from models import Project, Sample
from sqlalchemy import select
from sqlcount import statements

import lineage_nb as ln
from lineage_nb.errors import IntegrityError
from lineage_nb.lineage import inputs


def stored_inputs(db: ln.Database, run: ln.Run) -> set[tuple[str, str]]:
    """The run's inputs as stored, read on a plain connection (nothing is written first)."""
    statement = select(ln.RunInput.table, ln.RunInput.pk).where(ln.RunInput.run_id == run.id)
    with db.engine.connect() as connection:
        return {(t, p) for t, p in connection.execute(statement)}


@pytest.fixture
def project(db: ln.Database) -> Project:
    """A project with three samples, written outside any run."""
    made = Project(name="p").save()
    for i in range(3):
        Sample(name=f"s{i}", value=float(i), project=made).save()
    return made


def all_keys(project: Project) -> set[tuple[str, str]]:
    samples = Sample.filter(project_id=project.id).all()
    return {("project", str(project.id))} | {("sample", str(s.id)) for s in samples}


def test_load_all_sends_only_its_selects(db: ln.Database, project: Project) -> None:
    """Reading in a run is depth + 1 SELECTs: noting inputs writes nothing yet."""
    run = ln.track(__file__)
    with statements(db) as seen:
        Project.get(project.id).load_all()
    assert seen and all(sql.lstrip().upper().startswith("SELECT") for sql in seen), seen
    assert stored_inputs(db, run) == set()
    ln.finish()
    assert stored_inputs(db, run) == all_keys(project)


def test_inputs_land_in_the_next_write_transaction(db: ln.Database, project: Project) -> None:
    """A derived record and the inputs it came from are written together."""
    run = ln.track(__file__)
    Project.get(project.id).load_all()
    with statements(db) as seen:
        Project(name="derived").save()
    assert any("lineage_run_input" in sql for sql in seen)
    assert stored_inputs(db, run) == all_keys(project)
    ln.finish()


def test_rolled_back_write_gives_inputs_back(db: ln.Database, project: Project) -> None:
    run = ln.track(__file__)
    Project.get(project.id).load_all()
    with pytest.raises(IntegrityError):
        Sample(name="orphan", value=1.0, project_id=999_999).save()  # FK refused: rolls back
    assert stored_inputs(db, run) == set()
    ln.finish()
    assert stored_inputs(db, run) == all_keys(project)


def test_atomic_rollback_gives_inputs_back(db: ln.Database, project: Project) -> None:
    run = ln.track(__file__)
    Project.get(project.id).load_all()
    with pytest.raises(RuntimeError), ln.atomic():
        Project(name="derived").save()
        raise RuntimeError("undo")
    assert stored_inputs(db, run) == set()
    assert len(run.inputs_df()) == len(all_keys(project))
    assert stored_inputs(db, run) == all_keys(project)


def test_lineage_queries_see_inputs_not_yet_written(db: ln.Database, project: Project) -> None:
    run = ln.track(__file__)
    Project.get(project.id).load_all()
    graph = run.lineage()
    used = {v for v, _w, d in graph.in_edges(("run", run.id), data=True) if d["relation"] == "used"}
    assert {("record", t, p) for t, p in all_keys(project)} <= used
    ln.finish()


def test_too_many_waiting_are_written_by_the_read(
    db: ln.Database, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "MAX_PENDING", 2)
    run = ln.track(__file__)
    Project.get(project.id).load_all()  # 4 records read: more than 2 wait
    assert stored_inputs(db, run) == all_keys(project)
    ln.finish()


def test_each_record_is_an_input_once_and_own_writes_are_not(
    db: ln.Database, project: Project
) -> None:
    run = ln.track(__file__)
    mine = Project(name="mine").save()
    for _ in range(3):
        Project.get(project.id)
        Project.get(mine.id)
    ln.finish()
    assert stored_inputs(db, run) == {("project", str(project.id))}


def test_rolled_back_savepoint_gives_back_only_its_inputs(db: ln.Database, project: Project) -> None:
    """Inputs written inside a rolled-back savepoint wait again; those written before it stay."""
    run = ln.track(__file__)
    other = Project(name="other").save()
    ln.finish()
    run = ln.track(__file__)
    with ln.atomic():
        Project.get(other.id)
        Project(name="kept").save()  # writes the 'other' input in the outer transaction
        Project.get(project.id).load_all()
        with pytest.raises(RuntimeError), ln.atomic():  # a savepoint
            Project(name="undone").save()  # writes the project's inputs, then rolls back
            raise RuntimeError("undo the savepoint")
    assert stored_inputs(db, run) == {("project", str(other.id))}
    ln.finish()
    assert stored_inputs(db, run) == {("project", str(other.id))} | all_keys(project)
