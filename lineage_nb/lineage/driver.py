"""INSERTs compiled once per dialect and sent with ``exec_driver_sql`` (lineage's hot paths).

A Core ``insert()`` executed with thousands of dicts runs SQLAlchemy's per-row parameter
processing (type processors, key lookups) for every row; lineage rows are simple and their
values are prepared once per batch, so they go to the driver as they are. Statements still pass
through the ``Connection``: they are logged, counted by ``before_cursor_execute`` listeners and
part of the session's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Table, bindparam, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

__all__ = ["DriverInsert"]


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
        connection.exec_driver_sql(sql, params[0] if len(params) == 1 else params)
