"""View methods of user records: ``_repr_html_`` and ``view_lineage``."""

from __future__ import annotations

from typing import Any

__all__ = ["ViewableRecord"]


class ViewableRecord:
    """Mixin of ``ln.Model``: show a record in a notebook."""

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
