"""The ``lineage-nb`` command (also ``python -m lineage_nb``).

Subcommands: ``demo``, ``runs``, ``show MODEL PK``, ``export``, ``verify``,
``install-kernel-config`` / ``uninstall-kernel-config`` and ``setup-postgres``.
``--database URL`` (default: env ``LINEAGE_NB_DATABASE_URL``, else ``sqlite:///lineage.db``) may
come before or after the subcommand (after wins when both are given); the kernel-config commands
refuse it, since a kernel connects to ``$LINEAGE_NB_DATABASE_URL``. Bad arguments and unreachable
databases end with exit code 2 and one line on stderr. Everything printed has its terminal control
characters escaped (see :func:`~lineage_nb._cli_records.printable`): a value stored in the
database cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ._cli_records import (
    UsageError,
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
from ._version import __version__
from .db import DEFAULT_URL, URL_ENV, Database
from .errors import LineageError
from .errors import UsageError as LineageUsageError

__all__ = ["build_parser", "main"]

PROG = "lineage-nb"
DEBUG_ENV = "LINEAGE_NB_DEBUG"
COMMANDS = (
    "demo",
    "runs",
    "show",
    "export",
    "verify",
    "anchor",
    "install-kernel-config",
    "uninstall-kernel-config",
    "setup-postgres",
)
#: The ``--prov-format`` names: ``lineage_nb.export.prov.PROV_FORMATS`` (kept here so that the
#: parser does not import ``prov``; a test checks that the two agree).
PROV_FORMATS = ("json", "jsonld", "provn", "xml", "rdf", "turtle")
PROV_SUFFIXES = "FILE.json, .jsonld, .provn, .xml, .trig (rdf) or .ttl (turtle)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix(PROG).strip()
        raise UsageError(f"{where}: {message}" if where else message)


def _echo(text: object = "", *, err: bool = False) -> None:
    """Print ``text`` (laid out by the CLI: its newlines are kept) with controls escaped."""
    print(printable(text, newlines=True), file=sys.stderr if err else sys.stdout)


def _url(args: argparse.Namespace) -> str:
    return str(args.database or os.environ.get(URL_ENV) or DEFAULT_URL)


def connect(args: argparse.Namespace, *, must_exist: bool = True) -> Database:
    """Connect to ``--database`` (lineage schema migrated, user tables untouched).

    Raises:
        UsageError: the URL is invalid, the SQLite file does not exist, or the server is down.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from .connect import connect as open_database

    url = _url(args)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UsageError(f"cannot parse database URL {url!r}") from exc
    if parsed.get_backend_name() == "sqlite" and must_exist:
        path = parsed.database or ""
        if (
            path not in ("", ":memory:")
            and not path.startswith("file:")
            and not Path(path).exists()
        ):
            raise UsageError(
                f"no database at {path} (pass --database URL or set {URL_ENV}; "
                "`lineage-nb demo` creates one)"
            )
    try:
        return open_database(url, create=False)
    except (LineageError, SQLAlchemyError, OSError) as exc:
        shown = parsed.render_as_string(hide_password=True)
        cause = exc.__cause__ if isinstance(exc, LineageError) else exc
        if isinstance(cause, (SQLAlchemyError, OSError)):
            raise UsageError(f"cannot reach database {shown}: {first_line(cause)}") from exc
        raise UsageError(f"cannot use database {shown}: {first_line(exc)}") from exc


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


def _cmd_runs(args: argparse.Namespace) -> int:
    from .lineage.graph import runs_df

    connect(args)
    frame = runs_df(transform=args.notebook, user=args.user, status=args.status, limit=args.limit)
    if frame.empty:
        _echo("No runs match.")
        return 0
    columns = {
        name: name.removeprefix("transform_").removesuffix("_handle") for name in RUN_COLUMNS
    }
    if args.uid:
        columns = {"run_id": "run_id", "uid": "uid", **columns}
    shown = frame[[c for c in columns if c in frame.columns]].rename(columns=columns)
    _echo(table_text(shown))
    return 0


# -- show -------------------------------------------------------------------------------------
def _cmd_show(args: argparse.Namespace) -> int:
    db = connect(args)
    import_models(args.models)
    table = resolve_table(db, args.model)
    row = read_row(db, table, args.pk)
    if row is None:
        missing = f"no {printable(table)} record with primary key {printable(args.pk)}"
        _echo(f"{PROG}: {missing}", err=True)
        return 1
    _echo(f"{printable(table)} {printable(args.pk)}")
    names = {name: printable(name) for name in row}
    width = max(len(shown) for shown in names.values())
    for name, value in row.items():
        _echo(f"  {names[name]:<{width}}  {'NULL' if value is None else printable(value)}")
    history = history_frame(table, args.pk)
    _echo(f"\nHistory ({len(history)} event{'s' if len(history) != 1 else ''}):")
    if not history.empty:
        history["changes"] = history["changes"].map(changes_text)
        _echo(table_text(history))
    return 0


# -- export -----------------------------------------------------------------------------------
def _selected_runs(args: argparse.Namespace) -> list[Any]:
    from sqlalchemy import or_, select

    from .lineage.graph import runs
    from .lineage.schema import Run
    from .orm.session_scope import run_sync

    if not args.run:
        return list(
            reversed(
                runs(transform=args.notebook, user=args.user, status=args.status, limit=args.limit)
            )
        )
    ids = [int(r) for r in args.run if r.isdigit()]
    uids = [r for r in args.run if not r.isdigit()]
    statement = select(Run).where(or_(Run.id.in_(ids), Run.uid.in_(uids))).order_by(Run.id)
    found = run_sync(lambda s: list(s.execute(statement).unique().scalars()))
    missing = set(args.run) - {str(r.id) for r in found} - {r.uid for r in found}
    if missing:
        raise UsageError(f"no run {', '.join(sorted(missing))} (see `{PROG} runs`)")
    return found


def _view_frame(db: Database, args: argparse.Namespace, runs: list[Any]) -> Any:
    from sqlalchemy import select

    from .lineage.graph import runs_df
    from .render.frames import typed_frame

    view = args.view or ("events" if args.run else "runs")
    run_ids = [r.id for r in runs]
    if view == "runs":
        frame = runs_df(transform=args.notebook, user=args.user, status=args.status, limit=None)
        return frame[frame["run_id"].isin(run_ids)].sort_values("run_id").reset_index(drop=True)
    if view == "inputs":
        return _inputs_frame(runs)
    table_name = {"events": "lineage_record_event"}.get(view)
    table = view_table(db, table_name or resolve_table(db, view))
    statement = select(table)
    if table_name is not None:
        statement = statement.where(table.c.run_id.in_(run_ids)).order_by(table.c.id)
    with db.engine.connect() as connection:
        result = connection.execute(statement)
        return typed_frame(list(result.keys()), result.all(), list(table.columns))


def _inputs_frame(runs: list[Any]) -> Any:
    """One row per record each run read: the version read, the current one, changed since."""
    import pandas as pd

    frames = [r.inputs_df().assign(run_id=r.id) for r in runs]
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


def _cmd_export(args: argparse.Namespace) -> int:
    if not (args.csv or args.parquet or args.openlineage or args.prov):
        raise UsageError("export: give at least one of --csv, --parquet, --openlineage, --prov")
    if not args.prov and (args.prov_format or args.record):
        given = "--prov-format" if args.prov_format else "--record"
        raise UsageError(f"export: {given} applies to the PROV document: give --prov FILE")
    from . import export
    from .errors import ConfigurationError

    if args.prov:  # before any work: the suffix must name a format this installation writes
        try:
            prov_format = export.prov_format(args.prov, args.prov_format)
        except (LineageUsageError, ConfigurationError) as exc:
            raise UsageError(f"export: {first_line(exc)}") from exc
    db = connect(args)
    import_models(args.models)

    show = False if args.no_progress else None
    runs = _selected_runs(args)
    if args.csv or args.parquet:
        frame = _view_frame(db, args, runs)
        if args.csv:
            _echo(f"wrote {len(frame)} rows to {export.to_csv(frame, args.csv, progress=show)}")
        if args.parquet:
            written = export.to_parquet(frame, args.parquet, progress=show)
            _echo(f"wrote {len(frame)} rows to {written}")
    if args.openlineage:
        count = export.write_events(
            runs, args.openlineage, namespace=args.namespace, progress_bar=show
        )
        _echo(f"wrote {count} OpenLineage events of {len(runs)} runs to {args.openlineage}")
    if args.prov:
        subject: Any = record_object(db, *args.record) if args.record else runs
        document = export.to_prov(subject, depth=args.depth)
        path = export.write_prov(document, args.prov, format=prov_format)
        _echo(f"wrote PROV ({len(document.records)} records, {prov_format}) to {path}")
    return 0


# -- verify, kernel config, demo, postgres ---------------------------------------------------
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


def _cmd_verify(args: argparse.Namespace) -> int:
    from .lineage.verify import describe, status, verify

    head = _read_anchor(args.anchor) if args.anchor else None
    db = connect(args)
    links = verify(db, anchor=head)
    if not links:  # with how many events are unsealed, unchained or written outside a run
        _echo(describe([], status(db)))
        return 0
    _echo(f"BROKEN {printable(links[0])}")
    if len(links) > 1:
        _echo(f"... and {len(links) - 1} more broken chain(s)")
    return 1


def _cmd_anchor(args: argparse.Namespace) -> int:
    from .lineage.verify import anchor

    head = anchor(connect(args))
    text = json.dumps(head, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        _echo(f"anchor of {head['events']} events (seal {head['seal']}) written to {args.out}")
    else:
        _echo(text)
    return 0


def _cmd_kernel_config(args: argparse.Namespace) -> int:
    from .ipython import kernel_config

    if args.database is not None:
        raise UsageError(
            f"{args.command}: --database is not used here: a kernel connects to ${URL_ENV}, "
            f"else ./lineage.db (set {URL_ENV} in the kernel's environment)"
        )
    action = (
        kernel_config.install
        if args.command == "install-kernel-config"
        else (kernel_config.uninstall)
    )
    _echo(action(args.profile, ipython_dir=args.ipython_dir))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from .demo import main as demo_main

    argv = ["--timeout", str(args.timeout)]
    folder = args.dir
    if args.database:
        url = make_url(args.database)
        path = Path(url.database or "")
        if url.get_backend_name() != "sqlite" or path.name != "lineage.db":
            raise UsageError(
                "demo always writes a fresh DIR/lineage.db (SQLite); pass --dir DIR "
                "(or --database sqlite:///DIR/lineage.db)"
            )
        if folder is not None and Path(folder).resolve() != path.parent.resolve():
            raise UsageError("demo: --dir and --database name different folders")
        folder = str(path.parent)
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        argv += ["--dir", str(folder)]
    if args.notebook is not None:
        argv += ["--notebook", args.notebook]
    return int(demo_main(argv) or 0)


def _cmd_setup_postgres(args: argparse.Namespace) -> int:
    import importlib

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from .errors import ConfigurationError

    postgres = importlib.import_module(f"{__package__}.security.postgres")
    database = None
    if args.database:
        try:
            admin, target = make_url(args.admin_url), make_url(args.database)
        except ArgumentError as exc:
            raise UsageError(f"setup-postgres: cannot parse database URL: {exc}") from exc
        server = (admin.host or "localhost", admin.port or 5432)
        if (
            target.get_backend_name() != "postgresql"
            or (
                target.host or "localhost",
                target.port or 5432,
            )
            != server
        ):
            shown = target.render_as_string(hide_password=True)
            raise UsageError(
                f"setup-postgres: --database {shown} is not on the --admin-url server "
                f"({server[0]}:{server[1]}); it sets up a database there, named by --database"
            )
        database = target.database
    try:
        report = postgres.setup_postgres(args.admin_url, database=database, group=args.group)
    except ConfigurationError as exc:
        raise UsageError(f"setup-postgres: {first_line(exc)}") from exc
    tables = ", ".join(printable(t) for t in report.protected_tables) or "none yet"
    _echo(
        f"set up {printable(report.url)}: lineage users are members of role "
        f"{printable(repr(report.group))}; protected tables: {tables}"
    )
    return 0


# -- parser -----------------------------------------------------------------------------------
def _filters(parser: argparse.ArgumentParser, limit: int | None) -> None:
    parser.add_argument("--user", help="only runs by this user handle")
    parser.add_argument("--notebook", help="only runs of notebooks/scripts whose key contains this")
    parser.add_argument("--status", choices=["started", "completed", "errored", "aborted"])
    parser.add_argument(
        "--limit", type=int, default=limit, help=f"at most N runs (default {limit})"
    )


DATABASE_HELP = f"SQLAlchemy URL (default: ${URL_ENV} or {DEFAULT_URL})"


def _database_option(parser: argparse.ArgumentParser, text: str, *, default: Any) -> None:
    parser.add_argument("--database", metavar="URL", default=default, help=text)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``lineage-nb`` with one subparser per command.

    ``--database`` is accepted before the subcommand (by the main parser) and after it (by the
    subparser, whose option has no default, so it cannot reset a value given before it).
    """
    parser = _Parser(prog=PROG, description="Record-level data lineage for Jupyter.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _database_option(parser, DATABASE_HELP, default=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(
        name: str,
        func: Callable[[argparse.Namespace], int],
        text: str,
        database: str = DATABASE_HELP,
    ) -> Any:
        command = sub.add_parser(name, help=text, description=text)
        _database_option(command, database, default=argparse.SUPPRESS)
        command.set_defaults(func=func)
        return command

    demo = add(
        "demo",
        _cmd_demo,
        "run the quickstart notebook headless and print its lineage",
        database="sqlite:///DIR/lineage.db: the same as --dir DIR",
    )
    demo.add_argument("--dir", metavar="DIR", help="folder for lineage.db and the outputs")
    demo.add_argument("--notebook", metavar="PATH", help="notebook to run (default: quickstart)")
    demo.add_argument("--timeout", type=int, default=300, help="seconds allowed per cell")
    runs = add("runs", _cmd_runs, "list recent runs, newest first")
    _filters(runs, 20)
    runs.add_argument("--uid", action="store_true", help="also show each run's uid")
    show = add("show", _cmd_show, "show one record and its history")
    show.add_argument("model", metavar="MODEL", help="model class name or table name")
    show.add_argument("pk", metavar="PK", help="primary key (composite: comma separated)")
    show.add_argument("--models", metavar="MODULE", help="import models from a module or .py file")
    export = add("export", _cmd_export, "export runs as CSV, Parquet, OpenLineage or PROV")
    export.add_argument("--run", action="append", metavar="ID", help="run id or uid (repeatable)")
    _filters(export, None)
    export.add_argument("--csv", metavar="FILE", help="write the --view table as CSV")
    export.add_argument("--parquet", metavar="FILE", help="write the --view table as Parquet")
    export.add_argument(
        "--view",
        metavar="VIEW",
        help="runs, events, inputs or a table name (default: runs; events with --run)",
    )
    export.add_argument("--openlineage", metavar="FILE", help="write OpenLineage events (NDJSON)")
    export.add_argument("--namespace", default="lineage_nb", help="OpenLineage job namespace")
    export.add_argument(
        "--prov",
        metavar="FILE",
        help=f"write a W3C PROV document, in the format its suffix names: {PROV_SUFFIXES}",
    )
    export.add_argument(
        "--prov-format",
        choices=list(PROV_FORMATS),
        help="PROV serialization (default: from the --prov suffix); xml needs prov[xml], "
        "rdf and turtle need prov[rdf]",
    )
    export.add_argument(
        "--record",
        nargs=2,
        metavar=("MODEL", "PK"),
        help="PROV of one record's lineage instead of the runs",
    )
    export.add_argument("--depth", type=int, default=3, help="PROV lineage depth (default 3)")
    export.add_argument(
        "--models", metavar="MODULE", help="import models from a module or .py file"
    )
    export.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    verify = add(
        "verify", _cmd_verify, "check the event log's seals and chains (exit 1 when broken)"
    )
    verify.add_argument(
        "--anchor",
        metavar="FILE",
        help="also prove the log still extends this anchor (from `anchor`)",
    )
    anchor = add(
        "anchor", _cmd_anchor, "seal the log and print its head, to keep outside the database"
    )
    anchor.add_argument("--out", metavar="FILE", help="write the anchor (JSON) to FILE")
    for name, text in (
        ("install-kernel-config", "load lineage_nb in every IPython kernel"),
        ("uninstall-kernel-config", "stop loading lineage_nb in every kernel"),
    ):
        config = add(name, _cmd_kernel_config, text, database=argparse.SUPPRESS)
        config.add_argument("--profile", default="default", help="IPython profile")
        config.add_argument("--ipython-dir", metavar="DIR", help="IPython directory")
    postgres = add(
        "setup-postgres",
        _cmd_setup_postgres,
        "create roles and grants for a shared PostgreSQL lineage database",
        database="the database to set up, on the --admin-url server (created if missing; "
        "default: the --admin-url database)",
    )
    postgres.add_argument(
        "--admin-url", required=True, metavar="URL", help="URL of a role allowed to create roles"
    )
    postgres.add_argument("--group", default="lineage_users", help="group role of lineage users")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lineage-nb`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    from . import db as db_module

    parser = build_parser()
    previous = db_module._default
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
        if args.command is None:
            raise UsageError(f"choose a command: {', '.join(COMMANDS)} (see {PROG} --help)")
        return int(args.func(args))
    except SystemExit as exc:  # --help, or a subcommand that exits
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except LineageUsageError as exc:  # the CLI's own, or the library's for a bad argument
        _echo(f"{PROG}: error: {printable(exc)}", err=True)
        return 2
    except LineageError as exc:
        _echo(f"{PROG}: error: {printable(first_line(exc))}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        _echo(
            f"{PROG}: error: {type(exc).__name__}: {printable(first_line(exc))} "
            f"(set {DEBUG_ENV}=1 for a traceback)",
            err=True,
        )
        return 1
    finally:
        opened = db_module._default
        if opened is not None and opened is not previous:
            opened.close()
            db_module._default = previous
