"""Frames of lineage queries: one statement each, typed, with ``record`` and ``run`` labels."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Select
from sqlalchemy.orm import Session

from ..orm.registry import mapped_classes
from ..orm.session_scope import run_sync
from ..render.frames import fast_column, typed_frame, with_lineage_labels

__all__ = ["add_lineage_labels", "statement_frame"]


def add_lineage_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Add a ``record`` label (``Sample 3``) after ``pk`` and a ``run`` label after ``run_id``
    where the frame has those columns; returns a new frame."""
    return with_lineage_labels(
        frame, {table: cls.__name__ for table, cls in mapped_classes().items()}
    )


def statement_frame(statement: Select[Any]) -> pd.DataFrame:
    """Run a column ``statement`` once and return a typed frame with lineage label columns."""
    columns = list(statement.selected_columns)
    fast = statement.with_only_columns(*(fast_column(c).label(c.key) for c in columns))

    def build(session: Session) -> pd.DataFrame:
        result = session.connection().execute(fast)
        return typed_frame(list(result.keys()), result.all(), columns)

    return add_lineage_labels(run_sync(build))
