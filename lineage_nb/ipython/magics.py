"""The ``%lineage`` line magic: the command table's verbs, in a notebook.

``runs``, ``show``, ``export``, ``verify`` and ``anchor`` are the verbs ``lineage-nb`` has too
(:data:`lineage_nb.commands.SHARED`, the same code and options); ``status``, ``track``,
``finish`` and ``help`` are the notebook's own. A verb's frame or record is displayed (the cell's
value), its text printed. ``%lineage export FORMAT PATH [--model MODEL] [--run ID]`` is a short
form of ``export`` for this run. Every error prints one line (``%lineage show: ...``) instead of
a traceback.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Callable
from typing import Any, NoReturn, cast

from ..commands import SHARED, Command, Context, Output, arg
from ..db import Database, get_database
from ..errors import ConfigurationError, LineageError, NoRunError
from ..lineage import context, runs
from ..lineage.reads import untracked_reads
from ..lineage.schema import Run

__all__ = ["HELP", "TABLE", "lineage_magic", "register"]

PROG = "%lineage"
#: The formats of the short form ``export FORMAT PATH``: the shared verb's options of that name.
SHORT_EXPORT = ("csv", "parquet", "openlineage", "prov")


class _UsageError(Exception):
    pass


class _HelpShown(Exception):
    """Not an error: argparse printed a verb's ``--help``."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see %lineage help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status == 0 and not message:
            raise _HelpShown
        raise _UsageError(message or "")


def _formatter(prog: str) -> argparse.HelpFormatter:
    """A fixed width, so that :data:`HELP` reads the same in every kernel."""
    return argparse.HelpFormatter(prog, width=96)


class Notebook:
    """The kernel as a :class:`~lineage_nb.commands.Context`: objects shown, its database, and
    what the extension that registered ``%lineage`` gives it (given by :func:`register`, not
    imported: the extension imports this module)."""

    prog = PROG
    rich = True

    def __init__(
        self,
        state: Callable[[], Any] | None = None,
        track_notebook: Callable[..., Any] | None = None,
    ) -> None:
        self._state = state
        self._track_notebook = track_notebook

    def extension(self) -> tuple[Callable[[], Any], Callable[..., Any]]:
        """``(state, track_notebook)`` of the loaded extension.

        Raises:
            ConfigurationError: ``%lineage`` was not registered by ``%load_ext lineage_nb``.
        """
        if self._state is None or self._track_notebook is None:
            raise ConfigurationError(
                "The lineage_nb extension is not loaded in this kernel.",
                hint="Run %load_ext lineage_nb first.",
            )
        return self._state, self._track_notebook

    def database(self) -> Database:
        """The kernel's database (``ln.connect()``, or the one ``%load_ext`` connected)."""
        return get_database()


# -- the notebook's own verbs -----------------------------------------------------------------
def _run(run_id: int | None) -> Run:
    """Run ``run_id``, else the open run.

    Raises:
        NoRunError: no ``run_id`` and no run is open.
    """
    if run_id is not None:
        return Run.get(run_id)
    run = context.get_run()
    if run is None:
        raise NoRunError("No run is open.", hint="Pass --run ID, or start one with %lineage track.")
    return run


def status(notebook: Context, _args: argparse.Namespace) -> Output:
    """Database, notebook, the open run (user, records written, errored cells), the cell."""
    state, _track = cast(Notebook, notebook).extension()
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
            (
                f"run      : {run.id} of {run.transform.label} ({run.status}), "
                f"started {run.started_at:%Y-%m-%d %H:%M:%S} UTC"
            ),
            f"user     : {run.created_by.handle}",
            f"records  : {count} event(s) written by this run",
            f"errored  : cells {run.errored_cells}" if run.errored_cells else "errored  : none",
        ]
    lines.append(f"cell     : {context.get_cell()}")
    return Output("\n".join(lines))


def track(notebook: Context, args: argparse.Namespace) -> Output:
    """Finish the open run and open a new one for this notebook (or ``--notebook``)."""
    state, track_notebook = cast(Notebook, notebook).extension()
    track_notebook(state().shell, notebook=args.notebook, user=args.user)
    return Output()


def finish(_context: Context, args: argparse.Namespace) -> Output:
    """Finish the open run with ``status`` (default ``completed``)."""
    run = runs.finish(args.status)
    return Output(f"run {run.id} {run.status}" if run else "no run is open")


def help_text(_context: Context, args: argparse.Namespace) -> Output:
    """:data:`HELP`, or every option of one verb."""
    verbs = _parsers()[1]
    if args.verb is None:
        return Output(HELP)
    if args.verb not in verbs:
        raise _UsageError(f"no verb {args.verb!r}: {', '.join(verbs)}")
    return Output(verbs[args.verb].format_help())


_SHARED = {command.name: command for command in SHARED}

#: Every verb of ``%lineage``, by name, in the order :data:`HELP` lists them.
TABLE: dict[str, Command] = {
    command.name: command
    for command in (
        Command("status", "database, notebook and version, run, user, cell", status),
        _SHARED["runs"],
        _SHARED["show"],
        Command(
            "track",
            "finish the current run and open a new one",
            track,
            (
                arg(
                    "--notebook", metavar="PATH", help="the notebook or script run (default: this)"
                ),
                arg("--user", metavar="HANDLE", help="who runs it (default: as configured)"),
            ),
        ),
        Command(
            "finish",
            "finish the current run (completed|errored|aborted)",
            finish,
            (
                arg(
                    "status",
                    metavar="STATUS",
                    nargs="?",
                    default="completed",
                    help="how it ended (default: completed)",
                ),
            ),
        ),
        _SHARED["export"],
        _SHARED["verify"],
        _SHARED["anchor"],
        Command(
            "help",
            "this text, or every option of VERB",
            help_text,
            (arg("verb", metavar="VERB", nargs="?", help="a verb of this list"),),
        ),
    )
}


def _parsers() -> tuple[_Parser, dict[str, argparse.ArgumentParser]]:
    """The parser of ``%lineage``, and each verb's subparser, built from :data:`TABLE`."""
    parser = _Parser(prog=PROG, add_help=False)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    verbs = {}
    for command in TABLE.values():
        verbs[command.name] = command.add_arguments(
            sub.add_parser(command.name, help=command.help, description=command.help)
        )
    return parser, verbs


def _wrapped(usage: str, indent: int) -> str:
    """``usage`` in lines of at most 96 characters, never breaking an ``[--option VALUE]``."""
    lines = [""]
    for part in re.findall(r"\[[^\]]*\]|\S+", usage):
        if lines[-1] and len(lines[-1]) + 1 + len(part) > 96:
            lines.append(" " * (2 + indent) + part)
        else:
            lines[-1] = f"{lines[-1]} {part}" if lines[-1] else f"  {part}"
    return "\n".join(lines)


def _help() -> str:
    """The verbs' usage lines and help, from the table (so the text never disagrees)."""
    lines = ["%lineage — record-level lineage of this notebook (lineage_nb)", ""]
    for name, parser in _parsers()[1].items():
        usage = " ".join(parser.format_usage().removeprefix("usage: ").split())
        lines.append(_wrapped(usage.replace(" [-h]", "", 1), len(f"{PROG} {name} ")))
        lines.append(f"      {TABLE[name].help}")
        if name == "export":
            lines += [
                f"  {PROG} export {'|'.join(SHORT_EXPORT)} PATH [--model MODEL] [--run ID]",
                "      the short form: this run (or run ID) as a file of that format, or",
                "      MODEL's table as CSV/Parquet",
            ]
    return "\n".join(lines) + "\n"


HELP = _help()


# -- the magic --------------------------------------------------------------------------------
def _long_export(tokens: list[str]) -> list[str]:
    """``FORMAT PATH [--model MODEL] [--run ID]`` (the short form) as the shared verb's options.

    Raises:
        NoRunError: neither ``--run`` nor ``--model`` and no run is open.
        _UsageError: bad arguments, or ``--model`` with a format that exports a run.
    """
    short = _Parser(prog=f"{PROG} export", add_help=False)
    short.add_argument("format", choices=SHORT_EXPORT)
    short.add_argument("path")
    short.add_argument("--model", default=None)
    short.add_argument("--run", type=int, default=None)
    args = short.parse_args(tokens)
    long = ["export", f"--{args.format}", args.path]
    if args.model:
        if args.format not in ("csv", "parquet"):
            raise _UsageError(f"--model does not apply to {args.format} (it exports a run)")
        return [*long, "--view", args.model]
    return [*long, "--run", str(_run(args.run).id)]


def _shown(output: Output) -> Any:
    """Show ``output`` in the notebook: its objects displayed (the cell's value), else its text."""
    if output.error:
        raise _UsageError(output.error)
    if output.value is None and not output.shown:
        if output.text:
            print(output.text)
        return None
    from IPython.display import display

    for obj in output.shown:
        display(obj)  # type: ignore[no-untyped-call]
    return output.value


def _message(error: Exception, verb: str) -> str:
    """The first line of ``error``, without the verb a shared message starts with."""
    text = str(error).strip().splitlines()
    message = text[0] if text else type(error).__name__
    for prefix in (f"{verb}: ", f"{verb} "):
        if verb and message.startswith(prefix):
            message = message[len(prefix) :]
            break
    if not isinstance(error, _UsageError | LineageError):
        message = f"{type(error).__name__}: {message}"
    return message


def lineage_magic(line: str, notebook: Notebook | None = None) -> Any:
    """``%lineage VERB ...``: see :data:`HELP`. Errors print one line, never a traceback."""
    verb = ""
    if line.strip() in ("", "-h", "--help", "help"):
        print(HELP)
        return None
    try:
        tokens = shlex.split(line)
        if tokens[:1] == ["export"] and len(tokens) > 1 and not tokens[1].startswith("-"):
            verb = "export"
            tokens = _long_export(tokens[1:])
        args = _parsers()[0].parse_args(tokens)
        if args.command is None:
            raise _UsageError(f"choose a verb: {', '.join(TABLE)}")
        verb = args.command
        with untracked_reads():  # showing records is not using them
            return _shown(TABLE[args.command].run(notebook or Notebook(), args))
    except _HelpShown:
        return None
    except Exception as error:
        where = f"%lineage {verb}" if verb else "%lineage"
        print(f"{where}: {_message(error, verb)}", file=sys.stderr)
        return None


def register(shell: Any, *, state: Callable[[], Any], track_notebook: Callable[..., Any]) -> None:
    """Register ``%lineage`` on ``shell``, with the extension's ``state`` and ``track_notebook``."""
    notebook = Notebook(state, track_notebook)

    def lineage(line: str) -> Any:
        return lineage_magic(line, notebook)

    lineage.__doc__ = lineage_magic.__doc__
    shell.register_magic_function(lineage, magic_kind="line", magic_name="lineage")
