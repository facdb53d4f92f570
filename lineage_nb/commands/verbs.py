"""The verbs ``lineage-nb`` and ``%lineage`` share: runs, show, export, verify, anchor.

Each is one :class:`~lineage_nb.commands.table.Command` of :data:`SHARED`; the command line and
the magic add their own verbs around them (``demo``, ``setup-postgres``, ... there; ``status``,
``track``, ``finish`` here) but never redo these.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..db import Database
from ..errors import ConfigurationError, UsageError
from ..orm.registry import class_by_table
from .records import (
    MODEL_BASES,
    changes_text,
    first_line,
    history_frame,
    import_models,
    printable,
    read_row,
    record_object,
    resolve_table,
    table_text,
    view_table,
)
from .table import Argument, Command, Context, Output, arg

__all__ = ["PROV_FORMATS", "PROV_SUFFIXES", "SHARED", "filters"]

#: The ``--prov-format`` names: ``lineage_nb.export.prov.PROV_FORMATS`` (kept here so that the
#: parsers do not import ``prov``; a test checks that the two agree).
PROV_FORMATS = ("json", "jsonld", "provn", "xml", "rdf", "turtle")
PROV_SUFFIXES = "FILE.json, .jsonld, .provn, .xml, .trig (rdf) or .ttl (turtle)"
MODELS = arg("--models", metavar="MODULE", help="import models from a module or .py file")


def filters(limit: int | None) -> tuple[Argument, ...]:
    """The run filters ``--user``, ``--notebook``, ``--status``, ``--limit`` (default ``limit``)."""
    return (
        arg("--user", help="only runs by this user handle"),
        arg("--notebook", help="only runs of notebooks/scripts whose key contains this"),
        arg("--status", choices=["started", "completed", "errored", "aborted"]),
        arg("--limit", type=int, default=limit, help=f"at most N runs (default {limit})"),
    )


# -- runs -------------------------------------------------------------------------------------
RUN_COLUMNS = (
    "run_id",
    "transform_key",
    "transform_version",
    "user_handle",
    "status",
    "started_at",
    "finished_at",
    "events",
)


def runs(context: Context, args: argparse.Namespace) -> Output:
    """Recent runs, newest first: a table of their key, version, user, status, times, events."""
    from ..lineage.graph import runs_df

    context.database()
    frame = runs_df(transform=args.notebook, user=args.user, status=args.status, limit=args.limit)
    if frame.empty:
        return Output("No runs match.")
    columns = {
        name: name.removeprefix("transform_").removesuffix("_handle") for name in RUN_COLUMNS
    }
    if args.uid:
        columns = {"run_id": "run_id", "uid": "uid", **columns}
    shown = frame[[c for c in columns if c in frame.columns]].rename(columns=columns)
    return Output(table_text(shown), value=shown)


RUNS_ARGUMENTS = (*filters(20), arg("--uid", action="store_true", help="also show each run's uid"))


# -- show -------------------------------------------------------------------------------------
def show(context: Context, args: argparse.Namespace) -> Output:
    """One record's fields and its history; a notebook also gets the model's own card."""
    db = context.database()
    import_models(args.models)
    table = resolve_table(db, args.model)
    row = read_row(db, table, args.pk)
    if row is None:
        missing = f"no {printable(table)} record with primary key {printable(args.pk)}"
        return Output(error=missing, code=1)
    names = {name: printable(name) for name in row}
    width = max(len(shown) for shown in names.values())
    lines = [f"{printable(table)} {printable(args.pk)}"]
    for name, value in row.items():
        lines.append(f"  {names[name]:<{width}}  {'NULL' if value is None else printable(value)}")
    history = history_frame(table, args.pk)
    lines.append(f"\nHistory ({len(history)} event{'s' if len(history) != 1 else ''}):")
    if not history.empty:
        shown = history.assign(changes=history["changes"].map(changes_text))
        lines.append(table_text(shown))
    if context.rich and class_by_table(table, *MODEL_BASES) is not None:
        return Output("\n".join(lines), value=history, shown=(record_object(db, table, args.pk),))
    return Output("\n".join(lines))


SHOW_ARGUMENTS = (
    arg("model", metavar="MODEL", help="model class name or table name"),
    arg("pk", metavar="PK", help="primary key (composite: comma separated)"),
    MODELS,
)


# -- export -----------------------------------------------------------------------------------
def _selected_runs(context: Context, args: argparse.Namespace) -> list[Any]:
    """The runs named by ``--run`` (ids or uids), else those the filters select, oldest first."""
    from sqlalchemy import or_, select

    from ..lineage.graph import runs as filtered_runs
    from ..lineage.schema import Run
    from ..orm.session_scope import run_sync

    if not args.run:
        found = filtered_runs(
            transform=args.notebook, user=args.user, status=args.status, limit=args.limit
        )
        return list(reversed(found))
    ids = [int(r) for r in args.run if r.isdigit()]
    uids = [r for r in args.run if not r.isdigit()]
    statement = select(Run).where(or_(Run.id.in_(ids), Run.uid.in_(uids))).order_by(Run.id)
    selected = run_sync(lambda s: list(s.execute(statement).unique().scalars()))
    missing = set(args.run) - {str(r.id) for r in selected} - {r.uid for r in selected}
    if missing:
        raise UsageError(f"no run {', '.join(sorted(missing))} (see `{context.prog} runs`)")
    return selected


def _view_frame(db: Database, args: argparse.Namespace, selected: list[Any]) -> Any:
    """The ``--view`` table of the selected runs: runs, events, inputs or a table's rows."""
    from sqlalchemy import select

    from ..lineage.graph import runs_df
    from ..render.frames import typed_frame

    view = args.view or ("events" if args.run else "runs")
    run_ids = [r.id for r in selected]
    if view == "runs":
        frame = runs_df(transform=args.notebook, user=args.user, status=args.status, limit=None)
        return frame[frame["run_id"].isin(run_ids)].sort_values("run_id").reset_index(drop=True)
    if view == "inputs":
        return _inputs_frame(selected)
    table_name = {"events": "lineage_record_event"}.get(view)
    table = view_table(db, table_name or resolve_table(db, view))
    statement = select(table)
    if table_name is not None:
        statement = statement.where(table.c.run_id.in_(run_ids)).order_by(table.c.id)
    with db.engine.connect() as connection:
        result = connection.execute(statement)
        return typed_frame(list(result.keys()), result.all(), list(table.columns))


def _inputs_frame(selected: list[Any]) -> Any:
    """One row per record each run read: the version read, the current one, changed since."""
    import pandas as pd

    frames = [r.inputs_df().assign(run_id=r.id) for r in selected]
    if not frames:
        return pd.DataFrame(
            columns=[
                "run_id",
                "table",
                "pk",
                "at",
                "read_version",
                "current_version",
                "changed_since",
            ]
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame[["run_id", *[c for c in frame.columns if c != "run_id"]]]


def export(context: Context, args: argparse.Namespace) -> Output:
    """Write the selected runs as CSV/Parquet (a view), OpenLineage events and/or PROV."""
    if not (args.csv or args.parquet or args.openlineage or args.prov):
        raise UsageError("export: give at least one of --csv, --parquet, --openlineage, --prov")
    if not args.prov and (args.prov_format or args.record):
        given = "--prov-format" if args.prov_format else "--record"
        raise UsageError(f"export: {given} applies to the PROV document: give --prov FILE")
    from .. import export as files

    if args.prov:  # before any work: the suffix must name a format this installation writes
        try:
            prov_format = files.prov_format(args.prov, args.prov_format)
        except (UsageError, ConfigurationError) as exc:
            raise UsageError(f"export: {first_line(exc)}") from exc
    db = context.database()
    import_models(args.models)

    progress = False if args.no_progress else None
    selected = _selected_runs(context, args)
    lines = []
    if args.csv or args.parquet:
        frame = _view_frame(db, args, selected)
        if args.csv:
            written = files.to_csv(frame, args.csv, progress=progress)
            lines.append(f"wrote {len(frame)} rows to {written}")
        if args.parquet:
            written = files.to_parquet(frame, args.parquet, progress=progress)
            lines.append(f"wrote {len(frame)} rows to {written}")
    if args.openlineage:
        count = files.write_events(
            selected, args.openlineage, namespace=args.namespace, progress_bar=progress
        )
        lines.append(
            f"wrote {count} OpenLineage events of {len(selected)} runs to {args.openlineage}"
        )
    if args.prov:
        subject: Any = record_object(db, *args.record) if args.record else selected
        document = files.to_prov(subject, depth=args.depth)
        path = files.write_prov(document, args.prov, format=prov_format)
        lines.append(f"wrote PROV ({len(document.records)} records, {prov_format}) to {path}")
    return Output("\n".join(lines))


EXPORT_ARGUMENTS = (
    arg("--run", action="append", metavar="ID", help="run id or uid (repeatable)"),
    *filters(None),
    arg("--csv", metavar="FILE", help="write the --view table as CSV"),
    arg("--parquet", metavar="FILE", help="write the --view table as Parquet"),
    arg(
        "--view",
        metavar="VIEW",
        help="runs, events, inputs or a table name (default: runs; events with --run)",
    ),
    arg("--openlineage", metavar="FILE", help="write OpenLineage events (NDJSON)"),
    arg("--namespace", default="lineage_nb", help="OpenLineage job namespace"),
    arg(
        "--prov",
        metavar="FILE",
        help=f"write a W3C PROV document, in the format its suffix names: {PROV_SUFFIXES}",
    ),
    arg(
        "--prov-format",
        choices=list(PROV_FORMATS),
        help="PROV serialization (default: from the --prov suffix); xml needs prov[xml], "
        "rdf and turtle need prov[rdf]",
    ),
    arg(
        "--record",
        nargs=2,
        metavar=("MODEL", "PK"),
        help="PROV of one record's lineage instead of the runs",
    ),
    arg("--depth", type=int, default=3, help="PROV lineage depth (default 3)"),
    MODELS,
    arg("--no-progress", action="store_true", help="never show a progress bar"),
)


# -- verify, anchor ---------------------------------------------------------------------------
ANCHOR_HELP = "also prove the log still extends this anchor (from `anchor`)"


def _read_anchor(path: str) -> dict[str, Any]:
    try:
        head = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(
            f"verify --anchor: cannot read an anchor from {path!r}: {error}"
        ) from error
    if not isinstance(head, dict):
        raise UsageError(f"verify --anchor: {path!r} holds no anchor (write one with `anchor`)")
    return head


def verify(context: Context, args: argparse.Namespace) -> Output:
    """Check the event log's seals and chains (and that it extends ``--anchor``): code 1 if not."""
    from ..lineage.verify import describe, status
    from ..lineage.verify import verify as broken_links

    head = _read_anchor(args.anchor) if args.anchor else None
    db = context.database()
    links = broken_links(db, anchor=head)
    if not links:  # with how many events are unsealed, unchained or written outside a run
        return Output(describe([], status(db)))
    lines = [f"BROKEN {printable(links[0])}"]
    if len(links) > 1:
        lines.append(f"... and {len(links) - 1} more broken chain(s)")
    return Output("\n".join(lines), code=1)


def anchor(context: Context, args: argparse.Namespace) -> Output:
    """Seal the log and give its head (JSON), printed or written to ``--out``."""
    from ..lineage.verify import anchor as seal_head

    head = seal_head(context.database())
    text = json.dumps(head, indent=2)
    if not args.out:
        return Output(text)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    return Output(f"anchor of {head['events']} events (seal {head['seal']}) written to {args.out}")


#: The shared verbs, in the order the command line lists them.
SHARED = (
    Command("runs", "list recent runs, newest first", runs, RUNS_ARGUMENTS),
    Command("show", "show one record and its history", show, SHOW_ARGUMENTS),
    Command("export", "export runs as CSV, Parquet, OpenLineage or PROV", export, EXPORT_ARGUMENTS),
    Command(
        "verify",
        "check the event log's seals and chains (exit 1 when broken)",
        verify,
        (arg("--anchor", metavar="FILE", help=ANCHOR_HELP),),
    ),
    Command(
        "anchor",
        "seal the log and print its head, to keep outside the database",
        anchor,
        (arg("--out", metavar="FILE", help="write the anchor (JSON) to FILE"),),
    ),
)
