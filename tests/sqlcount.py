"""Recording the SQL statements a block of code sends (statement counts are asserted in tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from sqlalchemy import event

import lineage_nb as ln


class Sent(NamedTuple):
    """One cursor execution: its SQL, parameters and whether it was an executemany."""

    sql: str
    parameters: Any
    many: bool


@contextmanager
def sent(db: ln.Database) -> Iterator[list[Sent]]:
    """Collect every statement sent through ``db.engine`` inside the block, with parameters."""
    seen: list[Sent] = []

    def record(_conn: Any, _cursor: Any, sql: str, parameters: Any, _ctx: Any, many: bool) -> None:
        seen.append(Sent(sql, parameters, many))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


@contextmanager
def statements(db: ln.Database) -> Iterator[list[str]]:
    """Collect the SQL text of every statement sent through ``db.engine`` inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.append(sql)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
