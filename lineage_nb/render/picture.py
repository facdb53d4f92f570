"""Lineage pictures: a networkx lineage graph drawn as a left-to-right SVG (no graphviz needed).

The drawing is a layered (Sugiyama) layout, written here on networkx so the picture needs no
binary and no extra dependency:

1. cycles are broken by reversing the back edges of a depth-first search (a run that read and
   rewrote a record is a cycle), so every edge points left to right or is drawn back;
2. each node's column is its longest path from a source; a source (a transform, a user, an
   input) moves right to the column just before its first successor so it sits next to it;
3. an edge spanning several columns gets one invisible "dummy" node per column it crosses;
4. the order within a column starts from the labels' natural order (``Sample 2`` before
   ``Sample 10``) and is improved by barycenter sweeps, left to right and back, keeping the
   order with the fewest crossings, then by swapping neighbours while that removes crossings;
5. vertical positions: each node is pulled towards its neighbours' centres, column by column,
   as a least-squares problem under the minimum spacing (pool-adjacent-violators), so a run
   sits level with its records and long edges run straight;
6. each edge is routed through its dummies' positions: straight inside a column (between the
   boxes, which the spacing keeps apart) and a horizontal-tangent curve inside the gap between
   two columns, where no box is; so no edge passes over a box it does not start or end at.

Nodes are drawn with a shape and colour per kind: records (blue boxes; stale ones amber), groups
of records (a stacked box with their count), runs (orange hexagons), transforms (green notes),
users (purple pills). A legend names every node kind and edge style the picture uses. More than
``group_above`` records of one table with the same neighbours (a run's outputs, or inputs the
graph left ungrouped) become one group node, so a run that wrote a thousand records stays one
screen tall; graphs larger than ``max_nodes`` keep the nodes nearest the focus and gain one
"N more" node. Every node carries a ``data-node`` attribute (:func:`node_id`) for widgets.
"""

from __future__ import annotations

import html
import itertools
import re
from bisect import bisect_right, insort
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from ..errors import ValidationError

__all__ = [
    "CHANGED",
    "EDGE_STYLES",
    "GROUP_ABOVE",
    "KIND_STYLES",
    "MAX_NODES",
    "LineagePicture",
    "natural_key",
    "node_id",
]

#: By default more records than this of one table, with the same neighbours, are one node: a
#: column of more boxes than this no longer fits a notebook screen.
GROUP_ABOVE = 12
#: By default at most this many nodes are drawn.
MAX_NODES = 60

#: fill, stroke and legend name of each node kind.
KIND_STYLES: dict[str, tuple[str, str, str]] = {
    "transform": ("#e8f5e9", "#2e7d32", "transform (notebook / script)"),
    "user": ("#f3e5f5", "#6a1b9a", "user"),
    "run": ("#fff3e0", "#e65100", "run"),
    "record": ("#e3f2fd", "#1565c0", "record"),
    "group": ("#e1f5fe", "#0277bd", "records grouped (count)"),
    "stale": ("#fff8e1", "#f9a825", "stale record (an input changed)"),
    "more": ("#fafafa", "#757575", "not shown"),
}
#: The edge drawn for a ``used`` edge whose record changed after the run read it.
CHANGED = "used, changed since"
#: The relation of the dotted links from the "N more" node to the nodes it borders.
MORE_LINK = "hidden"
#: stroke colour, dash pattern and legend text of each edge relation.
EDGE_STYLES: dict[str, tuple[str, str, str]] = {
    "wrote": ("#37474f", "", "wrote (run → record)"),
    "used": ("#1565c0", "5,3", "used (record → run)"),
    CHANGED: ("#c62828", "5,3", "used, changed since"),
    "executed": ("#8d8d8d", "", "executed (transform → run)"),
    "ran": ("#8d8d8d", "2,2", "ran (user → run)"),
    MORE_LINK: ("#bdbdbd", "1,3", "next to nodes not shown"),
}
_OTHER_EDGE = ("#546e7a", "", "")
CHAR_W, LINE_H, PAD, MAX_CHARS = 7.0, 16, 20, 34
GAP_X = 64  # between columns: where edges bend
GAP_Y = 14  # between two boxes of a column
GAP_DUMMY = 10  # between a box and an edge passing through its column
PORT_GAP = 7.0  # between two edges leaving or entering the same side of a box
TOP = PAD + 30  # below the title
MORE = ("more",)
_KIND_RANK = {"transform": 0, "user": 1, "run": 2, "record": 3, "group": 4, "more": 5}
_CAP_RANK = {"run": 0, "transform": 1, "user": 2, "group": 3, "record": 4}


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _lines(label: str) -> list[str]:
    return [ln if len(ln) <= MAX_CHARS else ln[: MAX_CHARS - 1] + "…" for ln in label.split("\n")]


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that orders the digits in ``text`` by value: ``Sample 2`` before ``Sample 10``.

    Examples:
        >>> sorted(["Sample 10", "sample 2", "Sample 1"], key=natural_key)
        ['Sample 1', 'sample 2', 'Sample 10']
    """
    return tuple(
        (0, int(part)) if part.isascii() and part.isdigit() else (1, part.casefold())
        for part in re.split(r"([0-9]+)", text)
        if part
    )


def node_id(node: Any) -> str:
    """The stable text naming ``node`` in the SVG's ``data-node`` attribute.

    The parts of a node key joined by ``|`` (``%`` and ``|`` inside a part percent-encoded), so a
    widget can tell which record, run or group was clicked; :attr:`LineagePicture.node_ids` maps
    it back to the graph's node.

    Examples:
        >>> node_id(("record", "sample", "3")), node_id(("run", 7)), node_id(("record", "t", "a|b"))
        ('record|sample|3', 'run|7', 'record|t|a%7Cb')
    """
    parts = node if isinstance(node, tuple) else (node,)
    return "|".join(str(p).replace("%", "%25").replace("|", "%7C") for p in parts)


# -- grouping and capping ----------------------------------------------------------------------
def _group_key(
    table: str, signature: tuple[tuple[str, str, str], ...], neighbours: dict[str, Any]
) -> tuple[Any, ...]:
    """The node of a group: ``("records", table, run_id)`` for the inputs of one run (the key
    the graph layer gives its groups), ``("records", table, run_id, "wrote")`` for its outputs,
    else the table followed by the neighbours."""
    if len(signature) == 1:
        direction, relation, ident = signature[0]
        neighbour = neighbours[ident]
        if isinstance(neighbour, tuple) and len(neighbour) == 2 and neighbour[0] == "run":
            if direction == "out" and relation == "used":
                return ("records", table, neighbour[1])
            if direction == "in" and relation == "wrote":
                return ("records", table, neighbour[1], "wrote")
    return ("records", table, *(f"{d}:{r}:{i}" for d, r, i in signature))


def _member_order(members: list[Any]) -> list[Any]:
    """Records in the natural order of their keys (numeric keys by value, cheaply)."""
    if all(str(m[2]).isascii() and str(m[2]).isdigit() for m in members):
        return sorted(members, key=lambda m: (len(str(m[2]).lstrip("0")), str(m[2])))
    return sorted(members, key=lambda m: natural_key(str(m[2])))


def _grouped(graph: nx.DiGraph, group_above: int | None, expand: Collection[Any]) -> nx.DiGraph:
    """A copy of ``graph`` where more than ``group_above`` records of one table with the same
    neighbours by the same relations (a run's outputs, a run's inputs) are one ``group`` node
    with their ``count`` and ``members``; the focus and stale records stay single, and so do the
    groups named in ``expand``."""
    if group_above is None:
        return graph
    by_signature: dict[tuple[str, tuple[tuple[str, str, str], ...]], list[Any]] = {}
    ids: dict[Any, str] = {}
    for node, data in graph.nodes(data=True):
        if (
            data.get("kind") != "record"
            or data.get("focus")
            or data.get("stale")
            or not isinstance(node, tuple)
            or len(node) != 3
        ):
            continue
        edges: list[tuple[str, str, str]] = []
        for direction, adjacent in (("in", graph.pred[node]), ("out", graph.succ[node])):
            for other, edge in adjacent.items():
                ident = ids.get(other)
                if ident is None:
                    ident = ids[other] = node_id(other)
                edges.append((direction, str(edge.get("relation", "")), ident))
        if edges:
            by_signature.setdefault((str(node[1]), tuple(sorted(edges))), []).append(node)
    neighbours = {ident: node for node, ident in ids.items()}
    groups: list[tuple[tuple[Any, ...], str, tuple[tuple[str, str, str], ...], list[Any]]] = []
    for (table, signature), members in by_signature.items():
        key = _group_key(table, signature, neighbours)
        if len(members) > group_above and key not in expand and key not in graph:
            groups.append((key, table, signature, _member_order(members)))
    if not groups:
        return graph
    gone = {m for *_, members in groups for m in members}
    result = nx.DiGraph(**graph.graph)
    result.add_nodes_from((n, d) for n, d in graph.nodes(data=True) if n not in gone)
    result.add_edges_from(
        (a, b, d) for a, b, d in graph.edges(data=True) if a not in gone and b not in gone
    )
    for key, table, signature, members in groups:
        result.add_node(
            key,
            kind="group",
            count=len(members),
            members=members,
            label=f"{len(members)} {table} records",
        )
        for direction, relation, ident in signature:
            neighbour = neighbours[ident]
            if direction == "in":
                changed = any(graph.succ[neighbour][m].get("changed") for m in members)
                result.add_edge(
                    neighbour, key, relation=relation, count=len(members), changed=changed
                )
            else:
                changed = any(graph.pred[neighbour][m].get("changed") for m in members)
                result.add_edge(
                    key, neighbour, relation=relation, count=len(members), changed=changed
                )
    return result


def _capped(graph: nx.DiGraph, max_nodes: int) -> nx.DiGraph:
    """Keep the ``max_nodes - 1`` nodes nearest the focus (of those equally near: runs, their
    transforms and users, groups, then records in natural order); the rest become one
    "N more" node."""
    if len(graph) <= max_nodes:
        return graph
    focus = [n for n, d in graph.nodes(data=True) if d.get("focus")] or [next(iter(graph))]
    undirected = graph.to_undirected(as_view=True)

    def rank(node: Any) -> tuple[Any, ...]:  # runs, their context and groups before records
        data = graph.nodes[node]
        return (
            _CAP_RANK.get(str(data.get("kind")), 9),
            natural_key(str(data.get("label", ""))),
            natural_key(node_id(node)),
        )

    keep: list[Any] = [focus[0]]
    kept = {focus[0]}
    level = [focus[0]]
    while level and len(keep) < max_nodes - 1:
        nearby = sorted({m for n in level for m in undirected[n] if m not in kept}, key=rank)
        level = nearby[: max_nodes - 1 - len(keep)]
        keep += level
        kept.update(level)
    keep += [n for n in graph if n not in kept][: max(0, max_nodes - 1 - len(keep))]
    small = graph.subgraph(keep).copy()
    hidden = len(graph) - len(keep)
    small.add_node(
        MORE, kind="more", label=f"{hidden} more not shown\n(raise max_nodes={max_nodes})"
    )
    border = [n for n in keep if any(m not in small for m in undirected[n])]
    for node in border[:3]:
        small.add_edge(MORE, node, relation=MORE_LINK)
    return small


# -- layered layout ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Dummy:
    """A bend point of the ``edge``-th edge in the ``step``-th column it crosses."""

    edge: int
    step: int


@dataclass
class _Route:
    """One edge of the graph: its nodes in layout direction (tail, dummies..., head)."""

    source: Any
    target: Any
    data: dict[str, Any]
    chain: list[Any]
    back: bool  # drawn against the layout direction (a broken cycle)


@dataclass
class _Layout:
    """Where everything goes: node boxes (x, y, w, h), edge points, the drawing's size."""

    boxes: dict[Any, tuple[float, float, float, float]]
    edges: list[tuple[_Route, list[tuple[str, list[tuple[float, float]]]]]]
    width: float
    height: float


def _back_edges(graph: nx.DiGraph, key: Callable[[Any], Any]) -> set[tuple[Any, Any]]:
    """The back edges of a depth-first search started from the sources: reversing them leaves
    no cycle."""
    state: dict[Any, int] = {}  # 1: on the stack, 2: done
    back: set[tuple[Any, Any]] = set()

    def successors(node: Any) -> list[Any]:
        return sorted((m for m in graph.successors(node) if m != node), key=key)

    for root in sorted(graph, key=lambda n: (graph.in_degree(n) > 0, key(n))):
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(successors(root)))]
        while stack:
            node, pending = stack[-1]
            for nxt in pending:
                if state.get(nxt) == 1:
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, iter(successors(nxt))))
                    break
            else:
                state[node] = 2
                stack.pop()
    return back


def _ranks(nodes: list[Any], pairs: list[tuple[Any, Any]]) -> dict[Any, int]:
    """Column of each node: its longest path from a source; a source moves right to just before
    its nearest successor."""
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)
    dag.add_edges_from(pairs)
    order = list(nx.topological_sort(dag))
    rank: dict[Any, int] = {}
    for node in order:
        rank[node] = max((rank[p] + 1 for p in dag.predecessors(node)), default=0)
    for node in reversed(order):
        if dag.in_degree(node) == 0 and dag.out_degree(node):
            rank[node] = min(rank[s] for s in dag.successors(node)) - 1
    low = min(rank.values(), default=0)
    return {n: r - low for n, r in rank.items()}


def _crossings(upper: list[Any], lower: list[Any], down: dict[Any, list[Any]]) -> int:
    """Edge crossings between two neighbouring columns."""
    where = {n: i for i, n in enumerate(lower)}
    ends = [end for n in upper for end in sorted(where[m] for m in down[n])]
    seen: list[int] = []
    count = 0
    for end in ends:
        count += len(seen) - bisect_right(seen, end)
        insort(seen, end)
    return count


def _total_crossings(columns: list[list[Any]], down: dict[Any, list[Any]]) -> int:
    return sum(_crossings(a, b, down) for a, b in itertools.pairwise(columns))


def _sorted_by_barycenter(
    column: list[Any], near: dict[Any, list[Any]], where: dict[Any, int]
) -> list[Any]:
    """``column`` sorted by the mean position of each node's neighbours in the adjacent column;
    a node without neighbours there keeps its place; ties keep the current order."""

    def center(item: tuple[int, Any]) -> float:
        index, node = item
        spots = [where[m] for m in near[node]]
        return sum(spots) / len(spots) if spots else float(index)

    return [n for _, n in sorted(enumerate(column), key=center)]


def _pair_crossings(u: Any, v: Any, near: dict[Any, list[Any]], where: dict[Any, int]) -> int:
    """Crossings between the edges of ``u`` and of ``v`` to one adjacent column, ``u`` above."""
    return sum(1 for a in near[u] for b in near[v] if where[a] > where[b])


def _transpose(
    columns: list[list[Any]], up: dict[Any, list[Any]], down: dict[Any, list[Any]]
) -> None:
    """Swap neighbours in a column while that strictly removes crossings."""
    for _round in range(8):
        improved = False
        for i, column in enumerate(columns):
            above = {n: k for k, n in enumerate(columns[i - 1])} if i else {}
            below = {n: k for k, n in enumerate(columns[i + 1])} if i + 1 < len(columns) else {}
            for j in range(len(column) - 1):
                u, v = column[j], column[j + 1]
                now = _pair_crossings(u, v, up, above) + _pair_crossings(u, v, down, below)
                swapped = _pair_crossings(v, u, up, above) + _pair_crossings(v, u, down, below)
                if swapped < now:
                    column[j], column[j + 1] = v, u
                    improved = True
        if not improved:
            return


def _ordered(
    columns: list[list[Any]],
    up: dict[Any, list[Any]],
    down: dict[Any, list[Any]],
    key: Callable[[Any], Any],
) -> list[list[Any]]:
    """Order each column to have few crossings: natural order first, then barycenter sweeps."""
    columns = [sorted(c, key=key) for c in columns]
    for i in range(1, len(columns)):
        columns[i] = _sorted_by_barycenter(
            columns[i], up, {n: k for k, n in enumerate(columns[i - 1])}
        )
    best, fewest = [list(c) for c in columns], _total_crossings(columns, down)
    for _sweep in range(12):
        if fewest == 0:
            break
        for i in range(1, len(columns)):
            columns[i] = _sorted_by_barycenter(
                columns[i], up, {n: k for k, n in enumerate(columns[i - 1])}
            )
        for i in range(len(columns) - 2, -1, -1):
            columns[i] = _sorted_by_barycenter(
                columns[i], down, {n: k for k, n in enumerate(columns[i + 1])}
            )
        count = _total_crossings(columns, down)
        if count < fewest:
            best, fewest = [list(c) for c in columns], count
    _transpose(best, up, down)
    return best


def _placed(targets: list[float], weights: list[float], gaps: list[float]) -> list[float]:
    """Positions nearest ``targets`` (weighted least squares) with ``y[i+1] - y[i] >= gaps[i]``:
    isotonic regression by pooling adjacent violators, on the targets shifted by the gaps."""
    offsets = [0.0]
    for gap in gaps:
        offsets.append(offsets[-1] + gap)
    blocks: list[tuple[float, float, int]] = []  # value, weight, count
    for target, offset, weight in zip(targets, offsets, weights, strict=True):
        blocks.append((target - offset, weight, 1))
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append(((v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2))
    values = [value for value, _, count in blocks for _ in range(count)]
    return [v + o for v, o in zip(values, offsets, strict=True)]


def _layout(
    graph: nx.DiGraph, size: dict[Any, tuple[float, float]], key: Callable[[Any], Any], top: float
) -> _Layout:
    """The layered layout of ``graph`` (see the module docstring), boxes sized ``size``."""
    back = _back_edges(graph, key)
    routes: list[_Route] = []
    for a, b, data in graph.edges(data=True):
        if a != b:
            flip = (a, b) in back
            routes.append(_Route(a, b, data, [b, a] if flip else [a, b], flip))
    rank = _ranks(list(graph), [(r.chain[0], r.chain[1]) for r in routes])
    for index, route in enumerate(routes):  # one dummy per column an edge crosses
        tail, head = route.chain
        route.chain = [tail, *(_Dummy(index, s) for s in range(1, rank[head] - rank[tail])), head]
        for step, dummy in enumerate(route.chain[1:-1], start=1):
            rank[dummy] = rank[tail] + step
    up: dict[Any, list[Any]] = {n: [] for n in rank}
    down: dict[Any, list[Any]] = {n: [] for n in rank}
    for route in routes:
        for a, b in zip(route.chain, route.chain[1:], strict=False):
            down[a].append(b)
            up[b].append(a)
    columns: list[list[Any]] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    for node, r in rank.items():
        columns[r].append(node)

    def order_key(node: Any) -> Any:
        if isinstance(node, _Dummy):  # below the boxes at first; the sweeps place them
            return (9, key(routes[node.edge].source), node.edge)
        return key(node)

    columns = _ordered(columns, up, down, order_key)

    def height(node: Any) -> float:
        return 0.0 if isinstance(node, _Dummy) else size[node][1]

    def gap(a: Any, b: Any) -> float:
        dummies = isinstance(a, _Dummy) + isinstance(b, _Dummy)
        spacing = (GAP_Y, GAP_DUMMY, GAP_DUMMY * 0.8)[dummies]
        return height(a) / 2 + height(b) / 2 + spacing

    center: dict[Any, float] = {}
    for column in columns:  # packed from the top, then pulled towards the neighbours
        y = 0.0
        for i, node in enumerate(column):
            y += gap(column[i - 1], node) if i else height(node) / 2
            center[node] = y
    sequence = list(range(len(columns)))
    for sweep in range(16):
        for i in sequence if sweep % 2 == 0 else sequence[::-1]:
            column = columns[i]
            targets, weights = [], []
            for node in column:
                near = up[node] + down[node]
                if near:
                    targets.append(sum(center[m] for m in near) / len(near))
                    weights.append(len(near) * (2.0 if isinstance(node, _Dummy) else 1.0))
                else:
                    targets.append(center[node])
                    weights.append(0.01)
            gaps = [gap(a, b) for a, b in itertools.pairwise(column)]
            for node, y in zip(column, _placed(targets, weights, gaps), strict=True):
                center[node] = y
    low = min((center[n] - height(n) / 2 for n in center), default=0.0)
    high = max((center[n] + height(n) / 2 for n in center), default=0.0)
    widths = [
        max((size[n][0] for n in c if not isinstance(n, _Dummy)), default=12.0) for c in columns
    ]
    lefts: list[float] = []
    x = float(PAD)
    for width in widths:
        lefts.append(x)
        x += width + GAP_X
    boxes: dict[Any, tuple[float, float, float, float]] = {}
    for node, r in rank.items():
        if not isinstance(node, _Dummy):
            w, h = size[node]
            boxes[node] = (lefts[r] + (widths[r] - w) / 2, top + center[node] - low - h / 2, w, h)
    ys = {n: top + c - low for n, c in center.items()}
    ports = _ports(routes, boxes, ys)
    edges = []
    for index, route in enumerate(routes):
        points: list[tuple[str, list[tuple[float, float]]]] = []
        tail, head = route.chain[0], route.chain[-1]
        tx, _, tw, _ = boxes[tail]
        hx = boxes[head][0]
        start = (tx + tw, ports[index][0])
        stops = [(lefts[rank[tail]] + widths[rank[tail]], start[1])]
        for dummy in route.chain[1:-1]:
            stops += [
                (lefts[rank[dummy]], ys[dummy]),
                (lefts[rank[dummy]] + widths[rank[dummy]], ys[dummy]),
            ]
        end = (hx, ports[index][1])
        stops.append((lefts[rank[head]], end[1]))
        current = start
        for k, stop in enumerate(stops):
            if stop != current:
                if k % 2 == 0:  # inside a column: a straight line
                    points.append(("L", [stop]))
                else:  # across the gap between two columns: a curve with level ends
                    middle = (current[0] + stop[0]) / 2
                    points.append(("C", [(middle, current[1]), (middle, stop[1]), stop]))
                current = stop
        if end != current:
            points.append(("L", [end]))
        points.insert(0, ("M", [start]))
        edges.append((route, _reversed(points) if route.back else points))
    return _Layout(boxes, edges, x - GAP_X + PAD if columns else 2.0 * PAD, top + high - low)


def _ports(
    routes: list[_Route], boxes: dict[Any, tuple[float, float, float, float]], ys: dict[Any, float]
) -> list[list[float]]:
    """Where each edge leaves its tail (right side) and enters its head (left side): spread
    along the side in the order of the points they go to, so the edges of a node do not cross
    there; when there are more edges than room, neighbouring edges share a point."""
    out: dict[Any, list[tuple[float, int]]] = {}
    into: dict[Any, list[tuple[float, int]]] = {}
    for index, route in enumerate(routes):
        out.setdefault(route.chain[0], []).append((ys[route.chain[1]], index))
        into.setdefault(route.chain[-1], []).append((ys[route.chain[-2]], index))
    ports = [[0.0, 0.0] for _ in routes]
    for side, table in ((0, out), (1, into)):
        for node, items in table.items():
            _, y, _, h = boxes[node]
            items.sort()
            slots = min(len(items), int((h - 8) // PORT_GAP) + 1)  # edges share when crowded
            for k, (_, index) in enumerate(items):
                slot = k * slots // len(items)
                ports[index][side] = y + h / 2 + (slot - (slots - 1) / 2) * PORT_GAP
    return ports


def _reversed(
    points: list[tuple[str, list[tuple[float, float]]]],
) -> list[tuple[str, list[tuple[float, float]]]]:
    """The same path walked from its end to its start."""
    ends = [segment[-1] for _, segment in points]
    result: list[tuple[str, list[tuple[float, float]]]] = [("M", [ends[-1]])]
    for k in range(len(points) - 1, 0, -1):
        command, segment = points[k]
        if command == "C":
            result.append(("C", [segment[1], segment[0], ends[k - 1]]))
        else:
            result.append((command, [ends[k - 1]]))
    return result


def _path_data(points: list[tuple[str, list[tuple[float, float]]]]) -> str:
    return " ".join(
        command + " ".join(f"{x:.1f},{y:.1f}" for x, y in segment) for command, segment in points
    )


# -- drawing -----------------------------------------------------------------------------------
def _shape(
    kind: str, x: float, y: float, w: float, h: float, fill: str, stroke: str, width: float
) -> str:
    common = f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"'
    if kind == "run":
        d = min(h / 2, 14.0)
        pts = [
            (x + d, y),
            (x + w - d, y),
            (x + w, y + h / 2),
            (x + w - d, y + h),
            (x + d, y + h),
            (x, y + h / 2),
        ]
        return f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}" {common}/>'
    if kind == "transform":
        f = min(10.0, h / 2)
        return (
            f'<path d="M{x:.1f},{y:.1f} H{x + w - f:.1f} L{x + w:.1f},{y + f:.1f} V{y + h:.1f} '
            f'H{x:.1f} Z" {common}/>'
        )
    if kind == "user":
        return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{h / 2:.1f}" {common}/>'
    if kind == "group":  # a stack of boxes
        return (
            f'<rect x="{x + 4:.1f}" y="{y:.1f}" width="{w - 4:.1f}" height="{h - 4:.1f}" rx="4" {common}/>'
            f'<rect x="{x:.1f}" y="{y + 4:.1f}" width="{w - 4:.1f}" height="{h - 4:.1f}" rx="4" {common}/>'
        )
    dash = ' stroke-dasharray="4,3"' if kind == "more" else ""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="4" {common}{dash}/>'


def _style_of(data: dict[str, Any]) -> tuple[str, str]:
    """The drawn kind (its shape) and style name (its colours) of a node."""
    kind = str(data.get("kind", "record"))
    kind = kind if kind in KIND_STYLES else "record"
    return kind, "stale" if data.get("stale") else kind


def _relation(data: dict[str, Any]) -> str:
    relation = str(data.get("relation", ""))
    return CHANGED if relation == "used" and data.get("changed") else relation


def _marker_id(color: str) -> str:
    return "lnb-arrow-" + color.lstrip("#")


class LineagePicture:
    """An SVG picture of a lineage graph; shows itself in Jupyter (``_repr_svg_``).

    Args:
        graph: a lineage ``DiGraph`` (nodes with ``kind`` and ``label`` attributes).
        title: a caption drawn above the picture.
        max_nodes: at most this many nodes are drawn; the rest are summarised as "N more".
        relabel: turns the drawn graph's record labels into readable ones (``Sample 3`` and
            the record's name), e.g. :func:`lineage_nb.lineage.labels.readable`, which asks the
            database; None draws the labels as they are. Only the nodes drawn are relabelled.
        group_above: more records than this of one table with the same neighbours (a run's
            outputs, say) are drawn as one node with their count; None draws every record.
        expand: group nodes (e.g. ``("records", "sample", 7, "wrote")``) to draw one node per
            record anyway: a widget expanding a clicked group.

    Examples:
        >>> import networkx as nx
        >>> g = nx.DiGraph()
        >>> g.add_node(("run", 1), kind="run", label="run 1")
        >>> g.add_node(("record", "sample", "1"), kind="record", label="Sample <1>")
        >>> g.add_edge(("run", 1), ("record", "sample", "1"), relation="wrote")
        >>> picture = LineagePicture(g, title="demo")
        >>> "Sample &lt;1&gt;" in picture.svg and picture.svg.startswith("<svg")
        True
        >>> 'data-node="record|sample|1"' in picture.svg
        True
    """

    def __init__(
        self,
        graph: nx.DiGraph,
        title: str = "Lineage",
        *,
        max_nodes: int = MAX_NODES,
        relabel: Callable[[nx.DiGraph], nx.DiGraph] | None = None,
        group_above: int | None = GROUP_ABOVE,
        expand: Collection[Hashable] = (),
    ) -> None:
        grouped = _grouped(graph, group_above, expand)
        capped = _capped(grouped, max_nodes)
        self.graph: nx.DiGraph = relabel(capped) if relabel is not None else capped
        self.title = title
        #: how many nodes (after grouping) the "N more" node stands for.
        self.hidden = len(grouped) - (len(self.graph) - (MORE in self.graph))
        #: top-left corner of each drawn node, in SVG units (x grows left to right).
        self.positions: dict[Any, tuple[float, float]] = {}
        #: x, y, width and height of each drawn node, in SVG units.
        self.boxes: dict[Any, tuple[float, float, float, float]] = {}
        #: each ``data-node`` attribute of the SVG and the graph node it stands for.
        self.node_ids: dict[str, Any] = {node_id(n): n for n in self.graph}
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
            page = (
                f"<!doctype html><meta charset='utf-8'><title>{_esc(self.title)}</title>{self.svg}"
            )
            target.write_text(page, encoding="utf-8")
        else:
            raise ValidationError(
                f"cannot save a lineage picture as {suffix or 'a file without suffix'!r}.",
                field="path",
                value=str(path),
                hint="Use a .svg or .html file name.",
            )
        return target

    def _sort_key(self, node: Any) -> tuple[Any, ...]:
        data = self.graph.nodes[node]
        return (
            _KIND_RANK.get(str(data.get("kind")), 6),
            natural_key(str(data.get("label", node))),
            natural_key(node_id(node)),
        )

    def _draw(self) -> str:
        graph = self.graph
        size: dict[Any, tuple[float, float]] = {}
        for node in graph:
            lines = _lines(str(graph.nodes[node].get("label", node)))
            extra = 4.0 if graph.nodes[node].get("kind") == "group" else 0.0
            size[node] = (
                max(60.0, max(len(s) for s in lines) * CHAR_W + 24) + extra,
                12.0 + LINE_H * len(lines) + extra,
            )
        layout = _layout(graph, size, self._sort_key, float(TOP))
        self.boxes = layout.boxes
        self.positions = {n: (x, y) for n, (x, y, _, _) in layout.boxes.items()}
        legend_y = layout.height + 24
        legend, legend_w, legend_h = self._legend(
            layout, PAD, legend_y, max(layout.width - 2 * PAD, 640.0)
        )
        svg_w = max(layout.width, legend_w + 2 * PAD)
        svg_h = legend_y + legend_h + PAD
        colors = sorted(
            {EDGE_STYLES.get(_relation(d), _OTHER_EDGE)[0] for *_, d in graph.edges(data=True)}
            | {style[0] for style in EDGE_STYLES.values()}
        )
        markers = "".join(
            f'<marker id="{_marker_id(c)}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>'
            for c in colors
        )
        parts = [
            (
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{svg_w:.0f}" height="{svg_h:.0f}" '
                f'viewBox="0 0 {svg_w:.0f} {svg_h:.0f}" style="max-width:100%;height:auto" '
                'font-family="system-ui, sans-serif" font-size="12">'
            ),
            f"<defs>{markers}</defs>",
            (
                f'<rect width="100%" height="100%" fill="white"/><text x="{PAD}" y="{PAD + 6}" '
                f'font-size="14" font-weight="bold">{_esc(self.title)}</text>'
            ),
            '<g class="lnb-edges">',
        ]
        for route, points in layout.edges:
            relation = _relation(route.data)
            color, dash, _ = EDGE_STYLES.get(relation, _OTHER_EDGE)
            dashed = f' stroke-dasharray="{dash}"' if dash else ""
            count = route.data.get("count")
            tip = f"{relation} ({count} records)" if count else relation
            parts.append(
                f'<path class="lnb-edge lnb-{_esc(relation.replace(", ", "-").replace(" ", "-"))}" '
                f'data-source="{_esc(node_id(route.source))}" data-target="{_esc(node_id(route.target))}" '
                f'd="{_path_data(points)}" fill="none" stroke="{color}" stroke-width="1.3"{dashed} '
                f'marker-end="url(#{_marker_id(color)})"><title>{_esc(tip)}</title></path>'
            )
        parts.append("</g>")
        for node in graph:
            parts.append(self._node(node, layout.boxes[node]))
        parts.append(f'<g class="lnb-legend">{legend}</g></svg>')
        return "".join(parts)

    def _legend(
        self, layout: _Layout, left: float, top: float, room: float
    ) -> tuple[str, float, float]:
        """The key of every node kind and edge style drawn, in rows no wider than ``room`` from
        (``left``, ``top``); returns its SVG, width and height."""
        styles = {_style_of(d)[1] for _, d in self.graph.nodes(data=True)}
        items: list[tuple[str, str, str]] = []  # what, style, text
        items += [("node", k, KIND_STYLES[k][2]) for k in KIND_STYLES if k in styles]
        if any(d.get("focus") for _, d in self.graph.nodes(data=True)):
            items.append(("focus", "record", "thick border: the one asked about"))
        relations = {_relation(route.data) for route, _ in layout.edges}
        items += [("edge", r, EDGE_STYLES[r][2]) for r in EDGE_STYLES if r in relations]
        items += [("edge", r, r) for r in sorted(relations - set(EDGE_STYLES))]
        parts: list[str] = []
        x, y, width = left, top, 0.0
        row_h = 22.0
        for what, style, text in items:
            item_w = 30 + len(text) * CHAR_W
            if x > left and x + item_w > left + room:
                x, y = left, y + row_h
            parts.append(f'<g class="lnb-legend-item" data-legend="{_esc(style)}">')
            if what == "edge":
                color, dash, _ = EDGE_STYLES.get(style, _OTHER_EDGE)
                dashed = f' stroke-dasharray="{dash}"' if dash else ""
                parts.append(
                    f'<line x1="{x:.1f}" y1="{y + 7:.1f}" x2="{x + 22:.1f}" y2="{y + 7:.1f}" '
                    f'stroke="{color}" stroke-width="1.3"{dashed} '
                    f'marker-end="url(#{_marker_id(color)})"/>'
                )
            else:
                fill, stroke, _ = KIND_STYLES[style]
                shape = "record" if style == "stale" else style
                parts.append(_shape(shape, x, y, 22, 14, fill, stroke, 3 if what == "focus" else 1))
            parts.append(
                f'<text x="{x + 28:.1f}" y="{y + 11:.1f}" fill="#444">{_esc(text)}</text></g>'
            )
            width = max(width, x + item_w - left)
            x += item_w + 16
        return "".join(parts), width, (y - top + row_h if items else 0.0)

    def _node(self, node: Any, box: tuple[float, float, float, float]) -> str:
        data = self.graph.nodes[node]
        kind, style = _style_of(data)
        fill, stroke, _ = KIND_STYLES[style]
        label = str(data.get("label", node))
        width = 3.0 if data.get("focus") else 1.2
        x, y, w, h = box
        if kind == "group":  # the text sits on the front box of the stack
            y, w, h = y + 4, w - 4, h - 4
        text = "".join(
            f'<tspan x="{x + w / 2:.1f}" y="{y + 6 + LINE_H * (i + 1) - 3:.1f}">{_esc(line)}</tspan>'
            for i, line in enumerate(_lines(label))
        )
        count = f' data-count="{_esc(data["count"])}"' if "count" in data else ""
        return (
            f'<g class="lnb-node lnb-{_esc(kind)}" data-node="{_esc(node_id(node))}"{count}>'
            f"<title>{_esc(label)}</title>"
            f"{_shape(kind, *box, fill, stroke, width)}"
            f'<text text-anchor="middle" fill="#212121">{text}</text></g>'
        )
