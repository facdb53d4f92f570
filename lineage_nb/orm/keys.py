"""Primary keys from text: one copy of what loaders and the command table parse.

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, String, Table
    >>> table = Table("doctest_pair", MetaData(), Column("a", Integer, primary_key=True),
    ...               Column("b", String(5), primary_key=True))
    >>> pk_from_text(table, "7,x")
    (7, 'x')
    >>> pk_from_text(table, "7")
    Traceback (most recent call last):
    ...
    lineage_nb.errors.UsageError: table 'doctest_pair' has 2 primary key column(s); got '7'
"""

from __future__ import annotations

import decimal
import uuid
from typing import Any

from sqlalchemy import Table, inspect, types

from ..errors import UsageError, ValidationError

__all__ = ["pk_from_text", "pk_values", "value_from_text"]

#: Column types whose values are parsed from key text; any other column takes the text itself.
_PARSED = (int, float, decimal.Decimal, uuid.UUID)


def value_from_text(column: Any, text: str, *, strict: bool = True) -> Any:
    """The value ``text`` stands for in ``column``: an int, float or UUID parsed, else the text.

    Args:
        column: a ``Column`` (its type's ``python_type`` decides).
        text: the value as text (typed, or as the event log stores a key).
        strict: raise when the text is not a value of the column's type; with False the text
            itself is returned (a lookup with it then finds nothing).

    Raises:
        ValueError: ``strict`` and the column takes ints, floats, decimals or UUIDs and ``text``
            is not one.

    Examples:
        >>> from sqlalchemy import Column, Integer
        >>> value_from_text(Column("id", Integer), "42")
        42
        >>> value_from_text(Column("id", Integer), "x", strict=False)
        'x'
    """
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return text
    if python_type not in _PARSED:
        return text
    try:
        return python_type(text)
    except ValueError:
        if strict:
            raise
        return text
    except decimal.InvalidOperation as error:  # decimal's own, not a ValueError
        if strict:
            raise ValueError(f"{text!r} is not a decimal number") from error
        return text


def pk_from_text(target: Any, text: str) -> tuple[Any, ...]:
    """The primary key values of key text ``text`` (a composite key's parts joined by ``,``).

    Args:
        target: a ``Table`` (reflected or declared) or a mapped class.
        text: the key as typed on a command line.

    Returns:
        One value per key column, in order, each as its column takes it.

    Raises:
        UsageError: the number of parts does not match the key, or a part is not a value of its
            column's type.
    """
    table = target if isinstance(target, Table) else inspect(target).local_table
    columns, name = list(table.primary_key.columns), table.name
    parts = text.split(",") if len(columns) > 1 else [text]
    if not columns or len(parts) != len(columns):
        raise UsageError(f"table {name!r} has {len(columns)} primary key column(s); got {text!r}")
    values = []
    for column, part in zip(columns, parts, strict=True):
        try:
            values.append(value_from_text(column, part))
        except ValueError as exc:
            raise UsageError(f"{name}.{column.name}: {part!r} is not valid") from exc
    return tuple(values)


def pk_values(model: type, pk: Any) -> tuple[Any, ...]:
    """The key values of ``pk``, each as its column takes it (a UUID given as text is parsed).

    Args:
        model: a mapped class.
        pk: one value, a tuple/list with one value per key column in order, or a dict keyed by
            the key attributes' names.

    Raises:
        ValidationError: ``pk`` does not fit the model's primary key.
    """
    mapper: Any = inspect(model)
    names = [mapper.get_property_by_column(column).key for column in mapper.primary_key]
    if isinstance(pk, dict):
        values = tuple(pk[name] for name in names) if set(pk) == set(names) else None
    else:
        values = tuple(pk) if isinstance(pk, (tuple, list)) else (pk,)
    if values is None or len(values) != len(names):
        raise ValidationError(
            {"pk": [f"{pk!r} does not fit the primary key {tuple(names)} of {model.__name__}."]},
            model=model.__name__,
            field="pk",
            value=pk,
            hint=f"Pass {'one value' if len(names) == 1 else 'a tuple with one value per key column'}"
            f" ({', '.join(names)}), or a dict keyed by those names.",
        )
    return tuple(
        _uuid_value(model, column, value)
        for column, value in zip(mapper.primary_key, values, strict=True)
    )


def _uuid_value(model: type, column: Any, value: Any) -> Any:
    """``value``, or the UUID it spells when it is text for a UUID column."""
    column_type = getattr(column.type, "impl_instance", column.type)
    if not (isinstance(column_type, types.Uuid) and column_type.as_uuid and isinstance(value, str)):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationError(
            {column.key: [f"{value!r} is not a UUID."]},
            model=model.__name__,
            field=column.key,
            value=value,
            hint="Pass a uuid.UUID or its text, e.g. '12345678-1234-5678-1234-567812345678'.",
        ) from None
