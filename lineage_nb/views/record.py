"""View methods of user records: ``_repr_html_`` and ``view_lineage``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Select

__all__ = ["ViewableRecord"]


class ViewableRecord:
    """Mixin of ``ln.Model``: show a record in a notebook, and frames with labels."""

    @classmethod
    def _frame_of(
        cls, statement: Select[Any], *, adapt: Callable[[Any], Any] | None = None
    ) -> pd.DataFrame:
        """The frame ``Query.df()`` returns: typed columns, FK labels, rows noted as inputs."""
        from .frames import model_frame

        return model_frame(cls, statement, adapt=adapt)

    def view_lineage(
        self, depth: int = 3, *, max_nodes: int = 60, group_above: int | None = 12
    ) -> Any:
        """A picture of ``lineage(depth)``; displays as SVG in a notebook, ``.save(path)``.

        At most ``max_nodes`` nodes are drawn; more than ``group_above`` records of one table
        with the same neighbours are one node with their count (None: one node per record)."""
        from ..lineage.labels import readable
        from ..render.picture import LineagePicture

        graph = self.lineage(depth, group_above=group_above)  # type: ignore[attr-defined]
        return LineagePicture(
            graph,
            title=f"Lineage of {type(self).__name__} {self.pk}",  # type: ignore[attr-defined]
            max_nodes=max_nodes,
            group_above=group_above,
            relabel=readable,
        )

    def _repr_html_(self) -> str:
        from ..lineage.reads import untracked_reads
        from .html import record_html

        with untracked_reads():  # showing a record is not using it
            return record_html(self)
