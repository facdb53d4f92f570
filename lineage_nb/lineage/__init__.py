"""Lineage tracking: runs, users, transforms and record events. Imports the ORM, never IPython."""

from __future__ import annotations

from sqlalchemy import Connection

from ..db import Database
from ..orm.model import Model
from . import capture, reads, stamping
from .liveness import mark_dead_runs
from .migrate import upgrade_schema
from .stamping import resolver_for
from .users import ensure_user


def _install_triggers(connection: Connection) -> None:
    capture.install(connection, Model.metadata.sorted_tables)


def prepare(db: Database) -> None:
    """Wire lineage into a newly connected database (``ln.connect()`` calls it): listeners on its
    sessions (stamps, reads), capture context, schema, user, triggers; runs left ``started`` by
    processes that are gone become ``aborted``. Everything installed here is removed again by
    ``db.close()``."""
    stamping.install(db)
    reads.install(db)
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
