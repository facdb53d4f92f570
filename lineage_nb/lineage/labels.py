"""Readable labels for the records of a lineage graph: ``Sample 3`` and the record's name."""

from __future__ import annotations

from functools import partial
from typing import Any

import networkx as nx
from sqlalchemy import inspect, select, types

from ..orm.model import Model
from ..orm.session_scope import run_sync

__all__ = ["LABEL_FIELDS", "label_column_of", "readable"]

#: Columns that name a record, in order of preference (a model's ``__label_field__`` first).
LABEL_FIELDS = ("name", "label", "title", "handle", "key")


def label_column_of(model: type) -> str | None:
    """The string column that names ``model``'s records, or None."""
    mapper: Any = inspect(model)
    preferred = getattr(model, "__label_field__", None)
    for name in ([preferred] if preferred else []) + list(LABEL_FIELDS):
        attr = mapper.column_attrs.get(name) if name in mapper.column_attrs else None
        if attr is not None and isinstance(attr.columns[0].type, types.String):
            return str(name)
    return None


def _pk_value(column: Any, text: str) -> Any:
    try:
        return column.type.python_type(text)
    except (NotImplementedError, TypeError, ValueError):
        return text


def _fetch(statement: Any, session: Any) -> list[Any]:
    return list(session.execute(statement).all())


def readable(graph: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``graph`` whose record labels read ``Sample 3`` plus the record's name, if any,
    and whose groups read ``40 Sample records``.

    One query per model class in the graph (``WHERE pk IN (...)``); without a database the
    labels are left as they are.
    """
    graph = graph.copy()
    classes = {str(getattr(m.local_table, "name", "")): m.class_ for m in Model.registry.mappers}
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
        keys = inspect(cls).primary_key
        field = label_column_of(cls)
        names: dict[str, str] = {}
        if len(keys) == 1 and field is not None:
            pks = [_pk_value(keys[0], n[2]) for n in nodes]
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
