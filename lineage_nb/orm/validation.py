"""Field and constraint validation derived from a model's column metadata (Django-style).

``clean_fields`` needs no database: nullability, Python types, string length, integer range,
enum membership and text a database can store. ``validate_unique`` and ``validate_constraints``
ask the database with one bound ``SELECT`` per unique or check constraint and foreign key.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import reprlib
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    UniqueConstraint,
    and_,
    exists,
    inspect,
    literal,
    literal_column,
    not_,
    select,
    types,
)
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.sql import util as sql_util
from sqlalchemy.sql.elements import TextClause

from ..errors import NON_FIELD_ERRORS, ValidationError, short_repr
from .model_cache import per_model

__all__ = ["clean_fields", "clean_values", "validate_constraints", "validate_unique"]

Check = Callable[[Any], "str | None"]

_INT_RANGES: list[tuple[type[types.TypeEngine[Any]], int]] = [
    (types.SmallInteger, 15),
    (types.BigInteger, 63),
    (types.Integer, 31),
]


@dataclass(frozen=True)
class FieldSpec:
    """What one mapped column accepts; built once per model class."""

    key: str
    column: Column[Any]
    required: bool
    check: Check | None


def _shown(value: Any) -> str:
    """``short_repr(value)``, or ``reprlib``'s abbreviation when ``repr`` recurses too deeply."""
    try:
        return short_repr(value)
    except RecursionError:
        return reprlib.repr(value)


def _type_name(value: Any) -> str:
    return f"{type(value).__name__} {_shown(value)}"


def _time_problem(value: Any, kind: type, nanosecond_attribute: str) -> str | None:
    """Why ``value`` is no ``kind`` (``datetime``, ``timedelta``) the database can store: another
    type, or a pandas ``Timestamp``/``Timedelta`` with nanoseconds (dropped else)."""
    if not isinstance(value, kind):
        return f"expected {kind.__name__}, got {_type_name(value)}."
    if type(value) is kind:  # only a pandas subclass may carry nanoseconds
        return None
    nanoseconds = getattr(value, nanosecond_attribute, 0)
    if not nanoseconds:
        return None
    return (
        f"{type(value).__name__} {value} has {nanoseconds} nanoseconds past the microsecond, "
        "which the database cannot store (it keeps microseconds: they would be dropped). Round "
        "it first, e.g. value.floor('us')."
    )


def _check_string(length: int | None) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"expected str, got {_type_name(value)}. Pass text."
        if length is not None and len(value) > length:
            return (
                f"{len(value)} characters, at most {length} allowed (got {short_repr(value)}). "
                "Shorten it or widen the column."
            )
        if "\x00" in value:
            return (
                f"contains a NUL character (\\x00), which databases cannot store in text "
                f"(got {short_repr(value)}). Remove it or use a binary column."
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return (
                f"contains a lone surrogate that is not valid UTF-8 (got {short_repr(value)}). "
                "Fix the text's encoding."
            )
        return None

    return check


def _check_integer(bits: int) -> Check:
    low, high = -(2**bits), 2**bits - 1

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected int, got {_type_name(value)}."
        if not low <= value <= high:
            return (
                f"{value} is outside the {bits + 1}-bit integer range [{low}, {high}]. "
                "Use a BigInteger or Numeric column for larger values."
            )
        return None

    return check


#: Integers beyond this are not all floats; ``float(value)`` would round them.
FLOAT_EXACT_INT = 2**53


def _decimal_nan_problem(value: decimal.Decimal, sqlite: bool) -> str | None:
    """Why a Decimal NaN cannot go into a Float column (None: it is stored as a float NaN)."""
    if sqlite:
        return f"{value!r}: NaN cannot be stored in SQLite (it becomes NULL). Use None for missing values."
    if value.is_snan() or value.is_signed():
        return (
            f"{value!r} is a signaling or negative decimal NaN, which PostgreSQL does not take "
            "for a float (and Python cannot compare it with a stored value). Pass float('nan')."
        )
    return None


def _check_float(dialect: str, single: bool) -> Check:
    """A float column's check; ``single``: stored as a 4-byte REAL (PostgreSQL ``Float(p <= 24)``).

    On SQLite neither NaN (stored as NULL) nor ±inf (lineage events are JSON, which has no
    infinity: the row could never be updated or deleted again) is accepted.
    """
    sqlite = dialect == "sqlite"

    def check(value: Any) -> str | None:
        number: float
        if isinstance(value, float):
            number = value
        elif isinstance(value, bool) or not isinstance(value, (int, decimal.Decimal)):
            return f"expected a number, got {_type_name(value)}."
        elif isinstance(value, int):
            if abs(value) > FLOAT_EXACT_INT:
                return f"{value} cannot be stored exactly as a float. Use a Numeric column."
            number = float(value)
        else:
            if value.is_nan():
                return _decimal_nan_problem(value, sqlite)
            number = float(value)
            if value.is_finite() and decimal.Decimal(number) != value:
                beyond = math.isinf(number) or number == 0
                return (
                    f"{value!r} is {'outside the range of' if beyond else 'not exactly'} a "
                    f"float: a Float column would store {number!r}. Pass a float (float(value)) "
                    "if that is what you mean, or use a Numeric column to keep the decimal."
                )
        if math.isnan(number):
            if sqlite:
                return (
                    "NaN cannot be stored in SQLite (it becomes NULL). Use None for missing values."
                )
            return None
        if math.isinf(number):
            if sqlite:
                return (
                    f"{value!r} cannot be stored in a Float column on SQLite: lineage_nb records "
                    "every change of the row as JSON, which has no infinity, so the row could "
                    "never be updated or deleted. Store None, or a large finite number such as "
                    "sys.float_info.max."
                )
            return None
        if single:
            stored = struct.unpack("f", struct.pack("f", number))[0]
            if stored != number:
                return (
                    f"{value!r} does not fit a 4-byte REAL column exactly (it would read back as "
                    f"{stored!r}). Use Float() (double precision) or round it."
                )
        return None

    return check


def float_is_single(impl: types.Float[Any], dialect: str) -> bool:
    """Whether ``impl`` stores a 4-byte REAL on ``dialect`` (PostgreSQL ``Float(p <= 24)``)."""
    return dialect == "postgresql" and (
        isinstance(impl, types.REAL) or (impl.precision is not None and impl.precision <= 24)
    )


#: The largest offset PostgreSQL keeps in a ``time with time zone``.
_PG_TIMETZ_LIMIT = dt.timedelta(hours=15, minutes=59, seconds=59)
_SECOND = dt.timedelta(seconds=1)


def _format_offset(offset: dt.timedelta) -> str:
    sign = "-" if offset < dt.timedelta(0) else "+"
    return sign + str(abs(offset))


def _check_time(declared_timezone: bool, dialect: str) -> Check:
    """A time column's check. Only PostgreSQL keeps a time's offset (``Time(timezone=True)``)."""
    keeps_zone = declared_timezone and dialect == "postgresql"

    def check(value: Any) -> str | None:
        if not isinstance(value, dt.time):
            return f"expected time, got {_type_name(value)}."
        if value.tzinfo is None:
            if keeps_zone:
                return (
                    f"naive time {value.isoformat()} given to a Time(timezone=True) column: "
                    "PostgreSQL would attach its session's time zone to it. Pass an aware time, "
                    "e.g. value.replace(tzinfo=timezone.utc)."
                )
            return None
        if not keeps_zone:
            if declared_timezone:
                return (
                    f"time {value.isoformat()} has a time zone, which SQLite cannot store with a "
                    "time (Time(timezone=True) keeps it on PostgreSQL only). Pass a naive time, "
                    "e.g. value.replace(tzinfo=None), or use a DateTime(timezone=True) column."
                )
            return (
                f"time {value.isoformat()} has a time zone, which Time() drops. Pass a naive "
                "time, or declare Time(timezone=True) on PostgreSQL."
            )
        offset = value.utcoffset()
        if offset is None:
            return (
                f"time {value.isoformat()} has the time zone {value.tzinfo}, whose offset "
                "depends on the date, so a time alone has none. Give it a fixed offset, e.g. "
                "value.replace(tzinfo=timezone(timedelta(hours=-5)))."
            )
        if offset % _SECOND:
            return (
                f"time {value.isoformat()} has an offset with a fraction of a second "
                f"({_format_offset(offset)}); PostgreSQL keeps whole seconds. Round the offset."
            )
        if abs(offset) > _PG_TIMETZ_LIMIT:
            return (
                f"time {value.isoformat()} has the offset {_format_offset(offset)}, beyond the "
                "±15:59:59 PostgreSQL allows in a time with time zone. Convert it to another "
                "offset, or use a DateTime(timezone=True) column."
            )
        return None

    return check


def _digits(number: decimal.Decimal) -> tuple[int, int]:
    """(decimal places, digits before the point) of a finite Decimal, trailing zeros ignored.

    Exact for any size (no arithmetic in the 28-digit decimal context).
    """
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    kept = list(digits)
    while exponent < 0 and len(kept) > 1 and kept[-1] == 0:
        kept.pop()
        exponent += 1
    if not any(kept):
        return 0, 0
    places = -exponent if exponent < 0 else 0
    return places, max(0, len(kept) + exponent)


#: Decimal places SQLAlchemy reads back from a SQLite NUMERIC declared without a scale.
_SQLITE_NUMERIC_SCALE = 10


def _sqlite_numeric_loss(number: decimal.Decimal, scale: int | None) -> str | None:
    """Why SQLite would not give ``number`` back: it stores NUMERIC as a binary float."""
    places, _whole = _digits(number)
    if scale is None and places > _SQLITE_NUMERIC_SCALE:
        return (
            f"{number} has {places} decimal places; SQLite reads a Numeric() without a scale back "
            f"with {_SQLITE_NUMERIC_SCALE}. Declare Numeric(precision, scale) or round it."
        )
    if decimal.Decimal(repr(float(number))) != number:
        return (
            f"{number} cannot be stored exactly on SQLite, which keeps a NUMERIC as a binary "
            f"float (about 15 significant digits): it would read back as "
            f"{decimal.Decimal(repr(float(number)))}. Use fewer digits, a String column, or "
            "PostgreSQL."
        )
    return None


def _check_numeric(
    precision: int | None, scale: int | None, asdecimal: bool, dialect: str
) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
            return f"expected a number, got {_type_name(value)}."
        if isinstance(value, float) and asdecimal:
            return (
                f"float {value!r} would not read back equal from a Numeric column. "
                f"Pass decimal.Decimal({str(value)!r}) or an int."
            )
        number = decimal.Decimal(value) if isinstance(value, int) else decimal.Decimal(str(value))
        if not number.is_finite():
            return f"{value} cannot be stored in a Numeric column. Use None for missing values."
        places, whole = _digits(number)
        if scale is not None and places > scale:
            return (
                f"{value} has {places} decimal places, at most {scale} allowed. Round it, "
                f"e.g. round(value, {scale})."
            )
        if precision is not None and whole > precision - (scale or 0):
            return (
                f"{value} has {whole} digits before the decimal point, at most "
                f"{precision - (scale or 0)} allowed (Numeric({precision}, {scale})). "
                "Widen the column."
            )
        if dialect == "sqlite":
            return _sqlite_numeric_loss(number, scale)
        return _postgresql_numeric_overflow(number, whole)

    return check


#: Digits PostgreSQL's numeric keeps after and before the decimal point.
_PG_NUMERIC_MAX_SCALE = 16383
_PG_NUMERIC_MAX_WHOLE = 131072


def _postgresql_numeric_overflow(number: decimal.Decimal, whole: int) -> str | None:
    """Why PostgreSQL would refuse ``number`` ("value overflows numeric format")."""
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -_PG_NUMERIC_MAX_SCALE:
        return (
            f"{number} is written with {-exponent} decimal places (trailing zeros count), more "
            f"than the {_PG_NUMERIC_MAX_SCALE} PostgreSQL reads. Normalize it first, e.g. "
            "value.quantize(Decimal('1.0000')) or value.normalize()."
        )
    if whole > _PG_NUMERIC_MAX_WHOLE:
        return (
            f"{number} has {whole} digits before the decimal point, more than the "
            f"{_PG_NUMERIC_MAX_WHOLE} PostgreSQL's numeric holds. Store it as text."
        )
    return None


def _check_instance(kinds: tuple[type, ...], label: str, exclude: tuple[type, ...] = ()) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, kinds) or isinstance(value, exclude):
            return f"expected {label}, got {_type_name(value)}."
        return None

    return check


def _check_datetime(timezone: bool) -> Check:
    def check(value: Any) -> str | None:
        problem = _time_problem(value, dt.datetime, "nanosecond")
        if problem is not None:
            return problem
        aware = value.tzinfo is not None and value.utcoffset() is not None
        if timezone and not aware:
            return (
                f"naive datetime {value.isoformat()} given to a timezone-aware column. "
                "Pass an aware one, e.g. datetime.now(timezone.utc)."
            )
        if not timezone and aware:
            return (
                f"aware datetime {value.isoformat()} given to a naive column. Convert it, e.g. "
                "value.astimezone(timezone.utc).replace(tzinfo=None), or declare "
                "DateTime(timezone=True)."
            )
        if timezone and value.year in (dt.MINYEAR, dt.MAXYEAR):  # stored in UTC: still in range?
            try:
                value.astimezone(dt.timezone.utc)
            except OverflowError:
                return (
                    f"aware datetime {value.isoformat()} is outside the years 1-9999 once in "
                    "UTC, which is how the column stores it. Pass a moment within that range."
                )
        return None

    return check


#: Where SQLAlchemy's Interval counts from on SQLite (it stores 1970-01-01 + the interval, as a
#: naive datetime: the bounds below are naive on purpose).
_INTERVAL_EPOCH = dt.datetime(1970, 1, 1)  # noqa: DTZ001
_SQLITE_INTERVAL_MIN = dt.datetime.min - _INTERVAL_EPOCH  # noqa: DTZ901
_SQLITE_INTERVAL_MAX = dt.datetime.max - _INTERVAL_EPOCH  # noqa: DTZ901


def _check_interval(dialect: str) -> Check:
    sqlite = dialect == "sqlite"

    def check(value: Any) -> str | None:
        problem = _time_problem(value, dt.timedelta, "nanoseconds")
        if problem is not None:
            return problem
        if sqlite and not _SQLITE_INTERVAL_MIN <= value <= _SQLITE_INTERVAL_MAX:
            return (
                f"{short_repr(value)} ({value}) is too long for an Interval on SQLite, which "
                "stores it as the datetime 1970-01-01 + the interval (so from "
                f"{_SQLITE_INTERVAL_MIN.days} to {_SQLITE_INTERVAL_MAX.days} days). Store "
                "value.total_seconds() in a Float column, or use PostgreSQL."
            )
        return None

    return check


def _check_binary(value: Any) -> str | None:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        return f"expected bytes, got {_type_name(value)}."
    if isinstance(value, memoryview):
        try:
            contiguous = value.c_contiguous
        except ValueError:  # released
            return f"{short_repr(value)} is a released memoryview. Pass bytes."
        if not contiguous:
            return (
                f"{short_repr(value)} is a memoryview whose bytes are not contiguous (a strided "
                "slice), which the driver cannot send. Pass bytes(value)."
            )
    return None


#: Members an Enum refusal lists before cutting the list short.
_ENUM_SHOWN = 10


def _check_enum(column_type: types.Enum) -> Check:
    enum_class = column_type.enum_class
    allowed = list(column_type.enums)
    if enum_class is None:

        def check_text(value: Any) -> str | None:
            if value in allowed:
                return None
            return f"{_shown(value)} is not one of {allowed}."

        return check_text

    name = enum_class.__name__
    members = [f"{name}.{member.name}" for member in enum_class]
    listed = ", ".join(members[:_ENUM_SHOWN]) + (", …" if len(members) > _ENUM_SHOWN else "")

    def check(value: Any) -> str | None:
        if isinstance(value, enum_class):
            return None
        refused = f"{_shown(value)} is not a {name} member; the members are {listed}."
        if isinstance(value, str) and value in enum_class.__members__:
            return f"{refused} Pass {name}.{value}, or look it up by name: {name}[{value!r}]."
        try:
            member = enum_class(value)
        except (ValueError, TypeError):  # no member has that value
            member = None
        if member is not None:
            return (
                f"{refused} Pass {name}.{member.name}, or look it up by value: {name}({value!r})."
            )
        return f"{refused} Pass one of them, e.g. {name}[name] to look a member up by name."

    return check


#: Container levels a JSON value may have (json.dumps/loads recurse once per level).
JSON_MAX_DEPTH = 500
#: Integers at least this long may exceed Python's int-to-text limit (640 digits at the least).
_JSON_INT_CHECK_BITS = 2_000
#: The JSON integers SQLite keeps as integers (its JSON column has NUMERIC affinity).
_SQLITE_INT_MIN, _SQLITE_INT_END = -(2**63), 2**63


def _json_text_problem(text: str, nul_refused: bool) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return (
            f"contains text with a surrogate that is not valid UTF-8 (got {short_repr(text)}). "
            "Fix the text's encoding."
        )
    if nul_refused and "\x00" in text:
        return (
            f"contains a NUL character (\\u0000) in the text {short_repr(text)}: PostgreSQL's "
            "json column would keep it, but lineage_nb records every change of the row as "
            "jsonb, which cannot hold \\u0000, so the row could never be updated or deleted. "
            "Remove it, e.g. text.replace('\\x00', ''), or store the data in a LargeBinary column."
        )
    return None


def _json_leaf_problem(leaf: Any, value: Any) -> str:
    where = "" if leaf is value else f" (in {_shown(value)})"
    if isinstance(leaf, float):
        return (
            f"contains {leaf!r}{where}, which JSON cannot hold. Use None for a missing number, "
            "or store it as text."
        )
    return (
        f"contains {type(leaf).__name__} {_shown(leaf)}{where}, which is not JSON. Convert it "
        "first (e.g. int(x), float(x), str(x), x.isoformat(), list(x)): JSON holds dicts with "
        "text keys, lists, str, int, float, bool and None."
    )


def _json_problem(value: Any, nul_refused: bool = False) -> str | None:
    """What a database would change or refuse in a JSON value, naming the part at fault: a
    non-text key, text that is not UTF-8 (or holds NUL where ``nul_refused``), a leaf JSON has
    no type for, NaN or ±inf, nesting deeper than ``JSON_MAX_DEPTH``, a cycle.

    Walks the value without recursion, so that too deep a value is reported, never a
    RecursionError; costs one pass over the value (no json.dumps unless a part is shared).
    """
    stack: list[tuple[int, Iterable[Any]]] = [(0, (value,))]
    seen: set[int] = set()  # containers walked
    shared = False  # a container met twice: maybe a cycle, which json.dumps reports below
    while stack:
        depth, items = stack.pop()
        for item in items:
            if isinstance(item, str):
                problem = _json_text_problem(item, nul_refused)
                if problem is not None:
                    return problem
            elif isinstance(item, (dict, list, tuple)):
                if id(item) in seen:
                    shared = True
                    continue
                seen.add(id(item))
                if depth >= JSON_MAX_DEPTH:
                    return (
                        f"is nested too deeply to store as JSON: more than {JSON_MAX_DEPTH} "
                        f"levels (got {_shown(value)}). Flatten it, or store it as text."
                    )
                if isinstance(item, dict):
                    for key in item:
                        if not isinstance(key, str):
                            return (
                                f"has an object key that is not text ({type(key).__name__} "
                                f"{_shown(key)}): JSON keys are text, so it would be stored as "
                                f"{json.dumps(str(key))} and could merge with that key. Convert "
                                "the keys to str yourself."
                            )
                        problem = _json_text_problem(key, nul_refused)
                        if problem is not None:
                            return problem
                    stack.append((depth + 1, item.values()))
                else:
                    stack.append((depth + 1, item))
            elif isinstance(item, float):
                if not math.isfinite(item):
                    return _json_leaf_problem(item, value)
            elif isinstance(item, int):
                if item.bit_length() > _JSON_INT_CHECK_BITS:
                    try:
                        str(item)
                    except ValueError as exc:
                        return (
                            f"contains an integer too long to write as JSON ({exc}). Store it "
                            "as text."
                        )
            elif item is not None:
                return _json_leaf_problem(item, value)
    if shared:
        try:
            json.dumps(value)
        except ValueError as exc:  # "Circular reference detected"
            return f"refers to itself ({exc}) in {_shown(value)}. JSON is a tree: copy the parts."
    return None


def _sqlite_json_number_problem(value: Any) -> str | None:
    """A bare JSON number SQLite would give back changed (the JSON column's NUMERIC affinity)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if _SQLITE_INT_MIN <= value < _SQLITE_INT_END:
            return None
        becomes = f"the float {float(value)!r}"
    elif (
        isinstance(value, float)
        and value.is_integer()
        and (_SQLITE_INT_MIN <= value < _SQLITE_INT_END)
    ):
        becomes = f"the int {int(value)!r}"
    else:
        return None
    return (
        f"the bare number {short_repr(value)} would read back as {becomes}: SQLite gives a JSON "
        "column NUMERIC affinity, which converts a JSON text that is only a number. Wrap it, "
        f"e.g. [{short_repr(value)}] or {{'value': {short_repr(value)}}}, or use a Float or "
        "Integer column."
    )


def _check_json(dialect: str) -> Check:
    nul_refused = dialect == "postgresql"
    sqlite = dialect == "sqlite"

    def check(value: Any) -> str | None:
        problem = _json_problem(value, nul_refused)
        if problem is None and sqlite:
            problem = _sqlite_json_number_problem(value)
        return problem

    return check


def _check_uuid_text(value: Any) -> str | None:
    """A ``Uuid(as_uuid=False)`` value: text that is a UUID (else the column cannot be read)."""
    if not isinstance(value, str):
        return f"expected the text of a UUID, got {_type_name(value)}."
    try:
        uuid.UUID(value)
    except ValueError:
        return f"{short_repr(value)} is not a UUID. Pass e.g. str(uuid.uuid4())."
    return None


def _checker_for(column_type: types.TypeEngine[Any], dialect: str) -> Check | None:
    if isinstance(column_type, types.Interval):  # a TypeDecorator over DateTime on SQLite
        return _check_interval(dialect)
    impl: Any = getattr(column_type, "impl_instance", column_type)
    if isinstance(impl, types.Enum):
        return _check_enum(impl)
    if isinstance(impl, types.String):
        return _check_string(impl.length)
    if isinstance(impl, types.Boolean):
        return _check_instance((bool,), "bool")
    if isinstance(impl, types.Integer):
        bits = next(b for kind, b in _INT_RANGES if isinstance(impl, kind))
        return _check_integer(bits)
    if isinstance(impl, types.Float):
        return _check_float(dialect, float_is_single(impl, dialect))
    if isinstance(impl, types.Numeric):
        return _check_numeric(impl.precision, impl.scale, bool(impl.asdecimal), dialect)
    if isinstance(impl, types.DateTime):
        return _check_datetime(bool(impl.timezone))
    if isinstance(impl, types.Date):
        return _check_instance((dt.date,), "date", exclude=(dt.datetime,))
    if isinstance(impl, types.Time):
        return _check_time(bool(impl.timezone), dialect)
    if isinstance(impl, types.Interval):
        return _check_interval(dialect)
    if isinstance(impl, types.LargeBinary):
        return _check_binary
    if isinstance(impl, types.Uuid):
        return _check_instance((uuid.UUID,), "uuid.UUID") if impl.as_uuid else _check_uuid_text
    if isinstance(impl, types.JSON):
        return _check_json(dialect)
    return None


def field_specs(model: type, dialect: str) -> list[FieldSpec]:
    """The validation plan of ``model`` on ``dialect``, cached on the class."""

    def compute() -> list[FieldSpec]:
        specs = []
        mapper: Mapper[Any] = inspect(model)
        for attr in mapper.column_attrs:
            column = attr.columns[0]
            if not isinstance(column, Column):
                continue
            has_default = column.default is not None or column.server_default is not None
            autoincrement = column.primary_key and isinstance(column.type, types.Integer)
            auto = bool(column.info.get("lineage_nb_auto"))
            required = not (column.nullable or has_default or autoincrement or auto)
            specs.append(FieldSpec(attr.key, column, required, _checker_for(column.type, dialect)))
        return specs

    return per_model(model, f"field_specs_{dialect}", compute)


def _related_set(instance: Any, column: Column[Any]) -> bool:
    """True when a many-to-one relationship that fills ``column`` at flush is set."""
    state = instance_state(instance)
    for rel in state.mapper.relationships:
        if column in rel.local_columns and state.dict.get(rel.key) is not None:
            return True
    return False


def clean_values(
    model: type,
    values: Mapping[str, Any],
    *,
    dialect: str = "sqlite",
    exclude: Iterable[str] | None = None,
    is_related_set: Callable[[Column[Any]], bool] | None = None,
    hint: str | None = None,
) -> None:
    """Check column values of ``model`` (a record's dict, or a plain dict for ``bulk_create``).

    ``is_related_set(column)`` says whether a set many-to-one relation will fill a NULL column.

    Raises:
        ValidationError: ``error_dict`` maps each bad field to messages naming the value.
    """
    skip = set(exclude or ())
    errors: dict[str, list[str]] = {}
    first_value: Any = None
    for spec in field_specs(model, dialect):
        if spec.key in skip:
            continue
        value = values.get(spec.key)
        if value is None:
            if spec.required and not (is_related_set and is_related_set(spec.column)):
                errors[spec.key] = ["This field cannot be null. Give it a value."]
            continue
        if spec.check is not None:
            message = spec.check(value)
            if message is not None:
                if not errors:
                    first_value = value
                errors[spec.key] = [message]
    if errors:
        raise ValidationError(errors, model=model.__name__, value=first_value, hint=hint)


def clean_fields(
    instance: Any, exclude: Iterable[str] | None = None, *, dialect: str = "sqlite"
) -> None:
    """Check every field's value against its column; raise one error listing all bad fields.

    Raises:
        ValidationError: ``error_dict`` maps each bad field to messages naming the value.
    """
    clean_values(
        type(instance),
        instance_state(instance).dict,
        dialect=dialect,
        exclude=exclude,
        is_related_set=lambda column: _related_set(instance, column),
    )


def _pk_clause(instance: Any) -> Any:
    mapper = inspect(type(instance))
    state = inspect(instance)
    if state.key is None:
        return None
    return and_(*(col != val for col, val in zip(mapper.primary_key, state.key[1], strict=True)))


def validate_unique(instance: Any, session: Session, exclude: Iterable[str] | None = None) -> None:
    """Query the database for other rows with the same unique values.

    Raises:
        ValidationError: naming the fields whose values are taken.
    """
    skip = set(exclude or ())
    model = type(instance)
    table = inspect(model).local_table
    key_of = {attr.columns[0].name: attr.key for attr in inspect(model).column_attrs}
    groups: list[list[Column[Any]]] = [[c] for c in table.columns if c.unique]
    groups += [list(c.columns) for c in table.constraints if isinstance(c, UniqueConstraint)]
    if inspect(instance).key is None:
        groups.append(list(table.primary_key.columns))
    errors: dict[str, list[str]] = {}
    not_self = _pk_clause(instance)
    for columns in groups:
        keys = [key_of[c.name] for c in columns]
        values = [getattr(instance, k) for k in keys]
        if any(k in skip for k in keys) or any(v is None for v in values):
            continue
        condition = and_(*(c == v for c, v in zip(columns, values, strict=True)))
        if not_self is not None:
            condition = and_(condition, not_self)
        if session.execute(select(exists().where(condition))).scalar():
            shown = ", ".join(f"{k}={short_repr(v)}" for k, v in zip(keys, values, strict=True))
            # one column: that field's error; several: the record's (Django's "__all__")
            errors[keys[0] if len(keys) == 1 else NON_FIELD_ERRORS] = [
                (
                    f"{model.__name__} with {shown} already exists. Choose another value or "
                    "update the existing record."
                )
            ]
    if errors:
        raise ValidationError(errors, model=model.__name__)


def validate_constraints(
    instance: Any, session: Session, exclude: Iterable[str] | None = None
) -> None:
    """Evaluate the table's CHECK constraints and foreign keys against the instance's values.

    CHECK expressions are run by the database itself over a one-row ``SELECT`` of the values, so
    they mean exactly what they mean in the table.

    Raises:
        ValidationError: naming the failing constraint or foreign-key field.
    """
    skip = set(exclude or ())
    model = type(instance)
    mapper = inspect(model)
    table = mapper.local_table
    key_of = {attr.columns[0].name: attr.key for attr in mapper.column_attrs}
    errors: dict[str, list[str]] = {}
    values = select(
        *(literal(getattr(instance, key_of[c.name]), type_=c.type).label(c.name) for c in table.c)
    ).subquery("candidate")
    for constraint in table.constraints:
        if isinstance(constraint, CheckConstraint):
            names = [key_of.get(c.name, c.name) for c in constraint.columns]
            if skip.intersection(names):
                continue
            condition: Any = constraint.sqltext
            if isinstance(condition, (str, TextClause)):  # schema text, never a user value
                condition = literal_column(str(condition)).self_group()
            adapted = sql_util.ClauseAdapter(values).traverse(condition)
            failed = session.execute(select(exists().select_from(values).where(not_(adapted))))
            if failed.scalar():
                label = constraint.name or str(constraint.sqltext)
                errors.setdefault(names[0] if names else "__all__", []).append(
                    f"violates check constraint {label!r}."
                )
        elif isinstance(constraint, ForeignKeyConstraint):
            _check_foreign_key(instance, session, constraint, key_of, skip, errors)
    if errors:
        raise ValidationError(errors, model=model.__name__)


def _check_foreign_key(
    instance: Any,
    session: Session,
    constraint: ForeignKeyConstraint,
    key_of: dict[str, str],
    skip: set[str],
    errors: dict[str, list[str]],
) -> None:
    keys = [key_of[c.name] for c in constraint.columns]
    values = [getattr(instance, k) for k in keys]
    if skip.intersection(keys) or any(v is None for v in values):
        return
    targets = [element.column for element in constraint.elements]
    condition = and_(*(t == v for t, v in zip(targets, values, strict=True)))
    if not session.execute(select(exists().where(condition))).scalar():
        table_name = targets[0].table.name
        errors[keys[0]] = [
            (
                f"no {table_name} row with {targets[0].name}={short_repr(values[0])}. "
                f"Save the {table_name} first or use an existing one."
            )
        ]
