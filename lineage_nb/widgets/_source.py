"""The data side of the browser: columns, filters, sorting, pages and summaries, all in SQL.

A :class:`PagedSource` turns what the browser's front end asks for (a page number, a sort
column, a filter text per column, a search text) into bound-parameter SQL on the model's table:
one ``LIMIT``/``OFFSET`` query per page, one ``COUNT`` per new set of filters (an unfiltered big
table shows the planner's estimate instead: ``pg_class.reltuples`` on PostgreSQL, the
``ANALYZE`` statistics in ``sqlite_stat1`` on SQLite), and one
aggregate query per column for the summaries. Every value shown is display text made here
(:func:`display`), and the filters match that text: a project's name finds the samples of that
project, ``2.5`` finds the float shown as ``2.5``. No ipywidgets here.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import (
    Float,
    Integer,
    Select,
    String,
    Table,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    inspect,
    or_,
    select,
    types,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapper, Session

from ..errors import ValidationError
from ..lineage.model_frames import label_columns, model_frame
from ..lineage.reads import untracked_reads
from ..orm.query import Query
from ..orm.session_scope import run_sync

__all__ = ["ESTIMATE_ABOVE", "Column", "Page", "PagedSource", "display"]

ESTIMATE_ABOVE = 100_000
"""An unfiltered table estimated above this many rows is not counted exactly."""
MAX_TEXT = 300
"""Cell text longer than this is cut (with an ellipsis) before it is sent to the front end."""
BINS = 12
"""Bars in the histogram of a number or date column."""
TOP = 5
"""Values listed in the summary of a text column."""
SIGNIFICANT = 10
"""Significant digits a float is shown with (and matched by, in a filter)."""

_RELTUPLES = sql_text("SELECT reltuples FROM pg_class WHERE oid = CAST(:name AS regclass)")
_HAS_STAT1 = sql_text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
_STAT1 = sql_text("SELECT stat FROM sqlite_stat1 WHERE tbl = :name")
_NULL_WORDS = {"null": True, "empty": True, "not null": False, "!null": False, "not empty": False}
_COMPARISON = re.compile(r"^(>=|<=|>|<|=)\s*(.+)$")
_NUMBERED = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*\s+)?(\d{1,18})$")
_DATE = re.compile(
    r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?)?)?$"
)


@dataclass
class Column:
    """A column of the browser: ``name`` as shown, its ``kind`` and the mapped attribute ``key``.

    ``kind`` is one of ``integer``, ``number``, ``text``, ``date``, ``bool``, ``label`` (a
    many-to-one foreign key shown as the related record's label) and ``other``.
    """

    name: str
    kind: str
    key: str
    expression: Any = None
    label: Any = None
    aware: bool = False
    extras: list[Any] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        """The JSON description the front end gets."""
        return {"name": self.name, "kind": self.kind}


@dataclass(frozen=True)
class Page:
    """One page: ``rows`` of display text, their primary ``keys``, the 0-based page ``number``,
    the page ``count`` and ``total`` rows (``estimated``: both from the planner's estimate)."""

    rows: list[list[str | None]]
    keys: list[str]
    number: int
    count: int
    total: int
    estimated: bool = False


# -- display text ------------------------------------------------------------------------------
def float_text(value: float) -> str:
    """A float as the browser shows it: at most :data:`SIGNIFICANT` significant digits.

    Examples:
        >>> float_text(0.1 + 0.2), float_text(3.0), float_text(2.5e-7)
        ('0.3', '3', '2.5e-07')
    """
    return f"{value:.{SIGNIFICANT}g}"


def display(value: Any) -> str | None:
    """The display text of one cell (None for a missing value); long text is cut.

    Examples:
        >>> display(None), display(2.0), display(True), display("x" * 400)[-3:]
        (None, '2', 'true', 'xx…')
    """
    if value is None or (not isinstance(value, (list, dict, tuple)) and bool(pd.isna(value))):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        moment = (
            value.tz_convert("UTC") if isinstance(value, pd.Timestamp) and value.tzinfo else value
        )
        if isinstance(moment, dt.datetime) and moment.tzinfo is not None:
            moment = moment.astimezone(dt.timezone.utc)
        return f"{moment:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, enum.Enum):
        value = value.value
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


# -- filter parsing ----------------------------------------------------------------------------
def _bad(column: Column, text: str, expected: str) -> ValidationError:
    return ValidationError(
        f"filter {text!r} is not {expected}.",
        field=column.name,
        value=text,
        hint="Numbers: 5, >5, <=7, 2..8; dates: 2026-01, >=2026-01-15, 2026-01..2026-03; "
        "any column: null, not null.",
    )


def _number(column: Column, text: str, whole: str = "") -> float:
    try:
        value = float(Decimal(text.strip()))
    except (ArithmeticError, ValueError):
        raise _bad(column, whole or text, "a number or a range of numbers") from None
    if not math.isfinite(value):
        raise _bad(column, whole or text, "a finite number")
    return value


def _shown_as(expression: Any, value: float) -> Any:
    """The values that display as ``value`` (rounded to :data:`SIGNIFICANT` digits)."""
    if value == 0:
        return expression == 0
    half = 0.5 * 10 ** (math.floor(math.log10(abs(value))) - SIGNIFICANT + 1)
    return and_(expression >= value - half, expression <= value + half)


def _period(column: Column, text: str, whole: str = "") -> tuple[dt.datetime, dt.datetime]:
    """``2026``, ``2026-01``, ``2026-01-15`` or ``2026-01-15 12:30[:05]`` as [start, end)."""
    match = _DATE.match(text.strip())
    if match is None:
        raise _bad(
            column,
            whole or text,
            "a date (2026, 2026-01, 2026-01-15 or 2026-01-15 12:30) or a range of dates",
        )
    parts = [int(p) if p is not None else None for p in match.groups()]
    year, month, day, hour, minute, second = parts
    try:
        start = dt.datetime(  # noqa: DTZ001 (made UTC below where the column is aware)
            year or 1, month or 1, day or 1, hour or 0, minute or 0, second or 0
        )
    except ValueError:
        raise _bad(column, whole or text, "a valid date") from None
    if month is None:
        end = start.replace(year=start.year + 1)
    elif day is None:
        end = (start + dt.timedelta(days=32)).replace(day=1)
    elif hour is None:
        end = start + dt.timedelta(days=1)
    elif second is None:
        end = start + dt.timedelta(minutes=1)
    else:
        end = start + dt.timedelta(seconds=1)
    if column.aware:
        start, end = start.replace(tzinfo=dt.timezone.utc), end.replace(tzinfo=dt.timezone.utc)
    return start, end


def _fits(expression: Any, value: int) -> bool:
    """Whether ``value`` fits the integer column (PostgreSQL refuses a wider bound value)."""
    impl = getattr(expression.type, "impl_instance", expression.type)
    bits = (
        16
        if isinstance(impl, types.SmallInteger)
        else 64
        if isinstance(impl, types.BigInteger)
        else 32
    )
    return bool(-(2 ** (bits - 1)) <= value < 2 ** (bits - 1))


class PagedSource:
    """Rows of a model or query, filtered, sorted and cut into pages in SQL.

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
                f"cannot browse {source!r}.",
                field="source",
                value=source,
                hint="Pass a model class such as Sample, or a query such as Sample.filter(...).",
            )
        mapper: Mapper[Any] = inspect(self.model)
        self.mapper = mapper
        self.pk_name = str(mapper.primary_key[0].key)
        self.columns = self._columns()
        self.by_name = {c.name: c for c in self.columns}
        self.table = self._whole_table()
        self._dialect: str | None = None

    # -- columns -----------------------------------------------------------------------------
    def _columns(self) -> list[Column]:
        labels = {label.key: label for label in label_columns(self.model)}
        shown: list[Column] = []
        for attr in self.mapper.column_attrs:
            key = str(attr.key)
            expression = getattr(self.model, key)
            column_type = attr.columns[0].type
            impl = getattr(column_type, "impl_instance", column_type)
            label = labels.get(key)
            if label is not None:
                extras = list(label.extra)
                shown.append(Column(label.name, "label", key, expression, label, extras=extras))
                continue
            if isinstance(impl, types.Boolean):
                kind = "bool"
            elif isinstance(impl, types.Integer):
                kind = "integer"
            elif isinstance(impl, (types.Float, types.Numeric)):
                kind = "number"
            elif isinstance(impl, types.DateTime):
                kind = "date"
            elif isinstance(impl, (types.String, types.Enum)):
                kind = "text"
            else:
                kind = "other"
            aware = bool(getattr(impl, "timezone", False))
            shown.append(Column(key, kind, key, expression, aware=aware))
        return shown

    def column(self, name: str) -> Column:
        """The column shown as ``name``.

        Raises:
            ValidationError: no such column.
        """
        found = self.by_name.get(name)
        if found is None:
            raise ValidationError(
                f"no column {name!r} in {self.title}.",
                model=self.title,
                field=name,
                value=name,
                hint=f"Columns: {', '.join(self.by_name)}.",
            )
        return found

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

    def dialect(self, session: Session) -> str:
        """The database dialect's name (``sqlite`` or ``postgresql``)."""
        if self._dialect is None:
            self._dialect = str(session.get_bind(mapper=self.mapper).dialect.name)
        return self._dialect

    # -- conditions ---------------------------------------------------------------------------
    def _text_expression(self, column: Column) -> Any:
        impl = getattr(column.expression.type, "impl_instance", column.expression.type)
        return (
            cast(column.expression, String) if isinstance(impl, types.Enum) else column.expression
        )

    def _label_contains(self, column: Column, text: str) -> Any:
        """Rows whose related record's label (as shown) contains ``text``: an EXISTS over the
        label's joins, so no join is added to the counted statement."""
        label = column.label
        fk = column.expression
        conditions: list[Any] = [
            cast(e, String).icontains(text, autoescape=True) for e in column.extras
        ]
        numbered = _NUMBERED.match(text.strip())
        if numbered and (not column.extras or self._is_run(column)):  # "run 12", "Measurement 3"
            number = int(numbered.group(1))
            if _fits(fk, number):
                conditions.append(fk == number)
        if not column.extras:
            return or_(*conditions) if conditions else false()
        (first, first_on), *rest = label.joins
        inner = select(1).select_from(first)
        for target, onclause in rest:
            inner = inner.join(target, onclause)
        return exists(inner.where(first_on, or_(*conditions)))

    @staticmethod
    def _is_run(column: Column) -> bool:
        from ..lineage.schema import Run

        joins = column.label.joins if column.label is not None else []
        return bool(joins) and inspect(joins[0][0]).mapper.class_ is Run

    def _date_expression(self, column: Column, session_dialect: str) -> Any:
        if session_dialect == "sqlite":
            return func.julianday(column.expression)
        return column.expression

    def _date_bound(self, value: dt.datetime, session_dialect: str) -> Any:
        if session_dialect == "sqlite":
            naive = (
                value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value
            )
            return func.julianday(naive.strftime("%Y-%m-%d %H:%M:%S.%f"))
        return value

    def condition(self, name: str, text: str, dialect: str) -> Any:
        """The SQL condition of filter ``text`` on column ``name`` (values are bound).

        Raises:
            ValidationError: ``text`` is not a valid filter for the column's kind.
        """
        column = self.column(name)
        text = text.strip()
        expression = column.expression
        word = text.lower()
        if word in _NULL_WORDS:
            return expression.is_(None) if _NULL_WORDS[word] else expression.is_not(None)
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]
        if column.kind in ("text", "other"):
            if text.startswith("="):
                return self._text_expression(column) == text[1:]
            return cast(expression, String).icontains(text, autoescape=True)
        if column.kind == "label":
            return self._label_contains(column, text)
        if column.kind == "bool":
            truth = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
            if word not in truth:
                raise _bad(column, text, "true or false")
            return expression.is_(truth[word])
        if column.kind in ("integer", "number"):

            def equal(value: float) -> Any:
                if column.kind == "number":
                    return _shown_as(expression, value)
                whole = value.is_integer() and _fits(expression, int(value))
                return expression == int(value) if whole else false()

            return self._range(
                column, text, lambda t: _number(column, t, text), equal, lambda v: (expression, v)
            )
        if column.kind == "date":
            return self._date_condition(column, text, dialect)
        raise _bad(column, text, "a filter this column supports")  # pragma: no cover

    def _range(
        self,
        column: Column,
        text: str,
        parse: Callable[[str], Any],
        equal: Callable[[Any], Any],
        side: Callable[[Any], tuple[Any, Any]],
    ) -> Any:
        if ".." in text.replace("...", "\x00"):
            low, _, high = text.partition("..")
            parts = []
            if low.strip():
                parts.append(column.expression >= parse(low))
            if high.strip():
                parts.append(column.expression <= parse(high))
            if not parts:
                raise _bad(column, text, "a range with at least one end")
            return and_(*parts)
        match = _COMPARISON.match(text)
        if match is None:
            return equal(parse(text))
        operator, value = match.groups()
        left, right = side(parse(value))
        return {
            ">": left > right,
            ">=": left >= right,
            "<": left < right,
            "<=": left <= right,
            "=": equal(right),
        }[operator]

    def _date_condition(self, column: Column, text: str, dialect: str) -> Any:
        left = self._date_expression(column, dialect)

        def bound(value: dt.datetime) -> Any:
            return self._date_bound(value, dialect)

        if ".." in text:
            low, _, high = text.partition("..")
            parts = []
            if low.strip():
                parts.append(left >= bound(_period(column, low, text)[0]))
            if high.strip():
                parts.append(left < bound(_period(column, high, text)[1]))
            if not parts:
                raise _bad(column, text, "a range with at least one end")
            return and_(*parts)
        match = _COMPARISON.match(text)
        operator, value = match.groups() if match else ("=", text)
        start, end = _period(column, value, text)
        return {
            ">": left >= bound(end),
            ">=": left >= bound(start),
            "<": left < bound(start),
            "<=": left < bound(end),
            "=": and_(left >= bound(start), left < bound(end)),
        }[operator]

    def _search(self, text: str, dialect: str) -> Any:
        """Rows where any column shows ``text`` (contains for text and labels; numbers and
        dates as shown)."""
        conditions: list[Any] = []
        number: float | None
        try:
            number = float(Decimal(text))
            if not math.isfinite(number):
                number = None
        except (ArithmeticError, ValueError):
            number = None
        for column in self.columns:
            if column.kind == "text":
                conditions.append(self._text_expression(column).icontains(text, autoescape=True))
            elif column.kind == "label":
                conditions.append(self._label_contains(column, text))
            elif column.kind == "integer" and number is not None and number.is_integer():
                if _fits(column.expression, int(number)):
                    conditions.append(column.expression == int(number))
            elif column.kind == "number" and number is not None:
                conditions.append(_shown_as(column.expression, number))
            elif column.kind == "date" and _DATE.match(text):
                try:
                    conditions.append(self._date_condition(column, text, dialect))
                except ValidationError:
                    pass
        return or_(*conditions) if conditions else false()

    def filtered(self, dialect: str, filters: dict[str, str], search: str = "") -> Select[Any]:
        """The source statement with ``filters`` (column name → filter text) and ``search``."""
        statement = self.statement
        for name, text in sorted(filters.items()):
            if text.strip():
                statement = statement.where(self.condition(name, text, dialect))
        if search.strip():
            statement = statement.where(self._search(search.strip(), dialect))
        return statement

    def _ordered(self, statement: Select[Any], sort: str, descending: bool) -> Select[Any]:
        pk = getattr(self.model, self.pk_name)
        clauses: list[Any] = []
        if sort:
            column = self.column(sort)
            if column.kind == "label" and column.extras:
                (first, first_on), *rest = column.label.joins
                statement = statement.outerjoin(first, first_on)
                for target, onclause in rest:
                    statement = statement.outerjoin(target, onclause)
                keys = column.extras
            else:
                keys = [column.expression]
            clauses += [k.desc() if descending else k.asc() for k in keys]
        if sort != self.pk_name:
            clauses.append(pk.desc() if descending and not sort else pk.asc())
        return statement.order_by(None).order_by(*clauses)

    # -- counting -----------------------------------------------------------------------------
    def _estimate(self, session: Session) -> int | None:
        """The table's row count from the planner's statistics, if above the threshold:
        ``pg_class.reltuples`` on PostgreSQL, ``sqlite_stat1`` (written by ``ANALYZE``) on
        SQLite. None when the source is not the whole table or it was never analyzed."""
        if self.table is None:
            return None
        dialect = session.get_bind(mapper=self.mapper).dialect
        if dialect.name == "postgresql":
            name = dialect.identifier_preparer.format_table(self.table)
            estimate = session.execute(_RELTUPLES, {"name": name}).scalar_one_or_none()
        elif dialect.name == "sqlite" and self.table.schema is None:
            if session.execute(_HAS_STAT1).first() is None:
                return None
            stats = session.execute(_STAT1, {"name": self.table.name}).scalars().all()
            counts = [int(str(s).split()[0]) for s in stats if s and str(s).split()[0].isdigit()]
            estimate = max(counts) if counts else None
        else:
            return None
        if estimate is None or float(estimate) <= ESTIMATE_ABOVE:  # -1: never analyzed
            return None
        return round(float(estimate))

    def total(self, filters: dict[str, str], search: str = "") -> tuple[int, bool]:
        """The number of matching rows and whether it is the planner's estimate.

        Without filters, a table whose planner estimate (see :meth:`_estimate`) is above
        :data:`ESTIMATE_ABOVE` rows is not counted: the estimate is returned instead.
        """

        def measure(session: Session) -> tuple[int, bool]:
            active = any(t.strip() for t in filters.values()) or bool(search.strip())
            estimate = None if active else self._estimate(session)
            if estimate is not None:
                return estimate, True
            statement = self.filtered(self.dialect(session), filters, search)
            counted = select(func.count()).select_from(statement.order_by(None).subquery())
            return int(session.execute(counted).scalar_one()), False

        with untracked_reads():
            return run_sync(measure)

    def dialect_name(self) -> str:
        """The dialect's name, looked up once."""
        return self._dialect or run_sync(self.dialect)

    # -- pages --------------------------------------------------------------------------------
    def rows(self, statement: Select[Any]) -> tuple[list[list[str | None]], list[str]]:
        """The display rows and keys of ``statement`` (one query, with the FK labels)."""
        frame = model_frame(self.model, statement)
        keys = [str(v) for v in frame[self.pk_name]] if len(frame) else []
        records = frame[[c.name for c in self.columns]].astype(object).to_numpy().tolist()
        return [[display(v) for v in row] for row in records], keys

    def page(
        self,
        number: int,
        size: int,
        *,
        filters: dict[str, str] | None = None,
        search: str = "",
        sort: str = "",
        descending: bool = False,
        total: tuple[int, bool] | None = None,
    ) -> Page:
        """Page ``number`` (0-based; past the end, the last page) of ``size`` rows.

        ``total`` is the row count already known for these filters (see :meth:`total`); without
        it, it is measured first. With an estimated count the page is read with one row more,
        and what it holds corrects the estimate: a short page is the last one (exact count), one
        row more means more pages; an empty page past the end falls back to a COUNT.
        """
        filters = filters or {}
        with untracked_reads():  # browsing is not using: nothing here is the run's input
            count, estimated = total if total is not None else self.total(filters, search)
            dialect = self.dialect_name()
            statement = self._ordered(self.filtered(dialect, filters, search), sort, descending)
            if estimated:
                number = max(0, number)
                rows, keys = self.rows(statement.limit(size + 1).offset(number * size))
                seen = number * size + len(rows)
                if len(rows) > size:
                    count = max(count, seen)
                    return Page(rows[:size], keys[:size], number, -(-count // size), count, True)
                if rows or number == 0:
                    return Page(rows, keys, number, max(1, -(-seen // size)), seen)
                count, estimated = self.total(filters, search)
                count = self._exact(filters, search) if estimated else count
            pages = max(1, -(-count // size))
            number = min(max(0, number), pages - 1)
            rows, keys = self.rows(statement.limit(size).offset(number * size))
            return Page(rows, keys, number, pages, count)

    def _exact(self, filters: dict[str, str], search: str) -> int:
        def measure(session: Session) -> int:
            statement = self.filtered(self.dialect(session), filters, search)
            counted = select(func.count()).select_from(statement.order_by(None).subquery())
            return int(session.execute(counted).scalar_one())

        return run_sync(measure)

    def query(
        self, filters: dict[str, str], search: str = "", sort: str = "", descending: bool = False
    ) -> Query[Any]:
        """The filtered, sorted view as a :class:`Query` (what a download writes)."""
        dialect = self.dialect_name()
        return Query(
            self.model, self._ordered(self.filtered(dialect, filters, search), sort, descending)
        )

    # -- summaries ----------------------------------------------------------------------------
    def summaries(self, filters: dict[str, str], search: str = "") -> dict[str, Any]:
        """A small summary per column of the filtered rows, each from one or two SQL queries:
        a histogram (:data:`BINS` bars) of numbers and dates, the :data:`TOP` most frequent
        values of text, labels and booleans, and the count of missing values."""

        def build(session: Session) -> dict[str, Any]:
            dialect = self.dialect(session)
            base = self.filtered(dialect, filters, search).order_by(None)
            found: dict[str, Any] = {}
            for column in self.columns:
                if column.kind in ("integer", "number", "date"):
                    found[column.name] = self._histogram(session, dialect, base, column)
                elif column.kind in ("text", "label", "bool"):
                    found[column.name] = self._top(session, base, column)
            return found

        with untracked_reads():
            return run_sync(build)

    def _histogram(
        self, session: Session, dialect: str, base: Select[Any], column: Column
    ) -> dict[str, Any]:
        value = column.expression
        if column.kind == "date":
            value = (
                (func.julianday(value) - 2440587.5) * 86400.0
                if dialect == "sqlite"
                else func.extract("epoch", value)
            )
        sub = base.with_only_columns(cast(value, Float).label("v")).subquery()
        v = sub.c.v
        low, high, present, rows = session.execute(
            select(func.min(v), func.max(v), func.count(v), func.count()).select_from(sub)
        ).one()
        summary: dict[str, Any] = {
            "type": "histogram",
            "nulls": int(rows) - int(present),
            "count": int(present),
            "bins": [],
        }
        if low is None:
            return summary
        low, high = float(low), float(high)
        width = (high - low) / BINS if high > low else 1.0
        if column.kind == "integer" and high > low:
            width = max(1.0, math.ceil((high - low + 1) / BINS))
        scaled = (v - low) / width
        raw = cast(scaled, Integer) if dialect == "sqlite" else cast(func.floor(scaled), Integer)
        bucket = case((v >= high, min(BINS - 1, int((high - low) // width))), else_=raw)
        counts: dict[int, int] = dict(
            session.execute(
                select(bucket.label("b"), func.count())
                .select_from(sub)
                .where(v.is_not(None))
                .group_by("b")
            ).all()
        )
        last = max(counts) if counts else 0
        for index in range(last + 1):
            start = low + index * width
            end = min(high, start + width) if column.kind != "integer" else start + width - 1
            summary["bins"].append(
                [self._edge(column, start), self._edge(column, end), int(counts.get(index, 0))]
            )
        summary["min"], summary["max"] = self._edge(column, low), self._edge(column, high)
        return summary

    @staticmethod
    def _edge(column: Column, value: float) -> str:
        if column.kind == "date":
            moment = dt.datetime.fromtimestamp(value, dt.timezone.utc)
            return f"{moment:%Y-%m-%d %H:%M:%S}"
        if column.kind == "integer":
            return str(round(value))
        return float_text(value)

    def _top(self, session: Session, base: Select[Any], column: Column) -> dict[str, Any]:
        expression = self._text_expression(column) if column.kind == "text" else column.expression
        sub = base.with_only_columns(expression.label("v")).subquery()
        v = sub.c.v
        nulls, distinct = session.execute(
            select(func.count() - func.count(v), func.count(v.distinct())).select_from(sub)
        ).one()
        rows = session.execute(
            select(v, func.count().label("n"))
            .select_from(sub)
            .where(v.is_not(None))
            .group_by(v)
            .order_by(func.count().desc(), v)
            .limit(TOP)
        ).all()
        values = [[display(value), int(n)] for value, n in rows]
        if column.kind == "label" and rows:
            labels = self._labels(session, column, [value for value, _ in rows])
            values = [[labels.get(str(value), display(value)), int(n)] for value, n in rows]
        return {"type": "top", "nulls": int(nulls), "distinct": int(distinct), "values": values}

    def _labels(self, session: Session, column: Column, keys: list[Any]) -> dict[str, str | None]:
        """The labels of the related records with keys ``keys``, as the table shows them."""
        pk = getattr(self.model, self.pk_name)
        firsts = select(func.min(pk)).where(column.expression.in_(keys)).group_by(column.expression)
        frame = model_frame(self.model, select(self.model).where(pk.in_(firsts)))
        return {
            str(k): display(v) for k, v in zip(frame[column.key], frame[column.name], strict=True)
        }

    # -- records ------------------------------------------------------------------------------
    def get(self, pk: Any) -> Any:
        """The record with primary key ``pk``, with its related records loaded (``load_all``)."""
        with untracked_reads():
            return self.model.get(pk).load_all()  # type: ignore[attr-defined]
