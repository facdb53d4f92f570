"""Lineage's raw-cursor statements still behave like SQLAlchemy's: events, hooks, errors."""

from __future__ import annotations

from typing import Any

import pytest
from models import Project
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

import lineage_nb as ln
from lineage_nb.lineage.driver import send


def test_cursor_events_see_lineage_statements(db: ln.Database, run: ln.Run) -> None:
    """Every statement of a save reaches before/after_cursor_execute; on PostgreSQL that includes
    the transaction's lineage context, sent straight to the cursor."""
    before: list[str] = []
    after: list[str] = []

    def note_before(_c: Any, _cur: Any, sql: str, *_a: Any) -> None:
        before.append(sql)

    def note_after(_c: Any, _cur: Any, sql: str, *_a: Any) -> None:
        after.append(sql)

    event.listen(db.engine, "before_cursor_execute", note_before)
    event.listen(db.engine, "after_cursor_execute", note_after)
    try:
        Project(name="seen").save()
    finally:
        event.remove(db.engine, "before_cursor_execute", note_before)
        event.remove(db.engine, "after_cursor_execute", note_after)
    assert before == after
    assert any("INSERT INTO project" in sql for sql in before)
    if db.dialect == "postgresql":
        assert any("set_config('lineage_nb.run'" in sql for sql in before)


def test_driver_errors_are_sqlalchemy_errors(db: ln.Database, backend: str) -> None:
    """A refused statement raises SQLAlchemy's wrapper, so retries and translation apply."""
    sql = {  # user 1 exists: connect() registered it
        "sqlite": "INSERT INTO lineage_user (id, handle, created_at) VALUES (1, ?, CURRENT_TIMESTAMP)",
        "postgresql": "INSERT INTO lineage_user (id, handle, created_at) "
        "VALUES (1, %s, CURRENT_TIMESTAMP)",
    }[backend]
    with db.engine.connect() as connection, pytest.raises(sa_exc.IntegrityError) as info:
        send(connection, sql, ("dup",))
    assert info.value.orig is not None
