"""Mapped classes by table or class name, and the column that names a record.

One copy each of what the command table (``lineage-nb`` and ``%lineage``), the widgets and the
lineage pictures share. Lookups see the classes mapped so far (imported models); the default
declarative base is ``ln.Model``'s, another one (the lineage schema's) may be passed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import inspect, types

from .model import Model

__all__ = [
    "LABEL_FIELDS",
    "class_by_name",
    "class_by_table",
    "label_column_of",
    "mapped_classes",
]

#: Columns that name a record, in order of preference (a model's ``__label_field__`` first).
LABEL_FIELDS = ("name", "label", "title", "handle", "key")


def _mappers(bases: tuple[type[Any], ...]) -> Iterator[Any]:
    """The mappers of ``bases``' registries (default ``ln.Model``'s), by class name."""
    if not bases:
        bases = (Model,)
    for base in bases:
        yield from sorted(base.registry.mappers, key=lambda m: m.class_.__name__)


def mapped_classes(*bases: type[Any]) -> dict[str, type]:
    """Table name → mapped class, for every class mapped so far.

    Args:
        bases: declarative bases whose registries to search (default: ``ln.Model``'s); the
            first class found for a table wins (a base class before its single-table subclass).

    Returns:
        A new dict; classes without a table of their own are left out.
    """
    found: dict[str, type] = {}
    for mapper in _mappers(bases):
        name = getattr(mapper.local_table, "name", None)
        if name is not None and (name not in found or issubclass(found[name], mapper.class_)):
            found[str(name)] = mapper.class_
    return found


def class_by_table(table: str, *bases: type[Any]) -> type | None:
    """The class mapped to ``table`` (exact name), or None when no imported model maps it.

    Examples:
        >>> class_by_table("no_such_table") is None
        True
    """
    return mapped_classes(*bases).get(table)


def class_by_name(name: str, *bases: type[Any]) -> type | None:
    """The class called ``name``, or mapped to table ``name``: exact first, then ignoring case.

    Args:
        name: a class name (``Sample``) or table name (``sample``).
        bases: as for :func:`mapped_classes`.

    Returns:
        The class, or None when no imported model has that name.
    """
    by_class: dict[str, type] = {}
    for mapper in _mappers(bases):
        by_class.setdefault(mapper.class_.__name__, mapper.class_)
    by_table = mapped_classes(*bases)
    for names in (by_class, by_table):
        if name in names:
            return names[name]
    wanted = name.lower()
    for names in (by_class, by_table):
        for known, cls in names.items():
            if known.lower() == wanted:
                return cls
    return None


def label_column_of(model: type) -> str | None:
    """The string column that names ``model``'s records (``__label_field__``, else the first of
    :data:`LABEL_FIELDS` it has), or None."""
    mapper: Any = inspect(model)
    preferred = getattr(model, "__label_field__", None)
    for name in ([preferred] if preferred else []) + list(LABEL_FIELDS):
        attr = mapper.column_attrs.get(name) if name in mapper.column_attrs else None
        if attr is not None and isinstance(attr.columns[0].type, types.String):
            return str(name)
    return None
