"""Capture in the database: every write path leaves exactly one event per changed row."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import Project, Sample
from sqlalchemy import Integer, String, delete, insert, select, text, update
from sqlalchemy.orm import Mapped, mapped_column

import lineage_nb as ln


class Pair(ln.Model, ln.TracksRun):
    """A composite-key table: keys with commas must not collide."""

    __tablename__ = "capture_pair"

    a: Mapped[str] = mapped_column(String(300), primary_key=True)
    b: Mapped[str] = mapped_column(String(300), primary_key=True)
    n: Mapped[int | None] = mapped_column(Integer)


def _events(db: ln.Database, table: str = "sample") -> list[tuple[str, str, object]]:
    with db.engine.connect() as connection:
        rows = connection.execute(
            select(
                ln.RecordEvent.pk,
                ln.RecordEvent.action,
                ln.RecordEvent.changes,
                ln.RecordEvent.run_id,
            )
            .where(ln.RecordEvent.table == table)
            .order_by(ln.RecordEvent.id)
        ).all()
    return [(pk, action, changes) for pk, action, changes, _run in rows]


def _runs(db: ln.Database) -> set[int | None]:
    with db.engine.connect() as connection:
        return set(connection.execute(select(ln.RecordEvent.run_id)).scalars())


@pytest.fixture
def project(db: ln.Database, run: ln.Run) -> Project:
    return Project(name="p").save()


def test_capture_core_statements(db: ln.Database, project: Project, run: ln.Run) -> None:
    """Core insert/update/delete through db.session() leave events and fresh stamps."""
    with db.session() as session, session.begin():
        session.execute(
            insert(Sample),
            [
                {"name": "a", "value": 1.0, "project_id": project.id},
                {"name": "b", "value": 2.0, "project_id": project.id},
            ],
        )
    ids = sorted(s.id for s in Sample.filter().all())
    before = Sample.get(ids[0]).updated_at
    with db.session() as session, session.begin():
        session.execute(update(Sample).where(Sample.id == ids[0]).values(value=5.0))
        session.execute(update(Sample).where(Sample.id == ids[1]).values(value=2.0))  # no-op
        session.execute(delete(Sample).where(Sample.id == ids[1]))
    events = _events(db)
    assert [(pk, action) for pk, action, _c in events] == [
        (str(ids[0]), "insert"),
        (str(ids[1]), "insert"),
        (str(ids[0]), "update"),
        (str(ids[1]), "delete"),
    ]
    assert events[0][2] is None  # inserts store no copy of the values
    assert events[2][2] == {"value": [1.0, 5.0]}
    assert events[3][2]["name"] == ["b", None]  # the full old row
    assert _runs(db) == {run.id}
    updated = Sample.get(ids[0])
    assert updated.updated_at > before and updated.run_id == run.id


def test_capture_raw_sql_and_pandas(db: ln.Database, project: Project, run: ln.Run) -> None:
    """text() SQL and DataFrame.to_sql into a tracked table are recorded and stamped."""
    pd.DataFrame({"name": ["x", "y"], "value": [1.5, 2.5], "project_id": [project.id] * 2}).to_sql(
        "sample", db.engine, if_exists="append", index=False
    )
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE sample SET name = 'z' WHERE name = 'x'"))
    rows = {s.name: s for s in Sample.filter().all()}
    assert set(rows) == {"z", "y"}
    assert {(r.run_id, r.created_by_id is not None) for r in rows.values()} == {(run.id, True)}
    actions = Counter(action for _pk, action, _c in _events(db))
    assert actions == {"insert": 2, "update": 1}
    assert _events(db)[-1][2] == {"name": ["x", "z"]}


def test_capture_orm_paths(db: ln.Database, project: Project) -> None:
    """save/update/delete/bulk_create and plain ORM flushes: one event per changed row."""
    sample = Sample(name="s", value=0.5, project=project).save()
    sample.update(value=0.7)
    sample.update(value=0.7)  # unchanged: no event
    Sample.bulk_create([{"name": f"b{i}", "value": i, "project_id": project.id} for i in range(3)])
    with db.session() as session, session.begin():
        session.add(Sample(name="orm", value=1.0, project_id=project.id))
    sample.delete()
    actions = [action for _pk, action, _c in _events(db)]
    assert actions == ["insert", "update", "insert", "insert", "insert", "insert", "delete"]


def test_capture_composite_keys_do_not_collide(db: ln.Database, run: ln.Run) -> None:
    """('a,b','c') and ('a','b,c') are two histories; long keys are fine."""
    Pair(a="a,b", b="c", n=1).save()
    Pair(a="a", b="b,c", n=2).save()
    Pair(a="x" * 300, b="y", n=3).save()
    keys = [pk for pk, _a, _c in _events(db, "capture_pair")]
    assert len(set(keys)) == 3
    first = Pair.filter(a="a,b").one()
    assert len(first.history()) == 1 and first.history()[0].pk == keys[0]


def test_capture_rowid_not_reused(db: ln.Database, project: Project) -> None:
    """A deleted record's key is not given to a new record (AUTOINCREMENT on SQLite)."""
    gone = Sample(name="gone", value=1.0, project=project).save()
    gone_id = gone.id
    gone.delete()
    fresh = Sample(name="new", value=2.0, project=project).save()
    assert fresh.id != gone_id
    assert [e.action for e in fresh.history()] == ["insert"]


def test_capture_without_run_records_user(db: ln.Database) -> None:
    """With no run bound, events have no run and the current user."""
    Project(name="loose").save()
    with db.engine.connect() as connection:
        run_id, user_id = connection.execute(
            select(ln.RecordEvent.run_id, ln.RecordEvent.user_id)
        ).one()
    assert run_id is None
    assert ln.User.get(user_id).handle == "tester"


def test_capture_rolled_back_write_leaves_no_event(db: ln.Database, project: Project) -> None:
    """A failing multi-row write keeps neither its rows nor their events."""
    before = len(_events(db))
    rows = [{"name": f"n{i}", "value": float(i), "project_id": project.id} for i in range(50)]
    rows[30]["project_id"] = 10_000  # a foreign key that does not exist
    with pytest.raises(ln.errors.LineageError):
        Sample.bulk_create(rows)
    assert len(_events(db)) == before
    assert Sample.filter().count() == 0


@pytest.mark.sqlite_only
def test_capture_outside_sqlite_writer_is_refused(db: ln.Database, db_url: str) -> None:
    """The sqlite3 module on its own cannot write a tracked table unrecorded: it is refused."""
    path = db_url.removeprefix("sqlite:///")
    Project(name="p").save()
    connection = sqlite3.connect(path)
    with pytest.raises(sqlite3.OperationalError, match="no such function: lineage_nb"):
        connection.execute("UPDATE project SET name = 'q'")
    connection.close()
    assert Path(path).exists()
    assert Project.filter().one().name == "p"


def test_capture_outside_postgres_writer_is_recorded(db: ln.Database, backend: str) -> None:
    """On PostgreSQL a writer that sets no context is recorded with no run and its login."""
    if backend != "postgresql":
        pytest.skip("SQLite refuses outside writers (test above)")
    import psycopg

    Project(name="p").save()
    url = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("UPDATE project SET name = 'q'")
        login = connection.execute("SELECT session_user").fetchone()[0]  # type: ignore[index]
    event = Project.filter().one().history()[-1]
    assert (event.action, event.run_id, event.changes) == ("update", None, {"name": ["p", "q"]})
    assert ln.User.get(event.user_id).handle == login


_ops = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "save",
                "update",
                "core_update",
                "raw_update",
                "delete",
                "bulk",
                "core_insert",
                "pandas",
            ]
        ),
        st.integers(0, 5),
        st.floats(-10, 10, allow_nan=False),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops)
def test_capture_mixed_paths_match_rows(db: ln.Database, project: Project, ops: list) -> None:
    """Any mix of write paths: replaying the events gives exactly the rows in the table."""
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM sample"))
        connection.execute(
            text('DELETE FROM lineage_record_event WHERE "table" = :t'), {"t": "sample"}
        )
    for op, index, value in ops:
        ids = sorted(s.id for s in Sample.filter().all())
        target = ids[index % len(ids)] if ids else None
        if op == "save" or (
            target is None and op in ("update", "core_update", "raw_update", "delete")
        ):
            Sample(name="s", value=value, project_id=project.id).save()
        elif op == "update":
            Sample.get(target).update(value=value)
        elif op == "core_update":
            with db.session() as session, session.begin():
                session.execute(update(Sample).where(Sample.id >= target).values(value=value))
        elif op == "raw_update":
            with db.engine.begin() as connection:
                connection.execute(
                    text("UPDATE sample SET name = :n WHERE id = :i"),
                    {"n": f"r{value}", "i": target},
                )
        elif op == "delete":
            Sample.get(target).delete()
        elif op == "bulk":
            Sample.bulk_create([{"name": "b", "value": value, "project_id": project.id}] * 2)
        elif op == "core_insert":
            with db.session() as session, session.begin():
                session.execute(
                    insert(Sample), [{"name": "c", "value": value, "project_id": project.id}]
                )
        else:
            pd.DataFrame({"name": ["pd"], "value": [value], "project_id": [project.id]}).to_sql(
                "sample", db.engine, if_exists="append", index=False
            )
    state: dict[str, dict[str, object]] = {}
    for pk, action, changes in _events(db):
        if action == "insert":
            state[pk] = {}
        elif action == "update":
            state[pk].update({k: v[1] for k, v in changes.items()})  # type: ignore[union-attr]
        else:
            del state[pk]
    rows = {str(s.id): s for s in Sample.filter().all()}
    assert set(state) == set(rows)
    for pk, changed in state.items():
        for field, new in changed.items():
            assert getattr(rows[pk], field) == pytest.approx(new)


def test_capture_update_diff_of_every_column_type(db: ln.Database, run: ln.Run) -> None:
    """An update's changes hold exactly the changed columns, whatever their type (JSON has no
    equality operator on PostgreSQL; NULL to value and back counts as a change)."""
    import datetime as dt
    import decimal

    from models import Color, Specimen

    specimen = Specimen(
        label="a",
        count=1,
        ratio=0.5,
        flag=True,
        color=Color.red,
        day=dt.date(2026, 1, 1),
        amount=decimal.Decimal("1.5000"),
        extra={"k": [1, 2]},
    ).save()
    specimen.update(extra={"k": [1, 3]}, notes="new", day=dt.date(2026, 1, 2))
    specimen.update(extra={"k": [1, 3]}, count=1)  # nothing changed: no event
    specimen.update(color=Color.green, flag=None, amount=decimal.Decimal("2.2500"))
    events = _events(db, "specimen")
    assert [action for _pk, action, _c in events] == ["insert", "update", "update"]
    first, second = events[1][2], events[2][2]
    assert first == {
        "extra": [{"k": [1, 2]}, {"k": [1, 3]}],
        "notes": [None, "new"],
        "day": ["2026-01-01", "2026-01-02"],
    }
    assert set(second) == {"color", "flag", "amount"}
    assert second["color"] == ["red", "green"] and second["flag"] == [True, None]
    assert [decimal.Decimal(str(v)) for v in second["amount"]] == [
        decimal.Decimal("1.5"),
        decimal.Decimal("2.25"),
    ]
