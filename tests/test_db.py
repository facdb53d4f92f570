"""connect(): URL precedence, SQLite settings, PostgreSQL, atomic(), errors for bad URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from models import Project
from sqlalchemy import text

import lineage_nb as ln
from lineage_nb.errors import ConfigurationError


@pytest.mark.sqlite_only
def test_url_precedence(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Argument beats LINEAGE_NB_DATABASE_URL, which beats ./lineage.db."""
    monkeypatch.chdir(tmp_path)
    default = ln.connect()
    assert default.url.database == "lineage.db"
    assert (tmp_path / "lineage.db").exists()
    monkeypatch.setenv("LINEAGE_NB_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert ln.connect().url.database == str(tmp_path / "env.db")
    assert ln.connect(f"sqlite:///{tmp_path / 'arg.db'}").url.database == str(tmp_path / "arg.db")
    assert ln.get_database().url.database == str(tmp_path / "arg.db")


@pytest.mark.sqlite_only
def test_sqlite_settings(db: ln.Database, backend: str) -> None:
    """SQLite runs in WAL mode with a busy timeout and foreign keys on."""
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_backend_driver(db: ln.Database, backend: str) -> None:
    """PostgreSQL goes through psycopg 3; the repr hides passwords."""
    assert db.dialect == backend
    if backend == "postgresql":
        assert db.engine.dialect.driver == "psycopg"
    secret = ln.Database("postgresql://alice:s3cret@127.0.0.1/lab")
    assert "s3cret" not in repr(secret)
    assert "***" in repr(secret)


def test_session_and_create_all(db: ln.Database) -> None:
    """db.session() is a SQLAlchemy Session on the engine; create_all is idempotent."""
    db.create_all()
    with db.session() as session:
        assert session.execute(text("SELECT 1")).scalar() == 1


def test_atomic_commits_or_rolls_back(db: ln.Database) -> None:
    """Every write inside atomic() is one transaction; an exception undoes all of it."""
    with pytest.raises(RuntimeError):
        with ln.atomic():
            Project(name="one").save()
            Project(name="two").save()
            raise RuntimeError("boom")
    assert Project.objects().count() == 0
    assert ln.RecordEvent.objects().count() == 0
    with ln.atomic():
        Project(name="one").save()
        Project(name="two").save()
    assert Project.objects().count() == 2
    assert ln.RecordEvent.filter(table="project").count() == 2


def test_nested_atomic_is_a_savepoint(db: ln.Database) -> None:
    """An inner atomic block that fails rolls back only itself."""
    with ln.atomic():
        Project(name="outer").save()
        with pytest.raises(ValueError):
            with ln.atomic():
                Project(name="inner").save()
                raise ValueError("inner fails")
        Project(name="after").save()
    assert sorted(p.name for p in Project.objects().all()) == ["after", "outer"]


def test_bad_urls_raise_configuration_error(tmp_path: Path) -> None:
    """Unparseable and unsupported URLs name the URL and what is supported."""
    with pytest.raises(ConfigurationError, match="Cannot parse"):
        ln.connect("not a url")
    with pytest.raises(ConfigurationError, match="SQLite and PostgreSQL"):
        ln.connect("mysql://root@127.0.0.1/test")


def test_unreachable_server_raises_configuration_error() -> None:
    """A PostgreSQL URL nobody answers gives ConfigurationError, not a driver traceback."""
    with pytest.raises(ConfigurationError) as info:
        ln.connect("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert "Check that the database server is running" in str(info.value)


def test_no_database_connected() -> None:
    """Active-record calls before connect() say to call ln.connect()."""
    with pytest.raises(ConfigurationError, match="connect"):
        Project.objects().count()


def test_processes_connecting_at_once_to_a_fresh_database(backend: str, tmp_path: Path) -> None:
    """Eight processes connect to one new database at the same moment (schema, tables,
    triggers, user) and each saves a record: none fails."""
    import subprocess
    import sys

    from conftest import database_url

    url = database_url(backend, tmp_path)
    script = (
        "import sys; sys.path.insert(0, sys.argv[2]); import models, lineage_nb as ln; "
        "ln.connect(sys.argv[1]); models.Project(name='p' + sys.argv[3]).save(); print('saved')"
    )
    tests = str(Path(__file__).parent)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, url, tests, str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    outcomes = [p.communicate(timeout=180) for p in processes]
    failures = [err for p, (_out, err) in zip(processes, outcomes, strict=True) if p.returncode]
    assert failures == []
    db = ln.connect(url)
    assert sorted(p.name for p in Project.objects().all()) == [f"p{i}" for i in range(8)]
    db.close()
