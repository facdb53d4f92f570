"""Alembic migrations shipped in the package: upgrade in place keeps data; wheel contains them."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from paths import ROOT
from sqlalchemy import inspect, text

import lineage_nb as ln
from lineage_nb.lineage.migrate import (
    VERSION_TABLE,
    current_revision,
    head_revision,
    upgrade_schema,
)
from lineage_nb.lineage.schema import Seal


def test_upgrade_from_first_revision_keeps_data(db_url: str) -> None:
    """A database at revision 0001 with data is upgraded by connect(); the data is intact."""
    old = ln.Database(db_url)
    upgrade_schema(old, "0001")
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    stamp = now.replace(tzinfo=None) if old.dialect == "sqlite" else now
    with old.engine.begin() as connection:
        assert current_revision(connection) == "0001"
        assert "hash" not in {
            c["name"] for c in inspect(connection).get_columns("lineage_record_event")
        }
        connection.execute(
            text("INSERT INTO lineage_user (id, handle, created_at) VALUES (1, 'old', :at)"),
            {"at": stamp},
        )
        connection.execute(
            text(
                "INSERT INTO lineage_transform (id, key, version, type, source_hash, created_at) "
                "VALUES (1, 'old.py', '1', 'script', 'abc', :at)"
            ),
            {"at": stamp},
        )
        connection.execute(
            text(
                "INSERT INTO lineage_run (id, uid, transform_id, status, started_at, created_by_id) "
                "VALUES (1, 'u-1', 1, 'completed', :at, 1)"
            ),
            {"at": stamp},
        )
        connection.execute(
            text(
                'INSERT INTO lineage_record_event (id, run_id, user_id, "table", pk, action, at) '
                "VALUES (1, 1, 1, 'sample', '7', 'insert', :at)"
            ),
            {"at": stamp},
        )
    old.close()
    db = ln.connect(db_url)
    with db.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert VERSION_TABLE in inspect(connection).get_table_names()
    run = ln.Run.get(1)
    assert (run.uid, run.status, run.started_at, run.transform.key) == (
        "u-1",
        "completed",
        now,
        "old.py",
    )
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
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
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
            text(
                "INSERT INTO lineage_transform (id, key, version, type, source_hash, created_at) "
                "VALUES (1, 'old.py', '1', 'script', 'abc', :at)"
            ),
            {"at": at},
        )
        for run_id in (1, 2):
            connection.execute(
                text(
                    "INSERT INTO lineage_run (id, uid, transform_id, status, started_at, "
                    "created_by_id) VALUES (:id, :uid, 1, 'completed', :at, 1)"
                ),
                {"id": run_id, "uid": f"u-{run_id}", "at": at},
            )
        for event_id, hash_ in ((1, "a" * 64), (2, "b" * 64)):
            connection.execute(
                text(
                    'INSERT INTO lineage_record_event (id, run_id, user_id, "table", pk, action, '
                    "at, hash) VALUES (:id, 1, 1, 'sample', '7', 'insert', :at, :hash)"
                ),
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


def _old_lineage(connection: Any, at: dt.datetime, events: list[int]) -> None:
    """A user, transform and run as an old lineage_nb wrote them, and unhashed insert events."""
    connection.execute(
        text("INSERT INTO lineage_user (id, handle, created_at) VALUES (1, 'old', :at)"), {"at": at}
    )
    connection.execute(
        text(
            "INSERT INTO lineage_transform (id, key, version, type, source_hash, created_at) "
            "VALUES (1, 'old.py', '1', 'script', 'abc', :at)"
        ),
        {"at": at},
    )
    connection.execute(
        text(
            "INSERT INTO lineage_run (id, uid, transform_id, status, started_at, created_by_id) "
            "VALUES (1, 'u-1', 1, 'completed', :at, 1)"
        ),
        {"at": at},
    )
    for event_id in events:
        connection.execute(
            text(
                'INSERT INTO lineage_record_event (id, run_id, user_id, "table", pk, action, '
                "changes, at) VALUES (:id, 1, 1, 'sample', :pk, 'update', :changes, :at)"
            ),
            {"id": event_id, "pk": str(event_id), "changes": '{"value": [1, 2]}', "at": at},
        )


def test_upgrade_seals_events_from_before_the_chain_as_unchained(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events written at revision 0001 (no hash, no seal) are sealed by the upgrade and reported
    as unchained, not as unsealed or broken: `lineage-nb verify` exits 0 and says how many. Once
    sealed they are protected like any other event."""
    from lineage_nb.cli import main
    from lineage_nb.lineage.verify import FORMAT_MERKLE, status, verify

    old = ln.Database(db_url)
    upgrade_schema(old, "0001")
    stamp = dt.datetime(2026, 1, 2, 3, 4, 5)
    with old.engine.begin() as connection:
        _old_lineage(
            connection,
            stamp if old.dialect == "sqlite" else stamp.replace(tzinfo=dt.timezone.utc),
            [1, 2, 3],
        )
    old.close()
    code = main(["verify", "--database", db_url])  # connects: upgrades, and so seals
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 events are unchained (written before schema revision 0002" in out
    assert "not sealed yet" not in out and "BROKEN" not in out
    db = ln.connect(db_url)
    try:
        state = status(db)
        assert (state.events, state.unsealed, state.unchained, state.seals) == (3, 0, 3, 1)
        assert Seal.get(1).format == FORMAT_MERKLE
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE lineage_record_event SET pk = '8' WHERE id = 2"))
        assert "changed after it was sealed" in verify(db)[0].message
    finally:
        db.close()


def test_running_hash_seals_still_verify_after_upgrade(db_url: str) -> None:
    """A database at 0008 with a seal of the running-hash format (1): after the upgrade that seal
    still verifies (and breaks when its events are edited), the unhashed event before the hashed
    one in it is counted unchained, the events after it get a Merkle seal (format 2) that proves
    them; an event under the old seal has no inclusion proof."""
    from lineage_nb.lineage import verify as v

    old = ln.Database(db_url)
    upgrade_schema(old, "0008")
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    with old.engine.begin() as connection:
        _old_lineage(
            connection, at.replace(tzinfo=None) if old.dialect == "sqlite" else at, [1, 2, 3]
        )
        hashed = dict(
            connection.execute(v.select(v._EVENTS).where(v._EVENTS.c.id == 2)).mappings().one()
        )
        digest = v.event_hash(hashed, None)
        connection.execute(
            text("UPDATE lineage_record_event SET hash = :h WHERE id = 2"), {"h": digest}
        )
        connection.execute(
            text("UPDATE lineage_run SET chain_head = :h WHERE id = 1"), {"h": digest}
        )
        running, count, last = v._digest("", v._events(connection, 0))
        connection.execute(
            text(
                "INSERT INTO lineage_seal (prev_id, last_event_id, count, hash, at) "
                "VALUES (0, :last, :count, :hash, :at)"
            ),
            {
                "last": last,
                "count": count,
                "hash": running,
                "at": at.replace(tzinfo=None) if old.dialect == "sqlite" else at,
            },
        )
        connection.execute(
            text(
                'INSERT INTO lineage_record_event (id, run_id, user_id, "table", pk, action, at) '
                "VALUES (4, 1, 1, 'sample', '4', 'insert', :at)"
            ),
            {"at": at.replace(tzinfo=None) if old.dialect == "sqlite" else at},
        )
    old.close()
    db = ln.connect(db_url)
    try:
        seals = [(s.format, s.count, s.unchained, s.root is None) for s in Seal.filter().all()]
        assert seals == [(v.FORMAT_RUNNING, 3, 1, True), (v.FORMAT_MERKLE, 1, 0, False)]
        assert v.verify(db) == []
        assert v.status(db).unchained == 1
        assert v.prove(4, db).verify()
        with pytest.raises(ln.errors.NotFound, match="before Merkle seals"):
            v.prove(3, db)
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE lineage_record_event SET cell = 5 WHERE id = 3"))
        broken = v.verify(db)
        assert len(broken) == 1 and broken[0].message.startswith("seal 1 its events do not match")
    finally:
        db.close()


def test_seal_model_matches_its_migrated_table(db_url: str) -> None:
    """The Seal model and the table the migrations build have the same columns, nullability and
    server defaults (the model is not used to create the table)."""
    db = ln.connect(db_url)
    try:
        with db.engine.connect() as connection:
            columns = {c["name"]: c for c in inspect(connection).get_columns("lineage_seal")}
        model = Seal.__table__.columns
        assert set(columns) == {c.name for c in model}
        for column in model:
            if column.primary_key:  # PostgreSQL's default is the key's sequence
                continue
            found = columns[column.name]
            assert found["nullable"] == column.nullable, column.name
            assert (found["default"] is None) == (column.server_default is None), column.name
    finally:
        db.close()
