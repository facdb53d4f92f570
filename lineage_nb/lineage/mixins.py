"""``TracksRun`` and ``TracksUpdates``: lineage columns for user models (lamindb-style).

Examples:
    >>> import lineage_nb as ln
    >>> from sqlalchemy.orm import Mapped, mapped_column
    >>> class Plate(ln.Model, ln.TracksRun):
    ...     __tablename__ = "doctest_plate"
    ...     id: Mapped[int] = mapped_column(primary_key=True)
    >>> sorted(c.name for c in Plate.__table__.c)
    ['created_at', 'created_by_id', 'id', 'run_id']
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from .schema import Run, User
from .types import UTCDateTime, utcnow

__all__ = ["TracksRun", "TracksUpdates"]

_AUTO = {"lineage_nb_auto": True}


#: Column defaults that ask the transaction's lineage context (see ``lineage.capture``), for rows
#: written by raw SQL or ``DataFrame.to_sql``; lineage_nb's own writes set the values themselves.
#: The same expressions are the ``onupdate`` of the columns a write restamps, so a Core
#: ``update()`` stamps its rows in its own SET clause and the database's restamp trigger (there
#: for raw SQL) does not fire for it.
_CONTEXT_DEFAULTS = {
    "lineage_nb_run": "(lineage_nb_run())",
    "lineage_nb_user": "(lineage_nb_user())",
    "lineage_nb_now": "(lineage_nb_now())",
}


def _context(function: str) -> Any:
    return text(_CONTEXT_DEFAULTS[function])


class TracksRun:
    """Adds ``run`` (last run that created or updated the record), ``created_by``, ``created_at``.

    All three are set when the record is written; ``created_*`` never change after insert.
    A model that defines one of these names itself is refused at class definition.
    """

    _lineage_nb_owned_names = ("run_id", "created_by_id", "created_at", "run", "created_by")

    @declared_attr
    def run_id(cls) -> Mapped[int | None]:
        return mapped_column(
            ForeignKey(Run.__table__.c.id),
            index=True,
            info=_AUTO,
            server_default=_context("lineage_nb_run"),
            onupdate=_context("lineage_nb_run"),
        )

    @declared_attr
    def created_by_id(cls) -> Mapped[int]:
        return mapped_column(
            ForeignKey(User.__table__.c.id), info=_AUTO, server_default=_context("lineage_nb_user")
        )

    @declared_attr
    def created_at(cls) -> Mapped[dt.datetime]:
        return mapped_column(
            UTCDateTime, default=utcnow, info=_AUTO, server_default=_context("lineage_nb_now")
        )

    @declared_attr
    def run(cls) -> Mapped[Run | None]:
        return relationship(Run, foreign_keys=lambda: [cls.run_id], viewonly=True)  # type: ignore[arg-type]

    @declared_attr
    def created_by(cls) -> Mapped[User]:
        return relationship(User, foreign_keys=lambda: [cls.created_by_id], viewonly=True)  # type: ignore[arg-type]


class TracksUpdates:
    """Adds ``updated_at`` and ``updated_by``, set on every insert and update."""

    _lineage_nb_owned_names = ("updated_at", "updated_by_id", "updated_by")

    @declared_attr
    def updated_at(cls) -> Mapped[dt.datetime | None]:
        return mapped_column(
            UTCDateTime,
            info=_AUTO,
            server_default=_context("lineage_nb_now"),
            onupdate=_context("lineage_nb_now"),
        )

    @declared_attr
    def updated_by_id(cls) -> Mapped[int | None]:
        return mapped_column(
            ForeignKey(User.__table__.c.id),
            info=_AUTO,
            server_default=_context("lineage_nb_user"),
            onupdate=_context("lineage_nb_user"),
        )

    @declared_attr
    def updated_by(cls) -> Mapped[User | None]:
        return relationship(User, foreign_keys=lambda: [cls.updated_by_id], viewonly=True)  # type: ignore[arg-type]
