"""``Query``: a lazy, immutable query of one model (``Model.filter(...)``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Select, func, inspect, select, types
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql.util import ClauseAdapter

from ..errors import MultipleFound, NotFound, ValidationError, short_repr
from . import loading
from .session_scope import run_async, run_sync

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Query", "plain_frame"]

T = TypeVar("T")


class Query(Generic[T]):
    """Records of ``model`` matching conditions; nothing runs until a terminal method.

    Terminal methods: :meth:`all`, :meth:`first`, :meth:`one`, :meth:`count`, :meth:`df` (and
    ``a``-prefixed async twins). Every value is a bound parameter.

    Examples:
        >>> # Sample.filter(Sample.value > 1, project_id=3).order_by("-value").limit(10).all()
    """

    def __init__(
        self, model: type[T], statement: Select[Any] | None = None, *, source: Any = None
    ) -> None:
        self.model = model
        #: An aliased entity of ``model`` over a derived table (``Model.as_of``): conditions and
        #: ordering are adapted to it, and records come back as detached copies, not live ones.
        self.source = source
        if statement is None:
            statement = select(source if source is not None else model)
        self.statement: Select[Any] = statement

    def __repr__(self) -> str:
        return f"<Query of {self.model.__name__}: {self.statement}>"

    def _with(self, statement: Select[Any]) -> Query[T]:
        return Query(self.model, statement, source=self.source)

    def _adapt(self, clause: Any) -> Any:
        if self.source is None:
            return clause
        return ClauseAdapter(inspect(self.source).selectable).traverse(clause)

    def _attribute(self, name: str) -> Any:
        mapper = inspect(self.model)
        if name not in mapper.attrs:
            known = ", ".join(sorted(mapper.attrs.keys()))
            raise ValidationError(
                {name: [f"unknown field. Known fields: {known}."]}, model=self.model.__name__
            )
        return getattr(self.model, name)

    def filter(self, *where: Any, **equals: Any) -> Query[T]:
        """Add SQLAlchemy conditions and ``field=value`` equalities (AND)."""
        conditions = list(where)
        for name, value in equals.items():
            attribute = self._attribute(name)
            _check_text(self.model, name, value)
            _check_integer(self.model, name, attribute, value)
            if isinstance(value, (list, tuple, set, frozenset)):
                conditions.append(attribute.in_(list(value)))
            elif value is None:
                conditions.append(attribute.is_(None))
            else:
                conditions.append(attribute == value)
        return self._with(self.statement.where(*(self._adapt(c) for c in conditions)))

    def order_by(self, *fields: Any) -> Query[T]:
        """Order by field names (``"-name"`` for descending) or SQLAlchemy expressions."""
        clauses = []
        for field in fields:
            if isinstance(field, str):
                attribute = self._attribute(field.lstrip("-"))
                clauses.append(attribute.desc() if field.startswith("-") else attribute.asc())
            else:
                clauses.append(field)
        return self._with(self.statement.order_by(*(self._adapt(c) for c in clauses)))

    def limit(self, count: int) -> Query[T]:
        """At most ``count`` records."""
        return self._with(self.statement.limit(count))

    def offset(self, count: int) -> Query[T]:
        """Skip the first ``count`` records."""
        return self._with(self.statement.offset(count))

    # -- terminal -----------------------------------------------------------------------------
    def _all(self, session: Session) -> list[T]:
        if self.source is not None:  # copies of past rows: never merged with live records
            rows = session.connection().execute(self.statement).mappings()
            return [loading.detached(self.model, dict(row)) for row in rows]
        return list(session.execute(self.statement).scalars().unique().all())

    def _one(self, session: Session) -> T:
        found = self.limit(2)._all(session)
        if not found:
            raise NotFound(
                f"No {self.model.__name__} matches {self._conditions()}.",
                model=self.model.__name__,
                hint="Check the filter values.",
            )
        if len(found) > 1:
            raise MultipleFound(
                f"More than one {self.model.__name__} matches {self._conditions()}.",
                model=self.model.__name__,
                hint="Add conditions, or use first() or all().",
            )
        record: T = found[0]
        return record

    def _conditions(self) -> str:
        where = self.statement.whereclause
        if where is None:
            return "(no conditions)"
        params = where.compile().params
        return f"{where} with {short_repr(params, 120)}"

    def _count(self, session: Session) -> int:
        counted = select(func.count()).select_from(self.statement.order_by(None).subquery())
        return int(session.execute(counted).scalar_one())

    def all(self) -> list[T]:
        """Every matching record."""
        return run_sync(self._all)

    def first(self) -> T | None:
        """The first matching record, or None."""
        found = run_sync(lambda s: self.limit(1)._all(s))
        return found[0] if found else None

    def one(self) -> T:
        """The only matching record; raises ``NotFound`` or ``MultipleFound`` otherwise."""
        return run_sync(self._one)

    def count(self) -> int:
        """How many records match (one ``SELECT count(*)``)."""
        return run_sync(self._count)

    def exists(self) -> bool:
        """True when at least one record matches."""
        return self.first() is not None

    def df(self) -> pd.DataFrame:
        """A pandas DataFrame of the matching rows' columns, from one query.

        Dtypes follow the columns (nullable ``Int64``/``boolean``, UTC timestamps). The model
        builds the frame (``_frame_of``): ``ln.Model`` adds, after each many-to-one foreign key
        ``x_id``, an ``x`` column with the related record's label and notes the rows as the
        run's inputs (see :mod:`lineage_nb.lineage.model_frames`).
        """
        adapt = self._adapt if self.source else None
        build = getattr(self.model, "_frame_of", None)
        if build is None:
            return plain_frame(self.model, self.statement, adapt=adapt)
        frame: pd.DataFrame = build(self.statement, adapt=adapt)
        return frame

    def __iter__(self) -> Iterator[T]:
        return iter(self.all())

    async def aall(self) -> list[T]:
        """Async twin of :meth:`all`."""
        return await run_async(self._all)

    async def afirst(self) -> T | None:
        """Async twin of :meth:`first`."""
        found = await run_async(lambda s: self.limit(1)._all(s))
        return found[0] if found else None

    async def aone(self) -> T:
        """Async twin of :meth:`one`."""
        return await run_async(self._one)

    async def acount(self) -> int:
        """Async twin of :meth:`count`."""
        return await run_async(self._count)


def _check_integer(model: type, name: str, attribute: Any, value: Any) -> None:
    """Refuse an integer filter value beyond 64 bits for an integer column: no stored value can
    equal it (and SQLite's driver cannot even send it: OverflowError)."""
    column_type = getattr(getattr(attribute, "type", None), "impl_instance", None) or getattr(
        attribute, "type", None
    )
    if not isinstance(column_type, types.Integer):
        return
    values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    for item in values:
        if isinstance(item, int) and not isinstance(item, bool) and not -(2**63) <= item < 2**63:
            raise ValidationError(
                {
                    name: [
                        (
                            f"filter value {item} is outside the 64-bit integer range; no stored "
                            "integer can equal it."
                        )
                    ]
                },
                model=model.__name__,
                field=name,
                value=item,
            )


def _check_text(model: type, name: str, value: Any) -> None:
    """Refuse filter text no database can hold (NUL, lone surrogates): it would match nothing."""
    values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    for item in values:
        if not isinstance(item, str):
            continue
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            problem = "a lone surrogate that is not valid UTF-8"
        else:
            if "\x00" not in item:
                continue
            problem = "a NUL character (\\x00)"
        raise ValidationError(
            {
                name: [
                    (
                        f"filter value {short_repr(item)} contains {problem}; no stored text can "
                        "equal it. Fix the text's encoding."
                    )
                ]
            },
            model=model.__name__,
            value=item,
        )


def plain_frame(
    model: type, statement: Select[Any], *, adapt: Callable[[Any], Any] | None = None
) -> pd.DataFrame:
    """The rows of a ``select(model)`` statement as a typed DataFrame, one column per mapped
    column: what ``df()`` gives for a model that does not build its own frames."""
    from ..render.frames import fast_column, typed_frame

    mapper: Mapper[Any] = inspect(model)
    attrs = list(mapper.column_attrs)
    base = [a.columns[0] for a in attrs]
    adapt = adapt or (lambda c: c)
    selected = statement.with_only_columns(
        *(adapt(fast_column(c)).label(a.key) for a, c in zip(attrs, base, strict=True))
    )

    def build(session: Session) -> pd.DataFrame:
        result = session.connection().execute(selected)
        return typed_frame(list(result.keys()), result.all(), base)

    return run_sync(build)
