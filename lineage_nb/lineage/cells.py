"""The code that ran: each executed cell of a notebook run, and the code that wrote a record.

The IPython extension records every executed cell (execution count, the exact source, start and
end time, how it ended) with its run; each distinct source text is stored once, keyed by its
SHA-256, so a session of a thousand cells costs kilobytes. A record event's ``cell`` is the
execution count of the cell that wrote it, so ``record.code()`` is that cell's source (or the
script's, for a script run).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..db import Database
from ..errors import ValidationError
from ..orm.session_scope import run_sync
from .driver import DriverInsert
from .schema import CELL_STATUSES, Cell, CellSource, RecordEvent, Run, Transform
from .stamping import record_key

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["cells_frame", "code_of", "record_cell", "source_hash"]

_SOURCE = DriverInsert(
    CellSource.__table__,  # type: ignore[arg-type]
    ("hash", "text"),
    ignore_conflicts=True,
)
_CELL = DriverInsert(
    Cell.__table__,  # type: ignore[arg-type]
    ("run_id", "execution_count", "source_hash", "started_at", "finished_at", "status"),
    ignore_conflicts=True,
)


def source_hash(text: str) -> str:
    """The SHA-256 (hex) a cell source is stored under."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def record_cell(
    db: Database,
    run: Run,
    *,
    execution_count: int,
    source: str,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    status: str,
) -> None:
    """Store one executed cell of ``run`` (its source once per distinct text), in a transaction
    of its own. A cell already stored under that execution count is kept."""
    if status not in CELL_STATUSES:
        raise ValidationError(
            {"status": [f"{status!r} is not one of {list(CELL_STATUSES)}."]},
            model="Cell",
            field="status",
            value=status,
        )
    digest = source_hash(source)
    with db.session() as session, session.begin():
        connection = session.connection()
        dialect = connection.dialect
        _SOURCE.execute(connection, [(digest, source)])
        _CELL.execute(
            connection,
            [
                (
                    run.id,
                    execution_count,
                    digest,
                    _CELL.process(dialect, "started_at", started_at),
                    _CELL.process(dialect, "finished_at", finished_at),
                    status,
                )
            ],
        )


def cells_frame(run: Run) -> pd.DataFrame:
    """``run``'s executed cells, oldest first: execution_count, source, started_at,
    finished_at, status."""
    import pandas as pd

    statement = (
        select(
            Cell.execution_count, CellSource.text, Cell.started_at, Cell.finished_at, Cell.status
        )
        .join(CellSource, CellSource.hash == Cell.source_hash)
        .where(Cell.run_id == run.id)
        .order_by(Cell.started_at, Cell.execution_count)
    )
    rows = run_sync(lambda s: s.execute(statement).all())
    return pd.DataFrame(
        {
            "execution_count": pd.array([r[0] for r in rows], dtype="Int64"),
            "source": pd.Series([r[1] for r in rows], dtype="string"),
            "started_at": pd.to_datetime(pd.Series([r[2] for r in rows], dtype=object), utc=True),
            "finished_at": pd.to_datetime(pd.Series([r[3] for r in rows], dtype=object), utc=True),
            "status": pd.Series([r[4] for r in rows], dtype="string"),
        }
    )


def code_of(record: Any) -> str | None:
    """The source of the cell (or, for a script run, the script) that last wrote ``record``;
    None when it was written outside any run or the code was not recorded."""
    table, pk = record_key(record)

    def find(session: Any) -> str | None:
        last = session.execute(
            select(RecordEvent.run_id, RecordEvent.cell)
            .where(RecordEvent.table == table, RecordEvent.pk == pk)
            .order_by(RecordEvent.id.desc())
            .limit(1)
        ).first()
        if last is None or last.run_id is None:
            return None
        if last.cell is not None:
            text = session.execute(
                select(CellSource.text)
                .join(Cell, Cell.source_hash == CellSource.hash)
                .where(Cell.run_id == last.run_id, Cell.execution_count == last.cell)
            ).scalar()
            if text is not None:
                return str(text)
        source = session.execute(
            select(Transform.source_code, Transform.type)
            .join(Run, Run.transform_id == Transform.id)
            .where(Run.id == last.run_id)
        ).first()
        if source is None or source.type == "notebook":
            return None
        return None if source.source_code is None else str(source.source_code)

    return run_sync(find)
