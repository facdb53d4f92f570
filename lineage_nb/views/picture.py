"""Lineage pictures: a networkx lineage graph drawn as a left-to-right SVG (no graphviz needed).

Nodes are placed in columns by their longest path from the sources (networkx topological order,
cycles broken), ordered within a column by the barycenter of their neighbours, and drawn with a
shape and colour per kind: records (blue boxes; stale ones amber), records read together (one
box with their count), runs (orange hexagons), transforms (green notes), users (purple pills);
an input that changed after its run read it is a red dashed edge. Graphs larger than ``max_nodes`` keep the nodes nearest the focus
and gain one "N more" node.
"""

from __future__ import annotations

import html
from functools import partial
from pathlib import Path
from typing import Any

import networkx as nx

from ..errors import ValidationError

__all__ = ["KIND_STYLES", "LineagePicture", "readable"]

#: fill, stroke and legend name of each node kind.
KIND_STYLES: dict[str, tuple[str, str, str]] = {
    "transform": ("#e8f5e9", "#2e7d32", "transform (notebook / script)"),
    "user": ("#f3e5f5", "#6a1b9a", "user"),
    "run": ("#fff3e0", "#e65100", "run"),
    "record": ("#e3f2fd", "#1565c0", "record"),
    "group": ("#e1f5fe", "#0277bd", "records read together"),
    "stale": ("#fff8e1", "#f9a825", "stale record"),
    "more": ("#fafafa", "#757575", "not shown"),
}
#: The edge drawn for a ``used`` edge whose record changed after the run read it.
CHANGED = "used, changed since"
_EDGE = {"wrote": ("#37474f", ""), "used": ("#1565c0", "5,3"), "executed": ("#9e9e9e", ""),
         "ran": ("#9e9e9e", "2,2"), CHANGED: ("#c62828", "5,3")}
CHAR_W, LINE_H, GAP_X, GAP_Y, PAD, MAX_CHARS = 7.0, 16, 70, 16, 20, 34
MORE = ("more",)


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _lines(label: str) -> list[str]:
    return [ln if len(ln) <= MAX_CHARS else ln[: MAX_CHARS - 1] + "…" for ln in label.split("\n")]


def _capped(graph: nx.DiGraph, max_nodes: int) -> nx.DiGraph:
    """Keep the ``max_nodes - 1`` nodes nearest the focus; the rest become one "N more" node."""
    if len(graph) <= max_nodes:
        return graph
    focus = [n for n, d in graph.nodes(data=True) if d.get("focus")] or [next(iter(graph))]
    undirected = graph.to_undirected(as_view=True)
    keep: list[Any] = []
    for node in nx.bfs_tree(undirected, focus[0]).nodes:
        if len(keep) >= max_nodes - 1:
            break
        keep.append(node)
    keep += [n for n in graph if n not in set(keep)][: max(0, max_nodes - 1 - len(keep))]
    small = graph.subgraph(keep).copy()
    hidden = len(graph) - len(keep)
    small.add_node(MORE, kind="more", label=f"{hidden} more\n(raise max_nodes)")
    border = [n for n in keep if any(m not in small for m in undirected[n])]
    for node in border[:3]:
        small.add_edge(MORE, node, relation="used")
    return small


def _layers(graph: nx.DiGraph) -> dict[Any, int]:
    """Column of each node: longest path from a source in a DAG made by dropping cycle edges."""
    dag = nx.DiGraph(graph)
    while not nx.is_directed_acyclic_graph(dag):
        cycle = nx.find_cycle(dag)
        used = [e for e in cycle if dag.edges[e[0], e[1]].get("relation") == "used"]
        dag.remove_edge(*(used or cycle)[0][:2])
    layer: dict[Any, int] = {}
    for node in nx.topological_sort(dag):
        layer[node] = max((layer[p] + 1 for p in dag.predecessors(node)), default=0)
    for node in reversed(list(nx.topological_sort(dag))):
        successors = [layer[s] for s in dag.successors(node)]
        if dag.in_degree(node) == 0 and successors:
            layer[node] = min(successors) - 1
    low = min(layer.values(), default=0)
    return {n: v - low for n, v in layer.items()}


def _center(undirected: Any, rank: dict[Any, int], col: set[Any], node: Any) -> float:
    near = [rank[m] for m in undirected[node] if m in rank and m not in col]
    return sum(near) / len(near) if near else float(rank[node])


def _order(graph: nx.DiGraph, layer: dict[Any, int]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for node in sorted(graph, key=lambda n: (graph.nodes[n].get("kind", ""), str(n))):
        columns[layer[node]].append(node)
    undirected = graph.to_undirected(as_view=True)
    for sweep in range(4):
        rank = {n: i for col in columns for i, n in enumerate(col)}
        sequence = columns[1:] if sweep % 2 == 0 else columns[-2::-1]
        for col in sequence:
            col.sort(key=partial(_center, undirected, rank, set(col)))
            rank.update({n: i for i, n in enumerate(col)})
    return columns


def _shape(kind: str, x: float, y: float, w: float, h: float, fill: str, stroke: str, width: float) -> str:
    common = f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"'
    if kind == "run":
        d = h / 2
        pts = [(x + d, y), (x + w - d, y), (x + w, y + h / 2), (x + w - d, y + h), (x + d, y + h), (x, y + h / 2)]
        return f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}" {common}/>'
    if kind == "transform":
        f = 10
        return (f'<path d="M{x:.1f},{y:.1f} H{x + w - f:.1f} L{x + w:.1f},{y + f:.1f} V{y + h:.1f} '
                f'H{x:.1f} Z" {common}/>')
    if kind == "user":
        return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{h / 2:.1f}" {common}/>'
    dash = ' stroke-dasharray="4,3"' if kind == "more" else ""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="4" {common}{dash}/>'


def _pk_value(column: Any, text: str) -> Any:
    try:
        return column.type.python_type(text)
    except (NotImplementedError, TypeError, ValueError):
        return text


def _fetch(statement: Any, session: Any) -> list[Any]:
    return list(session.execute(statement).all())


def readable(graph: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``graph`` whose record labels read ``Sample 3`` plus the record's name, if any.

    One query per model class in the graph (``WHERE pk IN (...)``); without a database the
    labels are left as they are.
    """
    from sqlalchemy import inspect, select

    from ..model import Model
    from ..orm.session_scope import run_sync
    from .frames import _label_column_of

    graph = graph.copy()
    classes = {str(getattr(m.local_table, "name", "")): m.class_ for m in Model.registry.mappers}
    by_table: dict[str, list[Any]] = {}
    for node, data in graph.nodes(data=True):
        if data.get("kind") == "record" and len(node) == 3 and node[1] in classes:
            by_table.setdefault(node[1], []).append(node)
    for table, nodes in by_table.items():
        cls = classes[table]
        keys = inspect(cls).primary_key
        field = _label_column_of(cls)
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
            graph.nodes[node]["label"] = f"{cls.__name__} {node[2]}" + (f"\n{name}" if name else "")
    return graph


class LineagePicture:
    """An SVG picture of a lineage graph; shows itself in Jupyter (``_repr_svg_``).

    Args:
        graph: a lineage ``DiGraph`` (nodes with ``kind`` and ``label`` attributes).
        title: a caption drawn above the picture.
        max_nodes: at most this many nodes are drawn; the rest are summarised as "N more".
        relabel: look up record labels (class name and name field) in the database.

    Examples:
        >>> import networkx as nx
        >>> g = nx.DiGraph()
        >>> g.add_node(("run", 1), kind="run", label="run 1")
        >>> g.add_node(("record", "sample", "1"), kind="record", label="Sample <1>")
        >>> g.add_edge(("run", 1), ("record", "sample", "1"), relation="wrote")
        >>> picture = LineagePicture(g, title="demo", relabel=False)
        >>> "Sample &lt;1&gt;" in picture.svg and picture.svg.startswith("<svg")
        True
    """

    def __init__(
        self, graph: nx.DiGraph, title: str = "Lineage", *, max_nodes: int = 60, relabel: bool = True
    ) -> None:
        self.graph = _capped(readable(graph) if relabel else graph, max_nodes)
        self.title = title
        self.hidden = len(graph) - (len(self.graph) - (MORE in self.graph))
        #: top-left corner of each drawn node, in SVG units (x grows left to right).
        self.positions: dict[Any, tuple[float, float]] = {}
        self.svg = self._draw()

    def __repr__(self) -> str:
        return f"<LineagePicture {self.title!r}: {len(self.graph)} nodes>"

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path: str | Path) -> Path:
        """Write the picture to ``path`` (``.svg``, or ``.html`` for a standalone page).

        Raises:
            ValidationError: the suffix is neither ``.svg`` nor ``.html``.
        """
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix == ".svg":
            target.write_text(self.svg, encoding="utf-8")
        elif suffix in (".html", ".htm"):
            page = f"<!doctype html><meta charset='utf-8'><title>{_esc(self.title)}</title>{self.svg}"
            target.write_text(page, encoding="utf-8")
        else:
            raise ValidationError(
                f"cannot save a lineage picture as {suffix or 'a file without suffix'!r}.",
                field="path", value=str(path), hint="Use a .svg or .html file name.",
            )
        return target

    def _draw(self) -> str:
        graph = self.graph
        columns = _order(graph, _layers(graph)) if len(graph) else []
        size: dict[Any, tuple[float, float]] = {}
        for node in graph:
            lines = _lines(str(graph.nodes[node].get("label", node)))
            size[node] = (max(60.0, max(len(s) for s in lines) * CHAR_W + 24), 12.0 + LINE_H * len(lines))
        heights = [sum(size[n][1] for n in col) + GAP_Y * (len(col) - 1) for col in columns]
        total_h = max(heights, default=0.0)
        pos: dict[Any, tuple[float, float]] = {}
        x = float(PAD)
        for col, height in zip(columns, heights, strict=True):
            width = max(size[n][0] for n in col)
            y = PAD + 30 + (total_h - height) / 2
            for node in col:
                pos[node] = (x + (width - size[node][0]) / 2, y)
                y += size[node][1] + GAP_Y
            x += width + GAP_X
        self.positions = pos
        legend_y = PAD + 30 + total_h + 24
        svg_w, svg_h = max(x - GAP_X + PAD, 520.0), legend_y + 24
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{svg_w:.0f}" height="{svg_h:.0f}" '
            f'viewBox="0 0 {svg_w:.0f} {svg_h:.0f}" style="max-width:100%;height:auto" '
            'font-family="system-ui, sans-serif" font-size="12">',
            '<defs><marker id="lnb-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#546e7a"/>'
            "</marker></defs>",
            f'<rect width="100%" height="100%" fill="white"/><text x="{PAD}" y="{PAD + 6}" '
            f'font-size="14" font-weight="bold">{_esc(self.title)}</text>',
        ]
        for a, b, data in graph.edges(data=True):
            relation = str(data.get("relation", ""))
            if relation == "used" and data.get("changed"):
                relation = CHANGED
            parts.append(self._edge(pos[a], size[a], pos[b], size[b], relation))
        for node in graph:
            parts.append(self._node(node, pos[node], size[node]))
        lx = float(PAD)
        for kind, (fill, stroke, name) in KIND_STYLES.items():
            parts.append(_shape(kind, lx, legend_y - 10, 22, 14, fill, stroke, 1))
            parts.append(f'<text x="{lx + 28}" y="{legend_y + 1}" fill="#444">{_esc(name)}</text>')
            lx += 40 + len(name) * 6.5
        parts.append("</svg>")
        return "".join(parts)

    def _node(self, node: Any, xy: tuple[float, float], wh: tuple[float, float]) -> str:
        data = self.graph.nodes[node]
        kind = str(data.get("kind", "record"))
        fill, stroke, _ = KIND_STYLES["stale" if data.get("stale") else kind] if (
            data.get("stale") or kind in KIND_STYLES) else KIND_STYLES["record"]
        label = str(data.get("label", node))
        width = 3.0 if data.get("focus") else 1.2
        x, y = xy
        w, h = wh
        text = "".join(
            f'<tspan x="{x + w / 2:.1f}" y="{y + 6 + LINE_H * (i + 1) - 3:.1f}">{_esc(line)}</tspan>'
            for i, line in enumerate(_lines(label))
        )
        return (f'<g class="lnb-node lnb-{_esc(kind)}"><title>{_esc(label)}</title>'
                f"{_shape(kind, x, y, w, h, fill, stroke, width)}"
                f'<text text-anchor="middle" fill="#212121">{text}</text></g>')

    @staticmethod
    def _edge(a: tuple[float, float], sa: tuple[float, float], b: tuple[float, float],
              sb: tuple[float, float], relation: str) -> str:
        color, dash = _EDGE.get(relation, ("#546e7a", ""))
        x1, y1 = a[0] + sa[0], a[1] + sa[1] / 2
        x2, y2 = b[0], b[1] + sb[1] / 2
        if x2 <= x1:  # an edge pointing back (e.g. a run that read and rewrote a record)
            x1, x2 = a[0], b[0] + sb[0]
            bend = max(40.0, (x1 - x2) / 2)
            d = f"M{x1:.1f},{y1:.1f} C{x1 - bend:.1f},{y1 - 60:.1f} {x2 + bend:.1f},{y2 - 60:.1f} {x2:.1f},{y2:.1f}"
        else:
            mid = (x1 + x2) / 2
            d = f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        return (f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.3"{dashed} '
                f'marker-end="url(#lnb-arrow)"><title>{_esc(relation)}</title></path>')
