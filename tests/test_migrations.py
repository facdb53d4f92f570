"""Alembic migrations shipped in the package: upgrade in place keeps data; wheel contains them."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

import lineage_nb as ln
from lineage_nb.lineage.migrate import (
    VERSION_TABLE,
    current_revision,
    head_revision,
    upgrade_schema,
)

ROOT = Path(__file__).parent.parent


def test_upgrade_from_first_revision_keeps_data(db_url: str) -> None:
    """A database at revision 0001 with data is upgraded by connect(); the data is intact."""
    old = ln.Database(db_url)
    upgrade_schema(old, "0001")
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    stamp = now.replace(tzinfo=None) if old.dialect == "sqlite" else now
    with old.engine.begin() as connection:
        assert current_revision(connection) == "0001"
        assert "hash" not in {c["name"] for c in inspect(connection).get_columns("lineage_record_event")}
        connection.execute(
            text("INSERT INTO lineage_user (id, handle, created_at) VALUES (1, 'old', :at)"),
            {"at": stamp},
        )
        connection.execute(
            text("INSERT INTO lineage_transform (id, key, version, type, source_hash, created_at) "
                 "VALUES (1, 'old.py', '1', 'script', 'abc', :at)"), {"at": stamp})
        connection.execute(
            text("INSERT INTO lineage_run (id, uid, transform_id, status, started_at, created_by_id) "
                 "VALUES (1, 'u-1', 1, 'completed', :at, 1)"), {"at": stamp})
        connection.execute(
            text('INSERT INTO lineage_record_event (id, run_id, user_id, "table", pk, action, at) '
                 "VALUES (1, 1, 1, 'sample', '7', 'insert', :at)"), {"at": stamp})
    old.close()
    db = ln.connect(db_url)
    with db.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert VERSION_TABLE in inspect(connection).get_table_names()
    run = ln.Run.get(1)
    assert (run.uid, run.status, run.started_at, run.transform.key) == ("u-1", "completed", now, "old.py")
    event = ln.RecordEvent.get(1)
    assert (event.table, event.pk, event.hash) == ("sample", "7", None)
    db.close()


def test_connect_twice_is_a_no_op(db_url: str) -> None:
    """connect() on an up-to-date schema changes nothing and keeps data."""
    db = ln.connect(db_url)
    ln.User(handle="keep").save()
    db.close()
    again = ln.connect(db_url)
    assert ln.User.filter(handle="keep").count() == 1
    again.close()


@pytest.mark.sqlite_only
@pytest.mark.slow
def test_wheel_ships_migrations(backend: str, tmp_path: Path) -> None:
    """The built wheel contains env.py and every revision, found via importlib.resources."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, timeout=300,
    )
    [wheel] = tmp_path.glob("lineage_nb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lineage_nb/migrations/env.py" in names
    assert "lineage_nb/migrations/script.py.mako" in names
    assert "lineage_nb/migrations/versions/0001_initial.py" in names
    assert "lineage_nb/py.typed" in names
    assert "lineage_nb/notebooks/quickstart.ipynb" in names  # for `lineage-nb demo` when installed


def test_upgrade_to_chain_head_takes_each_runs_newest_hash(db_url: str) -> None:
    """0003 fills ``lineage_run.chain_head`` from each run's newest event (None: no events)."""
    old = ln.Database(db_url)
    upgrade_schema(old, "0002")
    stamp = dt.datetime(2026, 1, 2, 3, 4, 5)
    at = stamp if old.dialect == "sqlite" else stamp.replace(tzinfo=dt.timezone.utc)
    with old.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO lineage_user (id, handle, created_at) VALUES (1, 'old', :at)"),
            {"at": at},
        )
        connection.execute(
            text("INSERT INTO lineage_transform (id, key, version, type, source_hash, created_at) "
                 "VALUES (1, 'old.py', '1', 'script', 'abc', :at)"), {"at": at})
        for run_id in (1, 2):
            connection.execute(
                text("INSERT INTO lineage_run (id, uid, transform_id, status, started_at, "
                     "created_by_id) VALUES (:id, :uid, 1, 'completed', :at, 1)"),
                {"id": run_id, "uid": f"u-{run_id}", "at": at},
            )
        for event_id, hash_ in ((1, "a" * 64), (2, "b" * 64)):
            connection.execute(
                text('INSERT INTO lineage_record_event (id, run_id, user_id, "table", pk, action, '
                     "at, hash) VALUES (:id, 1, 1, 'sample', '7', 'insert', :at, :hash)"),
                {"id": event_id, "at": at, "hash": hash_},
            )
    old.close()
    db = ln.connect(db_url)
    try:
        assert (ln.Run.get(1).chain_head, ln.Run.get(2).chain_head) == ("b" * 64, None)
    finally:
        db.close()


def test_migrations_create_what_the_models_declare(db_url: str) -> None:
    """The schema the migrations build has every table, column and index of the lineage models
    (0008's run liveness and notebook id columns included), as Alembic's autogenerate sees it."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from lineage_nb.lineage.schema import LineageModel

    db = ln.Database(db_url)
    try:
        upgrade_schema(db)
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            differences = compare_metadata(context, LineageModel.metadata)
            columns = {c["name"] for c in inspect(connection).get_columns("lineage_run")}
    finally:
        db.close()
    assert {"process_start", "heartbeat_seconds", "source_path"} <= columns
    kinds = ("add_table", "add_column", "add_index", "remove_column", "remove_index")
    assert [d for d in differences if d[0] in kinds] == []
