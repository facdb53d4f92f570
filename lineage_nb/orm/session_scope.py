"""Run one unit of work in the right session: the ambient ``atomic()`` one, or a new transaction.

Every active-record method is written once as ``fn(session) -> result``; :func:`run_sync` and
:func:`run_async` run it on a sync ``Session`` or through ``AsyncSession.run_sync``, committing
when they opened the transaction and translating database errors into ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..db import Database, ambient_session, get_database
from ..errors import ConfigurationError
from .translate import translate

__all__ = ["run_async", "run_sync", "session_database"]

T = TypeVar("T")


def session_database(session: Session) -> Database:
    """The :class:`Database` a lineage_nb session belongs to (the default one for foreign sessions)."""
    db = session.info.get("lineage_nb_db")
    return db if isinstance(db, Database) else get_database()


_Snapshot = list[tuple[Any, dict[str, tuple[Any, Any]]]]


def _snapshot(instances: Sequence[Any]) -> _Snapshot:
    """Remember committed and current column values of stored instances (a failed flush expires them)."""
    saved: _Snapshot = []
    for obj in instances:
        state = inspect(obj)
        if state.key is None:
            continue
        values = {}
        for attr in state.mapper.column_attrs:
            if attr.key not in state.dict:
                continue
            history = state.attrs[attr.key].history
            committed = history.deleted[0] if history.deleted else state.dict[attr.key]
            values[attr.key] = (committed, state.dict[attr.key])
        saved.append((obj, values))
    return saved


def _restore(saved: _Snapshot) -> None:
    """Put instances back as they were before the failed unit of work, pending changes kept."""
    for obj, values in saved:
        for key, (committed, current) in values.items():
            set_committed_value(obj, key, committed)
            if current is not committed:
                setattr(obj, key, current)


@contextmanager
def _guarded(instances: Sequence[Any], restore: bool) -> Iterator[None]:
    """Translate database errors; on any failure put ``instances`` back as they were."""
    saved = _snapshot(instances) if restore else []
    try:
        yield
    except (sa_exc.SQLAlchemyError, sa_exc.DBAPIError) as error:
        _restore(saved)
        raise translate(error, instances) from error
    except BaseException:
        _restore(saved)
        raise


def run_sync(fn: Callable[[Session], T], instances: Sequence[Any] = ()) -> T:
    """Run ``fn`` in the ambient sync session, or in a new committed transaction."""
    outer = ambient_session()
    if isinstance(outer, AsyncSession):
        raise ConfigurationError(
            "A sync method was called inside `async with ln.atomic()`.",
            hint="Use the a-prefixed twin (e.g. `await record.asave()`).",
        )
    with _guarded(instances, restore=outer is None):
        if outer is not None:
            return fn(outer)
        with get_database().session() as session, session.begin():
            return fn(session)


async def run_async(fn: Callable[[Session], T], instances: Sequence[Any] = ()) -> T:
    """Run ``fn`` through ``AsyncSession.run_sync`` on the async driver; same semantics."""
    outer = ambient_session()
    if isinstance(outer, Session):
        raise ConfigurationError(
            "An async method was called inside a sync `with ln.atomic()` block.",
            hint="Call the sync method, or use `async with ln.atomic()`.",
        )
    with _guarded(instances, restore=outer is None):
        if outer is not None:
            return await outer.run_sync(fn)
        async with get_database().async_session() as session, session.begin():
            return await session.run_sync(fn)
