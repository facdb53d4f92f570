"""Time travel, staleness and run diffs from the event log, on SQLite and PostgreSQL.

The oracle test writes random inserts, updates and deletes across runs, keeps what was really
committed after each step (read straight from the table), and then checks that every past state
``as_of`` gives, and every ``diff`` between two steps, equals what was committed.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import time
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import Color, Project, Sample, Specimen
from sqlalchemy import select

import lineage_nb as ln
from lineage_nb.errors import ValidationError

EXAMPLES = int(os.environ.get("LINEAGE_NB_HYPOTHESIS_EXAMPLES", "60")) // 4 or 1
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = ("label", "notes", "count", "ratio", "flag", "color", "taken_at", "day", "amount", "extra")

values = st.fixed_dictionaries(
    {
        "label": st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8),
        "notes": st.none() | st.text(max_size=5).filter(lambda t: "\x00" not in t),
        "count": st.none() | st.integers(-(2**31), 2**31 - 1),
        "ratio": st.none() | st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 3)),
        "flag": st.none() | st.booleans(),
        "color": st.none() | st.sampled_from(list(Color)),
        "taken_at": st.none()
        | st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2030, 1, 1)).map(
            lambda d: d.replace(microsecond=0)
        ),
        "day": st.none() | st.dates(dt.date(2000, 1, 1), dt.date(2030, 1, 1)),
        "amount": st.none()
        | st.decimals(-(10**6), 10**6, places=4, allow_nan=False, allow_infinity=False),
        "extra": st.none()
        | st.dictionaries(st.text("abc", max_size=2), st.integers(0, 9), max_size=2),
    }
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), values),
        st.tuples(st.just("update"), st.integers(0, 50), values),
        st.tuples(st.just("delete"), st.integers(0, 50)),
        st.tuples(st.just("read")),
        st.tuples(st.just("run")),
    ),
    min_size=1,
    max_size=8,
)


def table_now() -> dict[int, dict[str, Any]]:
    """What is committed in ``specimen`` now, read without noting inputs."""
    with ln.untracked_reads():
        return {s.id: {f: getattr(s, f) for f in FIELDS} for s in Specimen.objects().all()}


def as_of_rows(when: Any) -> dict[int, dict[str, Any]]:
    return {s.id: {f: getattr(s, f) for f in FIELDS} for s in Specimen.as_of(when).all()}


def instant() -> dt.datetime:
    time.sleep(0.002)  # event times are distinct from this instant on both clocks
    at = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.002)
    return at


@SETTINGS
@given(program=steps)
def test_as_of_and_diff_match_what_was_committed(db: ln.Database, program: list[Any]) -> None:
    """Every past state equals what was really committed then (``as_of`` a datetime, and a run
    as it saw the table: what it read at the versions read, the rest as at its start); diffs
    match the states."""
    run = ln.track(__file__)
    points = [(instant(), table_now())]
    # per run: the table when it started, and each record it read at its first read (``get``
    # before an update or delete reads the record too)
    started: dict[int, dict[int, dict[str, Any]]] = {run.id: points[0][1]}
    first_read: dict[int, dict[int, dict[str, Any]]] = {run.id: {}}
    runs = {run.id: run}
    for step in program:
        now = points[-1][1]
        live = sorted(now)
        if step[0] in ("update", "delete") and live:
            key = live[step[1] % len(live)]
            first_read[run.id].setdefault(key, now[key])
            record = Specimen.get(key)
            if step[0] == "update":
                record.update(**step[2])
            else:
                record.delete()
        elif step[0] == "insert":
            Specimen(**step[1]).save()
        elif step[0] == "read":
            Specimen.df()
            for key, values in now.items():
                first_read[run.id].setdefault(key, values)
        elif step[0] == "run":
            ln.finish()
            run = ln.track(__file__)
            runs[run.id], started[run.id], first_read[run.id] = run, table_now(), {}
        points.append((instant(), table_now()))
    ln.finish()
    for when, committed in points:
        assert as_of_rows(when) == committed
    for run_id, run_record in runs.items():
        assert as_of_rows(run_record) == {**started[run_id], **first_read[run_id]}
    first, last = points[0], points[-1]
    changes = ln.diff(first[0], last[0], models=[Specimen])
    expected = set()
    for pk in first[1].keys() | last[1].keys():
        old, new = first[1].get(pk), last[1].get(pk)
        if old is None:
            expected.add((str(pk), "added", None))
        elif new is None:
            expected.add((str(pk), "removed", None))
        else:
            expected |= {(str(pk), "changed", f) for f in FIELDS if old[f] != new[f]}
    found = {
        (pk, action, None if pd.isna(field) else field)
        for pk, action, field in zip(
            changes["pk"], changes["action"], changes["field"], strict=True
        )
    }
    assert found == expected


@pytest.fixture
def scenario(db: ln.Database) -> dict[str, Any]:
    """Ingest writes raw samples; analysis reads them with df() and saves a summary."""
    ingest = ln.track(__file__)
    project = Project(name="raw").save()
    samples = [Sample(name=f"s{i}", value=float(i), project=project).save() for i in range(3)]
    ln.finish()
    before_analysis = instant()
    analysis = ln.track(__file__)
    frame = Sample.filter(project_id=project.id).df()
    summary = Project(name=f"mean {frame['value'].mean()}").save()
    ln.finish()
    return {
        "ingest": ingest,
        "analysis": analysis,
        "samples": samples,
        "summary": summary,
        "before_analysis": before_analysis,
        "project": project,
    }


def test_correction_makes_derived_records_stale(scenario: dict[str, Any]) -> None:
    summary, samples = scenario["summary"], scenario["samples"]
    assert not summary.is_stale()
    assert ln.stale().empty
    fix = ln.track(__file__)
    samples[1].update(value=10.0)
    samples[2].delete()
    ln.finish()
    assert summary.is_stale()
    inputs = summary.stale_inputs()
    assert list(inputs.columns) == ["table", "pk", "read_version", "current_version", "change"]
    rows = dict(zip(inputs["pk"], inputs["change"], strict=True))
    assert rows == {str(samples[1].id): "changed: value", str(samples[2].id): "deleted"}
    versions = {e.pk: e.id for e in ln.RecordEvent.filter(run_id=fix.id).all()}
    assert (
        inputs.set_index("pk").loc[str(samples[1].id), "current_version"]
        == versions[str(samples[1].id)]
    )
    stale = ln.stale()
    assert list(
        zip(stale["table"], stale["pk"], stale["run_id"], stale["changed_inputs"], strict=True)
    ) == [("project", str(summary.id), scenario["analysis"].id, 2)]
    assert ln.stale(Sample).empty
    assert len(ln.stale(Project)) == 1
    frame = scenario["analysis"].inputs_df().set_index("pk")
    assert list(frame["changed_since"]) == [False, True, True]


def test_a_runs_own_changes_do_not_make_it_stale(db: ln.Database) -> None:
    """Read a record, then change it in the same run: the run's records are not stale."""
    project = Project(name="p").save()
    sample = Sample(name="s", value=1.0, project=project).save()
    ln.track(__file__)
    read = Sample.get(sample.id)
    read.update(value=2.0)
    derived = Project(name="derived").save()
    ln.finish()
    assert not derived.is_stale()
    assert not read.is_stale()


def test_as_of_a_run_is_the_table_as_it_saw_it(scenario: dict[str, Any]) -> None:
    """Records the run read at the versions read; others as they stood when it started."""
    samples, analysis = scenario["samples"], scenario["analysis"]
    ln.track(__file__)
    samples[0].update(value=100.0)
    samples[2].delete()
    late = Sample(name="late", value=7.0, project=scenario["project"]).save()
    ln.finish()
    seen = {s.name: s.value for s in Sample.as_of(analysis).order_by("id").all()}
    assert seen == {"s0": 0.0, "s1": 1.0, "s2": 2.0}
    assert late.as_of(analysis) is None
    projects = {p.name for p in Project.as_of(analysis).all()}
    assert projects == {"raw"}  # the summary was written by the run, after it read
    assert Sample.as_of(scenario["ingest"]).count() == 0


def test_deleted_records_come_back_as_they_were(scenario: dict[str, Any]) -> None:
    samples = scenario["samples"]
    kept = instant()
    samples[2].update(name="renamed")
    samples[2].delete()
    old = samples[2].as_of(kept)
    assert old is not None and (old.id, old.name, old.value) == (samples[2].id, "s2", 2.0)
    assert old.run_id == scenario["ingest"].id
    assert samples[2].as_of(dt.datetime.now(dt.timezone.utc)) is None
    assert Sample.as_of(kept).filter(name="s2").one().value == 2.0


def test_as_of_query_filters_orders_and_frames(scenario: dict[str, Any]) -> None:
    samples, when = scenario["samples"], instant()
    samples[0].update(value=50.0)
    query = Sample.as_of(when)
    assert [s.value for s in query.filter(Sample.value >= 1.0).order_by("-value").all()] == [
        2.0,
        1.0,
    ]
    assert query.filter(value=0.0).count() == 1
    assert query.order_by("id").first().value == 0.0  # type: ignore[union-attr]
    frame = query.order_by("id").df()
    assert list(frame["value"]) == [0.0, 1.0, 2.0]
    assert list(frame["project"]) == ["raw", "raw", "raw"]  # labels joined through the past rows
    live = Sample.get(samples[0].id)
    past = query.filter(id=samples[0].id).one()
    assert past is not live and live.value == 50.0 and past.value == 0.0


def test_as_of_bad_input_and_edges(scenario: dict[str, Any], db: ln.Database) -> None:
    long_ago = dt.datetime(1990, 1, 1, tzinfo=dt.timezone.utc)
    assert Sample.as_of(long_ago).all() == []
    naive = scenario["before_analysis"].replace(tzinfo=None)
    assert Project.as_of(naive).count() == 1  # a naive datetime is UTC
    for bad in ("yesterday", 12, dt.date(2020, 1, 1), None):
        with pytest.raises(ValidationError) as raised:
            Sample.as_of(bad)
        assert "when" in str(raised.value)
    with pytest.raises(ValidationError, match=r"^a: expected a datetime or a Run"):
        ln.diff("x", scenario["analysis"])
    other = ln.Run(id=scenario["analysis"].id, uid="not-this-database")
    with pytest.raises(ValidationError, match="not a run of this database"):
        Sample.as_of(other)
    with pytest.raises(ValidationError, match="model"):
        ln.diff(long_ago, long_ago, models=[dict])


def test_diff_between_runs(scenario: dict[str, Any]) -> None:
    """'Why do run A and run B differ?': the records changed between what each saw."""
    samples, analysis = scenario["samples"], scenario["analysis"]
    ln.track(__file__)
    samples[1].update(value=11.0)
    ln.finish()
    again = ln.track(__file__)
    Sample.filter(project_id=scenario["project"].id).df()
    ln.finish()
    changes = ln.diff(analysis, again, models=[Sample])
    assert list(changes.columns) == ["table", "pk", "action", "field", "old", "new"]
    assert changes.to_dict("records") == [
        {
            "table": "sample",
            "pk": str(samples[1].id),
            "action": "changed",
            "field": "value",
            "old": 1.0,
            "new": 11.0,
        }
    ]
    with_projects = ln.diff(analysis, again)
    assert set(with_projects["table"]) == {"project", "sample"}  # the summary was added


def test_typed_values_round_trip_through_as_of(db: ln.Database) -> None:
    """Every column type of a deleted record comes back with its type and value."""
    values = {
        "label": "ü\"'<b>",
        "notes": "line\nbreak",
        "count": -(2**31),
        "ratio": 0.125,
        "flag": False,
        "color": Color.green,
        "taken_at": dt.datetime(2021, 5, 6, 7, 8, 9),
        "day": dt.date(2021, 5, 6),
        "amount": decimal.Decimal("-12.5000"),
        "extra": {"a": [1, "x", None], "b": {"c": True}},
    }
    record = Specimen(**values).save()
    kept = instant()
    record.update(label="changed", extra=None, amount=decimal.Decimal("1"))
    record.delete()
    old = record.as_of(kept)
    assert old is not None
    assert {f: getattr(old, f) for f in FIELDS} == values
    with db.session() as session:  # nothing was written back
        assert session.scalars(select(Specimen).where(Specimen.id == record.id)).first() is None


def test_staleness_shows_in_repr_graph_picture_and_detail_pane(scenario: dict[str, Any]) -> None:
    from lineage_nb.widgets.detail import Detail

    summary, samples, analysis = scenario["summary"], scenario["samples"], scenario["analysis"]
    fresh_graph = summary.lineage()
    assert not fresh_graph.nodes[("record", "project", str(summary.id))].get("stale")
    samples[1].update(name="<b>s1</b>")  # a correction outside any run
    card = summary._repr_html_()
    assert (
        f"stale: its run read 1 record(s) that changed since (sample {samples[1].id}: "
        "changed: name)"
    ) in card
    graph = summary.lineage()
    focus = graph.nodes[("record", "project", str(summary.id))]
    assert focus["stale"] and focus["stale_inputs"] == 1
    used = {
        u[2]: d["changed"]
        for u, _v, d in graph.in_edges(("run", analysis.id), data=True)
        if d["relation"] == "used"
    }
    assert used == {str(s.id): s is samples[1] for s in samples}
    svg = summary.view_lineage().svg
    assert "used, changed since" in svg and "#fff8e1" in svg
    pane = Detail().show(Project.get(summary.id))
    assert pane["stale"]["stale"] is True
    assert pane["stale"]["text"].startswith("stale: the run that wrote it read 1 record(s)")
    assert pane["stale"]["inputs"] == [["sample", str(samples[1].id), "changed: name"]]
    assert "used, changed since" in pane["svg"]
    assert "<b>s1</b>" not in svg + card + pane["svg"]  # markup escaped


def test_large_fan_in_is_one_group_node(db: ln.Database) -> None:
    """A run that read many records of a table is one node with their count; upstream runs
    still connect to it; group_above=None keeps one node per record (exports)."""
    writer = ln.track(__file__)
    project = Project(name="many").save()
    Sample.bulk_create([Sample(name=f"s{i}", value=float(i), project=project) for i in range(40)])
    ln.finish()
    reader = ln.track(__file__)
    Sample.filter(project_id=project.id).df()
    derived = Project(name="derived").save()
    ln.finish()
    graph = derived.lineage(depth=3)
    group = ("records", "sample", reader.id)
    assert graph.nodes[group]["count"] == 40 and graph.nodes[group]["kind"] == "group"
    assert graph.edges[group, ("run", reader.id)]["count"] == 40
    assert graph.has_edge(("run", writer.id), group)
    assert not any(n[0] == "record" and n[1] == "sample" for n in graph)
    full = derived.lineage(depth=3, group_above=None)
    assert sum(1 for n in full if n[0] == "record" and n[1] == "sample") == 40
    assert "40 Sample records" in derived.view_lineage().svg


def test_staleness_of_a_large_fan_in(db: ln.Database) -> None:
    """A run that read more than 2,000 records is checked by the events since its reads."""
    project = Project(name="big").save()
    ids = Sample.bulk_create(
        [{"name": f"s{i}", "value": float(i), "project_id": project.id} for i in range(2500)]
    )
    ln.track(__file__)
    Sample.filter(project_id=project.id).df()
    derived = Project(name="derived").save()
    ln.finish()
    assert not derived.is_stale()
    Sample.get(ids[1234]["id"]).update(value=-1.0)
    changed = derived.stale_inputs()
    assert list(zip(changed["table"], changed["change"], strict=True)) == [
        ("sample", "changed: value")
    ]
