"""Lineage tracking: runs, users, transforms and record events. Imports the ORM, never IPython."""

from __future__ import annotations

from sqlalchemy import Connection

from ..db import Database
from ..orm.model import Model
from . import capture
from .migrate import upgrade_schema
from .runs import ensure_user, mark_dead_runs
from .stamping import resolver_for


def _install_triggers(connection: Connection) -> None:
    capture.install(connection, Model.metadata.sorted_tables)


def prepare(db: Database) -> None:
    """Wire lineage into a newly connected database (``ln.connect()`` calls it): schema, user,
    capture context, triggers; runs left ``started`` by processes that are gone become
    ``aborted``."""
    capture.attach(db, resolver_for(db))
    upgrade_schema(db)
    ensure_user(db)
    mark_dead_runs(db)
    if not db.lineage:  # measuring without lineage: no triggers on new tables
        return
    db.create_all_hooks.append(_install_triggers)
    with db.engine.begin() as connection:
        db.lock_schema(connection)
        _install_triggers(connection)
