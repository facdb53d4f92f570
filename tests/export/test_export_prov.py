"""PROV export: ProvDocuments of runs and records, serialized and parsed back with ``prov``."""

from __future__ import annotations

import importlib.resources
import importlib.util
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from export_data import Lineage, build_lineage
from models import Measurement, Sample
from prov import serializers
from prov.model import (
    ProvActivity,
    ProvAgent,
    ProvAssociation,
    ProvAttribution,
    ProvDerivation,
    ProvDocument,
    ProvEntity,
    ProvGeneration,
    ProvUsage,
)

import lineage_nb as ln
from lineage_nb.errors import ConfigurationError, UsageError


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
    """Anything but a run or a mapped record raises UsageError naming it."""
    with pytest.raises(UsageError) as info:
        ln.export.to_prov("run 1")
    assert info.value.value == "run 1"
    with pytest.raises(UsageError):
        ln.export.to_prov(Sample)


# -- valid PROV-JSON, no repeated statements (issue 17 C) --------------------------------------
def prov_json_schema() -> dict[str, Any] | None:
    """The PROV-JSON schema (W3C member submission, draft-04) that ``prov`` ships, if it does."""
    schema = importlib.resources.files("prov") / "tests" / "schemas" / "prov-json.schema.json"
    return json.loads(schema.read_text()) if schema.is_file() else None


def statement_counts(doc: ProvDocument) -> Counter[tuple[str, ...]]:
    """How often each relation (its type and formal attributes) appears in ``doc``."""
    return Counter(
        (type(record).__name__, *(str(v) for _k, v in record.formal_attributes))
        for record in doc.get_records()
        if record.is_relation()
    )


def assert_valid_prov_json(doc: ProvDocument) -> None:
    """``doc`` as PROV-JSON: no statement twice, every statement one object, schema-valid."""
    repeated = {k: n for k, n in statement_counts(doc).items() if n > 1}
    assert repeated == {}
    container = json.loads(doc.serialize(format="json"))
    for kind, statements in container.items():
        if kind != "prefix":
            assert all(isinstance(v, dict) for v in statements.values()), kind
    schema = prov_json_schema()
    if schema is not None:
        import jsonschema

        validator = jsonschema.Draft4Validator(schema)
        errors = sorted(validator.iter_errors(container), key=str)
        assert errors == [], [e.message[:200] for e in errors]


def test_record_written_by_two_runs_is_attributed_once(lineage: Lineage) -> None:
    """Sample s1 was inserted by the ingest run and updated by the analyse run, both by one
    user: its document says so with one wasAttributedTo, and is valid PROV-JSON."""
    sample = Sample.get(lineage.samples[1].id)
    doc = ln.export.to_prov(sample)
    record, user = ident("record", "sample", sample.id), ident("user", lineage.ingest.created_by_id)
    assert {(record, ident("run", r.uid)) for r in (lineage.ingest, lineage.analyse)} <= (
        relations(doc, ProvGeneration)
    )
    attributed = [
        r
        for r in doc.get_records(ProvAttribution)
        if [str(v) for _k, v in r.formal_attributes] == [record, user]
    ]
    assert len(attributed) == 1
    assert_valid_prov_json(doc)


@pytest.mark.parametrize("subject", ["runs", "record", "measurement"])
def test_prov_json_is_schema_valid(lineage: Lineage, subject: str) -> None:
    """The documents of all runs and of records are valid against the PROV-JSON schema."""
    target: Any = {
        "runs": [lineage.ingest, lineage.analyse, lineage.broken],
        "record": Sample.get(lineage.samples[1].id),
        "measurement": Measurement.get(lineage.measurements[2].id),
    }[subject]
    assert_valid_prov_json(ln.export.to_prov(target))


# -- the format follows the file suffix (issue 17 C) -------------------------------------------
#: suffix → prov's serializer, its options and the prov extra it needs (None: always there).
SUFFIXES: dict[str, tuple[str, dict[str, str], str | None]] = {
    ".json": ("json", {}, None),
    ".jsonld": ("jsonld", {}, None),
    ".provn": ("provn", {}, None),
    ".xml": ("xml", {}, "xml"),
    ".trig": ("rdf", {"rdf_format": "trig"}, "rdf"),
    ".ttl": ("rdf", {"rdf_format": "turtle"}, "rdf"),
}


def can_write(extra: str | None) -> bool:
    module = {"xml": "lxml", "rdf": "rdflib"}.get(extra or "")
    return module is None or importlib.util.find_spec(module) is not None


def is_prov_json(text: str) -> bool:
    try:
        container = json.loads(text)
    except json.JSONDecodeError:
        return False
    return isinstance(container, dict) and {"prefix", "entity"} <= set(container)


@pytest.mark.parametrize("suffix", sorted(SUFFIXES))
def test_write_prov_writes_the_format_its_suffix_names(
    lineage: Lineage, tmp_path: Path, suffix: str
) -> None:
    """x.xml is PROV-XML, x.provn PROV-N, x.ttl Turtle...: each file reads back with prov's
    deserializer of that format as the same document. A format whose prov extra is missing
    raises ConfigurationError naming the suffix and the extra, and writes nothing."""
    doc = ln.export.to_prov([lineage.ingest, lineage.analyse])
    serializer, options, extra = SUFFIXES[suffix]
    path = tmp_path / f"lineage{suffix}"
    if not can_write(extra):
        with pytest.raises(ConfigurationError) as info:
            ln.export.write_prov(doc, path)
        assert suffix in str(info.value) and f"prov[{extra}]" in str(info.value)
        assert not path.exists()
        return
    assert ln.export.write_prov(doc, path) == path
    assert is_prov_json(path.read_text()) is (suffix == ".json")
    back = ProvDocument.deserialize(path, format=serializer, **options)
    assert back == doc
    if suffix == ".xml":
        assert path.read_text().startswith("<?xml") and "<prov:document" in path.read_text()


@pytest.mark.parametrize("fmt", ["xml", "rdf"])
def test_missing_prov_extra_is_a_clear_error(
    lineage: Lineage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Without lxml (rdflib) prov has no xml (rdf) serializer: write_prov says which suffix
    asked for it and what to install instead of writing another format into the file."""
    serializers.get("json")  # loads the registry
    installed = {k: v for k, v in (serializers.Registry.serializers or {}).items() if k != fmt}
    monkeypatch.setattr(serializers.Registry, "serializers", installed)
    doc = ln.export.to_prov(lineage.analyse)
    suffix = ".xml" if fmt == "xml" else ".ttl"
    path = tmp_path / f"lineage{suffix}"
    with pytest.raises(ConfigurationError) as info:
        ln.export.write_prov(doc, path)
    message = str(info.value)
    assert f"suffix {suffix}" in message and f"pip install 'prov[{fmt}]'" in message
    assert ("lxml" if fmt == "xml" else "rdflib") in message
    assert not path.exists()


def test_unknown_suffix_or_format_is_refused(lineage: Lineage, tmp_path: Path) -> None:
    """A suffix or format name that is no PROV format raises; format= wins over the suffix;
    a path without a suffix is PROV-JSON."""
    doc = ln.export.to_prov(lineage.analyse)
    with pytest.raises(UsageError, match=r"suffix \.txt"):
        ln.export.write_prov(doc, tmp_path / "lineage.txt")
    with pytest.raises(UsageError, match="Unknown PROV format 'yaml'"):
        ln.export.write_prov(doc, tmp_path / "lineage.json", format="yaml")
    assert not list(tmp_path.glob("lineage.*"))
    written = ln.export.write_prov(doc, tmp_path / "lineage.txt", format="prov-n")
    assert ProvDocument.deserialize(written, format="provn") == doc
    bare = ln.export.write_prov(doc, tmp_path / "lineage")
    assert ProvDocument.deserialize(bare, format="json") == doc
