"""History, run inputs and lineage graphs; the two-scripts scenario of the lineage issue."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import networkx as nx
import pandas as pd
from models import Project, Sample
from paths import TESTS

import lineage_nb as ln

PRODUCER = """
import sys
sys.path.insert(0, {tests!r})
import lineage_nb as ln
from models import Project, Sample
ln.connect({url!r})
ln.track(__file__)
project = Project(name="raw").save()
for i in range(3):
    Sample(name=f"raw{{i}}", value=float(i), project=project).save()
ln.finish()
"""

CONSUMER = """
import sys
sys.path.insert(0, {tests!r})
import lineage_nb as ln
from models import Project, Sample
ln.connect({url!r})
ln.track(__file__)
raw = Project.filter(name="raw").one()
raw.load_all()
derived = Project(name="derived").save()
total = sum(s.value for s in raw.samples)
Sample(name="mean", value=total / len(raw.samples), project=derived).save()
ln.finish()
"""


def run_script(path: Path, source: str, url: str, user: str) -> None:
    path.write_text(textwrap.dedent(source.format(tests=str(TESTS), url=url)))
    env = {**os.environ, "LINEAGE_NB_USER": user}
    subprocess.run([sys.executable, str(path)], check=True, env=env, timeout=120, cwd=path.parent)


def test_two_scripts_lineage_graph(db: ln.Database, db_url: str, tmp_path: Path) -> None:
    """derived record -> run 2 -> script 2, and <- input records <- run 1 <- script 1."""
    run_script(tmp_path / "produce.py", PRODUCER, db_url, "alice")
    run_script(tmp_path / "consume.py", CONSUMER, db_url, "bob")
    mean = Sample.filter(name="mean").one()
    graph = mean.lineage(depth=3)
    assert isinstance(graph, nx.DiGraph)
    run1, run2 = sorted(ln.runs(), key=lambda r: r.id)
    assert (run1.created_by.handle, run2.created_by.handle) == ("alice", "bob")
    assert (run1.transform.key, run2.transform.key) == ("produce.py", "consume.py")
    record = ("record", "sample", str(mean.id))
    assert graph.has_edge(("run", run2.id), record)
    assert graph.has_edge(("transform", run2.transform_id), ("run", run2.id))
    assert graph.has_edge(("user", run2.created_by_id), ("run", run2.id))
    assert graph.nodes[("transform", run2.transform_id)]["label"] == "consume.py v1"
    raw_samples = Sample.filter(Sample.name.startswith("raw")).all()
    for raw in raw_samples:
        input_node = ("record", "sample", str(raw.id))
        assert graph.has_edge(input_node, ("run", run2.id))
        assert graph.has_edge(("run", run1.id), input_node)
    assert graph.has_edge(("transform", run1.transform_id), ("run", run1.id))
    assert graph.nodes[("user", run1.created_by_id)]["label"] == "alice"
    assert all({"kind", "label"} <= set(data) for _, data in graph.nodes(data=True))
    assert nx.is_directed_acyclic_graph(graph)
    assert run1.finished_at is not None and run1.finished_at <= run2.started_at
    assert (run1.status, run2.status) == ("completed", "completed")
    inputs = run2.inputs_df()
    assert set(inputs["table"]) == {"project", "sample"}
    assert len(inputs) == 4  # the raw project and its three samples, once each


def test_inputs_are_recorded_once_per_run(db: ln.Database, run: ln.Run) -> None:
    """get/load/load_all record inputs deduplicated; records the run wrote itself are not inputs."""
    ln.finish()
    project = Project(name="p").save()
    Sample(name="s", project=project).save()
    reader = ln.track(Path(__file__))
    fetched = Project.get(project.id)
    fetched.load()
    fetched.load_all()
    Project.get(project.id)
    frame = reader.inputs_df()
    read = sorted(zip(frame["table"], frame["pk"], strict=True))
    assert read == [("project", str(project.id)), ("sample", "1")]
    own = Project(name="own").save()
    Project.get(own.id)
    assert len(reader.inputs_df()) == 2


def test_history_and_frames(db: ln.Database, run: ln.Run) -> None:
    """history() oldest first; history_df, runs_df and records_df carry run context."""
    project = Project(name="h").save()
    project.update(name="h2")
    history = project.history()
    assert [e.action for e in history] == ["insert", "update"]
    assert history[1].changes == {"name": ["h", "h2"]}
    frame = project.history_df()
    assert list(frame["action"]) == ["insert", "update"]
    assert set(frame["user_handle"]) == {"tester"}
    assert isinstance(frame["at"].dtype, pd.DatetimeTZDtype)
    runs = ln.runs_df()
    assert runs.loc[0, "run_id"] == run.id and runs.loc[0, "events"] == 2
    assert runs.loc[0, "transform_key"].endswith("conftest.py")
    assert list(run.records_df()["action"]) == ["insert", "update"]


def test_runs_filters(db: ln.Database, tmp_path: Path) -> None:
    """runs() filters by transform key, user handle and status."""
    script = tmp_path / "filtered.py"
    script.write_text("pass\n")
    ln.track(script, user="carol")
    ln.finish("errored")
    ln.track(Path(__file__))
    assert [r.status for r in ln.runs(user="carol")] == ["errored"]
    assert len(ln.runs(transform="filtered")) == 1
    assert [r.created_by.handle for r in ln.runs(status="started")] == ["tester"]
    assert len(ln.runs_df(status="errored")) == 1
    ln.finish()


def test_run_lineage_graph(db: ln.Database, run: ln.Run) -> None:
    """run.lineage() links the transform and user to the run and the run to its outputs."""
    project = Project(name="out").save()
    graph = run.lineage()
    assert graph.has_edge(("run", run.id), ("record", "project", str(project.id)))
    assert graph.has_edge(("transform", run.transform_id), ("run", run.id))
    assert graph.nodes[("run", run.id)]["kind"] == "run"


def test_runs_df_reads_the_stored_event_count_of_finished_runs(db: ln.Database) -> None:
    """A finished run's event count is stored at finish; runs_df reads it instead of counting
    the run's events (flat in the size of the event log); a running run is counted live."""
    run = ln.track(Path(__file__))
    project = Project(name="counted").save()
    project.update(name="counted2")
    assert ln.runs_df().loc[0, "events"] == 2  # running: counted
    ln.finish()
    stored = ln.Run.get(run.id)
    assert stored.event_count == 2
    with db.engine.begin() as connection:  # the listing trusts the stored count
        connection.execute(ln.Run.__table__.update().values(event_count=99))
    assert ln.runs_df().loc[0, "events"] == 99
