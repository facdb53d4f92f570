"""Our errors: classes, pickling, and the messages a new user gets for bad input."""

from __future__ import annotations

import pickle

import pytest
from models import Measurement, Project, Sample

import lineage_nb as ln
from lineage_nb import errors
from lineage_nb.errors import ConfigurationError, LineageError


def test_error_classes_subclass_builtins() -> None:
    """Each error derives from LineageError and its closest built-in exception."""
    assert issubclass(errors.ValidationError, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    assert issubclass(errors.NoRunError, RuntimeError)
    for cls in (errors.ValidationError, errors.NotFound, errors.IntegrityError,
                errors.ModelPersistenceError, errors.NoRunError, errors.ConfigurationError):
        assert issubclass(cls, errors.LineageError)


def test_errors_pickle_with_their_data() -> None:
    """Errors survive pickling with field, value, hint and error_dict."""
    original = errors.ValidationError({"name": ["too long"]}, model="Sample", value="x" * 5)
    copy = pickle.loads(pickle.dumps(original))
    assert (copy.field, copy.value, copy.error_dict, str(copy)) == (
        "name", "xxxxx", {"name": ["too long"]}, str(original))
    not_found = pickle.loads(pickle.dumps(errors.NotFound("gone", model="Sample", hint="Retry.")))
    assert str(not_found) == "gone Retry." and not_found.model == "Sample"


def _snapshot() -> tuple[list[tuple[int, str]], int]:
    projects = sorted((p.id, p.name) for p in Project.objects().all())
    return projects, ln.RecordEvent.objects().count()


def test_duplicate_unique_value(db: ln.Database) -> None:
    """A duplicate unique value raises IntegrityError naming field and value; DB unchanged."""
    Project(name="taken").save()
    before = _snapshot()
    with pytest.raises(errors.IntegrityError) as info:
        Project(name="taken").save()
    assert (info.value.model, info.value.field, info.value.value) == ("Project", "name", "taken")
    assert "already taken" in str(info.value)
    assert _snapshot() == before


def test_foreign_key_to_missing_row(db: ln.Database) -> None:
    """A foreign key to a missing row raises IntegrityError naming the field; DB unchanged."""
    Project(name="p").save()
    before = _snapshot()
    with pytest.raises(errors.IntegrityError) as info:
        Sample(name="orphan", project_id=12345).save()
    assert info.value.field == "project_id"
    assert "12345" in str(info.value)
    assert _snapshot() == before
    assert Sample.objects().count() == 0


def test_failed_update_keeps_object_usable(db: ln.Database) -> None:
    """After a refused update the object keeps its values and can be fixed and saved."""
    Project(name="a").save()
    second = Project(name="b").save()
    second.name = "a"
    with pytest.raises(errors.IntegrityError):
        second.save()
    assert second.name == "a"
    second.name = "c"
    second.save()
    assert sorted(p.name for p in Project.objects().all()) == ["a", "c"]


def test_check_constraint_violation(db: ln.Database) -> None:
    """A CHECK constraint refused by the database becomes our IntegrityError."""
    project = Project(name="p").save()
    sample = Sample(name="s", project=project).save()
    with pytest.raises(errors.IntegrityError) as info:
        Measurement(reading=-5.0, sample_id=sample.id).save()
    assert info.value.model == "Measurement"
    assert Measurement.objects().count() == 0


def test_error_mentioning_closed_is_not_a_closed_connection(db: ln.Database) -> None:
    """A database error whose text contains "closed" (a table or value named so) is reported as
    itself, not as "the database connection is closed"."""
    failing = 'SELECT * FROM "closed"' if db.dialect == "sqlite" else "SELECT 'closed'::uuid"

    def receiver(sender: type, **_kwargs: object) -> None:
        with db.engine.connect() as connection:
            connection.exec_driver_sql(failing)

    ln.signals.pre_save.connect(receiver, sender=Project)
    try:
        with pytest.raises(LineageError) as info:
            Project(name="p").save()
    finally:
        ln.signals.pre_save.disconnect(receiver, sender=Project)
    assert not isinstance(info.value, ConfigurationError)
    assert "closed" in str(info.value) and "ln.connect() again" not in str(info.value.hint)


@pytest.mark.parametrize("key", [{"name": 1}, {"id": 1, "x": 2}, [1, 2], ()])
def test_get_with_a_key_that_does_not_fit_names_it(db: ln.Database, key: object) -> None:
    """A key of the wrong shape is refused naming it and the key's columns, not SQLAlchemy's text."""
    Project(name="p").save()
    with pytest.raises(errors.ValidationError, match=r"does not fit the primary key \('id',\)") as info:
        Project.get(key)
    assert info.value.value == key
    assert "dict keyed by those names" in str(info.value)


def test_get_by_key_dict_or_one_tuple(db: ln.Database) -> None:
    """The key may be given as a dict of its attributes or a one-value tuple."""
    project = Project(name="p").save()
    assert Project.get({"id": project.id}) == project
    assert Project.get((project.id,)) == project
    with pytest.raises(errors.NotFound):
        Project.get(None)
