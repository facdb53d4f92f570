"""PROV export: ProvDocuments of runs and records, serialized and parsed back with ``prov``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from export_data import Lineage, build_lineage
from models import Measurement, Sample
from prov.model import (
    ProvActivity,
    ProvAgent,
    ProvAssociation,
    ProvDerivation,
    ProvDocument,
    ProvEntity,
    ProvGeneration,
    ProvUsage,
)

import lineage_nb as ln
from lineage_nb.errors import ConfigurationError


@pytest.fixture
def lineage(db: ln.Database, tmp_path: Path) -> Lineage:
    return build_lineage(tmp_path)


def ident(kind: str, *parts: object) -> str:
    return "ln:" + ".".join([kind, *map(str, parts)])


def relations(doc: ProvDocument, cls: type) -> set[tuple[str, ...]]:
    """The (formal attribute values) of every record of ``cls`` in ``doc``, as strings."""
    found = set()
    for record in doc.get_records(cls):
        values = [str(v) for _k, v in record.formal_attributes if v is not None]
        found.add(tuple(values))
    return found


def parsed(doc: ProvDocument, fmt: str) -> ProvDocument:
    """``doc`` serialized to ``fmt`` and parsed back with ``prov``."""
    text = doc.get_provn() if fmt == "provn" else doc.serialize(format=fmt)
    return ProvDocument.deserialize(content=text, format=fmt)


@pytest.mark.parametrize("fmt", ["json", "provn"])
def test_run_prov_round_trips_with_relations(lineage: Lineage, fmt: str) -> None:
    """A run's document parses back from PROV-JSON and PROV-N with every relation."""
    run = lineage.analyse
    doc = parsed(ln.export.to_prov(run), fmt)
    assert doc == ln.export.to_prov(run)
    activity = ident("run", run.uid)
    agent = ident("user", run.created_by_id)
    plan = ident("transform", run.transform_id)
    first, second = (ident("record", "sample", s.id) for s in lineage.samples[:2])
    written = {ident("record", "measurement", m.id) for m in lineage.measurements} | {second}

    activities = {str(a.identifier) for a in doc.get_records(ProvActivity)}
    assert activity in activities and ident("run", lineage.ingest.uid) in activities
    assert {str(a.identifier) for a in doc.get_records(ProvAgent)} == {agent}
    entities = {str(e.identifier) for e in doc.get_records(ProvEntity)}
    assert written | {first, plan} <= entities

    assert (activity, agent, plan) in relations(doc, ProvAssociation)
    assert {(activity, first), (activity, second)} <= relations(doc, ProvUsage)
    generated = {g for g in relations(doc, ProvGeneration) if g[1] == activity}
    assert generated == {(record, activity) for record in written}
    derived = relations(doc, ProvDerivation)
    for measurement in written - {second}:
        assert (measurement, first, activity) in derived
    # upstream: the ingest run generated the samples this run used
    assert (first, ident("run", lineage.ingest.uid)) in relations(doc, ProvGeneration)


def test_record_prov_follows_its_lineage(lineage: Lineage) -> None:
    """A record's document: the run that wrote it, that run's inputs, user and transform."""
    measurement = Measurement.get(lineage.measurements[0].id)
    doc = parsed(ln.export.to_prov(measurement), "json")
    record = ident("record", "measurement", measurement.id)
    run = ident("run", lineage.analyse.uid)
    assert (record, run) in relations(doc, ProvGeneration)
    sample = ident("record", "sample", lineage.samples[0].id)
    assert (record, sample, run) in relations(doc, ProvDerivation)
    ingest = ident("run", lineage.ingest.uid)
    assert (sample, ingest) in relations(doc, ProvGeneration)
    shallow = ln.export.to_prov(measurement, depth=1)
    assert ingest not in {str(a.identifier) for a in shallow.get_records(ProvActivity)}


def test_activities_carry_times_and_status(lineage: Lineage) -> None:
    """Runs become activities with start/end times and the run's status."""
    doc = ln.export.to_prov(lineage.broken)
    (activity,) = doc.get_records(ProvActivity)
    assert activity.get_startTime() is not None and activity.get_endTime() is not None
    assert activity.get_endTime() >= activity.get_startTime()
    assert set(activity.get_attribute("ln:status")) == {"errored"}


def test_write_prov_picks_format_from_suffix(lineage: Lineage, tmp_path: Path) -> None:
    """write_prov writes PROV-JSON for .json and PROV-N for .provn; both parse back."""
    doc = ln.export.to_prov([lineage.ingest, lineage.analyse])
    json_path = ln.export.write_prov(doc, tmp_path / "lineage.json")
    provn_path = ln.export.write_prov(doc, tmp_path / "lineage.provn")
    assert provn_path.read_text().startswith("document")
    for path, fmt in ((json_path, "json"), (provn_path, "provn")):
        back = ProvDocument.deserialize(io.StringIO(path.read_text()), format=fmt)
        assert back == doc


def test_to_prov_rejects_other_objects(db: ln.Database) -> None:
    """Anything but a run or a mapped record raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError) as info:
        ln.export.to_prov("run 1")
    assert info.value.value == "run 1"
    with pytest.raises(ConfigurationError):
        ln.export.to_prov(Sample)
