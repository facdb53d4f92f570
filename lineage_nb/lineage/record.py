"""Lineage methods of user records: ``history``, ``history_df`` and ``lineage``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import graph

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

    from .schema import RecordEvent

__all__ = ["TrackedRecord"]


class TrackedRecord:
    """Mixin of ``ln.Model``: ask a record where it came from."""

    def history(self) -> list[RecordEvent]:
        """Every insert/update/delete event of this record, oldest first."""
        return graph.history(self)

    def history_df(self) -> pd.DataFrame:
        """:meth:`history` as a DataFrame, with transform key/version and user handle."""
        return graph.history_df(self)

    def lineage(self, depth: int = 3) -> nx.DiGraph:
        """A networkx graph: this record ← runs that wrote it ← transforms, users, inputs, ..."""
        return graph.record_lineage(self, depth)
