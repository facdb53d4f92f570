"""Our errors: classes, pickling, and the messages a new user gets for bad input."""

from __future__ import annotations

import pickle
import re
import uuid

import pg_server
import pytest
from models import Measurement, Project, Sample
from psycopg import sql
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url

import lineage_nb as ln
from lineage_nb import errors
from lineage_nb.errors import ConfigurationError, LineageError
from lineage_nb.orm.translate import translate
from lineage_nb.security import setup_postgres


def test_error_classes_subclass_builtins() -> None:
    """Each error derives from LineageError and its closest built-in exception."""
    assert issubclass(errors.ValidationError, ValueError)
    assert issubclass(errors.UsageError, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    assert issubclass(errors.NoRunError, RuntimeError)
    assert issubclass(errors.NoRunError, errors.ConfigurationError)
    assert not issubclass(errors.PermissionDenied, OSError)
    for cls in (
        errors.ValidationError,
        errors.NotFound,
        errors.IntegrityError,
        errors.ModelPersistenceError,
        errors.NoRunError,
        errors.ConfigurationError,
        errors.UsageError,
        errors.PermissionDenied,
    ):
        assert issubclass(cls, errors.LineageError)


def _docstring_tree() -> dict[str, tuple[str | None, str | None]]:
    """{class: (parent in the drawn tree, built-in named in parentheses)} from errors' docstring."""
    doc = errors.__doc__ or ""
    block = doc.split("::", 1)[1].split("Examples:", 1)[0]
    drawn: dict[str, tuple[str | None, str | None]] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = re.match(r"^(.*?── |\s*(?=\S))(\w+)(?: \((\w+)\))?", line)
        if match is None or ("── " not in match.group(1) and drawn):
            continue  # a blank line, or a description's continuation (below the root)
        depth = len(match.group(1))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        drawn[match.group(2)] = (stack[-1][1] if stack else None, match.group(3))
        stack.append((depth, match.group(2)))
    return drawn


def test_error_tree_in_the_docstring_is_the_class_tree() -> None:
    """errors.py's docstring draws every exported error once, under its real parent, with the
    built-in it also derives from."""
    exported = {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and not issubclass(getattr(errors, name), Warning)
    }
    drawn = _docstring_tree()
    assert set(drawn) == exported
    for name, (parent, builtin) in drawn.items():
        cls = getattr(errors, name)
        ours = [b.__name__ for b in cls.__bases__ if issubclass(b, errors.LineageError)]
        others = [b.__name__ for b in cls.__bases__ if not issubclass(b, errors.LineageError)]
        assert ours == ([parent] if parent else []), name
        assert others == ([builtin] if builtin else ["Exception"] if not parent else []), name


def test_new_errors_pickle_with_their_data() -> None:
    """UsageError, PermissionDenied and NoRunError survive pickling like the others."""
    for cls in (errors.UsageError, errors.PermissionDenied, errors.NoRunError):
        original = cls("refused", model="Sample", value=3, hint="Do this.")
        copy = pickle.loads(pickle.dumps(original))
        assert type(copy) is cls
        assert (str(copy), copy.model, copy.value, copy.hint) == (
            "refused Do this.",
            "Sample",
            3,
            "Do this.",
        )


def test_save_with_conflicting_force_options_is_a_usage_error(db: ln.Database) -> None:
    """save(force_insert=True, force_update=True) raises UsageError (still a ValueError) with
    the same message, and writes nothing."""
    project = Project(name="p")
    with pytest.raises(errors.UsageError) as info:
        project.save(force_insert=True, force_update=True)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == "save(): force_insert and force_update cannot both be true."
    assert Project.objects().count() == 0


def test_unknown_isolation_level_is_a_usage_error(db: ln.Database) -> None:
    """A misspelt isolation level is a bad argument: UsageError naming it, with the levels."""
    with pytest.raises(errors.UsageError, match="'serialisable'") as info:
        ln.atomic(isolation="serialisable")
    assert info.value.value == "serialisable" and "serializable" in str(info.value.hint)


def test_bad_signal_receiver_is_a_usage_error() -> None:
    """Connecting something that is not a receiver is refused as a usage error, not setup."""
    with pytest.raises(errors.UsageError, match="not callable") as info:
        ln.signals.pre_save.connect(42, sender=Project)  # type: ignore[arg-type]
    assert not isinstance(info.value, errors.ConfigurationError)


def test_magic_without_a_run_raises_no_run_error() -> None:
    """%lineage export/finish with no open run: NoRunError (a ConfigurationError, as before)
    with the message and hint the magic prints."""
    from lineage_nb.ipython.magics import _run

    with pytest.raises(errors.NoRunError) as info:
        _run(None)
    assert isinstance(info.value, errors.ConfigurationError)
    assert str(info.value) == "No run is open. Pass --run ID, or start one with %lineage track."


def test_insufficient_privilege_is_permission_denied() -> None:
    """A driver error with SQLSTATE 42501 becomes PermissionDenied naming the refused model,
    message and hint kept; no other SQLSTATE does."""

    class Refusal(Exception):
        sqlstate = "42501"

    error = sa_exc.ProgrammingError("INSERT ...", {}, Refusal("permission denied for table x"))
    ours = translate(error, [Project(name="p")])
    assert type(ours) is errors.PermissionDenied
    assert ours.model == "Project"
    assert str(ours).startswith(
        "The database refused this for your login role: permission denied for table x"
    )
    assert "Nothing was written" in str(ours)
    Refusal.sqlstate = "42P01"
    assert not isinstance(translate(error, []), errors.PermissionDenied)


def test_role_without_the_privilege_gets_permission_denied(db: ln.Database) -> None:
    """PostgreSQL: a statement of an ln.atomic() block that the role may not run raises
    PermissionDenied, and nothing of the block is written."""
    if db.dialect != "postgresql":
        pytest.skip("SQLSTATE 42501 (insufficient privilege) is PostgreSQL's")
    role = f"ln_nobody_{uuid.uuid4().hex[:8]}"
    with db.engine.begin() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
    try:
        with pytest.raises(errors.PermissionDenied, match="permission denied for table project"):
            with ln.atomic() as session:
                Project(name="before").save()
                session.execute(text(f'SET LOCAL ROLE "{role}"'))
                session.execute(text("DELETE FROM project"))
        assert Project.objects().count() == 0
    finally:
        with db.engine.begin() as connection:
            connection.execute(text(f'DROP ROLE "{role}"'))


def test_errors_pickle_with_their_data() -> None:
    """Errors survive pickling with field, value, hint and error_dict."""
    original = errors.ValidationError({"name": ["too long"]}, model="Sample", value="x" * 5)
    copy = pickle.loads(pickle.dumps(original))
    assert (copy.field, copy.value, copy.error_dict, str(copy)) == (
        "name",
        "xxxxx",
        {"name": ["too long"]},
        str(original),
    )
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
    with pytest.raises(
        errors.ValidationError, match=r"does not fit the primary key \('id',\)"
    ) as info:
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


def test_setup_postgres_by_a_role_that_is_not_superuser_is_permission_denied() -> None:
    """setup_postgres with a plain login (owner of its database, not a superuser) raises
    PermissionDenied naming the role and saying a superuser is needed, not psycopg's error."""
    admin = pg_server.admin_url()
    role = f"ln_plain_{uuid.uuid4().hex[:8]}"
    with pg_server.connect(admin) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(role), sql.Identifier(role)
            )
        )
    url = make_url(admin).set(username=role, database=role).render_as_string(hide_password=False)
    try:
        with pytest.raises(
            errors.PermissionDenied, match="permission denied to create role"
        ) as info:
            setup_postgres(url, group=f"group_{role}")
        assert repr(role) in str(info.value) and "superuser" in str(info.value.hint)
    finally:
        pg_server.drop_database(url)
        with pg_server.connect(admin) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
