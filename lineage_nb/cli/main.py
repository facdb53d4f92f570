"""The ``lineage-nb`` parser and ``main()``: the table's verbs, on a terminal.

Subcommands (:data:`lineage_nb.cli.commands.TABLE`): ``demo``, ``runs``, ``show MODEL PK``,
``export``, ``verify``, ``anchor``, ``install-kernel-config`` / ``uninstall-kernel-config`` and
``setup-postgres``. ``--database URL`` (default: env ``LINEAGE_NB_DATABASE_URL``, else
``sqlite:///lineage.db``) may come before or after the subcommand (after wins when both are
given); the kernel-config commands refuse it, since a kernel connects to
``$LINEAGE_NB_DATABASE_URL``. Bad arguments and unreachable databases end with exit code 2 and
one line on stderr. Everything printed has its terminal control characters escaped (see
:func:`~lineage_nb.commands.records.printable`): a value stored in the database cannot drive
the terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .._version import __version__
from ..commands import Output
from ..commands.records import first_line, printable
from ..db import DEFAULT_URL, URL_ENV, Database, default_database, set_default
from ..errors import LineageError, UsageError
from .commands import COMMANDS, DATABASE_HELP_OF, TABLE

__all__ = ["Terminal", "build_parser", "connect", "main"]

PROG = "lineage-nb"
DEBUG_ENV = "LINEAGE_NB_DEBUG"
DATABASE_HELP = f"SQLAlchemy URL (default: ${URL_ENV} or {DEFAULT_URL})"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix(PROG).strip()
        raise UsageError(f"{where}: {message}" if where else message)


def _echo(text: object = "", *, err: bool = False) -> None:
    """Print ``text`` (laid out by the CLI: its newlines are kept) with controls escaped."""
    print(printable(text, newlines=True), file=sys.stderr if err else sys.stdout)


def connect(args: argparse.Namespace, *, must_exist: bool = True) -> Database:
    """Connect to ``--database`` (lineage schema migrated, user tables untouched).

    Raises:
        UsageError: the URL is invalid, the SQLite file does not exist, or the server is down.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from ..connect import connect as open_database

    url = str(args.database or os.environ.get(URL_ENV) or DEFAULT_URL)
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


class Terminal:
    """The command line as a :class:`~lineage_nb.commands.Context`: text, ``--database``."""

    prog = PROG
    rich = False

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def database(self) -> Database:
        """The ``--database`` database, connected (see :func:`connect`)."""
        return connect(self.args)


def _database_option(parser: argparse.ArgumentParser, text: str, *, default: Any) -> None:
    parser.add_argument("--database", metavar="URL", default=default, help=text)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``lineage-nb`` with one subparser per command of the table.

    ``--database`` is accepted before the subcommand (by the main parser) and after it (by the
    subparser, whose option has no default, so it cannot reset a value given before it).
    """
    parser = _Parser(prog=PROG, description="Record-level data lineage for Jupyter.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _database_option(parser, DATABASE_HELP, default=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in TABLE.values():
        verb = sub.add_parser(command.name, help=command.help, description=command.help)
        database = DATABASE_HELP_OF.get(command.name, DATABASE_HELP)
        _database_option(verb, database, default=argparse.SUPPRESS)
        command.add_arguments(verb)
    return parser


def _emit(output: Output) -> int:
    """Print what a verb produced (stdout, then its one error line) and give its exit code."""
    if output.text:
        _echo(output.text)
    if output.error:
        _echo(f"{PROG}: {output.error}", err=True)
    return output.code


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lineage-nb`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    previous = default_database()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
        if args.command is None:
            raise UsageError(f"choose a command: {', '.join(COMMANDS)} (see {PROG} --help)")
        return _emit(TABLE[args.command].run(Terminal(args), args))
    except SystemExit as exc:  # --help, or a subcommand that exits
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except UsageError as exc:  # the CLI's own, or the library's for a bad argument
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
        opened = default_database()
        if opened is not None and opened is not previous:
            opened.close()
            set_default(previous)
