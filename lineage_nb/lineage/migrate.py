"""Bring lineage_nb's schema to the current version with the Alembic migrations it ships."""

from __future__ import annotations

import functools
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from ..db import Database
from ..errors import ConfigurationError

__all__ = ["VERSION_TABLE", "current_revision", "head_revision", "upgrade_schema"]

VERSION_TABLE = "lineage_nb_version"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("lineage_nb") / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest revision shipped with this version of lineage_nb (read once)."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: no lineage schema yet)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade_schema(db: Database, revision: str = "head") -> None:
    """Create or upgrade the lineage tables in ``db``; data is kept.

    Raises:
        ConfigurationError: the database cannot be reached or refuses the schema change.
    """
    try:
        with db.engine.connect() as connection:
            if revision == "head" and current_revision(connection) == head_revision():
                return
        with db.engine.begin() as connection:
            db.lock_schema(connection)  # another process may be upgrading at this moment
            command.upgrade(_config(connection), revision)
    except DBAPIError as error:  # unreachable, refused, read-only, or not a database at all
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        hint = (
            "Check that the database server is running, the URL is right and the user may "
            "create tables."
        )
        if "not a database" in reason or "malformed" in reason:
            hint = "The file is corrupt or not a SQLite database: restore it or use another path."
        raise ConfigurationError(
            f"Cannot set up the lineage schema in {db!r}: {reason}",
            value=db.url.render_as_string(hide_password=True),
            hint=hint,
        ) from error
