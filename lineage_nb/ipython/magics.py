"""The ``%lineage`` line magic: status, runs, show, track, finish, export.

Every error prints one line (``%lineage show: ...``) instead of a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

from ..errors import LineageError, NoRunError, NotFound
from ..lineage import context, runs
from ..lineage.reads import untracked_reads
from ..lineage.schema import LineageModel, Run

__all__ = ["HELP", "lineage_magic", "register"]

HELP = """\
%lineage — record-level lineage of this notebook (lineage_nb)

  %lineage status                      database, notebook and version, run, user, cell
  %lineage runs [--limit N] [--notebook TEXT] [--user HANDLE] [--status STATUS]
                                       recent runs, newest first (a DataFrame)
  %lineage show MODEL PK               one record and its history (who, when, which cell)
  %lineage track [--notebook PATH] [--user HANDLE]
                                       finish the current run and open a new one
  %lineage finish [STATUS]             finish the current run (completed|errored|aborted)
  %lineage export csv|parquet PATH [--model MODEL | --run ID]
                                       a model's table or a run's events (default: this run)
  %lineage export openlineage|prov PATH [--run ID]
                                       a run as OpenLineage events (JSON lines) or a PROV
                                       document in the format PATH's suffix names: .json
                                       PROV-JSON, .jsonld, .provn PROV-N, .xml PROV-XML,
                                       .trig or .ttl PROV-O (xml, rdf: prov's extras)
  %lineage help                        this text
"""


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see %lineage help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _UsageError(message or "")


def _parser() -> _Parser:
    parser = _Parser(prog="%lineage", add_help=False)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    sub.add_parser("status", add_help=False)
    sub.add_parser("help", add_help=False)
    listing = sub.add_parser("runs", add_help=False)
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--notebook", default=None)
    listing.add_argument("--user", default=None)
    listing.add_argument("--status", default=None)
    show = sub.add_parser("show", add_help=False)
    show.add_argument("model")
    show.add_argument("pk")
    tracking = sub.add_parser("track", add_help=False)
    tracking.add_argument("--notebook", default=None)
    tracking.add_argument("--user", default=None)
    finishing = sub.add_parser("finish", add_help=False)
    finishing.add_argument("status", nargs="?", default="completed")
    export = sub.add_parser("export", add_help=False)
    export.add_argument("format", choices=["csv", "parquet", "openlineage", "prov"])
    export.add_argument("path")
    export.add_argument("--model", default=None)
    export.add_argument("--run", type=int, default=None)
    return parser


def _model_class(name: str) -> type[Any]:
    from ..orm.model import Model

    classes: dict[str, type[Any]] = {}
    for base in (Model, LineageModel):
        for mapper in base.registry.mappers:
            cls = mapper.class_
            classes.setdefault(cls.__name__, cls)
            classes.setdefault(str(getattr(mapper.local_table, "name", cls.__name__)), cls)
    found = classes.get(name) or {k.lower(): v for k, v in classes.items()}.get(name.lower())
    if found is None:
        known = ", ".join(sorted(k for k in classes if k[:1].isupper())) or "none defined yet"
        raise NotFound(f"No model named {name!r}.", value=name, hint=f"Known models: {known}.")
    return found


def _pk(cls: type[Any], text: str) -> Any:
    from sqlalchemy import inspect

    columns = inspect(cls).primary_key
    if len(columns) == 1:
        try:
            python_type = columns[0].type.python_type
        except NotImplementedError:
            return text
        if python_type is int:
            return int(text)
    return text


def _run(run_id: int | None) -> Run:
    if run_id is not None:
        return Run.get(run_id)
    run = context.get_run()
    if run is None:
        raise NoRunError("No run is open.", hint="Pass --run ID, or start one with %lineage track.")
    return run


def _status() -> None:
    from .extension import state

    current = state()
    run = context.get_run()
    db = current.db
    lines = [f"database : {db.url!r}" if db is not None else "database : not connected"]
    if current.location is not None:
        lines.append(f"notebook : {current.location.path} (via {current.location.mechanism})")
    if run is None:
        lines.append("run      : none open (start one with %lineage track)")
    else:
        count = len(run.records_df())
        lines += [
            f"run      : {run.id} of {run.transform.label} ({run.status}), "
            f"started {run.started_at:%Y-%m-%d %H:%M:%S} UTC",
            f"user     : {run.created_by.handle}",
            f"records  : {count} event(s) written by this run",
            f"errored  : cells {run.errored_cells}" if run.errored_cells else "errored  : none",
        ]
    lines.append(f"cell     : {context.get_cell()}")
    print("\n".join(lines))


def _show(model: str, pk: str) -> Any:
    from IPython.display import display

    cls = _model_class(model)
    record = cls.get(_pk(cls, pk))
    display(record)  # type: ignore[no-untyped-call]
    history_df = getattr(record, "history_df", None)
    return history_df() if callable(history_df) else None


def _export(args: argparse.Namespace) -> None:
    from .. import export

    path = Path(args.path)
    if args.format in ("csv", "parquet"):
        target: Any = _model_class(args.model) if args.model else _run(args.run)
        write = export.to_csv if args.format == "csv" else export.to_parquet
        written = write(target, path)
        print(f"wrote {written}")
        return
    if args.model:
        raise _UsageError(f"--model does not apply to {args.format} (it exports a run)")
    run = _run(args.run)
    if args.format == "openlineage":
        count = export.write_events([run], path)
        print(f"wrote {count} OpenLineage event(s) of run {run.id} to {path}")
    else:
        chosen = export.prov_format(path)  # refuses an unknown suffix before any work
        written = export.write_prov(export.to_prov(run), path, format=chosen)
        print(f"wrote the PROV document ({chosen}) of run {run.id} to {written}")


def lineage_magic(line: str) -> Any:
    """``%lineage SUBCOMMAND ...``: see :data:`HELP`. Errors print one line, never a traceback."""
    command = "lineage"
    if line.strip() in ("", "-h", "--help", "help"):
        print(HELP)
        return None
    try:
        args = _parser().parse_args(shlex.split(line))
        command = f"lineage {args.command}" if args.command else command
        with untracked_reads():  # showing records is not using them
            return _dispatch(args)
    except Exception as error:
        text = str(error).strip().splitlines()
        message = text[0] if text else type(error).__name__
        if not isinstance(error, _UsageError | LineageError):
            message = f"{type(error).__name__}: {message}"
        print(f"%{command}: {message}", file=sys.stderr)
        return None


def _dispatch(args: argparse.Namespace) -> Any:
    from .extension import state, track_notebook

    if args.command in (None, "help"):
        print(HELP)
    elif args.command == "status":
        _status()
    elif args.command == "runs":
        return runs_frame(args)
    elif args.command == "show":
        return _show(args.model, args.pk)
    elif args.command == "track":
        track_notebook(state().shell, notebook=args.notebook, user=args.user)
    elif args.command == "finish":
        run = runs.finish(args.status)
        print(f"run {run.id} {run.status}" if run else "no run is open")
    elif args.command == "export":
        _export(args)
    return None


def runs_frame(args: argparse.Namespace) -> Any:
    """``%lineage runs``: :func:`ln.runs_df` with the magic's filters."""
    from ..lineage.graph import runs_df

    return runs_df(transform=args.notebook, user=args.user, status=args.status, limit=args.limit)


def register(shell: Any) -> None:
    """Register ``%lineage`` on ``shell``."""
    shell.register_magic_function(lineage_magic, magic_kind="line", magic_name="lineage")
