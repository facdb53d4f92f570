"""Lineage pictures: SVG, left to right, labelled and styled by kind, capped, savable."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from models import Measurement, Project, Sample

import lineage_nb as ln
from lineage_nb.render.picture import KIND_STYLES, LineagePicture, natural_key, node_id

SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def _node_kinds(svg: str) -> set[str]:
    root = ET.fromstring(svg)
    return {
        g.get("class", "").split()[-1]
        for g in root.iter(f"{SVG}g")
        if "lnb-node" in g.get("class", "")
    }


def test_record_picture_labels_and_kinds(db: ln.Database) -> None:
    """A record's picture shows its run, transform, user and inputs with readable labels."""
    project = Project(name="Alpha").save()
    run = ln.track("picture-job")  # a short transform label: long ones are shortened (…)
    loaded = Project.get(project.id)
    sample = Sample(name="s1", value=1.0, project=loaded).save()
    ln.finish(run=run)
    picture = sample.view_lineage()
    texts = _texts(picture._repr_svg_())
    assert f"Lineage of Sample {sample.id}" in texts
    assert f"Sample {sample.id}s1" in texts  # two lines: "Sample N" / "s1"
    assert f"Project {project.id}Alpha" in texts
    assert any(t.startswith(f"run {run.id} · completed") for t in texts)
    assert run.transform.label in texts and "tester" in texts
    assert _node_kinds(picture.svg) >= {"lnb-record", "lnb-run", "lnb-transform", "lnb-user"}


def test_picture_laid_out_left_to_right(db: ln.Database) -> None:
    """Causes are left of effects: transform < run < record; input record < run."""
    project = Project(name="p").save()
    run = ln.track(__file__)
    sample = Sample(name="s", value=1.0, project=Project.get(project.id)).save()
    ln.finish(run=run)
    picture = sample.view_lineage()
    x = {node: xy[0] for node, xy in picture.positions.items()}
    run_node = ("run", run.id)
    assert (
        x[("transform", run.transform_id)] < x[run_node] < x[("record", "sample", str(sample.id))]
    )
    assert x[("record", "project", str(project.id))] < x[run_node]


def test_picture_colours_by_kind() -> None:
    """Each kind is drawn with its own fill colour and shape."""
    graph = nx.DiGraph()
    graph.add_node(("transform", 1), kind="transform", label="a.ipynb v1")
    graph.add_node(("user", 1), kind="user", label="alice")
    graph.add_node(("run", 1), kind="run", label="run 1")
    graph.add_node(("record", "t", "1"), kind="record", label="T 1", focus=True)
    graph.add_edges_from(
        [
            (("transform", 1), ("run", 1)),
            (("user", 1), ("run", 1)),
            (("run", 1), ("record", "t", "1")),
        ]
    )
    svg = LineagePicture(graph, title="t").svg
    root = ET.fromstring(svg)
    nodes = [g for g in root.iter(f"{SVG}g") if "lnb-node" in g.get("class", "")]
    assert len(nodes) == 4
    for group in nodes:
        kind = group.get("class", "").split("-")[-1]
        shape = next(iter(child for child in group if child.tag != f"{SVG}title"))
        assert shape.get("fill") == KIND_STYLES[kind][0]
    shapes = {g.get("class"): next(c for c in g if c.tag != f"{SVG}title").tag for g in nodes}
    assert shapes["lnb-node lnb-run"] == f"{SVG}polygon"
    assert shapes["lnb-node lnb-transform"] == f"{SVG}path"


def test_picture_escapes_labels() -> None:
    """Markup in labels and title stays text and the SVG stays well-formed."""
    graph = nx.DiGraph()
    graph.add_node(("record", "t", "1"), kind="record", label="<script>alert(1)</script>")
    picture = LineagePicture(graph, title="<b>&")
    assert "<script>" not in picture.svg
    assert "<script>alert(1)</script>" in _texts(picture.svg)
    assert "<b>&" in _texts(picture.svg)


def test_picture_caps_large_graph() -> None:
    """More than max_nodes nodes are summarised by one 'N more' node naming the parameter."""
    graph = nx.DiGraph()
    graph.add_node(("run", 1), kind="run", label="run 1", focus=True)
    for i in range(200):
        graph.add_edge(("run", 1), ("record", "t", str(i)), relation="wrote")
    picture = LineagePicture(graph, title="big", max_nodes=30, group_above=None)
    assert len(picture.graph) == 30
    assert picture.hidden == 172
    assert "172 more not shown(raise max_nodes=30)" in _texts(picture.svg)
    assert len(graph) == 201  # the caller's graph is untouched


def test_picture_handles_read_and_rewrite_cycle(db: ln.Database) -> None:
    """A run that read and updated the same record (a cycle) still draws."""
    sample = Sample(name="s", value=1.0, project=Project(name="p").save()).save()
    run = ln.track(__file__)
    again = Sample.get(sample.id)
    again.update(value=2.0)
    Measurement(reading=1.0, sample_id=sample.id).save()
    ln.finish(run=run)
    graph = again.lineage()
    assert not nx.is_directed_acyclic_graph(graph)
    picture = again.view_lineage()
    assert f"Sample {sample.id}s" in _texts(picture.svg)


def test_run_view_lineage_and_save(db: ln.Database, tmp_path: Path) -> None:
    """run.view_lineage() has _repr_svg_ and saves to .svg and .html; other suffixes fail."""
    run = ln.track(__file__)
    Project(name="p").save()
    picture = run.view_lineage()
    svg_path = picture.save(tmp_path / "run.svg")
    assert svg_path.read_text(encoding="utf-8") == picture._repr_svg_()
    assert (
        picture.save(tmp_path / "run.html")
        .read_text(encoding="utf-8")
        .startswith("<!doctype html>")
    )
    with pytest.raises(ln.errors.ValidationError) as info:
        picture.save(tmp_path / "run.png")
    assert info.value.field == "path" and info.value.value == str(tmp_path / "run.png")
    ln.finish(run=run)


def test_picture_works_in_ipython_display() -> None:
    """IPython.display.SVG accepts the picture's text."""
    from IPython.display import SVG

    graph = nx.DiGraph()
    graph.add_node(("user", 1), kind="user", label="alice")
    shown = SVG(LineagePicture(graph).svg)
    assert "alice" in shown._repr_svg_()


# -- geometry of the layered layout ------------------------------------------------------------
Box = tuple[float, float, float, float]  # x0, y0, x1, y1
Point = tuple[float, float]
NUMBER = r"-?\d+(?:\.\d+)?"


def _path_points(d: str, samples: int = 16) -> list[Point]:
    """The points of an SVG path (absolute M, L, H, V, C, Z); curves sampled."""
    tokens = re.findall(rf"[MLHVCZ]|{NUMBER}", d)
    points: list[Point] = []
    command, i = "M", 0
    while i < len(tokens):
        if tokens[i].isalpha():
            command = tokens[i]
            i += 1
            if command == "Z":
                points.append(points[0])
            continue
        values = [
            float(t) for t in tokens[i : i + {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6}[command]]
        ]
        i += len(values)
        x, y = points[-1] if points else (0.0, 0.0)
        if command in "ML":
            points.append((values[0], values[1]))
        elif command == "H":
            points.append((values[0], y))
        elif command == "V":
            points.append((x, values[0]))
        else:
            (x1, y1), (x2, y2), (x3, y3) = zip(values[::2], values[1::2], strict=True)
            for k in range(1, samples + 1):
                t = k / samples
                a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t**3
                points.append((a * x + b * x1 + c * x2 + e * x3, a * y + b * y1 + c * y2 + e * y3))
    return points


def _bbox(points: list[Point]) -> Box:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _shape_points(element: ET.Element) -> list[Point]:
    tag = element.tag.removeprefix(SVG)
    if tag == "rect":
        x, y = float(element.get("x", 0)), float(element.get("y", 0))
        return [(x, y), (x + float(element.get("width", 0)), y + float(element.get("height", 0)))]
    if tag == "polygon":
        numbers = [float(n) for n in re.findall(NUMBER, element.get("points", ""))]
        return list(zip(numbers[::2], numbers[1::2], strict=True))
    if tag == "line":
        return [
            (float(element.get("x1", 0)), float(element.get("y1", 0))),
            (float(element.get("x2", 0)), float(element.get("y2", 0))),
        ]
    if tag == "path":
        return _path_points(element.get("d", ""))
    return []


def _node_boxes(svg: str) -> list[Box]:
    """The bounding box of each drawn node's shapes."""
    root = ET.fromstring(svg)
    boxes = []
    for group in root.iter(f"{SVG}g"):
        if "lnb-node" in group.get("class", "").split():
            boxes.append(_bbox([p for child in group for p in _shape_points(child)]))
    return boxes


def _edge_lines(svg: str) -> list[list[Point]]:
    """Each drawn edge (a path with an arrow, outside the legend) as a polyline."""
    root = ET.fromstring(svg)
    lines = []
    for child in root:
        if "lnb-legend" in child.get("class", ""):
            continue
        for path in child.iter(f"{SVG}path"):
            if path.get("marker-end"):
                lines.append(_path_points(path.get("d", "")))
    return lines


def _segment_hits_box(a: Point, b: Point, box: Box) -> bool:
    """Whether the segment a-b meets the box (Liang-Barsky clipping)."""
    x0, y0, x1, y1 = box
    t0, t1 = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for p, q in ((-dx, a[0] - x0), (dx, x1 - a[0]), (-dy, a[1] - y0), (dy, y1 - a[1])):
        if p == 0:
            if q < 0:
                return False
        elif p < 0:
            t0 = max(t0, q / p)
        else:
            t1 = min(t1, q / p)
        if t0 > t1:
            return False
    return True


def _near(point: Point, box: Box, slack: float = 2.0) -> bool:
    return (
        box[0] - slack <= point[0] <= box[2] + slack
        and box[1] - slack <= point[1] <= box[3] + slack
    )


def _assert_no_edge_crosses_a_box(svg: str) -> None:
    boxes = _node_boxes(svg)
    lines = _edge_lines(svg)
    assert boxes and lines
    for line in lines:
        ends = [b for b in boxes if _near(line[0], b) or _near(line[-1], b)]
        assert len(ends) == 2, "an edge starts and ends at a node"
        for box in boxes:
            if box in ends:
                continue
            for a, b in itertools.pairwise(line):
                assert not _segment_hits_box(a, b, box), f"edge {line[0]}→{line[-1]} crosses {box}"


def _add_run(graph: nx.DiGraph, run: int, focus: bool = False) -> tuple[str, int]:
    node = ("run", run)
    graph.add_node(
        node, kind="run", label=f"run {run} · completed\n2024-05-01 10:0{run}", focus=focus
    )
    graph.add_node(("transform", run), kind="transform", label=f"step_{run}.ipynb v1")
    graph.add_node(("user", 1), kind="user", label="alice")
    graph.add_edge(("transform", run), node, relation="executed")
    graph.add_edge(("user", 1), node, relation="ran")
    return node


def _add_record(graph: nx.DiGraph, table: str, pk: int, **marks: bool) -> tuple[str, str, str]:
    node = ("record", table, str(pk))
    graph.add_node(node, kind="record", label=f"{table.title()} {pk}\nname {pk}", **marks)
    return node


def _run_between() -> nx.DiGraph:
    """run 1 wrote Sample 1 and Sample 3; run 2 read Sample 1 and rewrote Sample 3: the edge
    "run 1 wrote Sample 3" spans the column of run 2."""
    graph = nx.DiGraph()
    run1, run2 = _add_run(graph, 1), _add_run(graph, 2)
    s1, s3 = _add_record(graph, "sample", 1), _add_record(graph, "sample", 3, focus=True)
    graph.add_edges_from([(run1, s1), (run1, s3), (run2, s3)], relation="wrote")
    graph.add_edge(s1, run2, relation="used", changed=True)
    graph.nodes[s3]["stale"] = True
    return graph


def _chain() -> nx.DiGraph:
    graph = nx.DiGraph()
    before = _add_record(graph, "project", 1)
    for run in (1, 2, 3):
        node = _add_run(graph, run)
        after = _add_record(graph, "sample", run, focus=run == 3)
        graph.add_edge(before, node, relation="used")
        graph.add_edge(node, after, relation="wrote")
        before = after
    return graph


def _diamond() -> nx.DiGraph:
    """A project read by run 2 (which wrote four samples) and by run 3 (which read them)."""
    graph = nx.DiGraph()
    run1, run2, run3 = _add_run(graph, 1), _add_run(graph, 2), _add_run(graph, 3)
    project = _add_record(graph, "project", 1)
    graph.add_edge(run1, project, relation="wrote")
    graph.add_edge(project, run2, relation="used")
    graph.add_edge(project, run3, relation="used")
    for pk in range(1, 5):
        sample = _add_record(graph, "sample", pk)
        graph.add_edge(run2, sample, relation="wrote")
        graph.add_edge(sample, run3, relation="used")
    graph.add_edge(run3, _add_record(graph, "measurement", 9, focus=True), relation="wrote")
    return graph


def _ten_in_ten_out() -> nx.DiGraph:
    graph = nx.DiGraph()
    run = _add_run(graph, 5, focus=True)
    for pk in range(1, 11):
        graph.add_edge(_add_record(graph, "project", pk), run, relation="used")
        graph.add_edge(run, _add_record(graph, "sample", pk), relation="wrote")
    return graph


def _web() -> nx.DiGraph:
    """Four runs reading each other's outputs across several columns."""
    graph = nx.DiGraph()
    runs = [_add_run(graph, r) for r in range(1, 5)]
    written: list[tuple[str, str, str]] = []
    for index, run in enumerate(runs):
        for pk in range(3):
            record = _add_record(graph, "sample", 10 * index + pk)
            graph.add_edge(run, record, relation="wrote")
            written.append(record)
        for source in written[: 3 * index : 2]:
            graph.add_edge(source, run, relation="used")
    return graph


def _cycle() -> nx.DiGraph:
    """A run that read a record and rewrote it."""
    graph = nx.DiGraph()
    run = _add_run(graph, 1)
    record = _add_record(graph, "sample", 4, focus=True)
    graph.add_edge(record, run, relation="used")
    graph.add_edge(run, record, relation="wrote")
    return graph


@pytest.mark.parametrize(
    "make",
    [_run_between, _chain, _diamond, _ten_in_ten_out, _web, _cycle],
    ids=["run-between", "chain", "diamond", "ten-in-ten-out", "web", "cycle"],
)
def test_no_edge_crosses_a_node_it_does_not_join(make: Any) -> None:
    """Every edge is routed around the boxes: no segment of it meets a box other than the two
    it joins (read off the SVG itself: the node shapes and the edge paths, curves sampled)."""
    graph = make()
    picture = LineagePicture(graph, title="t", group_above=None)
    assert len(_edge_lines(picture.svg)) == graph.number_of_edges()
    _assert_no_edge_crosses_a_box(picture.svg)


def test_long_edge_bends_around_the_run_between() -> None:
    """ "run 1 wrote Sample 3" passes above or below run 2, which sits between them."""
    picture = LineagePicture(_run_between(), title="t")
    root = ET.fromstring(picture.svg)
    path = next(
        p
        for p in root.iter(f"{SVG}path")
        if p.get("data-source") == "run|1" and p.get("data-target") == "record|sample|3"
    )
    points = _path_points(path.get("d", ""))
    x, y, w, h = picture.boxes[("run", 2)]
    beside = [p for p in points if x <= p[0] <= x + w]
    assert beside and all(p[1] < y or p[1] > y + h for p in beside)
    columns = {
        node: picture.positions[node][0]
        for node in [("run", 1), ("record", "sample", "1"), ("run", 2), ("record", "sample", "3")]
    }
    assert list(columns.values()) == sorted(columns.values())  # causes left of effects


def test_layout_has_no_avoidable_crossings() -> None:
    """A run's inputs and outputs, a chain and a diamond are ordered without edge crossings
    (the diamond without its user, whose edges to three runs must cross something)."""
    diamond = _diamond()
    diamond.remove_node(("user", 1))
    for graph in (_ten_in_ten_out(), diamond, _chain()):
        picture = LineagePicture(graph, title="t", group_above=None)
        lines = _edge_lines(picture.svg)
        for i, first in enumerate(lines):
            for second in lines[i + 1 :]:
                if {first[0], first[-1]} & {second[0], second[-1]}:
                    continue  # edges of one node may meet at its side
                for a, b in itertools.pairwise(first):
                    for c, d in itertools.pairwise(second):
                        assert not _segments_cross(a, b, c, d)


def _segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    def turn(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    return (turn(a, b, c) * turn(a, b, d) < 0) and (turn(c, d, a) * turn(c, d, b) < 0)


def test_records_in_natural_order() -> None:
    """A run's records are listed Sample 1, 2, ..., 10, 11, not 1, 10, 11, 2."""
    graph = nx.DiGraph()
    run = _add_run(graph, 1)
    for pk in (11, 2, 10, 1, 3, 20, 9):
        graph.add_edge(run, _add_record(graph, "sample", pk), relation="wrote")
    picture = LineagePicture(graph, title="t")
    records = [n for n in picture.positions if n[0] == "record"]
    top_down = sorted(records, key=lambda n: picture.positions[n][1])
    assert [n[2] for n in top_down] == ["1", "2", "3", "9", "10", "11", "20"]
    assert natural_key("Sample 2") < natural_key("sample 10") < natural_key("Sample 10b")


# -- legend ------------------------------------------------------------------------------------
def _legend_items(svg: str) -> dict[str, Box]:
    """Each legend item's key and bounding box (text at a generous 7.5 px a character)."""
    root = ET.fromstring(svg)
    items = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") != "lnb-legend-item":
            continue
        points = [p for child in group for p in _shape_points(child)]
        for text in group.iter(f"{SVG}text"):
            x, y = float(text.get("x", 0)), float(text.get("y", 0))
            points += [(x, y - 12), (x + 7.5 * len("".join(text.itertext())), y + 4)]
        items[group.get("data-legend", "")] = _bbox(points)
    return items


def _view_box(svg: str) -> Box:
    root = ET.fromstring(svg)
    x, y, w, h = (float(v) for v in root.get("viewBox", "").split())
    assert (root.get("width"), root.get("height")) == (f"{w:.0f}", f"{h:.0f}")
    return x, y, x + w, y + h


def _inside(box: Box, outer: Box) -> bool:
    return outer[0] <= box[0] and outer[1] <= box[1] and box[2] <= outer[2] and box[3] <= outer[3]


def test_legend_names_every_style_used_and_fits() -> None:
    """The legend has an item for each node kind and edge style drawn, and none other, each
    inside the viewBox: solid, dashed, dotted and red dashed edges are all explained."""
    picture = LineagePicture(_run_between(), title="t")
    items = _legend_items(picture.svg)
    assert set(items) == {
        "transform",
        "user",
        "run",
        "record",
        "stale",
        "wrote",
        "used, changed since",
        "executed",
        "ran",
    }
    assert all(_inside(box, _view_box(picture.svg)) for box in items.values())
    texts = _texts(picture.svg)
    assert "used, changed since" in texts and "stale record (an input changed)" in texts
    assert "ran (user → run)" in texts and "wrote (run → record)" in texts


def test_legend_of_narrow_capped_picture_is_not_clipped() -> None:
    """A small picture with groups and a "not shown" node wraps its legend inside the viewBox."""
    graph = nx.DiGraph()
    run = _add_run(graph, 1, focus=True)
    for pk in range(40):
        graph.add_edge(run, _add_record(graph, "sample", pk), relation="wrote")
    for pk in range(8):
        graph.add_edge(_add_record(graph, "project", pk), run, relation="used")
    picture = LineagePicture(graph, title="t", max_nodes=8)
    items = _legend_items(picture.svg)
    assert {"group", "more", "wrote", "used", "hidden"} <= set(items)
    view_box = _view_box(picture.svg)
    for key, box in items.items():
        assert _inside(box, view_box), key
    for box in _node_boxes(picture.svg):
        assert _inside(box, view_box)


# -- grouping and height -----------------------------------------------------------------------
def _run_with_outputs(count: int) -> nx.DiGraph:
    graph = nx.DiGraph()
    run = _add_run(graph, 7, focus=True)
    for pk in range(count):
        graph.add_edge(run, _add_record(graph, "sample", pk), relation="wrote")
    return graph


def test_thousand_outputs_are_one_group_node_and_the_picture_stays_short() -> None:
    """A run that wrote 1,000 records is one "1000 sample records" node; the picture is no taller
    than a screen; the group keeps its members for a widget to expand."""
    picture = LineagePicture(_run_with_outputs(1000), title="t")
    key = ("records", "sample", 7, "wrote")
    assert set(picture.graph) == {("run", 7), ("transform", 7), ("user", 1), key}
    assert picture.graph.nodes[key]["count"] == 1000
    assert len(picture.graph.nodes[key]["members"]) == 1000
    assert picture.graph.nodes[key]["members"][:3] == [
        ("record", "sample", str(i)) for i in range(3)
    ]
    assert picture.graph.edges[("run", 7), key] == {
        "relation": "wrote",
        "count": 1000,
        "changed": False,
    }
    assert "1000 sample records" in _texts(picture.svg)
    root = ET.fromstring(picture.svg)
    assert float(root.get("height", "0")) <= 900
    group = next(g for g in root.iter(f"{SVG}g") if g.get("data-node") == node_id(key))
    assert group.get("data-count") == "1000"


def test_group_threshold_and_expand() -> None:
    """group_above is the threshold (None: never group); expand draws a group's records."""
    assert len(LineagePicture(_run_with_outputs(12)).graph) == 15
    assert len(LineagePicture(_run_with_outputs(13)).graph) == 4
    assert len(LineagePicture(_run_with_outputs(13), group_above=None).graph) == 16
    assert len(LineagePicture(_run_with_outputs(30), group_above=40).graph) == 33
    expanded = LineagePicture(_run_with_outputs(20), expand={("records", "sample", 7, "wrote")})
    assert len(expanded.graph) == 23


def test_group_keeps_focus_and_changed_flag() -> None:
    """The focus record stays its own node; a group of inputs is changed if any member is."""
    graph = nx.DiGraph()
    run = _add_run(graph, 3)
    for pk in range(20):
        graph.add_edge(
            _add_record(graph, "sample", pk, focus=pk == 0), run, relation="used", changed=pk == 5
        )
    picture = LineagePicture(graph)
    group = ("records", "sample", 3)  # the key the graph layer gives a run's grouped inputs
    assert picture.graph.nodes[group]["count"] == 19
    assert ("record", "sample", "0") in picture.graph
    assert picture.graph.edges[group, run]["changed"] is True
    assert "used, changed since" in _legend_items(picture.svg)


def test_picture_of_many_unrelated_columns_is_still_laid_out() -> None:
    """An empty graph and a graph of lone nodes draw without error."""
    empty = LineagePicture(nx.DiGraph())
    assert _texts(empty.svg) == ["Lineage"]
    graph = nx.DiGraph()
    for pk in (3, 1, 2):
        _add_record(graph, "sample", pk)
    lone = LineagePicture(graph)
    assert [n[2] for n in sorted(lone.positions, key=lambda n: lone.positions[n][1])] == [
        "1",
        "2",
        "3",
    ]


# -- data-node ---------------------------------------------------------------------------------
def test_every_node_has_a_stable_escaped_data_node() -> None:
    """Each node's group carries data-node naming it; markup, & and | in keys stay text."""
    graph = _diamond()
    hostile = ("record", '<script>&"', "a|b")
    graph.add_node(hostile, kind="record", label="<script>alert(1)</script> & co")
    graph.add_edge(("run", 1), hostile, relation="wrote")
    picture = LineagePicture(graph)
    assert "<script>" not in picture.svg
    root = ET.fromstring(picture.svg)
    ids = [g.get("data-node") for g in root.iter(f"{SVG}g") if "lnb-node" in g.get("class", "")]
    assert len(ids) == len(set(ids)) == len(graph)
    assert set(ids) == set(picture.node_ids)
    assert picture.node_ids['record|<script>&"|a%7Cb'] == hostile
    assert picture.node_ids["run|1"] == ("run", 1)
    assert "record|sample|3" in ids
    assert LineagePicture(graph).svg == picture.svg  # stable


# -- with the database -------------------------------------------------------------------------
def test_view_lineage_takes_depth_max_nodes_and_group_above(db: ln.Database) -> None:
    """record.view_lineage(depth=, max_nodes=) and run.view_lineage(...) work; the "not shown"
    node names the parameter that shows more."""
    project = Project(name="p").save()
    run = ln.track(__file__)
    loaded = Project.get(project.id)
    samples = Sample.bulk_create(
        [Sample(name=f"s{i}", value=float(i), project=loaded) for i in range(30)]
    )
    ln.finish(run=run)
    sample = Sample.get(samples[0].id)
    small = sample.view_lineage(depth=1, max_nodes=3)
    assert len(small.graph) == 3 and small.hidden == 3
    assert f"{small.hidden} more not shown(raise max_nodes=3)" in _texts(small.svg)
    whole = run.view_lineage(depth=2, max_nodes=100, group_above=None)
    assert len([n for n in whole.graph if n[0] == "record"]) == 31
    grouped = run.view_lineage(depth=2)
    assert "30 Sample records" in _texts(grouped.svg)


def test_run_with_thousand_records_reads_at_a_glance(db: ln.Database, tmp_path: Path) -> None:
    """run.view_lineage() of a run that wrote 1,000 samples is one group node, at most 900 px
    tall, and the saved SVG is that same picture."""
    project = Project(name="big").save()
    run = ln.track(__file__)
    loaded = Project.get(project.id)
    Sample.bulk_create([Sample(name=f"s{i}", value=float(i), project=loaded) for i in range(1000)])
    ln.finish(run=run)
    picture = run.view_lineage()
    assert "1000 Sample records" in _texts(picture.svg)
    assert float(ET.fromstring(picture.svg).get("height", "0")) <= 900
    _assert_no_edge_crosses_a_box(picture.svg)
    assert picture.save(tmp_path / "big.svg").read_text(encoding="utf-8") == picture._repr_svg_()
