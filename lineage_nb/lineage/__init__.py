"""Lineage tracking: runs, users, transforms and record events. Imports the ORM, never IPython."""

from __future__ import annotations

from ..db import Database, connect_hooks
from . import chain as _chain  # noqa: F401  (registers the session listeners)
from . import stamping as _stamping  # noqa: F401  (registers the session listeners)
from .migrate import upgrade_schema
from .runs import ensure_user


def _prepare(db: Database) -> None:
    upgrade_schema(db)
    ensure_user(db)


if _prepare not in connect_hooks:
    connect_hooks.append(_prepare)
