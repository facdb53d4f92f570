"""OpenLineage ``RunEvent`` s for runs, built with openlineage-python.

Each run gives a ``START`` event (at ``started_at``) and, once it ended, one ``COMPLETE``,
``FAIL`` (status ``errored``) or ``ABORT`` event (at ``finished_at``). The job is the transform
(name = its key, the ``lineageNb`` job facet holds version and source hash, plus the standard
``sourceCode`` and ``jobType`` facets); the run id is the run's ``uid``; inputs and outputs are
the tables the run read and wrote, with the number of records as ``inputStatistics`` /
``outputStatistics`` ``rowCount``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import attr
from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    RunEvent,
    RunState,
)
from openlineage.client.event_v2 import (
    Run as OLRun,
)
from openlineage.client.facet_v2 import (
    JobFacet,
    RunFacet,
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    output_statistics_output_dataset,
    source_code_job,
)
from openlineage.client.serde import Serde
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from .._version import __version__
from ..db import get_database
from ..lineage.history import input_versions
from ..lineage.reads import write_pending
from ..lineage.schema import RecordEvent, Run
from ..lineage.verify import log_head
from ..orm.session_scope import run_sync
from ._progress import progress

__all__ = [
    "DEFAULT_NAMESPACE",
    "PRODUCER",
    "dataset_namespace",
    "emit",
    "openlineage_events",
    "to_json",
    "write_events",
]

#: Job namespace of every lineage_nb job unless ``namespace=`` says otherwise.
DEFAULT_NAMESPACE = "lineage_nb"
#: ``producer`` URI of the events (and facets) lineage_nb builds.
PRODUCER = f"urn:lineage_nb:{__version__}"
_FACET_SCHEMA = "urn:lineage_nb:spec:facets:1-0-0:{name}"

_FINAL_STATES = {
    "completed": RunState.COMPLETE,
    "errored": RunState.FAIL,
    "aborted": RunState.ABORT,
}


@attr.define
class TransformJobFacet(JobFacet):
    """``lineageNb`` job facet: the transform's version, source hash and kind."""

    version: str
    sourceHash: str
    type: str
    _additional_skip_redact: ClassVar[list[str]] = ["version", "sourceHash", "type"]

    @staticmethod
    def _get_schema() -> str:
        return _FACET_SCHEMA.format(name="TransformJobFacet")


@attr.define
class RunDetailsRunFacet(RunFacet):
    """``lineageNb`` run facet: lineage_nb's run id, who ran it, where, and with what Python."""

    runNumber: int
    status: str
    user: str
    host: str | None = attr.field(default=None)
    pythonVersion: str | None = attr.field(default=None)
    erroredCells: list[int] | None = attr.field(default=None)
    _additional_skip_redact: ClassVar[list[str]] = ["runNumber", "status"]

    @staticmethod
    def _get_schema() -> str:
        return _FACET_SCHEMA.format(name="RunDetailsRunFacet")


@attr.define
class LogHeadRunFacet(RunFacet):
    """``lineageNbLogHead`` run facet on a run's final event: the head of the sealed event log
    when the event was made (``ln.anchor()``'s fields), so the OpenLineage backend keeps an
    anchor outside the database: ``ln.verify(anchor=facet)`` proves the log still extends it."""

    seal: int
    events: int
    last_event_id: int
    hash: str
    at: str
    _additional_skip_redact: ClassVar[list[str]] = [
        "seal",
        "events",
        "last_event_id",
        "hash",
        "at",
    ]

    @staticmethod
    def _get_schema() -> str:
        return _FACET_SCHEMA.format(name="LogHeadRunFacet")


def _iso(value: dt.datetime | None) -> str:
    value = value or dt.datetime.now(dt.timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.isoformat()


def dataset_namespace(url: URL) -> str:
    """The OpenLineage dataset namespace of a database: ``postgres://host:port`` or ``sqlite:PATH``.

    Examples:
        >>> from sqlalchemy.engine import make_url
        >>> dataset_namespace(make_url("postgresql+psycopg://bob:secret@db.lab:5433/lab"))
        'postgres://db.lab:5433'
    """
    if url.get_backend_name() == "postgresql":
        return f"postgres://{url.host or 'localhost'}:{url.port or 5432}"
    return f"sqlite:{url.database or ':memory:'}"


def _dataset_name(url: URL, table: str) -> str:
    if url.get_backend_name() == "postgresql":
        return f"{url.database}.public.{table}"
    return table


#: The row count facet of each kind of dataset: its name and class (``rowCount``: records).
_ROW_COUNT_FACETS: dict[type[Any], tuple[str, type[Any]]] = {
    InputDataset: (
        "inputStatistics",
        input_statistics_input_dataset.InputStatisticsInputDatasetFacet,
    ),
    OutputDataset: (
        "outputStatistics",
        output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
    ),
}

_Dataset = TypeVar("_Dataset", InputDataset, OutputDataset)


def _datasets(
    kind: type[_Dataset], counts: dict[str, int], url: URL, producer: str
) -> list[_Dataset]:
    """The tables of ``counts`` as datasets of ``kind`` (the run's inputs or outputs), with how
    many of their records the run read or wrote as the row count facet."""
    namespace = dataset_namespace(url)
    facet_name, facet = _ROW_COUNT_FACETS[kind]
    return [
        # the third field is inputFacets / outputFacets
        kind(
            namespace, _dataset_name(url, table), {facet_name: facet(rowCount=n, producer=producer)}
        )
        for table, n in counts.items()
    ]


def _counts(session: Session, run_id: int) -> tuple[dict[str, int], dict[str, int]]:
    write_pending(session)  # inputs this process noted and has not written yet
    written = session.execute(
        select(RecordEvent.table, func.count(func.distinct(RecordEvent.pk)))
        .where(RecordEvent.run_id == run_id)
        .group_by(RecordEvent.table)
        .order_by(RecordEvent.table)
    ).all()
    records = {(v.table, v.pk) for v in input_versions(session, [run_id])}
    read: dict[str, int] = {}
    for table, _pk in sorted(records):
        read[table] = read.get(table, 0) + 1
    return read, {t: int(n) for t, n in written}


def _job(run: Run, namespace: str, producer: str) -> Job:
    transform = run.transform
    facets: dict[str, JobFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH",
            integration="LINEAGE_NB",
            jobType={"notebook": "NOTEBOOK", "job": "JOB"}.get(transform.type, "SCRIPT"),
            producer=producer,
        ),
        "lineageNb": TransformJobFacet(
            version=str(transform.version),
            sourceHash=transform.source_hash,
            type=transform.type,
            producer=producer,
        ),
    }
    if transform.source_code is not None:
        facets["sourceCode"] = source_code_job.SourceCodeJobFacet(
            language="python", sourceCode=transform.source_code, producer=producer
        )
    return Job(namespace=namespace, name=transform.key, facets=facets)


def _run_facets(
    run: Run, producer: str, final: bool, head: dict[str, Any] | None = None
) -> dict[str, RunFacet]:
    facets: dict[str, RunFacet] = {
        "lineageNb": RunDetailsRunFacet(
            runNumber=run.id,
            status=run.status,
            user=run.created_by.handle,
            host=run.host,
            pythonVersion=run.python_version,
            erroredCells=list(run.errored_cells) if run.errored_cells else None,
            producer=producer,
        )
    }
    if final and head is not None and head["seal"]:
        facets["lineageNbLogHead"] = LogHeadRunFacet(producer=producer, **head)
    if final and run.status == "errored":
        cells = ", ".join(str(c) for c in run.errored_cells or []) or "unknown"
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=f"{run.transform.key}: cell(s) {cells} raised an exception",
            programmingLanguage="python",
            producer=producer,
        )
    return facets


def openlineage_events(
    run: Run, *, namespace: str = DEFAULT_NAMESPACE, producer: str = PRODUCER
) -> list[RunEvent]:
    """The OpenLineage ``RunEvent`` s of ``run``: ``START``, then the final state if it ended.

    Args:
        run: an ``ln.Run`` (e.g. from ``ln.track()`` or ``ln.runs()``).
        namespace: the job namespace.
        producer: the ``producer`` URI stamped on events and facets.

    Returns:
        One event for a run still ``started``, else two (``START`` and ``COMPLETE``/``FAIL``/
        ``ABORT``). Serialize with :func:`to_json`.
    """
    db = get_database()
    url = db.url
    fresh = run_sync(lambda s: s.get(Run, run.id, populate_existing=True))
    run = fresh if fresh is not None else run
    read, written = run_sync(lambda s: _counts(s, run.id))
    inputs = _datasets(InputDataset, read, url, producer)
    outputs = _datasets(OutputDataset, written, url, producer)
    job = _job(run, namespace, producer)
    events = [
        RunEvent(
            eventType=RunState.START,
            eventTime=_iso(run.started_at),
            run=OLRun(runId=run.uid, facets=_run_facets(run, producer, final=False)),
            job=job,
            inputs=inputs,
            outputs=[],
            producer=producer,
        )
    ]
    state = _FINAL_STATES.get(run.status)
    if state is not None:
        events.append(
            RunEvent(
                eventType=state,
                eventTime=_iso(run.finished_at or run.last_seen_at),
                run=OLRun(
                    runId=run.uid, facets=_run_facets(run, producer, final=True, head=log_head(db))
                ),
                job=job,
                inputs=inputs,
                outputs=outputs,
                producer=producer,
            )
        )
    return events


def to_json(event: RunEvent) -> str:
    """One event as compact JSON (openlineage-python's serializer: no nulls, sorted keys)."""
    return str(Serde.to_json(event))


def write_events(
    runs: Iterable[Run],
    path: str | Path,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    progress_bar: bool | None = None,
) -> int:
    """Write the events of ``runs`` to ``path`` as newline-delimited JSON; returns the count.

    Args:
        runs: the runs to export (oldest first reads best).
        path: the ``.ndjson`` file to write (overwritten).
        namespace: the job namespace.
        progress_bar: show a progress bar; default only when stderr is a terminal.
    """
    selected = list(runs)
    written = 0
    with (
        Path(path).open("w", encoding="utf-8") as out,
        progress(len(selected), "OpenLineage", enabled=progress_bar, unit="runs") as bar,
    ):
        for run in selected:
            for event in openlineage_events(run, namespace=namespace):
                out.write(to_json(event) + "\n")
                written += 1
            bar.update(1)
    return written


def emit(run: Run, client: Any | None = None, *, namespace: str = DEFAULT_NAMESPACE) -> int:
    """Send the events of ``run`` through an OpenLineage client (opt-in; nothing is sent otherwise).

    Args:
        run: the run.
        client: an ``openlineage.client.OpenLineageClient``; by default one configured the
            openlineage-python way (``OPENLINEAGE_URL``, ``openlineage.yml``: file, HTTP, ...).
        namespace: the job namespace.

    Returns:
        The number of events emitted.
    """
    if client is None:
        from openlineage.client import OpenLineageClient

        client = OpenLineageClient()
    events = openlineage_events(run, namespace=namespace)
    for event in events:
        client.emit(event)
    return len(events)
