"""Open and close runs: :func:`track`, :func:`finish`, users, and clean-up of crashed runs."""

from __future__ import annotations

import os
import socket
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError as SAOperationalError
from sqlalchemy.orm import Session

from ..db import Database, get_database
from ..errors import ValidationError
from ..orm.translate import translate
from . import context, reads
from .identity import SourceIdentity, environment, script_identity, user_handle
from .schema import RUN_STATUSES, RecordEvent, Run, Transform, User
from .types import utcnow
from .verify import seal

__all__ = [
    "LineageWarning",
    "db_key",
    "ensure_user",
    "finish",
    "mark_dead_runs",
    "note_cell_error",
    "server_handle",
    "track",
    "tracking",
    "user_id_for",
]


class LineageWarning(UserWarning):
    """Something lineage_nb did on the user's behalf that they should know about."""


_users: dict[tuple[str, str], int] = {}
_active_handle: dict[str, str] = {}


def db_key(db: Database) -> str:
    """A stable key for caches per database (its full URL)."""
    return db.cache_key


_server_handles: dict[str, str | None] = {}


def server_handle(db: Database) -> str | None:
    """The login role when ``db`` was set up by ``setup-postgres`` (it then decides the user)."""
    if db.dialect != "postgresql":
        return None
    key = db_key(db)
    if key not in _server_handles:
        with db.engine.connect() as connection:
            secured = connection.execute(
                text("SELECT to_regprocedure('lineage_nb_user_id()') IS NOT NULL")
            ).scalar()
            role = connection.execute(text("SELECT current_user")).scalar() if secured else None
        _server_handles[key] = str(role) if role is not None else None
    return _server_handles[key]


def user_id_for(db: Database, connection: Connection | None = None) -> int:
    """The id of the current user (``track(user=...)``, ``LINEAGE_NB_USER`` or OS login), cached.

    On a PostgreSQL database set up by ``setup-postgres`` it is always the login role's user.
    A user not cached yet is looked up (or created) on ``connection`` when given: inside the
    writing transaction itself, so nothing waits for a second connection (on SQLite that would
    wait for the write lock this transaction may hold).
    """
    handle = server_handle(db) or _active_handle.get(db_key(db)) or user_handle()
    cached = _users.get((db_key(db), handle))
    if cached is not None:
        return cached
    if connection is None:
        return ensure_user(db, handle).id
    found, created = _user_on(connection, handle)
    if not created:  # a row created in this transaction is gone if it rolls back: not cached
        _users[(db_key(db), handle)] = found
    return found


def _user_on(connection: Connection, handle: str) -> tuple[int, bool]:
    """``(id, created now)`` of user ``handle`` on ``connection``, created if missing."""
    users = cast(Table, User.__table__)
    lookup = select(users.c.id).where(users.c.handle == handle)
    found = connection.execute(lookup).scalar()
    if found is not None:
        return int(found), False
    connection.execute(insert(users).values(handle=handle, created_at=utcnow()))
    return int(connection.execute(lookup).scalar_one()), True


def ensure_user(
    db: Database, handle: str | None = None, *, name: str | None = None, email: str | None = None
) -> User:
    """Get or create the :class:`User` with ``handle`` (default: the current user)."""
    handle = server_handle(db) or handle or user_handle()
    for _attempt in range(3):
        with db.session() as session:
            user = session.execute(select(User).where(User.handle == handle)).scalar_one_or_none()
            if user is None:
                user = User(handle=handle, name=name, email=email)
                session.add(user)
            elif (name and user.name != name) or (email and user.email != email):
                user.name = name or user.name
                user.email = email or user.email
            try:
                session.commit()
            except SAIntegrityError:  # another process created it first
                session.rollback()
                continue
            _users[(db_key(db), handle)] = user.id
            return user
    raise RuntimeError(f"could not create user {handle!r}")  # pragma: no cover


def _transform_for(session: Session, identity: SourceIdentity, user_id: int) -> Transform:
    found = session.execute(
        select(Transform).where(
            Transform.key == identity.key, Transform.source_hash == identity.source_hash
        )
    ).scalar_one_or_none()
    if found is not None:
        return found
    versions = session.execute(
        select(func.count()).select_from(Transform).where(Transform.key == identity.key)
    ).scalar_one()
    transform = Transform(
        key=identity.key,
        version=str(versions + 1),
        type=identity.type,
        source_hash=identity.source_hash,
        source_code=identity.source_code,
        created_by_id=user_id,
    )
    session.add(transform)
    session.flush()
    return transform


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_runs(db: Database) -> list[Run]:
    """Mark ``started`` runs of dead processes on this host as ``aborted``; returns them.

    ``finished_at`` (and ``last_seen_at``) become the time of the run's last event, or its start.
    Runs of live processes, and runs on other hosts, are left alone.
    """
    host = socket.gethostname()
    aborted = []
    with db.session() as session, session.begin():
        candidates = session.execute(
            select(Run).where(Run.status == "started", Run.host == host)
        ).scalars().all()
        for run in candidates:
            if run.pid is None or run.pid == os.getpid() or _pid_alive(run.pid):
                continue
            last_event = session.execute(
                select(func.max(RecordEvent.at)).where(RecordEvent.run_id == run.id)
            ).scalar()
            seen = max(filter(None, [last_event, run.last_seen_at, run.started_at]))
            changed = session.execute(
                update(Run)
                .where(Run.id == run.id, Run.status == "started")
                .values(status="aborted", finished_at=seen, last_seen_at=seen,
                        event_count=_event_count(run.id))
            )
            if changed.rowcount:  # type: ignore[attr-defined]
                run.status, run.finished_at, run.last_seen_at = "aborted", seen, seen
                aborted.append(run)
    for run in aborted:
        warnings.warn(
            f"lineage_nb: run {run.id} (pid {run.pid}) was left 'started' by a process that no "
            f"longer exists; marked it 'aborted' as of {run.finished_at:%Y-%m-%d %H:%M:%S} UTC.",
            LineageWarning,
            stacklevel=3,
        )
    return aborted


def track(
    transform: Transform | SourceIdentity | str | os.PathLike[str] | None = None,
    *,
    user: str | None = None,
    db: Database | None = None,
) -> Run:
    """Open a run for a script or notebook and bind it to ``ln.context.current_run``.

    Args:
        transform: a :class:`Transform`, a path to the script/notebook, a name for a transform
            without a file (``"nightly-import"``: no path separator, no ``.py``/``.ipynb``), or
            None for the running ``__main__`` script.
        user: the user's handle (default ``LINEAGE_NB_USER`` or the OS login).
        db: the database (default: the one from ``ln.connect()``).

    Returns:
        The new :class:`Run` (status ``started``).

    Raises:
        OperationalError: the database refused the write (full disk, read-only, connection lost);
            no run was opened.

    Examples:
        >>> import lineage_nb as ln
        >>> _ = ln.connect("sqlite://")
        >>> run = ln.track("<doctest>")  # doctest: +SKIP
    """
    db = db or get_database()
    previous = context.get_run()
    if previous is not None and _opened_here(previous):
        finish("completed", run=previous)
        warnings.warn(
            f"lineage_nb: track() finished the open run {previous.id} as 'completed' before "
            "starting a new one.",
            LineageWarning,
            stacklevel=2,
        )
    mark_dead_runs(db)
    handle = user or user_handle()
    server = server_handle(db)
    if server is not None and user is not None and user != server:
        warnings.warn(
            f"lineage_nb: this database takes the user from the login role {server!r}; "
            f"track(user={user!r}) is ignored.",
            LineageWarning,
            stacklevel=2,
        )
    handle = server or handle
    with _our_write_errors():
        user_id = ensure_user(db, handle).id
    _active_handle[db_key(db)] = handle
    if isinstance(transform, Transform):
        identity = None
    elif isinstance(transform, SourceIdentity):
        identity = transform
    else:
        identity = script_identity(transform)
    env = environment()
    with _our_write_errors():
        run = _open_run_retrying(db, transform, identity, user_id, env)
    run._ln_db = db  # type: ignore[attr-defined]
    run._ln_thread = threading.get_ident()  # type: ignore[attr-defined]
    context.set_run(run)
    return run


class tracking:
    """A run for a block: ``with ln.tracking("nightly-import") as run: ...`` (or ``async with``).

    Takes :func:`track`'s arguments. The run finishes ``completed`` when the block ends, or
    ``errored`` when it raises (the exception goes on).
    """

    def __init__(
        self,
        transform: Transform | SourceIdentity | str | os.PathLike[str] | None = None,
        *,
        user: str | None = None,
        db: Database | None = None,
    ) -> None:
        self._arguments = (transform, user, db)
        self.run: Run | None = None

    def __enter__(self) -> Run:
        transform, user, db = self._arguments
        self.run = track(transform, user=user, db=db)
        return self.run

    def __exit__(self, kind: type[BaseException] | None, *_rest: Any) -> None:
        finish("completed" if kind is None else "errored", run=self.run)

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        self.__exit__(kind, *rest)


def _opened_here(run: Run) -> bool:
    """True when ``run`` is bound to this context or was opened by this thread."""
    return context.current_run.get() is run or getattr(run, "_ln_thread", None) == (
        threading.get_ident()
    )


def _open_run(
    db: Database,
    transform: Transform | SourceIdentity | str | os.PathLike[str] | None,
    identity: SourceIdentity | None,
    user_id: int,
    env: dict[str, Any],
) -> Run:
    with db.session() as session, session.begin():
        chosen = transform if isinstance(transform, Transform) else None
        if identity is not None:
            chosen = _transform_for(session, identity, user_id)
        assert chosen is not None
        run = Run(
            uid=str(uuid.uuid4()),
            transform_id=chosen.id,
            status="started",
            started_at=utcnow(),
            created_by_id=user_id,
            python_version=sys.version.split()[0],
            environment=env,
            host=socket.gethostname(),
            pid=os.getpid(),
            errored_cells=[],
        )
        session.add(run)
        session.flush()
        session.refresh(run)  # load transform and created_by for use after the session
    return run


@contextmanager
def _our_write_errors() -> Iterator[None]:
    """Turn the database refusing a write (full disk, read-only, connection lost) into ours."""
    try:
        yield
    except SAOperationalError as error:
        raise translate(error) from error


def _open_run_retrying(
    db: Database,
    transform: Transform | SourceIdentity | str | os.PathLike[str] | None,
    identity: SourceIdentity | None,
    user_id: int,
    env: dict[str, Any],
) -> Run:
    """:func:`_open_run`, again when another process created the same transform first."""
    for attempt in range(3):
        try:
            return _open_run(db, transform, identity, user_id, env)
        except SAIntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _event_count(run_id: int) -> Any:
    """The number of events of run ``run_id``, as a scalar subquery (stored when it ends)."""
    return select(func.count(RecordEvent.id)).where(RecordEvent.run_id == run_id).scalar_subquery()


def finish(status: str = "completed", *, run: Run | None = None) -> Run | None:
    """Close ``run`` (default: the current one) with ``status``; returns it, or None if none.

    Raises:
        ValidationError: ``status`` is not one of started, completed, errored, aborted.
    """
    if status not in RUN_STATUSES:
        raise ValidationError(
            {"status": [f"{status!r} is not one of {list(RUN_STATUSES)}."]}, model="Run",
            value=status,
        )
    run = run or context.get_run()
    if run is None:
        return None
    db: Database = getattr(run, "_ln_db", None) or get_database()
    now = utcnow()
    with db.session() as session, session.begin():
        reads.write_in_session(session, run)  # what it read and has not written yet
        session.execute(
            update(Run).where(Run.id == run.id).values(
                status=status, finished_at=now, last_seen_at=now, errored_cells=run.errored_cells,
                event_count=_event_count(run.id),
            )
        )
    run.status, run.finished_at, run.last_seen_at = status, now, now
    context.unbind(run)
    seal(db)  # hash what the run wrote into the log (skipped, not waited for, when busy)
    return run


def note_cell_error(cell: int | None) -> None:
    """Record on the current run that notebook cell ``cell`` raised (the run keeps going)."""
    run = context.get_run()
    if run is None or cell is None:
        return
    cells: list[Any] = list(run.errored_cells or [])
    if cell not in cells:
        cells.append(cell)
    run.errored_cells = cells
    db: Database = getattr(run, "_ln_db", None) or get_database()
    with db.session() as session, session.begin():
        session.execute(update(Run).where(Run.id == run.id).values(errored_cells=cells))
