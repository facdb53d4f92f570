"""The ``df()`` frames of tracked models and of the lineage tables (a mixin of both)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Select

__all__ = ["BuildsFrames"]


class BuildsFrames:
    """Gives ``Query.df()`` its frame: typed columns, a label after each many-to-one foreign key,
    and the rows noted as the run's inputs (see :mod:`.model_frames`)."""

    @classmethod
    def _frame_of(
        cls, statement: Select[Any], *, adapt: Callable[[Any], Any] | None = None
    ) -> pd.DataFrame:
        from .model_frames import model_frame  # pandas is imported when a frame is asked for

        return model_frame(cls, statement, adapt=adapt)
