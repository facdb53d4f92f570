"""The public ``ln.Model``: the ORM base plus lineage and view methods."""

from __future__ import annotations

from .lineage.framed import BuildsFrames
from .lineage.record import TrackedRecord
from .orm.model import Model as _OrmModel
from .views.record import ViewableRecord

__all__ = ["Model"]


class Model(ViewableRecord, TrackedRecord, BuildsFrames, _OrmModel):
    """Base class of your tables: SQLAlchemy 2 declarative mapping, active-record methods
    (``save``, ``update``, ``delete``, ``load_all``, ... and ``a``-prefixed async twins) and
    lineage (``history``, ``lineage``, ``view_lineage``).

    Examples:
        >>> import lineage_nb as ln
        >>> from sqlalchemy import Integer, String
        >>> from sqlalchemy.orm import mapped_column
        >>> class Plot(ln.Model, ln.TracksRun):
        ...     __tablename__ = "doctest_plot"
        ...     id = mapped_column(Integer, primary_key=True)
        ...     name = mapped_column(String(100), unique=True, nullable=False)
        >>> sorted(Plot.__table__.c.keys())
        ['created_at', 'created_by_id', 'id', 'name', 'run_id']
        >>> hasattr(Plot, "history") and hasattr(Plot, "view_lineage")
        True
    """

    __abstract__ = True
