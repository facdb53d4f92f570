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


def _type_name(value: Any) -> str:
    return f"{type(value).__name__} {short_repr(value)}"


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


def _check_float(allow_nan: bool, single: bool) -> Check:
    """A float column's check; ``single``: stored as a 4-byte REAL (PostgreSQL ``Float(p <= 24)``)."""

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
            return f"expected a number, got {_type_name(value)}."
        if isinstance(value, int) and abs(value) > 2**53:
            return f"{value} cannot be stored exactly as a float. Use a Numeric column."
        nan = value.is_nan() if isinstance(value, decimal.Decimal) else math.isnan(value)
        if not allow_nan and nan:
            return "NaN cannot be stored in SQLite (it becomes NULL). Use None for missing values."
        if single and not nan and math.isfinite(float(value)):
            stored = struct.unpack("f", struct.pack("f", float(value)))[0]
            if stored != float(value):
                return (
                    f"{value!r} does not fit a 4-byte REAL column exactly (it would read back as "
                    f"{stored!r}). Use Float() (double precision) or round it."
                )
        return None

    return check


def _check_time(timezone: bool) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, dt.time):
            return f"expected time, got {_type_name(value)}."
        if value.tzinfo is not None and not timezone:
            return (
                f"time {value.isoformat()} has a time zone, which Time() drops. Pass a naive "
                "time, or declare Time(timezone=True) on PostgreSQL."
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
        return None

    return check


def _check_instance(kinds: tuple[type, ...], label: str, exclude: tuple[type, ...] = ()) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, kinds) or isinstance(value, exclude):
            return f"expected {label}, got {_type_name(value)}."
        return None

    return check


def _check_datetime(timezone: bool) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, dt.datetime):
            return f"expected datetime, got {_type_name(value)}."
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
        return None

    return check


def _check_enum(column_type: types.Enum) -> Check:
    enum_class = column_type.enum_class
    allowed = list(column_type.enums)

    def check(value: Any) -> str | None:
        if enum_class is not None and isinstance(value, enum_class):
            return None
        if enum_class is None and value in allowed:
            return None
        return f"{short_repr(value)} is not one of {allowed}."

    return check


def _json_problem(value: Any) -> str | None:
    """What a database would change in a JSON value: a non-text key, text that is not UTF-8.

    Walks the value without recursion (nesting depth is the caller's data, not a limit here).
    """
    pending = [value]
    seen: set[int] = set()  # containers walked (a cycle is json.dumps's error to report)
    while pending:
        item = pending.pop()
        if isinstance(item, (dict, list, tuple)):
            if id(item) in seen:
                continue
            seen.add(id(item))
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return (
                    f"contains text with a surrogate that is not valid UTF-8 (got "
                    f"{short_repr(item)}). Fix the text's encoding."
                )
        elif isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    return (
                        f"has an object key that is not text ({type(key).__name__} "
                        f"{short_repr(key)}): JSON keys are text, so it would be stored as "
                        f"{json.dumps(str(key))} and could merge with that key. Convert the "
                        "keys to str yourself."
                    )
                pending.append(key)
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return None


def _check_json(value: Any) -> str | None:
    problem = _json_problem(value)
    if problem is not None:
        return problem
    try:
        json.dumps(value, allow_nan=False)
    except RecursionError:
        return "is nested too deeply to store as JSON. Flatten it, or store it as text."
    except (TypeError, ValueError) as exc:
        return f"is not JSON-serializable ({exc}). Store lists, dicts, str, int, float, bool, None."
    return None


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
        return _check_instance((dt.timedelta,), "timedelta")
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
        single = dialect == "postgresql" and (
            isinstance(impl, types.REAL) or (impl.precision is not None and impl.precision <= 24)
        )
        return _check_float(allow_nan=dialect != "sqlite", single=single)
    if isinstance(impl, types.Numeric):
        return _check_numeric(impl.precision, impl.scale, bool(impl.asdecimal), dialect)
    if isinstance(impl, types.DateTime):
        return _check_datetime(bool(impl.timezone))
    if isinstance(impl, types.Date):
        return _check_instance((dt.date,), "date", exclude=(dt.datetime,))
    if isinstance(impl, types.Time):
        return _check_time(bool(impl.timezone) and dialect == "postgresql")
    if isinstance(impl, types.Interval):
        return _check_instance((dt.timedelta,), "timedelta")
    if isinstance(impl, types.LargeBinary):
        return _check_instance((bytes, bytearray, memoryview), "bytes")
    if isinstance(impl, types.Uuid):
        return _check_instance((uuid.UUID,), "uuid.UUID") if impl.as_uuid else _check_uuid_text
    if isinstance(impl, types.JSON):
        return _check_json
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
                f"{model.__name__} with {shown} already exists. Choose another value or "
                "update the existing record."
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
            f"no {table_name} row with {targets[0].name}={short_repr(values[0])}. "
            f"Save the {table_name} first or use an existing one."
        ]

