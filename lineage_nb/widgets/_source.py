"""Server-side paging for the browser: one COUNT and one LIMIT/OFFSET query per page.

No ipywidgets here: this is the data side of :func:`lineage_nb.widgets.browse`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Select, String, cast, false, func, inspect, or_, select, types
from sqlalchemy.orm import Mapper

from ..errors import ValidationError
from ..orm.query import Query
from ..orm.session_scope import run_sync
from ..views.frames import model_frame

__all__ = ["Page", "PagedSource"]


@dataclass(frozen=True)
class Page:
    """One page of rows: the frame, the 0-based page number, the page count and total rows."""

    frame: pd.DataFrame
    number: int
    count: int
    total: int


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

    def count(self, text: str = "") -> int:
        """How many rows match ``text`` (one ``SELECT count(*)``)."""
        counted = select(func.count()).select_from(
            self._filtered(text).order_by(None).subquery()
        )
        return int(run_sync(lambda s: s.execute(counted).scalar_one()))

    def page(
        self, number: int, size: int, text: str = "", sort: str = "", descending: bool = False
    ) -> Page:
        """Page ``number`` (0-based, clamped to the last page) of ``size`` rows.

        Two queries: a COUNT of the matching rows and one ``LIMIT size OFFSET number*size``.
        """
        total = self.count(text)
        pages = max(1, -(-total // size))
        number = min(max(0, number), pages - 1)
        statement = self._ordered(self._filtered(text), sort, descending)
        frame = model_frame(self.model, statement.limit(size).offset(number * size))
        return Page(frame, number, pages, total)

    def get(self, pk: Any) -> Any:
        """The record with primary key ``pk``, with its related records loaded (``load_all``)."""
        return self.model.get(pk).load_all()  # type: ignore[attr-defined]
