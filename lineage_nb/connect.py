"""``ln.connect()``: open a database and wire every layer into it, in one readable place.

The layers below do not register themselves: :class:`~lineage_nb.db.Database` knows nothing of
the ORM or of lineage; this function tells it which models are its tables and runs the lineage
layer's set-up (schema upgrade, user, capture context and triggers, the sweep of dead runs).

Examples:
    >>> import lineage_nb as ln
    >>> db = ln.connect("sqlite://")
    >>> db is ln.get_database()
    True
"""

from __future__ import annotations

import os

from sqlalchemy.engine import URL

from .db import DEFAULT_URL, URL_ENV, Database, set_default
from .lineage import prepare
from .orm.model import Model
from .orm.session_scope import block_error

__all__ = ["connect"]


def connect(
    url: str | URL | None = None,
    *,
    echo: bool = False,
    create: bool = True,
    lineage: bool = True,
) -> Database:
    """Connect to a database and make it the default for active-record calls.

    The URL is the argument, else env ``LINEAGE_NB_DATABASE_URL``, else ``sqlite:///lineage.db``.
    The lineage schema is brought to the current version (never dropping data).

    Args:
        url: SQLAlchemy URL of the database.
        echo: log SQL statements.
        create: also create the tables of the ``ln.Model`` classes defined so far.
        lineage: record lineage for writes (turn off only to measure its cost).

    Returns:
        The :class:`Database`, also available as ``ln.get_database()``.
    """
    db = Database(url or os.environ.get(URL_ENV) or DEFAULT_URL, echo=echo, lineage=lineage)
    db.models = Model.metadata
    db.error_translators.append(block_error)
    prepare(db)
    if create:
        db.create_all()
    set_default(db)
    return db
