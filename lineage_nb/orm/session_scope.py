"""Run one unit of work in the right session: the ambient ``atomic()`` one, or a new transaction.

Every active-record method is written once as ``fn(session) -> result``; :func:`run_sync` and
:func:`run_async` run it on a sync ``Session`` or through ``AsyncSession.run_sync``, committing
when they opened the transaction and translating database errors into ours.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import LoaderCallableStatus, Session, make_transient
from sqlalchemy.orm.attributes import set_committed_value

from ..db import (
    Database,
    ambient_scope,
    ambient_session,
    database_of,
    get_database,
)
from ..errors import OperationalError, UsageError
from .translate import is_disconnect, is_retryable, translate

__all__ = ["block_error", "run_async", "run_sync", "session_database"]

T = TypeVar("T")


def session_database(session: Session) -> Database:
    """The :class:`Database` a lineage_nb session belongs to (the default one for foreign sessions)."""
    return database_of(session) or get_database()


_Snapshot = list[tuple[Any, dict[str, tuple[Any, Any]]]]


def _snapshot(instances: Sequence[Any]) -> _Snapshot:
    """Remember committed and current column values of stored instances (a failed flush expires them)."""
    saved: _Snapshot = []
    for obj in instances:
        state = _state_of(obj)
        if state is None or state.key is None:
            continue
        values = {}
        current, pending = state.dict, state.committed_state  # pending: old values of changes
        for attr in state.mapper.column_attrs:
            key = attr.key
            if key not in current:
                continue
            committed = pending.get(key, LoaderCallableStatus.NO_VALUE)
            if isinstance(committed, LoaderCallableStatus):  # no committed value before it
                committed = current[key]
            values[key] = (committed, current[key])
        saved.append((obj, values))
    return saved


def _state_of(obj: Any) -> Any:
    """The ORM state of a mapped instance, None for anything else (e.g. a dict for bulk_create).

    ``getattr`` instead of ``inspect()``: this runs for every record of a ``bulk_create``.
    """
    return getattr(obj, "_sa_instance_state", None)


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
    fresh = _fresh_snapshot(instances) if restore else []
    try:
        yield
    except (sa_exc.SQLAlchemyError, sa_exc.DBAPIError) as error:
        _restore(saved)
        _fresh_restore(fresh)
        raise translate(error, instances) from error
    except BaseException:
        _restore(saved)
        _fresh_restore(fresh)
        raise


#: Retries of a whole unit of work when the backend asks for it (SQLite busy, PG serialization).
RETRY_ATTEMPTS = 8
RETRY_BASE_DELAY_S = 0.05
RETRY_MAX_DELAY_S = 2.0

_Fresh = list[tuple[Any, dict[str, Any]]]


def _fresh_snapshot(instances: Sequence[Any]) -> _Fresh:
    """Attribute values of not-yet-stored instances (a failed insert leaves keys and stamps on them).

    One C-level ``dict`` copy per instance: ``bulk_create`` passes thousands.
    """
    saved: _Fresh = []
    for obj in instances:
        state = _state_of(obj)
        if state is not None and state.key is None:
            saved.append((obj, dict(state.dict)))
    return saved


def _fresh_restore(saved: _Fresh) -> None:
    for obj, before in saved:
        state = _state_of(obj)
        if state.key is not None:  # made detached by the failed call: not stored after all
            make_transient(obj)
        values = state.dict
        for key in [k for k in values if k not in before]:
            del values[key]
        values.update(before)


def _unknown_outcome(error: BaseException) -> OperationalError:
    first = str(getattr(error, "orig", None) or error).splitlines()[0]
    return OperationalError(
        f"The database failed while committing ({first}): the outcome is unknown. The write "
        "may or may not have been stored.",
        hint="Look whether it is stored (e.g. Model.get / filter) before running the call "
        "again: running it blindly may write it twice.",
    )


def _outcome_unknown(error: BaseException, dialect: str) -> bool:
    """Whether a failed COMMIT may nevertheless have been made durable.

    SQLite commits in this process: an error from COMMIT means it did not happen (the
    transaction is rolled back), which the usual translation says. A server that stops
    answering after COMMIT was sent may have made it durable or not.
    """
    if dialect == "sqlite" or not isinstance(error, sa_exc.DBAPIError):
        return False
    return bool(error.connection_invalidated) or is_disconnect(error)


def block_error(error: BaseException, committing: bool, dialect: str) -> BaseException:
    """Our error for a database error of an ``atomic()`` block (``ln.connect()`` gives it to
    the database as its :attr:`~lineage_nb.db.Database.error_translators`)."""
    if committing and _outcome_unknown(error, dialect):
        return _unknown_outcome(error)
    return translate(error)


def _commit_or_say_unknown(commit: Callable[[], None], dialect: str) -> None:
    """Commit; a connection lost at COMMIT is reported as an unknown outcome."""
    try:
        commit()
    except (sa_exc.SQLAlchemyError, sa_exc.DBAPIError) as error:
        if _outcome_unknown(error, dialect):
            raise _unknown_outcome(error) from error
        raise


async def _acommit_or_say_unknown(commit: Callable[[], Awaitable[None]], dialect: str) -> None:
    """Async twin of :func:`_commit_or_say_unknown`."""
    try:
        await commit()
    except (sa_exc.SQLAlchemyError, sa_exc.DBAPIError) as error:
        if _outcome_unknown(error, dialect):
            raise _unknown_outcome(error) from error
        raise


def _delay(attempt: int) -> float:
    """Exponential backoff with full jitter, capped."""
    return random.uniform(0, min(RETRY_MAX_DELAY_S, RETRY_BASE_DELAY_S * 2**attempt))


def _gave_up(error: BaseException, attempts: int, started: float) -> OperationalError:
    first = str(getattr(error, "orig", None) or error).splitlines()[0]
    return OperationalError(
        f"Gave up after {attempts} attempts over {time.monotonic() - started:.1f}s: the database "
        f"stayed busy with other writers ({first}). Nothing of this operation was written.",
        hint="Run it again later, and look for a process holding a long write transaction.",
        attempts=attempts,
    )


def _joined(fn: Callable[[Session], T]) -> Callable[[Session], T]:
    """``fn`` run with its session ambient: nested active-record calls join its transaction."""

    def run(session: Session) -> T:
        with ambient_scope(session):
            return fn(session)

    return run


_S = TypeVar("_S", Session, AsyncSession)

#: What a call of the other kind inside an ``atomic()`` block is told: (message, hint), by the
#: kind of session the call needs.
_WRONG_BLOCK = {
    Session: (
        "A sync method was called inside `async with ln.atomic()`.",
        "Use the a-prefixed twin (e.g. `await record.asave()`).",
    ),
    AsyncSession: (
        "An async method was called inside a sync `with ln.atomic()` block.",
        "Call the sync method, or use `async with ln.atomic()`.",
    ),
}


def _ambient_of(kind: type[_S]) -> _S | None:
    """The ambient session, None outside ``atomic()``; a block of the other kind is refused."""
    outer = ambient_session()
    if outer is None or isinstance(outer, kind):
        return outer
    message, hint = _WRONG_BLOCK[kind]
    raise UsageError(message, hint=hint)


def _retry_delay(error: OperationalError, attempt: int, started: float) -> float:
    """Seconds to wait before running a unit of work again after ``error`` ended try ``attempt``;
    ``error`` itself when the backend did not ask for a retry, giving up after the last try."""
    cause = error.__cause__
    if cause is None or not is_retryable(cause):
        raise error
    if attempt + 1 == RETRY_ATTEMPTS:
        raise _gave_up(cause, RETRY_ATTEMPTS, started) from cause
    return _delay(attempt)


def run_sync(fn: Callable[[Session], T], instances: Sequence[Any] = ()) -> T:
    """Run ``fn`` in the ambient sync session, or in a new committed transaction.

    A transaction of our own that the backend refuses as busy ("database is locked",
    serialization failure, deadlock) is rolled back and run again, at most
    ``RETRY_ATTEMPTS`` times with backoff; then :class:`OperationalError` says so.
    """
    outer = _ambient_of(Session)
    if outer is not None:
        with _guarded(instances, restore=False):
            return fn(outer)
    started = time.monotonic()
    for attempt in range(RETRY_ATTEMPTS):
        try:
            db = get_database()
            with _guarded(instances, restore=True), db.session() as session:
                with session.begin() as transaction:
                    result = _joined(fn)(session)
                    session.flush()
                    _commit_or_say_unknown(transaction.commit, db.dialect)
                return result
        except OperationalError as error:
            time.sleep(_retry_delay(error, attempt, started))
    raise AssertionError("unreachable")  # pragma: no cover


async def run_async(fn: Callable[[Session], T], instances: Sequence[Any] = ()) -> T:
    """Run ``fn`` through ``AsyncSession.run_sync`` on the async driver; same semantics."""
    outer = _ambient_of(AsyncSession)
    if outer is not None:
        with _guarded(instances, restore=False):
            return await outer.run_sync(_joined(fn))
    started = time.monotonic()
    for attempt in range(RETRY_ATTEMPTS):
        try:
            db = get_database()
            with _guarded(instances, restore=True):
                async with db.async_session() as session:
                    async with session.begin() as transaction:
                        result = await session.run_sync(_joined(fn))
                        await session.flush()
                        await _acommit_or_say_unknown(transaction.commit, db.dialect)
                    return result
        except OperationalError as error:
            await asyncio.sleep(_retry_delay(error, attempt, started))
    raise AssertionError("unreachable")  # pragma: no cover
