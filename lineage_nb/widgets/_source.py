"""Server-side paging for the browser: a row count and one LIMIT/OFFSET query per page.

The count is a ``SELECT count(*)``, except for an unfiltered big PostgreSQL table, where the
planner's estimate (``pg_class.reltuples``) stands in for it. No ipywidgets here: this is the
data side of :func:`lineage_nb.widgets.browse`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Select, String, Table, cast, false, func, inspect, or_, select, types
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapper, Session

from ..errors import ValidationError
from ..lineage.reads import untracked_reads
from ..orm.query import Query
from ..orm.session_scope import run_sync
from ..views.frames import model_frame

__all__ = ["ESTIMATE_ABOVE", "Page", "PagedSource"]

ESTIMATE_ABOVE = 100_000
"""An unfiltered PostgreSQL table estimated above this many rows is not counted exactly."""

_RELTUPLES = sql_text("SELECT reltuples FROM pg_class WHERE oid = CAST(:name AS regclass)")


@dataclass(frozen=True)
class Page:
    """One page of rows: the frame, the 0-based page number, the page count and total rows.

    ``estimated`` says ``count`` and ``total`` come from the planner's estimate, not a COUNT.
    """

    frame: pd.DataFrame
    number: int
    count: int
    total: int
    estimated: bool = False


class PagedSource:
    """Rows of a model or query, filtered by text, sorted by a column and cut into pages.

    Args:
        source: a model class (``Sample``) or a :class:`Query` (``Sample.filter(...)``).

    Raises:
        ValidationError: ``source`` is neither a mapped class nor a query.
    """

    def __init__(self, source: Any) -> None:
        if isinstance(source, Query):
            self.model: type = source.model
            self.statement: Select[Any] = source.statement
        elif isinstance(source, type) and inspect(source, raiseerr=False) is not None:
            self.model, self.statement = source, select(source)
        else:
            raise ValidationError(
                f"cannot browse {source!r}.", field="source", value=source,
                hint="Pass a model class such as Sample, or a query such as Sample.filter(...).",
            )
        mapper: Mapper[Any] = inspect(self.model)
        self.mapper = mapper
        self.pk_name = str(mapper.primary_key[0].key)
        self.columns = [str(a.key) for a in mapper.column_attrs]
        self.table = self._whole_table()

    def _whole_table(self) -> Table | None:
        """The mapped table if the source selects all its rows (so its size estimate applies)."""
        table = self.mapper.persist_selectable
        if self.mapper.single or not isinstance(table, Table):
            return None
        if not self.statement.order_by(None).compare(select(self.model)):
            return None
        return table

    @property
    def title(self) -> str:
        """The model's name."""
        return self.model.__name__

    def _filtered(self, text: str) -> Select[Any]:
        text = text.strip()
        if not text:
            return self.statement
        conditions: list[Any] = []
        for attr in self.mapper.column_attrs:
            column = getattr(self.model, attr.key)
            impl = getattr(attr.columns[0].type, "impl_instance", attr.columns[0].type)
            if isinstance(impl, types.String):
                conditions.append(column.icontains(text, autoescape=True))
            elif isinstance(impl, types.Integer) and text.isdigit():
                conditions.append(column == int(text))
            elif isinstance(impl, types.Enum):
                conditions.append(cast(column, String).icontains(text, autoescape=True))
        if not conditions:
            return self.statement.where(false())
        return self.statement.where(or_(*conditions))

    def _ordered(self, statement: Select[Any], sort: str, descending: bool) -> Select[Any]:
        if sort and sort not in self.columns:
            raise ValidationError(
                f"cannot sort {self.title} by {sort!r}.", model=self.title, field=sort,
                value=sort, hint=f"Sort by one of: {', '.join(self.columns)}.",
            )
        pk = getattr(self.model, self.pk_name)
        clauses = []
        if sort:
            column = getattr(self.model, sort)
            clauses.append(column.desc() if descending else column.asc())
        if sort != self.pk_name:
            clauses.append(pk.asc())
        return statement.order_by(None).order_by(*clauses)

    def _count(self, session: Session, text: str) -> int:
        counted = select(func.count()).select_from(
            self._filtered(text).order_by(None).subquery()
        )
        return int(session.execute(counted).scalar_one())

    def _estimate(self, session: Session) -> int | None:
        """The planner's row estimate of the whole table on PostgreSQL, if above the threshold."""
        if self.table is None:
            return None
        dialect = session.get_bind(mapper=self.mapper).dialect
        if dialect.name != "postgresql":
            return None
        name = dialect.identifier_preparer.format_table(self.table)
        estimate = session.execute(_RELTUPLES, {"name": name}).scalar_one_or_none()
        if estimate is None or float(estimate) <= ESTIMATE_ABOVE:  # -1: never analyzed
            return None
        return round(float(estimate))

    def count(self, text: str = "") -> int:
        """How many rows match ``text`` (one ``SELECT count(*)``)."""
        return run_sync(lambda s: self._count(s, text))

    def total(self, text: str = "") -> tuple[int, bool]:
        """The number of rows matching ``text`` and whether it is an estimate.

        Without ``text``, a PostgreSQL table whose planner estimate (``pg_class.reltuples``)
        is above :data:`ESTIMATE_ABOVE` rows is not counted: the estimate is returned instead.
        """

        def measure(session: Session) -> tuple[int, bool]:
            estimate = None if text.strip() else self._estimate(session)
            if estimate is not None:
                return estimate, True
            return self._count(session, text), False

        return run_sync(measure)

    def page(
        self, number: int, size: int, text: str = "", sort: str = "", descending: bool = False
    ) -> Page:
        """Page ``number`` (0-based; past the end, the last page) of ``size`` rows.

        Two queries: the row count (see :meth:`total`) and one ``LIMIT/OFFSET``. With an
        estimated count, the page is read with one row more, and what it holds corrects the
        estimate: a short page is the last one (exact count), one row more means more pages;
        an empty page past the end falls back to a COUNT and the last page.
        """
        with untracked_reads():  # browsing is not using: nothing here is the run's input
            return self._page(number, size, text, sort, descending)

    def _page(
        self, number: int, size: int, text: str, sort: str, descending: bool
    ) -> Page:
        total, estimated = self.total(text)
        statement = self._ordered(self._filtered(text), sort, descending)
        if estimated:
            number = max(0, number)
            frame = model_frame(self.model, statement.limit(size + 1).offset(number * size))
            seen = number * size + len(frame)
            if len(frame) > size:
                total = max(total, seen)
                return Page(frame.iloc[:size], number, -(-total // size), total, True)
            if len(frame) or number == 0:
                return Page(frame, number, max(1, -(-seen // size)), seen)
            total = self.count(text)
        pages = max(1, -(-total // size))
        number = min(max(0, number), pages - 1)
        frame = model_frame(self.model, statement.limit(size).offset(number * size))
        return Page(frame, number, pages, total)

    def get(self, pk: Any) -> Any:
        """The record with primary key ``pk``, with its related records loaded (``load_all``)."""
        with untracked_reads():
            return self.model.get(pk).load_all()  # type: ignore[attr-defined]
