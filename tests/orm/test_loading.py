"""Related records: load_all (eager, statement count by depth), save_related, bulk_create."""

from __future__ import annotations

import pytest
from models import Measurement, Project, Sample
from sqlalchemy import func, select
from sqlcount import statements

import lineage_nb as ln
from lineage_nb.errors import NotFound, ValidationError


def make_project(children: int, measurements: int = 0) -> Project:
    project = Project(name=f"p{children}").save()
    samples = Sample.bulk_create(
        [Sample(name=f"s{i}", value=float(i), project_id=project.id) for i in range(children)]
    )
    if measurements:
        Measurement.bulk_create(
            [
                Measurement(reading=float(j), sample_id=s.id)
                for s in samples
                for j in range(measurements)
            ]
        )
    return project


def test_load_all_statements_depend_on_depth_not_rows(db: ln.Database) -> None:
    """load_all() of 10 and of 1,000 children sends the same number of statements."""
    small, large = make_project(10), make_project(1_000)
    with statements(db) as small_statements:
        small.load_all()
    with statements(db) as large_statements:
        large.load_all()
    assert len(large.samples) == 1_000
    selects = [s for s in large_statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2  # the project (+ joined run/user), then its samples
    assert len(large_statements) == len(small_statements)


def test_load_all_follow_depth_two_constant_statements(db: ln.Database) -> None:
    """follow=True walks samples -> measurements; statements stay constant in row count."""
    small, large = make_project(5, measurements=2), make_project(1_000, measurements=2)
    with statements(db) as small_statements:
        small.load_all(follow=True)
    with statements(db) as large_statements:
        large.load_all(follow=True)
    assert sum(len(s.measurements) for s in large.samples) == 2_000
    assert len(large_statements) == len(small_statements) <= 4


def test_load_all_follow_visits_each_model_once_per_path(db: ln.Database) -> None:
    """From a sample: project (and its samples) are loaded, but not followed further."""
    project = make_project(3, measurements=1)
    sample = Sample.get(project.id and 1)
    sample.load_all(follow=True)
    assert sample.project.name == project.name
    assert len(sample.measurements) == 1
    siblings = sample.project.samples
    assert len(siblings) == 3
    other = next(s for s in siblings if s.id != sample.id)
    assert "measurements" not in other.__dict__  # A -> B -> A: the second A is not followed


def test_load_all_exclude_and_order_by(db: ln.Database) -> None:
    """exclude skips a relation; order_by sorts a loaded collection (\"-\" = descending)."""
    project = make_project(5)
    project.load_all(order_by="-samples__value")
    assert [s.value for s in project.samples] == [4.0, 3.0, 2.0, 1.0, 0.0]
    fresh = Project.get(project.id)
    fresh.load_all(exclude=["samples"])
    assert "samples" not in fresh.__dict__


def test_load_all_refreshes_own_columns_and_missing_row(db: ln.Database) -> None:
    """load_all() refreshes the record itself; a deleted row raises NotFound."""
    project = make_project(1)
    Project.get(project.id).update(name="renamed")
    assert project.load_all().name == "renamed"
    ghost = Project(name="ghost").save()
    Project.get(ghost.id).delete()
    with pytest.raises(NotFound):
        ghost.load_all()


def test_save_related_counts_saved(db: ln.Database) -> None:
    """save_related saves unsaved related records (all with save_all) and returns the count."""
    project = make_project(2)
    project.load_all()
    project.samples[0].value = 100.0
    assert project.save_related() == 1
    assert Sample.get(project.samples[0].id).value == 100.0
    assert project.save_related(save_all=True) == 2


def test_save_related_follow_saves_deep_new_records(db: ln.Database) -> None:
    """follow=True also saves new records related to related records."""
    project = make_project(1)
    project.load_all(follow=True)
    sample = project.samples[0]
    sample.measurements.append(Measurement(reading=1.5))
    assert project.save_related(follow=True) == 1
    assert Measurement.filter(sample_id=sample.id).count() == 1


def test_bulk_create_instances_and_dicts(db: ln.Database) -> None:
    """bulk_create fills primary keys of instances and dicts; instances become stored."""
    project = Project(name="bulk").save()
    instances = Sample.bulk_create([Sample(name=f"i{i}", project=project) for i in range(3)])
    assert all(s.id is not None for s in instances)
    instances[0].update(value=7.0)
    assert Sample.get(instances[0].id).value == 7.0
    rows = Sample.bulk_create([{"name": f"d{i}", "project_id": project.id} for i in range(3)])
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert Sample.filter(project_id=project.id).count() == 6


def test_bulk_create_batches_within_parameter_limit(db: ln.Database) -> None:
    """12,000 rows insert in batches; statement count is far below the row count."""
    project = Project(name="many").save()
    with statements(db) as seen:
        Sample.bulk_create([{"name": f"n{i}", "project_id": project.id} for i in range(12_000)])
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT INTO SAMPLE")]
    assert 1 < len(inserts) < 20
    with db.session() as session:
        assert session.execute(select(func.count()).select_from(Sample)).scalar_one() == 12_000


def test_bulk_create_invalid_record_writes_nothing(db: ln.Database) -> None:
    """One bad record in bulk_create raises ValidationError naming it; nothing is written."""
    project = Project(name="p").save()
    records = [
        {"name": "ok", "project_id": project.id},
        {"name": "x" * 101, "project_id": project.id},
    ]
    with pytest.raises(ValidationError) as info:
        Sample.bulk_create(records)
    assert info.value.field == "name"
    assert Sample.objects().count() == 0
    with pytest.raises(ValidationError) as unknown:
        Sample.bulk_create([{"nme": "typo", "project_id": project.id}])
    assert unknown.value.field == "nme"


def test_detached_records_load_missing_relations_and_columns_on_access(db: ln.Database) -> None:
    """Never-loaded relations, relations left out by load_all(exclude=...) and deferred columns
    are read on first access (Django), not DetachedInstanceError; inside a run that is a read."""
    from models import Document

    project = Project(name="p").save()
    sample = Sample(name="s", value=1.0, project=project).save()
    Document(title="t", body="long text").save()
    fetched = Sample.get(sample.id)
    assert fetched.project.name == "p"
    assert [s.name for s in Project.get(project.id).samples] == ["s"]
    assert Project.get(project.id).load_all(exclude="samples").samples[0].name == "s"
    document = Document.filter(title="t").one()
    assert "body" in document.get_deferred_fields()
    assert document.body == "long text"
    run = ln.track(__file__)
    Sample.get(sample.id).project  # noqa: B018 - the access is the read
    frame = run.inputs_df()
    assert ("project", str(project.id)) in set(zip(frame["table"], frame["pk"], strict=True))
    ln.finish()
    assert Sample.get(sample.id).measurements == []  # an empty collection, read on access
