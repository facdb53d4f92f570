"""Lineage pictures: SVG, left to right, labelled and styled by kind, capped, savable."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest
from models import Measurement, Project, Sample

import lineage_nb as ln
from lineage_nb.views.picture import KIND_STYLES, LineagePicture

SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def _node_kinds(svg: str) -> set[str]:
    root = ET.fromstring(svg)
    return {g.get("class", "").split()[-1] for g in root.iter(f"{SVG}g")}


def test_record_picture_labels_and_kinds(db: ln.Database) -> None:
    """A record's picture shows its run, transform, user and inputs with readable labels."""
    project = Project(name="Alpha").save()
    run = ln.track(__file__)
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
    assert x[("transform", run.transform_id)] < x[run_node] < x[("record", "sample", str(sample.id))]
    assert x[("record", "project", str(project.id))] < x[run_node]


def test_picture_colours_by_kind() -> None:
    """Each kind is drawn with its own fill colour and shape."""
    graph = nx.DiGraph()
    graph.add_node(("transform", 1), kind="transform", label="a.ipynb v1")
    graph.add_node(("user", 1), kind="user", label="alice")
    graph.add_node(("run", 1), kind="run", label="run 1")
    graph.add_node(("record", "t", "1"), kind="record", label="T 1", focus=True)
    graph.add_edges_from([(("transform", 1), ("run", 1)), (("user", 1), ("run", 1)),
                          (("run", 1), ("record", "t", "1"))])
    svg = LineagePicture(graph, title="t", relabel=False).svg
    root = ET.fromstring(svg)
    for group in root.iter(f"{SVG}g"):
        kind = group.get("class", "").split("-")[-1]
        shape = next(iter(child for child in group if child.tag != f"{SVG}title"))
        assert shape.get("fill") == KIND_STYLES[kind][0]
    shapes = {g.get("class"): next(c for c in g if c.tag != f"{SVG}title").tag for g in root.iter(f"{SVG}g")}
    assert shapes["lnb-node lnb-run"] == f"{SVG}polygon"
    assert shapes["lnb-node lnb-transform"] == f"{SVG}path"


def test_picture_escapes_labels() -> None:
    """Markup in labels and title stays text and the SVG stays well-formed."""
    graph = nx.DiGraph()
    graph.add_node(("record", "t", "1"), kind="record", label="<script>alert(1)</script>")
    picture = LineagePicture(graph, title="<b>&", relabel=False)
    assert "<script>" not in picture.svg
    assert "<script>alert(1)</script>" in _texts(picture.svg)
    assert "<b>&" in _texts(picture.svg)


def test_picture_caps_large_graph() -> None:
    """More than max_nodes nodes are summarised by one 'N more' node."""
    graph = nx.DiGraph()
    graph.add_node(("run", 1), kind="run", label="run 1", focus=True)
    for i in range(200):
        graph.add_edge(("run", 1), ("record", "t", str(i)), relation="wrote")
    picture = LineagePicture(graph, title="big", max_nodes=30, relabel=False)
    assert len(picture.graph) == 30
    assert picture.hidden == 172
    assert "172 more(raise max_nodes)" in _texts(picture.svg)
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
    assert picture.save(tmp_path / "run.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    with pytest.raises(ln.errors.ValidationError) as info:
        picture.save(tmp_path / "run.png")
    assert info.value.field == "path" and info.value.value == str(tmp_path / "run.png")
    ln.finish(run=run)


def test_picture_works_in_ipython_display() -> None:
    """IPython.display.SVG accepts the picture's text."""
    from IPython.display import SVG

    graph = nx.DiGraph()
    graph.add_node(("user", 1), kind="user", label="alice")
    shown = SVG(LineagePicture(graph, relabel=False).svg)
    assert "alice" in shown._repr_svg_()
