"""Run inputs: reads only note them; they are written with the run's next write, at finish, on
lineage queries, or when too many wait — and a rolled-back write gives them back."""

from __future__ import annotations

import pandas as pd
import pytest
from models import Project, Sample
from sqlalchemy import select
from sqlcount import statements

import lineage_nb as ln
from lineage_nb.errors import IntegrityError
from lineage_nb.lineage import _keyset, reads


def stored_inputs(db: ln.Database, run: ln.Run) -> set[tuple[str, str]]:
    """The run's inputs as stored, read on a plain connection (nothing is written first)."""
    statement = select(ln.RunInput.table, ln.RunInput.pk, ln.RunInput.keys).where(
        ln.RunInput.run_id == run.id
    )
    with db.engine.connect() as connection:
        rows = connection.execute(statement).all()
    return {(t, k) for t, p, packed in rows for k in ([p] if p else _keyset.decode(packed))}


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
    monkeypatch.setattr(reads, "MAX_PENDING", 2)
    run = ln.track(__file__)
    Project.get(project.id).load_all()  # 4 records read: more than 2 wait
    Project.filter(name="nothing").all()  # the next read writes them first
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
    frame = run.inputs_df()
    assert list(zip(frame["table"], frame["pk"], strict=True)) == [("project", str(project.id))]


def test_rolled_back_savepoint_gives_back_only_its_inputs(
    db: ln.Database, project: Project
) -> None:
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


# -- every read path is an input, pinned to the version read ----------------------------------------
def versions_read(run: ln.Run) -> dict[tuple[str, str], int | None]:
    frame = run.inputs_df()
    return {
        (t, p): (None if pd.isna(v) else int(v))
        for t, p, v in zip(frame["table"], frame["pk"], frame["read_version"], strict=True)
    }


def latest_event(record: object) -> int:
    return int(record.history()[-1].id)  # type: ignore[attr-defined]


def sample_keys(project: Project) -> dict[tuple[str, str], int]:
    return {
        ("sample", str(s.id)): latest_event(s) for s in Sample.filter(project_id=project.id).all()
    }


READ_PATHS = {
    "get": lambda p: Sample.get(Sample.filter(project_id=p.id).order_by("id").first().id),
    "query_all": lambda p: Sample.filter(project_id=p.id).all(),
    "query_first": lambda p: Sample.filter(project_id=p.id).order_by("id").first(),
    "query_one": lambda p: Sample.filter(name="s0").one(),
    "query_iteration": lambda p: list(Sample.filter(project_id=p.id)),
    "query_df": lambda p: Sample.filter(project_id=p.id).df(),
    "model_df": lambda p: Sample.df(),
    "load": lambda p: Project.get(p.id).load(),
    "load_all": lambda p: Project.get(p.id).load_all(),
}


@pytest.mark.parametrize("path", sorted(READ_PATHS))
def test_each_read_path_is_an_input_at_its_version(
    db: ln.Database, project: Project, path: str
) -> None:
    """Every way of reading a tracked model in a run notes the records with the version read."""
    Sample.filter(name="s0").one().update(value=5.0)  # s0's version is now its update event
    expected = sample_keys(project)
    run = ln.track(__file__)
    READ_PATHS[path](project)
    found = versions_read(run)
    ln.finish()
    samples = {k: v for k, v in found.items() if k[0] == "sample"}
    if path in ("get", "query_first", "query_one"):
        (key,) = samples
        assert samples[key] == expected[key]
    elif path == "load":
        assert found == {("project", str(project.id)): latest_event(project)}
    else:
        assert samples == expected
    assert all(v is not None for v in found.values())


def test_plain_session_reads_are_inputs(db: ln.Database, project: Project) -> None:
    """session.get, session.scalars(select(M)) and relationship loads on db.session()."""
    expected = sample_keys(project)
    first = min(expected)
    run = ln.track(__file__)
    with db.session() as session:
        session.get(Sample, int(first[1]))
    assert set(versions_read(run)) == {first}
    with db.session() as session:
        list(session.scalars(select(Sample)))
    assert versions_read(run) == expected
    with db.session() as session:
        loaded = session.get(Project, project.id)
        assert loaded is not None
        assert len(loaded.samples) == 3  # a lazy relationship load
    assert versions_read(run) == {**expected, ("project", str(project.id)): latest_event(project)}
    ln.finish()


def test_refresh_from_db_is_a_read(db: ln.Database, project: Project) -> None:
    run = ln.track(__file__)
    project.refresh_from_db()
    assert versions_read(run) == {("project", str(project.id)): latest_event(project)}
    ln.finish()


async def test_async_reads_are_inputs(db: ln.Database, project: Project) -> None:
    expected = sample_keys(project)
    run = ln.track(__file__)
    await Sample.aget(int(min(expected)[1]))
    await Sample.filter(project_id=project.id).aall()
    await (await Project.aget(project.id)).aload_all()
    found = versions_read(run)
    ln.finish()
    assert {k: v for k, v in found.items() if k[0] == "sample"} == expected
    assert found[("project", str(project.id))] == latest_event(project)


def test_read_version_is_the_version_read_and_changes_show(
    db: ln.Database, project: Project
) -> None:
    """A record changed after the read keeps its read version; changed_since says so; a reread
    pins the newer version."""
    sample = Sample.filter(name="s1").one()
    before = latest_event(sample)
    run = ln.track(__file__)
    Sample.get(sample.id)
    ln.context.set_run(None)  # another writer, outside the run
    sample.update(value=42.0)
    ln.context.set_run(run)
    frame = run.inputs_df().set_index("pk")
    assert int(frame.loc[str(sample.id), "read_version"]) == before
    assert int(frame.loc[str(sample.id), "current_version"]) == latest_event(sample)
    assert bool(frame.loc[str(sample.id), "changed_since"])
    Sample.get(sample.id)  # read again: the newer version is an input too
    frame = run.inputs_df()
    mine = frame[frame["pk"] == str(sample.id)]
    assert list(zip(mine["read_version"], mine["changed_since"], strict=True)) == [
        (before, True),
        (latest_event(sample), False),
    ]
    ln.finish()


# -- showing is not using --------------------------------------------------------------------------
def test_untracked_reads_note_nothing(db: ln.Database, project: Project) -> None:
    run = ln.track(__file__)
    with ln.untracked_reads():
        Sample.df()
        Project.get(project.id).load_all()
        Sample.filter(project_id=project.id).all()
    assert versions_read(run) == {}
    ln.finish()


async def test_async_untracked_reads_note_nothing(db: ln.Database, project: Project) -> None:
    run = ln.track(__file__)
    async with ln.untracked_reads():
        await Sample.filter(project_id=project.id).aall()
        await (await Project.aget(project.id)).aload_all()
    assert versions_read(run) == {}
    ln.finish()


def test_display_paths_note_nothing(db: ln.Database, project: Project) -> None:
    """HTML reprs, lineage queries, the browser's pages and detail, stale/as_of/diff."""
    from lineage_nb.widgets._source import PagedSource

    record = Project.filter(name="p").one()
    sample_id = Sample.filter(name="s0").one().id
    run = ln.track(__file__)
    record._repr_html_()
    record.history_df()
    record.lineage()
    record.is_stale()
    source = PagedSource(Sample)
    source.page(0, 10)
    source.get(sample_id)
    Project.as_of(run).df()
    record.as_of(run)
    ln.diff(run, run)
    ln.stale()
    assert versions_read(run) == {}
    ln.finish()
