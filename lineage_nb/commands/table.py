"""What a command of the table is: its name, help, arguments, and the one function doing its work.

A front end (``lineage-nb``, ``%lineage``) builds its parser from :class:`Command` entries
(:meth:`Command.add_arguments`), calls :attr:`Command.run` with a :class:`Context` of its own and
the parsed arguments, and shows the :class:`Output`: a terminal prints its text and exits with
its code, a notebook displays its objects. The work itself is never written twice.

Examples:
    >>> import argparse
    >>> def hello(context, args):
    ...     return Output(f"hello {args.who} from {context.prog}")
    >>> command = Command("hello", "say hello", hello, (arg("who"),))
    >>> parser = command.add_arguments(argparse.ArgumentParser(prog="demo hello"))
    >>> class Shell:
    ...     prog, rich = "demo", False
    >>> command.run(Shell(), parser.parse_args(["you"])).text
    'hello you from demo'
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..db import Database

__all__ = ["Argument", "Command", "Context", "Output", "arg"]


class Context(Protocol):
    """Where a command runs: what it names itself in hints, how results are shown, the database.

    Attributes:
        prog: the command as its user types it (``lineage-nb``, ``%lineage``), for hints.
        rich: True where objects are displayed (a notebook); False where text is printed.
    """

    prog: str
    rich: bool

    def database(self) -> Database:
        """The database to work on (the front end opens or finds it).

        Raises:
            lineage_nb.errors.UsageError: it cannot be opened as named.
            lineage_nb.errors.ConfigurationError: none is connected.
        """
        ...


@dataclass(frozen=True)
class Output:
    """What a command produced, for a terminal and for a notebook.

    Attributes:
        text: the lines a terminal prints (controls of stored values already escaped).
        value: what a notebook shows instead of ``text`` (a DataFrame): the cell's value.
        shown: objects a notebook displays before ``value`` (a record's card).
        error: one line for stderr: the command ran but found nothing (a missing record).
        code: the exit status of the command line (1: a missing record, a broken log).
    """

    text: str = ""
    value: Any = None
    shown: tuple[Any, ...] = ()
    error: str = ""
    code: int = 0


@dataclass(frozen=True)
class Argument:
    """One argument of a command: the flags and keywords of ``ArgumentParser.add_argument``."""

    flags: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)


def arg(*flags: str, **options: Any) -> Argument:
    """An :class:`Argument`, written as the ``add_argument`` call it stands for."""
    return Argument(flags, options)


@dataclass(frozen=True)
class Command:
    """One verb: its name, its help line, the function doing its work, its arguments.

    ``run(context, args)`` gets the parsed arguments of :attr:`arguments` (and of any option the
    front end adds) and returns an :class:`Output`; a bad argument raises
    :class:`lineage_nb.errors.UsageError`.
    """

    name: str
    help: str
    run: Callable[[Context, argparse.Namespace], Output]
    arguments: tuple[Argument, ...] = ()

    def add_arguments(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add this command's arguments to ``parser`` (its subparser in a front end).

        Returns:
            ``parser``.
        """
        for argument in self.arguments:
            parser.add_argument(*argument.flags, **argument.options)
        return parser
