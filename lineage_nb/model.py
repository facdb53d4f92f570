"""The public ``ln.Model``: the ORM base plus lineage and view methods."""

from __future__ import annotations

from .lineage.record import TrackedRecord
from .orm.model import Model as _OrmModel
from .views.record import ViewableRecord

__all__ = ["Model"]


class Model(ViewableRecord, TrackedRecord, _OrmModel):
    """Base class of your tables: SQLAlchemy 2 declarative mapping, active-record methods
    (``save``, ``update``, ``delete``, ``load_all``, ... and ``a``-prefixed async twins) and
    lineage (``history``, ``lineage``, ``view_lineage``).

    Examples:
        >>> import lineage_nb as ln
        >>> from sqlalchemy import String
        >>> from sqlalchemy.orm import Mapped, mapped_column
        >>> class Project(ln.Model, ln.TracksRun):
        ...     __tablename__ = "doctest_project"
        ...     id: Mapped[int] = mapped_column(primary_key=True)
        ...     name: Mapped[str] = mapped_column(String(100), unique=True)
    """

    __abstract__ = True
