"""Relations and deferred columns of a detached record load on first access, as in Django.

Records come back from ``get``/``filter``/``load_all`` detached (their session is closed), so
SQLAlchemy would raise ``DetachedInstanceError`` for a relation never loaded
(``Sample.get(3).project``), one left out by ``load_all(exclude=...)`` or a deferred column.
Instead the value is read then, in a short transaction of its own (or the ambient ``ln.atomic()``
one), stored on the record and returned; inside a run the read is an input like any other. The
record does not join a session: only the missing value is selected (``with_parent``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Mapper, RelationshipProperty, Session, with_parent
from sqlalchemy.orm.attributes import InstrumentedAttribute, set_committed_value
from sqlalchemy.orm.exc import DetachedInstanceError

from .session_scope import run_sync

__all__ = ["load_on_access"]


class _LoadOnAccess(InstrumentedAttribute[Any]):
    """An instrumented attribute that reads its missing value for a detached record."""

    __slots__ = ()

    def __get__(self, instance: Any, owner: Any) -> Any:
        try:
            return super().__get__(instance, owner)
        except DetachedInstanceError:
            if instance is None:
                raise
            return _load(instance, self.key)


def _load(record: Any, key: str) -> Any:
    mapper: Mapper[Any] = inspect(type(record))
    prop = mapper.attrs[key]

    def fetch(session: Session) -> Any:
        if isinstance(prop, RelationshipProperty):
            target = prop.mapper.class_
            statement = select(target).where(with_parent(record, getattr(type(record), key)))
            if prop.order_by:
                statement = statement.order_by(*prop.order_by)
            found = list(session.execute(statement).scalars().unique())
            return found if prop.uselist else (found[0] if found else None)
        keys = list(mapper.primary_key)
        values = mapper.primary_key_from_instance(record)
        column = getattr(type(record), key)
        return session.execute(
            select(column).where(*(c == v for c, v in zip(keys, values, strict=True)))
        ).scalar_one()

    set_committed_value(record, key, run_sync(fetch))  # a collection is adapted from the list
    return inspect(record).dict[key]


def load_on_access(mapper: Mapper[Any], cls: type) -> None:
    """Make ``cls``'s relations and deferred columns load on access when detached (a
    ``mapper_configured`` listener)."""
    for prop in mapper.attrs:
        deferred = getattr(prop, "deferred", False)
        if not (isinstance(prop, RelationshipProperty) or deferred):
            continue
        attribute = cls.__dict__.get(prop.key)
        if type(attribute) is InstrumentedAttribute:
            attribute.__class__ = _LoadOnAccess
