"""The detail pane's data: one record as JSON-safe plain text for the browser's front end.

:class:`Detail` builds, for the selected record (or a run, transform or user reached from it),
its fields, staleness, related records, history with each change's cell source, inputs and
outputs, and the lineage picture (SVG from :mod:`lineage_nb.render.picture`). Everything is plain
text or numbers: the front end puts it in the page with ``textContent``, never as markup. Records
one can open are *targets*: the front end sends back a target's index, never a class or key,
and :meth:`Detail.open` looks it up. The picture's clickable nodes are named by their SVG
``data-node`` attribute (:func:`lineage_nb.render.picture.node_id`): ``nodes`` maps those of
records, runs, transforms and users to targets, ``groups`` lists the group nodes ("40 Sample
records") that :meth:`Detail.expand` draws one node per record. No ipywidgets here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable
from typing import Any

import pandas as pd
from sqlalchemy import inspect, select

from ..lineage.labels import readable
from ..lineage.reads import untracked_reads
from ..orm.keys import value_from_text
from ..orm.registry import LABEL_FIELDS, mapped_classes
from ..orm.session_scope import run_sync
from ..render.picture import LineagePicture, node_id
from ..views.html import format_value, lineage_line
from ._source import display

__all__ = ["MAX_RELATED", "Detail", "title_of"]

MAX_RELATED = 20
"""Related records, inputs or outputs listed per kind; the rest are counted."""
MAX_SOURCE = 4000
"""Characters of a cell's source shown in the history."""
MAX_READERS = 200
"""Packed reads of a table looked through to find the runs that read a record."""

Expanded = dict[Hashable, frozenset[Any]]
"""The expanded groups of a picture: each group's node and the record nodes it stood for
(empty when the graph layer made the group: its members are found in the ungrouped graph)."""


def title_of(obj: Any) -> str:
    """A record's heading: ``Sample 3: s1``, ``run 12 · analysis.ipynb v3``, ``Project 2``."""
    state = inspect(obj)
    transform = state.dict.get("transform")
    if transform is not None and hasattr(obj, "records_df"):  # a run
        return f"{obj.label} · {transform.label}"
    if isinstance(getattr(type(obj), "label", None), property):
        return f"{type(obj).__name__} {obj.label}"
    for name in LABEL_FIELDS:
        if isinstance(state.dict.get(name), str):
            return f"{type(obj).__name__} {state.identity[0]}: {state.dict[name]}"
    return f"{type(obj).__name__} {', '.join(str(v) for v in state.identity or ())}"


def _when(value: Any) -> str:
    text = display(value)
    return text if text is not None else "—"


class Detail:
    """The detail of one record at a time, with a trail of the records shown before it.

    Args:
        depth: how many levels of upstream lineage the picture shows.
    """

    def __init__(self, depth: int = 3) -> None:
        self.depth = depth
        self.record: Any = None
        self.trail: list[tuple[Any, Expanded]] = []
        self.targets: list[tuple[type, Any]] = []
        self.expanded: Expanded = {}
        #: the graph of the picture shown last and its ``data-node`` names.
        self.graph: Any = None
        self.node_ids: dict[str, Any] = {}

    # -- navigation ---------------------------------------------------------------------------
    def show(
        self, record: Any, *, remember: bool = True, expanded: Expanded | None = None
    ) -> dict[str, Any]:
        """Show ``record`` (its picture with the ``expanded`` groups drawn record by record);
        the one shown before goes on the trail (``remember``)."""
        if remember and self.record is not None:
            self.trail.append((self.record, self.expanded))
        self.record = record
        self.expanded = dict(expanded or {})
        with untracked_reads():  # looking at a record is not using it
            return self._build(record)

    def expand(self, node: str) -> dict[str, Any]:
        """Draw the group node named ``node`` (its ``data-node``) of the picture shown last one
        node per record, and show the same record again (the trail is kept).

        Raises:
            ValidationError: the picture has no such group.
        """
        from ..errors import ValidationError

        key = self.node_ids.get(node) if isinstance(node, str) else None
        if self.record is None or key is None or self.graph.nodes[key].get("kind") != "group":
            raise ValidationError(f"no group {node!r} to expand.", field="node", value=node)
        members = frozenset(self.graph.nodes[key].get("members") or ())
        return self.show(self.record, remember=False, expanded={**self.expanded, key: members})

    def open(self, index: int) -> dict[str, Any]:
        """Open target ``index`` of the detail shown last (reloaded with its relations).

        Raises:
            ValidationError: no such target.
        """
        from ..errors import ValidationError

        if not 0 <= index < len(self.targets):
            raise ValidationError(f"no record {index} to open.", field="target", value=index)
        cls, key = self.targets[index]
        with untracked_reads():
            found = cls.get(key)  # type: ignore[attr-defined]
            found = found.load_all() if hasattr(found, "load_all") else found
        return self.show(found)

    def back(self) -> dict[str, Any] | None:
        """Show the record shown before this one again; None when the trail is empty."""
        if not self.trail:
            return None
        previous, expanded = self.trail.pop()
        with untracked_reads():
            previous = type(previous).get(inspect(previous).identity[0])
            previous = previous.load_all() if hasattr(previous, "load_all") else previous
        return self.show(previous, remember=False, expanded=expanded)

    def clear(self) -> None:
        """Forget the record and the trail (a new selection in the table starts afresh)."""
        self.record, self.trail, self.targets, self.expanded = None, [], [], {}
        self.graph, self.node_ids = None, {}

    # -- building -----------------------------------------------------------------------------
    def _target(self, cls: type, key: Any) -> int:
        self.targets.append((cls, key))
        return len(self.targets) - 1

    def _record_target(self, table: str, pk: str, classes: dict[str, type]) -> int | None:
        cls = classes.get(table)
        if cls is None or len(inspect(cls).primary_key) != 1 or not hasattr(cls, "get"):
            return None
        return self._target(cls, value_from_text(inspect(cls).primary_key[0], pk, strict=False))

    def _build(self, record: Any) -> dict[str, Any]:
        self.targets = []
        classes = mapped_classes()
        kind = self._kind(record)
        detail: dict[str, Any] = {
            "title": title_of(record),
            "kind": kind,
            "line": self._line(record, kind),
            "fields": self._fields(record),
            "trail": [title_of(r) for r, _ in self.trail],
        }
        detail["related"], detail["more"] = self._related(record)
        detail["stale"] = self._stale(record)
        detail["history"] = self._history(record)
        detail["svg"] = self._picture(record)
        detail["nodes"], detail["groups"] = self._nodes(classes)
        detail["expanded"] = sorted(node_id(key) for key in self.expanded)
        detail["inputs"], detail["outputs"] = self._inputs_outputs(record, kind, classes)
        return detail

    @staticmethod
    def _kind(record: Any) -> str:
        from ..lineage.schema import Run, Transform, User

        for cls, name in ((Run, "run"), (Transform, "transform"), (User, "user")):
            if isinstance(record, cls):
                return name
        return "record"

    @staticmethod
    def _line(record: Any, kind: str) -> str:
        if kind == "record" and hasattr(record, "history_df"):
            return lineage_line(record)
        if kind == "run":
            state = inspect(record).dict
            return (
                f"run {record.id} · {state.get('status', '')}, started "
                f"{_when(state.get('started_at'))}, finished {_when(state.get('finished_at'))}"
            )
        return ""

    @staticmethod
    def _fields(record: Any) -> list[list[str]]:
        state = inspect(record)
        related = {
            next(iter(rel.local_columns)).key: rel.key
            for rel in state.mapper.relationships
            if rel.direction.name == "MANYTOONE" and len(rel.local_columns) == 1
        }
        rows: list[list[str]] = []
        for attr in state.mapper.column_attrs:
            if attr.key not in state.dict:
                rows.append([attr.key, "(not loaded)"])
                continue
            value = state.dict[attr.key]
            text = display(value) if isinstance(value, (float, dt.datetime, bool)) else None
            text = text if text is not None else format_value(value)
            other = state.dict.get(related.get(attr.columns[0].key, ""))
            if other is not None:
                text += f" ({title_of(other)})"
            rows.append([str(attr.key), text])
        return rows

    def _related(self, record: Any) -> tuple[list[dict[str, Any]], list[list[Any]]]:
        state = inspect(record)
        found: list[dict[str, Any]] = []
        more: list[list[Any]] = []
        for rel in state.mapper.relationships:
            value = state.dict.get(rel.key)
            items = list(value) if isinstance(value, (list, set, tuple)) else [value]
            items = [item for item in items if item is not None]
            for item in items[:MAX_RELATED]:
                identity = inspect(item).identity
                if not identity:
                    continue
                key = identity[0] if len(identity) == 1 else identity
                found.append(
                    {
                        "group": rel.key,
                        "label": title_of(item),
                        "target": self._target(type(item), key),
                    }
                )
            if len(items) > MAX_RELATED:
                more.append([rel.key, len(items) - MAX_RELATED])
        return found, more

    @staticmethod
    def _stale(record: Any) -> dict[str, Any] | None:
        if not hasattr(record, "stale_inputs") or inspect(record).key is None:
            return None
        try:
            frame = record.stale_inputs()
        except Exception as error:  # a detail pane must not fail for want of a staleness check
            return {
                "stale": None,
                "text": f"staleness unavailable ({type(error).__name__})",
                "inputs": [],
            }
        inputs = [
            [str(t), str(pk), str(change)]
            for t, pk, change in zip(
                frame["table"][:MAX_RELATED],
                frame["pk"][:MAX_RELATED],
                frame["change"][:MAX_RELATED],
                strict=True,
            )
        ]
        stale = bool(len(frame))
        text = (
            f"stale: the run that wrote it read {len(frame)} record(s) that changed since"
            if stale
            else "up to date: no input of the run that wrote it changed since"
        )
        return {"stale": stale, "text": text, "inputs": inputs}

    @staticmethod
    def _history(record: Any) -> list[dict[str, Any]]:
        if not hasattr(record, "history_df"):
            return []
        frame = record.history_df()
        rows: list[dict[str, Any]] = []
        for row in frame.tail(50).to_dict("records"):
            source = row.get("cell_source")
            source = None if source is None or pd.isna(source) else str(source)
            if source is not None and len(source) > MAX_SOURCE:
                source = source[:MAX_SOURCE] + "\n…"
            changes = row.get("changes")
            rows.append(
                {
                    "at": _when(row.get("at")),
                    "action": str(row.get("action") or ""),
                    "changes": format_value(changes) if changes is not None else "",
                    "cell": display(row.get("cell")),
                    "run": display(row.get("run")),
                    "user": display(row.get("user_handle")),
                    "source": source,
                }
            )
        return rows

    def _picture(self, record: Any) -> str:
        """The picture's SVG; keeps its graph and ``data-node`` names for clicks on it.

        With groups expanded, the graph is read ungrouped (``group_above=None``) and the picture
        keeps the expanded groups' records single, however it would group them again.
        """
        self.graph, self.node_ids = None, {}
        lineage = getattr(record, "lineage", None)
        if not callable(lineage):
            return ""
        title = f"Lineage of {title_of(record)}"
        if not self.expanded:
            picture = LineagePicture(lineage(self.depth), title=title, relabel=readable)
        else:
            graph = lineage(self.depth, group_above=None)
            pinned = set().union(*self.expanded.values()) | self._graph_members(graph)
            expand = set(self.expanded)
            picture = LineagePicture(graph, title=title, expand=expand, relabel=readable)
            regrouped = {
                node
                for node, data in picture.graph.nodes(data=True)
                if data.get("kind") == "group" and not pinned.isdisjoint(data.get("members") or ())
            }
            if regrouped:  # the same records, grouped by other neighbours: draw them too
                picture = LineagePicture(
                    graph, title=title, expand=expand | regrouped, relabel=readable
                )
        self.graph, self.node_ids = picture.graph, picture.node_ids
        return picture.svg

    def _graph_members(self, graph: Any) -> set[Any]:
        """The records of the expanded groups the graph layer made: ``("records", table,
        run_id)`` stands for the records of ``table`` that run read."""
        found: set[Any] = set()
        for key, members in self.expanded.items():
            if members or not (isinstance(key, tuple) and len(key) == 3):
                continue
            run = ("run", key[2])
            if run in graph:
                found.update(
                    node
                    for node in graph.predecessors(run)
                    if isinstance(node, tuple)
                    and len(node) == 3
                    and node[0] == "record"
                    and node[1] == key[1]
                )
        return found

    def _node_target(self, node: Any, classes: dict[str, type]) -> int | None:
        from ..lineage.schema import Run, Transform, User

        if not isinstance(node, tuple) or len(node) < 2:
            return None
        if node[0] == "record" and len(node) == 3:
            return self._record_target(str(node[1]), str(node[2]), classes)
        kinds: dict[str, type] = {"run": Run, "transform": Transform, "user": User}
        if node[0] in kinds and len(node) == 2:
            return self._target(kinds[node[0]], node[1])
        return None

    def _nodes(self, classes: dict[str, type]) -> tuple[dict[str, int], list[str]]:
        """The picture's clickable nodes by ``data-node``: records, runs, transforms and users
        → target; and the group nodes one can expand."""
        found: dict[str, int] = {}
        groups: list[str] = []
        for name, node in self.node_ids.items():
            data = self.graph.nodes[node]
            if data.get("focus"):
                continue
            if data.get("kind") == "group":
                groups.append(name)
                continue
            target = self._node_target(node, classes)
            if target is not None:
                found[name] = target
        return found, groups

    # -- inputs and outputs -------------------------------------------------------------------
    def _inputs_outputs(
        self, record: Any, kind: str, classes: dict[str, type]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if kind == "run":
            inputs = record.inputs_df()
            outputs = record.records_df()
            return (
                self._keyed(inputs, classes, "changed_since"),
                self._keyed(outputs.drop_duplicates(["table", "pk"]), classes, None),
            )
        if kind != "record" or not hasattr(record, "history_df"):
            return [], []
        from ..lineage.stamping import record_key

        table, pk = record_key(record)
        inputs = self._record_inputs(record)
        outputs = run_sync(lambda s: self._readers_outputs(s, table, pk))
        return (self._keyed(inputs, classes, "changed_since"), self._keyed(outputs, classes, None))

    def _keyed(
        self, frame: pd.DataFrame, classes: dict[str, type], changed: str | None
    ) -> list[dict[str, Any]]:
        if not len(frame):
            return []
        shown: list[dict[str, Any]] = []
        for row in frame.head(MAX_RELATED).to_dict("records"):
            table, pk = str(row["table"]), str(row["pk"])
            cls = classes.get(table)
            label = f"{cls.__name__ if cls else table} {pk}"
            item: dict[str, Any] = {
                "label": label,
                "target": self._record_target(table, pk, classes),
            }
            if changed is not None and changed in row:
                item["changed"] = bool(row[changed]) if not pd.isna(row[changed]) else False
            shown.append(item)
        if len(frame) > MAX_RELATED:
            shown.append({"label": f"… and {len(frame) - MAX_RELATED} more", "target": None})
        return shown

    @staticmethod
    def _record_inputs(record: Any) -> pd.DataFrame:
        """The records read by the runs that wrote ``record`` (their ``inputs_df``)."""
        from ..lineage.schema import Run

        history = record.history_df()
        run_ids = sorted({int(r) for r in history["run_id"].dropna()}) if len(history) else []
        frames = [Run.get(run_id).inputs_df() for run_id in run_ids[-5:]]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=["table", "pk", "changed_since"])
        return pd.concat(frames).drop_duplicates(["table", "pk"])

    @staticmethod
    def _readers_outputs(session: Any, table: str, pk: str) -> pd.DataFrame:
        """What the runs that read ``(table, pk)`` wrote: their record events' distinct keys.

        A run's read of one record keeps its key; a read of many keeps a packed key set, and
        only the newest :data:`MAX_READERS` of those are unpacked to look for the key.
        """
        from ..lineage.history import readers_of
        from ..lineage.schema import RecordEvent

        runs = readers_of(session, table, pk, packed_limit=MAX_READERS)
        if not runs:
            return pd.DataFrame(columns=["table", "pk"])
        rows = session.execute(
            select(RecordEvent.table, RecordEvent.pk)
            .where(RecordEvent.run_id.in_(sorted(runs)))
            .distinct()
            .order_by(RecordEvent.table, RecordEvent.pk)
            .limit(MAX_RELATED + 1)
        ).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=["table", "pk"])
        return frame[(frame["table"] != table) | (frame["pk"] != pk)]
