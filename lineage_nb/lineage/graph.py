"""Lineage queries: a record's history, lineage graphs, runs and their records and inputs.

Graphs are networkx ``DiGraph`` objects whose nodes are ``("record", table, pk)``,
``("run", id)``, ``("transform", id)`` and ``("user", id)``, each with ``kind`` and ``label``
attributes; edges point from cause to effect (transform → run → record, input record → run).
A ``used`` edge whose record changed after the run read it has ``changed=True``; the focus
record has ``stale=True`` when it is stale. More than ``group_above`` records of one table read
by one run become one ``("records", table, run_id)`` node (``kind="group"``, ``count``), so a run
that read 100,000 records is one node, not 100,000.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import networkx as nx
from sqlalchemy import Select, Table, bindparam, func, select
from sqlalchemy.orm import Session

from ..orm.session_scope import run_sync
from .history import QueryMemo, changed_inputs_of, inputs_frame, run_inputs
from .reads import untracked_reads, write_pending
from .schema import Cell, CellSource, RecordEvent, Run, Transform, User
from .stamping import record_key

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "history",
    "history_df",
    "record_lineage",
    "run_inputs_df",
    "run_lineage",
    "run_records_df",
    "runs",
    "runs_df",
]

RecordKey = tuple[str, str]


def _frame(statement: Select[Any] | Any) -> pd.DataFrame:
    from .frames import statement_frame  # pandas is imported when a frame is asked for

    return statement_frame(statement)


def history(record: Any) -> list[RecordEvent]:
    """Every event of ``record``, oldest first (one indexed query)."""
    table, pk = record_key(record)
    statement = (
        select(RecordEvent)
        .where(RecordEvent.table == table, RecordEvent.pk == pk)
        .order_by(RecordEvent.id)
    )
    return run_sync(lambda s: list(s.execute(statement).scalars()))


def _event_columns() -> list[Any]:
    return [
        RecordEvent.id.label("event_id"),
        RecordEvent.action,
        RecordEvent.table,
        RecordEvent.pk,
        RecordEvent.changes,
        RecordEvent.cell,
        RecordEvent.at,
        RecordEvent.run_id,
        Transform.key.label("transform_key"),
        Transform.version.label("transform_version"),
        User.handle.label("user_handle"),
        CellSource.text.label("cell_source"),
    ]


def _with_run_context(statement: Select[Any]) -> Select[Any]:
    return (
        statement.outerjoin(Run, Run.id == RecordEvent.run_id)
        .outerjoin(Transform, Transform.id == Run.transform_id)
        .join(User, User.id == RecordEvent.user_id)
        .outerjoin(
            Cell, (Cell.run_id == RecordEvent.run_id) & (Cell.execution_count == RecordEvent.cell)
        )
        .outerjoin(CellSource, CellSource.hash == Cell.source_hash)
    )


def history_df(record: Any) -> pd.DataFrame:
    """``history()`` as a DataFrame with the run's transform and the user's handle."""
    table, pk = record_key(record)
    statement = _with_run_context(select(*_event_columns())).where(
        RecordEvent.table == table, RecordEvent.pk == pk
    )
    return _frame(statement.order_by(RecordEvent.id))


def run_records_df(run: Run) -> pd.DataFrame:
    """Every event written by ``run``, oldest first."""
    statement = _with_run_context(select(*_event_columns())).where(RecordEvent.run_id == run.id)
    return _frame(statement.order_by(RecordEvent.id))


def run_inputs_df(run: Run) -> pd.DataFrame:
    """Every record ``run`` read, with the version read and whether it changed since."""
    from .frames import add_lineage_labels

    return add_lineage_labels(inputs_frame(run))


def _runs_statement(
    transform: str | None, user: str | None, status: str | None, limit: int | None
) -> Select[Any]:
    statement = select(Run).join(Run.transform).join(Run.created_by).order_by(Run.id.desc())
    if transform is not None:
        statement = statement.where(Transform.key.contains(transform))
    if user is not None:
        statement = statement.where(User.handle == user)
    if status is not None:
        statement = statement.where(Run.status == status)
    return statement.limit(limit) if limit is not None else statement


def runs(
    *,
    transform: str | None = None,
    user: str | None = None,
    status: str | None = None,
    limit: int | None = 100,
) -> list[Run]:
    """Recent runs, newest first, filtered by transform key (substring), user handle, status."""
    statement = _runs_statement(transform, user, status, limit)
    return run_sync(lambda s: list(s.execute(statement).unique().scalars()))


def runs_df(
    *,
    transform: str | None = None,
    user: str | None = None,
    status: str | None = None,
    limit: int | None = 100,
) -> pd.DataFrame:
    """:func:`runs` as a DataFrame. ``events`` is stored when a run ends, so only runs still
    going have their events counted, in a second query by run (a correlated count in the first
    one looks so costly to PostgreSQL's planner in a large log that it compiles the query with
    JIT, for more time than the whole listing takes)."""
    statement = _runs_statement(transform, user, status, limit).with_only_columns(
        Run.id.label("run_id"),
        Run.uid,
        Transform.key.label("transform_key"),
        Transform.version.label("transform_version"),
        Transform.type.label("transform_type"),
        User.handle.label("user_handle"),
        Run.status,
        Run.started_at,
        Run.finished_at,
        Run.event_count.label("events"),
    )
    frame = _frame(statement)
    live = [int(r) for r in frame.loc[frame["events"].isna(), "run_id"]]
    if live:
        counts = run_sync(
            lambda session: dict(
                session.execute(
                    select(RecordEvent.run_id, func.count(RecordEvent.id))
                    .where(RecordEvent.run_id.in_(live))
                    .group_by(RecordEvent.run_id)
                )
                .tuples()
                .all()
            )
        )
        missing = frame["events"].isna()
        frame.loc[missing, "events"] = frame.loc[missing, "run_id"].map(
            lambda run_id: counts.get(int(run_id), 0)
        )
    return frame


# -- graphs ------------------------------------------------------------------------------------
def _record_node(graph: nx.DiGraph, key: RecordKey, focus: bool = False) -> tuple[Any, ...]:
    node = ("record", key[0], key[1])
    if node not in graph:
        graph.add_node(node, kind="record", label=f"{key[0]} {key[1]}", focus=focus)
    return node


@functools.cache
def _runs_statement_for_graph() -> Select[Any]:
    """Runs ``:ids`` with their transform and user (built once)."""
    columns: list[Any] = [
        Run.id,
        Run.status,
        Run.started_at,
        Run.transform_id,
        Run.created_by_id,
        Transform.key,
        Transform.version,
        Transform.type,
        User.handle,
    ]
    return (
        select(*columns)
        .join(Transform, Transform.id == Run.transform_id)
        .join(User, User.id == Run.created_by_id)
        .where(Run.id.in_(bindparam("ids", expanding=True)))
    )


def _add_runs(graph: nx.DiGraph, session: Session, run_ids: Iterable[int]) -> None:
    """Add each run with its transform and user (one query)."""
    ids = sorted(set(run_ids))
    if not ids:
        return
    rows = session.connection().execute(_runs_statement_for_graph(), {"ids": ids})
    for run_id, status, started_at, transform_id, user_id, key, version, kind, handle in rows:
        run_node = ("run", run_id)
        started = f"{started_at:%Y-%m-%d %H:%M}" if started_at else ""
        graph.add_node(
            run_node, kind="run", label=f"run {run_id} · {status}\n{started}", status=status
        )
        transform_node = ("transform", transform_id)
        graph.add_node(transform_node, kind="transform", label=f"{key} v{version}", type=kind)
        user_node = ("user", user_id)
        graph.add_node(user_node, kind="user", label=handle)
        graph.add_edge(transform_node, run_node, relation="executed")
        graph.add_edge(user_node, run_node, relation="ran")


#: Keys per ``pk IN (...)`` of :func:`_writers`: large, so a run that read 100,000 records
#: costs a few dozen indexed lookups; within SQLite's 32,766 bound values (3.32 and later) and
#: planned quickly by PostgreSQL (a scalar array, not a row-value list).
_WRITERS_CHUNK = 5_000 if sqlite3.sqlite_version_info >= (3, 32) else 900


@functools.cache
def _writers_statement() -> Select[Any]:
    """The runs that wrote the records ``:pks`` of table ``:table`` (built once)."""
    events: Table = RecordEvent.__table__  # type: ignore[assignment]
    return (
        select(events.c.pk, events.c.run_id)
        .where(
            events.c.table == bindparam("table"),
            events.c.pk.in_(bindparam("pks", expanding=True)),
            events.c.run_id.is_not(None),
        )
        .distinct()
    )


def _writers(session: Session, keys: set[RecordKey], memo: QueryMemo) -> dict[RecordKey, set[int]]:
    """The runs that wrote each record: from its events where they were fetched already, else
    per table, ``pk IN (...)`` in bounded chunks (the ``(table, pk)`` index serves it; a
    row-value ``IN`` is planned slowly on both backends)."""
    by_table: dict[str, list[str]] = {}
    found: dict[RecordKey, set[int]] = {}
    for table, pk in keys:
        known = memo.known_events(table, pk)
        if known is None:
            by_table.setdefault(table, []).append(pk)
            continue
        runs = {event.run_id for event in known if event.run_id is not None}
        if runs:
            found[(table, pk)] = runs
    connection = session.connection()
    for table, pks in sorted(by_table.items()):
        pks.sort()
        for start in range(0, len(pks), _WRITERS_CHUNK):  # bounded IN lists
            chunk = pks[start : start + _WRITERS_CHUNK]
            rows = connection.execute(_writers_statement(), {"table": table, "pks": chunk})
            for pk, run_id in rows:
                found.setdefault((table, pk), set()).add(cast(int, run_id))
    return found


#: By default, more records of one table than this, read by one run, are drawn as one node.
GROUP_ABOVE = 25


def _add_inputs(
    graph: nx.DiGraph,
    session: Session,
    run_ids: set[int],
    group_above: int | None,
    memo: QueryMemo,
) -> dict[RecordKey, Any]:
    """Add the runs' inputs (``used`` edges); returns each input record's node (its own or its
    group's)."""
    nodes: dict[RecordKey, Any] = {}
    for run_id, keys in sorted(run_inputs(session, run_ids, memo=memo).items()):
        by_table: dict[str, list[RecordKey]] = {}
        for key in keys:
            by_table.setdefault(key[0], []).append(key)
        for table, members in sorted(by_table.items()):
            if group_above is not None and len(members) > group_above:
                node = ("records", table, run_id)
                graph.add_node(
                    node, kind="group", count=len(members), label=f"{len(members)} {table} records"
                )
                changed = sum(keys[k] for k in members)
                graph.add_edge(
                    node,
                    ("run", run_id),
                    relation="used",
                    count=len(members),
                    changed=bool(changed),
                )
                for key in members:
                    nodes[key] = node
                continue
            for key in members:
                node = _record_node(graph, key)
                graph.add_edge(node, ("run", run_id), relation="used", changed=keys[key])
                nodes[key] = node
    return nodes


def _expand(
    graph: nx.DiGraph,
    session: Session,
    records: dict[RecordKey, Any],
    depth: int,
    seen_runs: set[int],
    group_above: int | None,
    memo: QueryMemo,
) -> None:
    """Walk upstream: records ← runs that wrote them ← those runs' inputs ← ... ``depth`` times.

    ``records`` maps each record to its node (a group node for grouped inputs).
    """
    for _level in range(depth):
        writers = _writers(session, set(records), memo)
        new_runs = {r for ids in writers.values() for r in ids} - seen_runs
        for key, ids in writers.items():
            for run_id in ids:
                graph.add_edge(("run", run_id), records[key], relation="wrote")
        _add_runs(graph, session, new_runs)
        seen_runs |= new_runs
        records = _add_inputs(graph, session, new_runs, group_above, memo)
        if not records:
            break


def _mark_stale(
    graph: nx.DiGraph, session: Session, node: Any, record: Any, memo: QueryMemo
) -> None:
    changed = changed_inputs_of(session, record, memo)
    if changed:
        data = graph.nodes[node]
        data["stale"], data["stale_inputs"] = True, len(changed)
        data["label"] += f"\n⚠ stale: {len(changed)} input(s) changed"


def record_lineage(
    record: Any, depth: int = 3, *, group_above: int | None = GROUP_ABOVE
) -> nx.DiGraph:
    """The lineage graph of ``record``: the runs that wrote it, their transforms, users and inputs,
    and upstream through the inputs' runs, ``depth`` levels deep. More than ``group_above``
    records of one table read by one run are one group node (None: never group)."""
    key = record_key(record)

    def build(session: Session) -> nx.DiGraph:
        write_pending(session)
        graph = nx.DiGraph()
        node = _record_node(graph, key, focus=True)
        graph.nodes[node]["label"] = f"{type(record).__name__} {key[1]}"
        memo = QueryMemo()
        _mark_stale(graph, session, node, record, memo)
        _expand(graph, session, {key: node}, depth, set(), group_above, memo)
        return graph

    with untracked_reads():
        return run_sync(build)


def run_lineage(run: Run, depth: int = 3, *, group_above: int | None = GROUP_ABOVE) -> nx.DiGraph:
    """The lineage graph around ``run``: its transform, user, outputs, inputs and upstream."""

    def build(session: Session) -> nx.DiGraph:
        write_pending(session)
        graph = nx.DiGraph()
        _add_runs(graph, session, [run.id])
        graph.nodes[("run", run.id)]["focus"] = True
        outputs = session.execute(
            select(RecordEvent.table, RecordEvent.pk).where(RecordEvent.run_id == run.id).distinct()
        ).all()
        for table, pk in outputs:
            graph.add_edge(("run", run.id), _record_node(graph, (table, pk)), relation="wrote")
        memo = QueryMemo()
        inputs = _add_inputs(graph, session, {run.id}, group_above, memo)
        if depth > 1 and inputs:
            _expand(graph, session, inputs, depth - 1, {run.id}, group_above, memo)
        return graph

    with untracked_reads():
        return run_sync(build)
