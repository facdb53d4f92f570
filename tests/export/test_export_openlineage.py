"""OpenLineage export: RunEvents built with openlineage-python, validated against the 2-0-2 model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from export_data import Lineage, build_lineage
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import RunEvent
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage_schema import schema_errors

import lineage_nb as ln


def as_dict(event: RunEvent) -> dict[str, Any]:
    return json.loads(ln.export.to_json(event))  # type: ignore[no-any-return]


@pytest.fixture
def lineage(db: ln.Database, tmp_path: Path) -> Lineage:
    return build_lineage(tmp_path)


def test_openlineage_events_validate_against_schema(lineage: Lineage) -> None:
    """Every event of every run, serialized to JSON, is a valid OpenLineage 2-0-2 RunEvent."""
    events = [e for run in ln.runs() for e in ln.export.openlineage_events(run)]
    assert len(events) == 6
    for event in events:
        data = as_dict(event)
        assert data["schemaURL"].startswith("https://openlineage.io/spec/2-0-2/OpenLineage.json")
        assert schema_errors(data) == []


def test_openlineage_schema_check_rejects_broken_events(lineage: Lineage) -> None:
    """The validation used above does fail on a bad run id, a missing producer or facet field."""
    good = as_dict(ln.export.openlineage_events(lineage.analyse)[1])
    bad_id = json.loads(json.dumps(good))
    bad_id["run"]["runId"] = "run-2"
    no_producer = {k: v for k, v in good.items() if k != "producer"}
    bad_facet = json.loads(json.dumps(good))
    del bad_facet["job"]["facets"]["sourceCode"]["sourceCode"]
    bad_count = json.loads(json.dumps(good))
    bad_count["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] = "three"
    for broken in (bad_id, no_producer, bad_facet, bad_count):
        assert schema_errors(broken) != []


def test_openlineage_events_describe_the_run(lineage: Lineage) -> None:
    """Job = transform key and version, run id = uid, datasets = tables with row counts."""
    run = lineage.analyse
    start, complete = (as_dict(e) for e in ln.export.openlineage_events(run))
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"] == run.uid
    assert complete["job"]["name"] == run.transform.key
    assert complete["job"]["namespace"] == "lineage_nb"
    facets = complete["job"]["facets"]
    assert facets["lineageNb"]["version"] == run.transform.version
    assert facets["sourceCode"]["sourceCode"] == run.transform.source_code
    assert facets["sourceCode"]["language"] == "python"
    inputs = {
        d["name"]: d["inputFacets"]["inputStatistics"]["rowCount"] for d in complete["inputs"]
    }
    outputs = {
        d["name"]: d["outputFacets"]["outputStatistics"]["rowCount"] for d in complete["outputs"]
    }
    prefix = (
        "" if ln.get_database().dialect == "sqlite" else f"{ln.get_database().url.database}.public."
    )
    assert inputs == {f"{prefix}sample": 2}
    assert outputs == {f"{prefix}measurement": 3, f"{prefix}sample": 1}
    assert start["outputs"] == []
    assert start["eventTime"] < complete["eventTime"]
    assert complete["run"]["facets"]["lineageNb"]["runNumber"] == run.id


def test_openlineage_errored_run_ends_with_fail(lineage: Lineage) -> None:
    """An errored run ends with FAIL and an errorMessage facet naming the cell."""
    events = [as_dict(e) for e in ln.export.openlineage_events(lineage.broken)]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    error = events[1]["run"]["facets"]["errorMessage"]
    assert "3" in error["message"] and error["programmingLanguage"] == "python"
    assert events[1]["run"]["facets"]["lineageNb"]["erroredCells"] == [3]


def test_openlineage_final_event_carries_the_log_head(lineage: Lineage) -> None:
    """The final event keeps the sealed log's head as a run facet: an anchor held by the
    OpenLineage backend, outside the database, that ln.verify(anchor=...) checks; a later
    rewrite of a sealed event is caught against it."""
    final = as_dict(ln.export.openlineage_events(lineage.analyse)[-1])
    head = final["run"]["facets"]["lineageNbLogHead"]
    assert schema_errors(final) == []
    assert head["seal"] >= 1 and len(head["hash"]) == 64
    anchor = {k: head[k] for k in ("seal", "events", "last_event_id", "hash", "at")}
    db = ln.get_database()
    assert ln.verify(anchor=anchor) == []
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE lineage_record_event SET pk = 'forged' WHERE id = (SELECT min(id) FROM "
            "lineage_record_event)"
        )
    assert ln.verify(anchor=anchor) != []


def test_openlineage_open_run_has_only_start(run: ln.Run) -> None:
    """A run still going has its START event only."""
    events = ln.export.openlineage_events(run)
    assert [as_dict(e)["eventType"] for e in events] == ["START"]
    assert schema_errors(as_dict(events[0])) == []


def test_write_events_writes_ndjson(lineage: Lineage, tmp_path: Path) -> None:
    """write_events writes one JSON event per line, START before the end of each run."""
    path = tmp_path / "events.ndjson"
    count = ln.export.write_events(reversed(ln.runs()), path, progress_bar=False)
    lines = path.read_text().splitlines()
    assert count == len(lines) == 6
    events = [json.loads(line) for line in lines]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"] * 2 + ["START", "FAIL"]
    assert all(schema_errors(e) == [] for e in events)


def test_emit_sends_through_user_transport(lineage: Lineage, tmp_path: Path) -> None:
    """emit() sends the events through an openlineage-python client the user configured."""
    path = tmp_path / "emitted.ndjson"
    client = OpenLineageClient(transport=FileTransport(FileConfig(str(path), append=True)))
    assert ln.export.emit(lineage.ingest, client) == 2
    emitted = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["run"]["runId"] for e in emitted] == [lineage.ingest.uid] * 2
