"""Lineage's own statements, sent straight to the connection's DBAPI cursor (its hot path).

A tracked write adds a few small statements of its own (read the run's chain head, insert the
event, store the head). Through SQLAlchemy's execution layer each costs ~40 µs of Python, more
than the statement itself (a few µs on SQLite): measured 137–212 µs vs 14–30 µs for the three.
So :func:`send` runs them on the session's own DBAPI connection (same transaction) while keeping
what callers rely on from SQLAlchemy: the engine's ``before_cursor_execute`` /
``after_cursor_execute`` listeners and the dialect's ``do_execute`` / ``do_executemany`` hooks
still see every statement, and driver errors are wrapped as SQLAlchemy ``DBAPIError`` subclasses
(so retries and error translation work unchanged). Values are prepared once per batch
(:meth:`DriverInsert.process`), not per row by type processors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Table, bindparam, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

__all__ = ["DriverInsert", "send"]


def send(connection: Connection, sql: str, params: Any, *, many: bool = False) -> Any:
    """Execute ``sql`` with ``params`` on ``connection``'s DBAPI cursor; returns the cursor.

    The caller reads ``rowcount`` or fetches, then closes the cursor.
    """
    dialect = connection.dialect
    cursor = connection.connection.cursor()
    try:
        for before in connection.dispatch.before_cursor_execute:
            sql, params = before(connection, cursor, sql, params, None, many)
        hooks = dialect.dispatch.do_executemany if many else dialect.dispatch.do_execute
        if not any(hook(cursor, sql, params, None) for hook in hooks):
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
        for after in connection.dispatch.after_cursor_execute:
            after(connection, cursor, sql, params, None, many)
    except dialect.loaded_dbapi.Error as error:
        cursor.close()
        raise DBAPIError.instance(
            sql, params, error, dialect.loaded_dbapi.Error, dialect=dialect, ismulti=many
        ) from error
    except BaseException:
        cursor.close()
        raise
    return cursor


class DriverInsert:
    """``INSERT INTO table (columns) VALUES (...)``, rows given as tuples in ``columns`` order.

    Values must already be what the driver takes (use :meth:`process` for typed columns).
    ``ignore_conflicts`` adds ``ON CONFLICT DO NOTHING``.
    """

    def __init__(self, table: Table, columns: Sequence[str], *, ignore_conflicts: bool = False):
        self.table = table
        self.columns = tuple(columns)
        self.ignore_conflicts = ignore_conflicts
        self._compiled: dict[str, tuple[str, tuple[int, ...] | None, tuple[str, ...]]] = {}
        self._processors: dict[tuple[str, str], Any] = {}

    def _sql(self, dialect: Dialect) -> tuple[str, tuple[int, ...] | None, tuple[str, ...]]:
        cached = self._compiled.get(dialect.name)
        if cached is not None:
            return cached
        values: dict[str, Any] = {name: bindparam(name) for name in self.columns}
        statement: Any
        if self.ignore_conflicts and dialect.name == "sqlite":
            statement = sqlite_insert(self.table).values(values).on_conflict_do_nothing()
        elif self.ignore_conflicts and dialect.name == "postgresql":
            statement = pg_insert(self.table).values(values).on_conflict_do_nothing()
        else:
            statement = insert(self.table).values(values)
        compiled = statement.compile(dialect=dialect, for_executemany=True)  # no RETURNING
        if compiled.positional:
            names = tuple(compiled.positiontup or ())
            order = tuple(self.columns.index(name) for name in names)
            cached = (compiled.string, order, names)
        else:
            cached = (compiled.string, None, self.columns)
        self._compiled[dialect.name] = cached
        return cached

    def process(self, dialect: Dialect, column: str, value: Any) -> Any:
        """``value`` as column ``column``'s type sends it to this dialect's driver."""
        key = (dialect.name, column)
        if key not in self._processors:
            self._processors[key] = self.table.c[column].type.bind_processor(dialect)
        processor = self._processors[key]
        return value if processor is None or value is None else processor(value)

    def execute(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert ``rows`` with one ``execute`` (one row) or ``executemany``."""
        if not rows:
            return
        sql, order, names = self._sql(connection.dialect)
        params: list[Any]
        if order is None:
            params = [dict(zip(names, row, strict=True)) for row in rows]
        elif order == tuple(range(len(self.columns))):
            params = list(rows)
        else:
            params = [tuple(row[i] for i in order) for row in rows]
        many = len(params) > 1
        send(connection, sql, params if many else params[0], many=many).close()
