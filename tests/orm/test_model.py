"""Active-record writes and reads of ln.Model: save, update, upsert, delete, load, get."""

from __future__ import annotations

import pytest
from models import Project, Sample
from sqlalchemy import func, select

import lineage_nb as ln
from lineage_nb.errors import IntegrityError, ModelPersistenceError, NotFound, ValidationError


def count_rows(db: ln.Database, model: type) -> int:
    with db.session() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def test_save_inserts_then_updates(db: ln.Database) -> None:
    """save() inserts a new record and updates it once stored, by state not by pk."""
    project = Project(name="alpha").save()
    assert project.id is not None
    project.name = "beta"
    project.save()
    assert Project.get(project.id).name == "beta"
    assert count_rows(db, Project) == 1


def test_save_with_explicit_pk_inserts(db: ln.Database) -> None:
    """A new record with its pk set is inserted, not updated."""
    Project(id=42, name="explicit").save()
    assert Project.get(42).name == "explicit"


def test_save_force_insert_on_stored_pk_raises(db: ln.Database) -> None:
    """force_insert on a stored record raises IntegrityError and changes nothing."""
    project = Project(name="alpha").save()
    project.name = "other"
    with pytest.raises(IntegrityError) as info:
        project.save(force_insert=True)
    assert info.value.model == "Project"
    assert Project.get(project.id).name == "alpha"
    assert project.name == "other"


def test_save_force_update_on_missing_row_raises(db: ln.Database) -> None:
    """force_update of a record that is not stored raises NotFound and inserts nothing."""
    with pytest.raises(NotFound):
        Project(id=99, name="ghost").save(force_update=True)
    assert count_rows(db, Project) == 0


def test_save_update_fields_writes_only_those(db: ln.Database) -> None:
    """update_fields writes the listed fields; other changes stay pending in memory."""
    project = Project(name="p").save()
    sample = Sample(name="s", value=1.0, project=project).save()
    sample.name = "renamed"
    sample.value = 2.0
    sample.save(update_fields=["value"])
    stored = Sample.get(sample.id)
    assert (stored.name, stored.value) == ("s", 2.0)
    assert sample.name == "renamed"
    sample.save()
    assert Sample.get(sample.id).name == "renamed"


def test_update_sets_kwargs_and_writes(db: ln.Database) -> None:
    """update(**kwargs) sets and writes the fields."""
    project = Project(name="p").save()
    sample = Sample(name="s", value=1.0, project_id=project.id).save()
    sample.update(value=5.5)
    assert Sample.get(sample.id).value == 5.5


def test_update_columns_limits_write(db: ln.Database) -> None:
    """update(_columns=[...]) writes only the named columns plus the kwargs."""
    project = Project(name="p").save()
    sample = Sample(name="s", value=1.0, project_id=project.id).save()
    sample.name = "local only"
    sample.update(_columns=["value"], value=3.0)
    stored = Sample.get(sample.id)
    assert (stored.name, stored.value) == ("s", 3.0)


def test_update_transient_with_pk_updates_row(db: ln.Database) -> None:
    """update() on a fresh object carrying a stored pk updates that row (ormar semantics)."""
    project = Project(name="p").save()
    Project(id=project.id, name="via pk").update()
    assert Project.get(project.id).name == "via pk"


def test_update_without_pk_raises(db: ln.Database) -> None:
    """update() on a record without a pk raises ModelPersistenceError."""
    with pytest.raises(ModelPersistenceError) as info:
        Project(name="nopk").update(name="x")
    assert "primary key" in str(info.value)
    assert count_rows(db, Project) == 0


def test_update_unknown_field_raises_naming_it(db: ln.Database) -> None:
    """An unknown field in update() raises ValidationError naming the field."""
    project = Project(name="p").save()
    with pytest.raises(ValidationError) as info:
        project.update(nmae="typo")
    assert info.value.field == "nmae"
    assert "Known fields" in str(info.value)
    assert Project.get(project.id).name == "p"


def test_update_missing_row_raises_not_found(db: ln.Database) -> None:
    """update() of a pk that is not in the database raises NotFound."""
    with pytest.raises(NotFound):
        Project(id=1234, name="x").update(name="y")
    assert count_rows(db, Project) == 0


def test_upsert_saves_or_updates_by_pk(db: ln.Database) -> None:
    """upsert(): no pk -> save (kwargs ignored); pk -> update(**kwargs)."""
    project = Project(name="first").upsert(name="ignored")
    assert Project.get(project.id).name == "first"
    project.upsert(name="second")
    assert Project.get(project.id).name == "second"
    assert count_rows(db, Project) == 1


def test_delete_returns_count_and_object_can_be_saved_again(db: ln.Database) -> None:
    """delete() returns 1; the object stays usable and save() re-inserts it."""
    project = Project(name="gone").save()
    pk = project.id
    assert project.delete() == 1
    assert count_rows(db, Project) == 0
    assert project.name == "gone"
    project.save()
    assert Project.get(pk).name == "gone"


def test_delete_missing_row_raises_not_found(db: ln.Database) -> None:
    """Deleting a row that does not exist raises NotFound."""
    project = Project(name="x").save()
    project.delete()
    with pytest.raises(NotFound):
        Project(id=project.id, name="x").delete()


def test_delete_without_pk_raises(db: ln.Database) -> None:
    """delete() of an unsaved record raises ModelPersistenceError."""
    with pytest.raises(ModelPersistenceError):
        Project(name="never saved").delete()


def test_delete_referenced_row_raises_and_keeps_it(db: ln.Database) -> None:
    """Deleting a row other rows reference raises IntegrityError; nothing is deleted."""
    project = Project(name="parent").save()
    Sample(name="child", project=project).save()
    with pytest.raises(IntegrityError) as info:
        project.delete()
    assert "referenced" in str(info.value)
    assert count_rows(db, Project) == 1


def test_load_refreshes_and_drops_local_changes(db: ln.Database) -> None:
    """load() reloads columns from the database."""
    project = Project(name="stored").save()
    Project.get(project.id).update(name="changed elsewhere")
    project.name = "local"
    assert project.load().name == "changed elsewhere"


def test_load_missing_row_raises(db: ln.Database) -> None:
    """load() of a deleted row raises NotFound."""
    project = Project(name="x").save()
    Project.get(project.id).delete()
    with pytest.raises(NotFound) as info:
        project.load()
    assert info.value.model == "Project"


def test_refresh_from_db_only_given_fields(db: ln.Database) -> None:
    """refresh_from_db(fields) reloads only those fields."""
    project = Project(name="p").save()
    sample = Sample(name="s", value=1.0, project=project).save()
    Sample.get(sample.id).update(name="n2", value=9.0)
    sample.refresh_from_db(fields=["value"])
    assert (sample.name, sample.value) == ("s", 9.0)


def test_get_missing_raises_not_found(db: ln.Database) -> None:
    """get() of an unknown pk raises NotFound (a LookupError) naming the model and key."""
    with pytest.raises(LookupError) as info:
        Project.get(404)
    assert isinstance(info.value, NotFound)
    assert "Project" in str(info.value) and "404" in str(info.value)


def test_constructor_rejects_unknown_field(db: ln.Database) -> None:
    """Model(unknown=...) raises ValidationError naming the field."""
    with pytest.raises(ValidationError) as info:
        Project(title="x")
    assert info.value.field == "title"


def test_pk_serializable_value_and_repr(db: ln.Database) -> None:
    """pk, serializable_value of a relation, get_deferred_fields and repr."""
    project = Project(name="p").save()
    sample = Sample(name="s", project=project).save()
    assert sample.pk == sample.id
    assert sample.serializable_value("project") == project.id
    assert sample.serializable_value("name") == "s"
    assert sample.get_deferred_fields() == set()
    assert repr(project).startswith("Project(id=")


def test_closed_database_raises_configuration_error(db: ln.Database) -> None:
    """Writing after close() raises ConfigurationError with a hint."""
    db.close()
    with pytest.raises(ln.errors.ConfigurationError) as info:
        Project(name="late").save()
    assert "connect" in str(info.value)


def test_other_copy_in_atomic_block(db: ln.Database) -> None:
    """Saving a copy of a row already loaded in the same atomic() block writes the copy's values."""
    outside = Project(name="before").save()
    with ln.atomic():
        inside = Project.get(outside.id)
        inside.name = "inside"
        inside.save()
        outside.name = "outside"
        outside.save()
    assert Project.get(outside.id).name == "outside"
    assert [e.action for e in outside.history()] == ["insert", "update", "update"]


def test_refresh_reloads_the_related_record_with_its_key(db: ln.Database) -> None:
    """refresh_from_db() after another writer moved the record: the relation follows the key,
    a pending relation change is dropped, and the next save() keeps the database's value."""
    first, second = Project(name="first").save(), Project(name="second").save()
    sample = Sample(name="s", value=1.0, project=first).save()
    Sample.get(sample.id).update(project_id=second.id)  # another copy of the row
    sample.refresh_from_db()
    assert (sample.project_id, sample.project.id, sample.project.name) == (
        second.id,
        second.id,
        "second",
    )
    sample.name = "renamed"
    sample.save()
    assert Sample.get(sample.id).project_id == second.id
    sample.project = first  # a pending change, then reloaded from the database
    sample.refresh_from_db()
    assert sample.project.id == second.id
    sample.save()
    assert Sample.get(sample.id).project_id == second.id


def test_refresh_with_no_fields_reloads_nothing(db: ln.Database) -> None:
    """refresh_from_db(fields=[]) reloads nothing and keeps pending changes (as Django)."""
    project = Project(name="kept").save()
    project.name = "pending"
    project.refresh_from_db(fields=[])
    assert project.name == "pending"
    project.save()
    assert Project.get(project.id).name == "pending"


def test_save_update_fields_with_relation_names(db: ln.Database) -> None:
    """update_fields accepts a many-to-one relation's name (its key column is written); a
    relation not listed stays pending; [] saves nothing and sends no signal; post_save gets
    update_fields."""
    first, second = Project(name="first").save(), Project(name="second").save()
    sample = Sample(name="s", value=1.0, project=first).save()
    received: list[object] = []

    def on_save(sender: type, **kwargs: object) -> None:
        received.append(kwargs.get("update_fields"))

    ln.signals.post_save.connect(on_save, sender=Sample)
    try:
        sample.project = second
        sample.name = "renamed"
        sample.save(update_fields=["name"])
        assert Sample.get(sample.id).project_id == first.id  # the relation was not listed
        sample.save(update_fields=["project"])
        stored = Sample.get(sample.id)
        assert (stored.project_id, stored.name) == (second.id, "renamed")
        sample.value = 9.0
        sample.save(update_fields=[])
        assert Sample.get(sample.id).value == 1.0
        assert received == [["name"], ["project"]]
    finally:
        ln.signals.post_save.disconnect(on_save, sender=Sample)
    with pytest.raises(ValidationError) as info:
        first.save(update_fields=["samples"])
    assert info.value.field == "samples" and "not a column" in str(info.value)


def test_save_after_another_process_deleted_the_row(db: ln.Database) -> None:
    """A changed record whose row was deleted elsewhere: save() raises NotFound whose hint
    works — save(force_insert=True) puts the row back with its key and values."""
    project = Project(name="gone").save()
    Project.get(project.id).delete()  # another copy: the row is gone
    project.name = "back"
    with pytest.raises(NotFound) as info:
        project.save()
    assert "force_insert=True" in str(info.value.hint)
    project.save(force_insert=True)
    assert Project.get(project.id).name == "back"
    project.name = "again"
    project.save()
    assert Project.get(project.id).name == "again"


def test_unchanged_save_after_another_process_deleted_the_row(db: ln.Database) -> None:
    """save() without changes of a record whose row was deleted elsewhere does not pretend the
    row is stored: NotFound, whose hint (force_insert=True) puts it back."""
    project = Project(name="gone").save()
    Project.get(project.id).delete()
    with pytest.raises(NotFound, match="deleted since it was read") as info:
        project.save()
    assert "force_insert=True" in str(info.value.hint)
    assert Project.filter(id=project.id).count() == 0
    project.save(force_insert=True)
    assert Project.get(project.id).name == "gone"
    project.save()  # stored again: an unchanged save() is fine


def test_serializable_value_of_a_relation_is_its_key(db: ln.Database) -> None:
    """serializable_value("project") is the key column's value: when only project_id is set,
    and on a record from get() whose relation was never loaded."""
    project = Project(name="p").save()
    only_key = Sample(name="s", value=1.0, project_id=project.id)
    assert only_key.serializable_value("project") == project.id
    only_key.save()
    assert Sample.get(only_key.id).serializable_value("project") == project.id
    assert Sample(name="t", project=project).serializable_value("project") == project.id
    with pytest.raises(ValidationError):
        project.serializable_value("samples")


def test_pk_setter_and_equality_of_copies(db: ln.Database) -> None:
    """obj.pk = value sets the key; two copies of one stored row are equal and hash alike, so
    `record in Model.filter().all()` works; unsaved records are equal only to themselves."""
    project = Project(name="p").save()
    copy = Project.get(project.id)
    assert copy == project and hash(copy) == hash(project) and copy in Project.filter().all()
    assert len({project, copy}) == 1
    other = Project(name="q").save()
    assert other != project
    unsaved = Project(name="u")
    assert unsaved != Project(name="u") and unsaved == unsaved
    with pytest.raises(TypeError, match="unhashable"):
        hash(unsaved)
    explicit = Project(name="explicit")
    explicit.pk = 4242
    explicit.save()
    assert Project.get(4242).name == "explicit"


def test_changing_the_key_saves_a_new_row(db: ln.Database) -> None:
    """As in Django and ormar: a stored record given another key (or None: a copy) is inserted
    as a new row; the old row stays as it was."""
    project = Project(name="original").save()
    original_id = project.id
    project.id = None
    project.name = "copy"
    project.save()
    assert project.id != original_id
    assert Project.get(original_id).name == "original" and Project.get(project.id).name == "copy"
    project.pk = 9_999
    project.name = "moved copy"
    project.save()
    assert {p.name for p in Project.objects().all()} == {"original", "copy", "moved copy"}
    actions = [e.action for e in ln.RecordEvent.filter(table="project").all()]
    assert actions == ["insert", "insert", "insert"]


def test_records_stay_usable_after_an_atomic_block_fails(db: ln.Database) -> None:
    """After an exception rolls an atomic() block back, the records it touched read as the
    database has them (nothing of the block), and can be saved and updated again."""
    project = Project(name="before").save()
    with pytest.raises(RuntimeError), ln.atomic():
        project.name = "inside"
        project.save()
        sample = Sample(name="new in block", value=1.0, project=project).save()
        raise RuntimeError
    assert project.name == "before"
    assert sample.name == "new in block" and sample.id is None
    project.update(name="after")
    sample.save()
    assert (
        Project.get(project.id).name == "after" and Sample.get(sample.id).project_id == project.id
    )
