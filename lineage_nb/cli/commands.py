"""The command line's table: the verbs shared with ``%lineage`` and the command line's own.

Shared (:data:`lineage_nb.commands.SHARED`): ``runs``, ``show``, ``export``, ``verify``,
``anchor``. Only here, since they make no sense inside a running kernel: ``demo`` (runs a
notebook headless), ``install-kernel-config`` / ``uninstall-kernel-config`` and
``setup-postgres``. These use the ``--database`` URL as given (the kernel-config verbs refuse
it); :data:`DATABASE_HELP_OF` says what it means for each.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from ..commands import SHARED, Command, Context, Output, arg
from ..commands.records import first_line, printable
from ..db import URL_ENV
from ..errors import ConfigurationError, UsageError

__all__ = ["COMMANDS", "DATABASE_HELP_OF", "TABLE"]


def demo(_context: Context, args: argparse.Namespace) -> Output:
    """Run the quickstart (or ``--notebook``) headless into a fresh ``DIR/lineage.db``."""
    from sqlalchemy.engine import make_url

    from ..demo import main as demo_main

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
    return Output(code=int(demo_main(argv) or 0))


def kernel_config(_context: Context, args: argparse.Namespace) -> Output:
    """Add (``install-kernel-config``) or remove the extension in an IPython profile's config."""
    from ..ipython import kernel_config as config

    if args.database is not None:
        raise UsageError(
            f"{args.command}: --database is not used here: a kernel connects to ${URL_ENV}, "
            f"else ./lineage.db (set {URL_ENV} in the kernel's environment)"
        )
    action = config.install if args.command == "install-kernel-config" else config.uninstall
    return Output(str(action(args.profile, ipython_dir=args.ipython_dir)))


def setup_postgres(_context: Context, args: argparse.Namespace) -> Output:
    """Create the roles and grants of a shared PostgreSQL lineage database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    postgres = importlib.import_module("lineage_nb.security.postgres")
    database = None
    if args.database:
        try:
            admin, target = make_url(args.admin_url), make_url(args.database)
        except ArgumentError as exc:
            raise UsageError(f"setup-postgres: cannot parse database URL: {exc}") from exc
        server = (admin.host or "localhost", admin.port or 5432)
        if target.get_backend_name() != "postgresql" or (
            (target.host or "localhost", target.port or 5432) != server
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
    return Output(
        f"set up {printable(report.url)}: lineage users are members of role "
        f"{printable(repr(report.group))}; protected tables: {tables}"
    )


DEMO_ARGUMENTS = (
    arg("--dir", metavar="DIR", help="folder for lineage.db and the outputs"),
    arg("--notebook", metavar="PATH", help="notebook to run (default: quickstart)"),
    arg("--timeout", type=int, default=300, help="seconds allowed per cell"),
)
KERNEL_CONFIG_ARGUMENTS = (
    arg("--profile", default="default", help="IPython profile"),
    arg("--ipython-dir", metavar="DIR", help="IPython directory"),
)
SETUP_POSTGRES_ARGUMENTS = (
    arg("--admin-url", required=True, metavar="URL", help="URL of a role allowed to create roles"),
    arg("--group", default="lineage_users", help="group role of lineage users"),
)
_DEMO_HELP = "run the quickstart notebook headless and print its lineage"
_POSTGRES_HELP = "create roles and grants for a shared PostgreSQL lineage database"

#: Every verb of ``lineage-nb``, by name, in the order ``--help`` lists them (``main()`` looks
#: the parsed verb up here).
TABLE: dict[str, Command] = {
    command.name: command
    for command in (
        Command("demo", _DEMO_HELP, demo, DEMO_ARGUMENTS),
        *SHARED,
        Command(
            "install-kernel-config",
            "load lineage_nb in every IPython kernel",
            kernel_config,
            KERNEL_CONFIG_ARGUMENTS,
        ),
        Command(
            "uninstall-kernel-config",
            "stop loading lineage_nb in every kernel",
            kernel_config,
            KERNEL_CONFIG_ARGUMENTS,
        ),
        Command("setup-postgres", _POSTGRES_HELP, setup_postgres, SETUP_POSTGRES_ARGUMENTS),
    )
}

#: The verbs' names.
COMMANDS = tuple(TABLE)

#: What ``--database`` means after a verb, where it is not the database to work on
#: (``argparse.SUPPRESS``: not shown, and refused).
DATABASE_HELP_OF = {
    "demo": "sqlite:///DIR/lineage.db: the same as --dir DIR",
    "install-kernel-config": argparse.SUPPRESS,
    "uninstall-kernel-config": argparse.SUPPRESS,
    "setup-postgres": "the database to set up, on the --admin-url server (created if missing; "
    "default: the --admin-url database)",
}
