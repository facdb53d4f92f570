"""Readable labels for the records of a lineage graph: ``Sample 3`` and the record's name."""

from __future__ import annotations

from functools import partial
from typing import Any

import networkx as nx
from sqlalchemy import inspect, select

from ..orm.keys import value_from_text
from ..orm.registry import LABEL_FIELDS, label_column_of, mapped_classes
from ..orm.session_scope import run_sync

__all__ = ["LABEL_FIELDS", "label_column_of", "readable"]


def _fetch(statement: Any, session: Any) -> list[Any]:
    return list(session.execute(statement).all())


def readable(graph: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``graph`` whose record labels read ``Sample 3`` plus the record's name, if any,
    and whose groups read ``40 Sample records``.

    One query per model class in the graph (``WHERE pk IN (...)``); without a database the
    labels are left as they are.
    """
    graph = graph.copy()
    classes = mapped_classes()
    by_table: dict[str, list[Any]] = {}
    for node, data in graph.nodes(data=True):
        if not isinstance(node, tuple) or len(node) < 3 or node[1] not in classes:
            continue
        if data.get("kind") == "record" and len(node) == 3:
            by_table.setdefault(node[1], []).append(node)
        elif data.get("kind") == "group" and "count" in data:
            data["label"] = f"{data['count']} {classes[node[1]].__name__} records"
    for table, nodes in by_table.items():
        cls = classes[table]
        keys: Any = inspect(cls).primary_key
        field = label_column_of(cls)
        names: dict[str, str] = {}
        if len(keys) == 1 and field is not None:
            pks = [value_from_text(keys[0], n[2], strict=False) for n in nodes]
            statement = select(keys[0], getattr(cls, field)).where(keys[0].in_(pks))
            try:
                rows = run_sync(partial(_fetch, statement))
            except Exception:  # a picture must not fail for want of a label
                rows = []
            names = {str(pk): str(name) for pk, name in rows if name is not None}
        for node in nodes:
            name = names.get(node[2])
            label = f"{cls.__name__} {node[2]}" + (f"\n{name}" if name else "")
            if graph.nodes[node].get("stale"):  # keep the warning the graph layer added
                label += "\n" + str(graph.nodes[node].get("label", "")).split("\n")[-1]
            graph.nodes[node]["label"] = label
    return graph
