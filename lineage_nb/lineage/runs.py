"""Open and close runs: :func:`track`, :func:`tracking`, :func:`finish`.

A run opened here is bound to this context and to the process fallback as an
:class:`~lineage_nb.lineage.context.ActiveRun`; liveness (dead runs, the heartbeat) is
:mod:`.liveness`, users :mod:`.users`.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError as SAOperationalError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..db import Database, get_database
from ..errors import LineageWarning, ValidationError
from ..orm.translate import translate
from . import context, reads
from .context import ActiveRun
from .identity import SourceIdentity, environment, notebook_code, script_identity, user_handle
from .liveness import (
    can_beat,
    event_count,
    heartbeat_interval,
    heartbeat_of,
    mark_dead_runs,
    own_process_start,
)
from .schema import RUN_STATUSES, Cell, CellSource, Run, Transform
from .types import utcnow
from .users import ensure_user, server_handle, set_active_handle
from .verify import seal

__all__ = ["finish", "note_cell_error", "track", "tracking"]


def _next_version(session: Session, key: str) -> str:
    """One more than the highest version of transform ``key`` ("1" for the first)."""
    versions = session.execute(select(Transform.version).where(Transform.key == key)).scalars()
    numbers = [int(v) for v in versions if str(v).isdigit()]
    return str(max(numbers, default=0) + 1)


def _transform_for(
    session: Session, identity: SourceIdentity, user_id: int
) -> tuple[Transform, bool]:
    """The transform of ``identity`` and whether it was created now.

    A notebook with a stable id (its metadata's) is the notebook its id was first seen as: its
    key is the key of the oldest transform with that id, wherever the file is now (a renamed
    notebook keeps its history; ``Run.source_path`` records the new path). Otherwise the key
    is the path. Within a key, the version is the source hash.
    """
    key = identity.key
    if identity.notebook_id is not None:
        first = session.execute(
            select(Transform.key)
            .where(Transform.notebook_id == identity.notebook_id)
            .order_by(Transform.id)
            .limit(1)
        ).scalar()
        key = str(first) if first is not None else key
    found = session.execute(
        select(Transform).where(Transform.key == key, Transform.source_hash == identity.source_hash)
    ).scalar_one_or_none()
    if found is not None:
        return found, False
    transform = Transform(
        key=key,
        version=_next_version(session, key),
        type=identity.type,
        source_hash=identity.source_hash,
        source_code=identity.source_code,
        created_by_id=user_id,
        notebook_id=identity.notebook_id,
    )
    session.add(transform)
    session.flush()
    return transform, True


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
    previous = context.get_active()
    if previous is not None and _opened_here(previous):
        finish("completed", run=previous.run)
        warnings.warn(
            f"lineage_nb: track() finished the open run {previous.run.id} as 'completed' before "
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
    set_active_handle(db, handle)
    if isinstance(transform, Transform):
        identity = None
    elif isinstance(transform, SourceIdentity):
        identity = transform
    else:
        identity = script_identity(transform)
    env = environment()
    with _our_write_errors():
        run, created = _open_run(db, transform, identity, user_id, env)
    context.set_run(ActiveRun(run, db, new_transform=created))
    if run.heartbeat_seconds:
        heartbeat_of(db).add(run.id, run.heartbeat_seconds)
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


def _opened_here(active: ActiveRun) -> bool:
    """True when ``active`` is bound to this context or was opened by this thread."""
    return context.current_run.get() is active.run or active.thread == threading.get_ident()


def _open_run(
    db: Database,
    transform: Transform | SourceIdentity | str | os.PathLike[str] | None,
    identity: SourceIdentity | None,
    user_id: int,
    env: dict[str, Any],
) -> tuple[Run, bool]:
    """Insert the run (and its transform when new), again when another process created the
    same transform at the same moment; returns the run and whether its transform is new."""
    for attempt in range(3):
        try:
            with db.session() as session, session.begin():
                chosen = transform if isinstance(transform, Transform) else None
                created = False
                if identity is not None:
                    chosen, created = _transform_for(session, identity, user_id)
                assert chosen is not None
                run = _new_run(db, chosen.id, user_id, env, identity)
                session.add(run)
                session.flush()
                session.refresh(run)  # load transform and created_by for use after the session
            return run, created
        except SAIntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _new_run(
    db: Database,
    transform_id: int,
    user_id: int,
    env: dict[str, Any],
    identity: SourceIdentity | None,
) -> Run:
    """A ``started`` run of this process (not added to a session yet)."""
    return Run(
        uid=str(uuid.uuid4()),
        transform_id=transform_id,
        status="started",
        started_at=utcnow(),
        created_by_id=user_id,
        python_version=sys.version.split()[0],
        environment=env,
        host=socket.gethostname(),
        pid=os.getpid(),
        errored_cells=[],
        process_start=own_process_start(),
        heartbeat_seconds=heartbeat_interval() if can_beat(db) else None,
        last_seen_at=utcnow(),
        source_path=identity.path if identity is not None else None,
    )


@contextmanager
def _our_write_errors() -> Iterator[None]:
    """Turn the database refusing a write (full disk, read-only, connection lost) into ours."""
    try:
        yield
    except SAOperationalError as error:
        raise translate(error) from error


def _executed_code(session: Session, run: Run) -> tuple[str, str] | None:
    """Source and hash of the cells ``run`` executed, in execution order (None: no cells)."""
    sources = (
        session.execute(
            select(CellSource.text)
            .join(Cell, Cell.source_hash == CellSource.hash)
            .where(Cell.run_id == run.id)
            .order_by(Cell.execution_count)
        )
        .scalars()
        .all()
    )
    return notebook_code(list(sources)) if sources else None


def _final_transform(
    db: Database, session: Session, run: Run, *, created_it: bool
) -> Transform | None:
    """Make a notebook run's transform the code it executed; returns the new one, or None.

    A notebook run starts with the version of its file's code cells (what the extension can know
    when it loads). At the end, the cells it executed (``lineage_cell``, in execution order) are
    the code that actually ran; when their hash differs (the notebook was edited during the run,
    cells were run out of the file or added), the run gets the transform of that code: an
    existing one with the same key and hash, else the provisional transform itself when this
    run created it and no other run uses it (its code is replaced, its version number kept),
    else a new version. A provisional transform left without runs is deleted. Runs that executed
    no recorded cell keep their transform, and so do runs of a notebook whose file was not found
    (its transform has no source code: versions of an unknown notebook would mean nothing; the
    cells are stored with the run all the same). Never fails ``finish()``: on a conflict with another
    process it retries once, on any other database error it warns in one line.

    On a database set up by ``setup-postgres`` members may not change or delete transforms: the
    run is re-pointed to an existing or new version, the file's version stays as it is.
    """
    transform = session.get(Transform, run.transform_id)
    if (
        transform is None
        or transform.type != "notebook"
        or transform.source_code is None  # no file was found: an unnamed notebook stays one
    ):
        return None
    shared = server_handle(db) is not None
    for attempt in range(2):
        try:
            with session.begin_nested():
                return _repoint(session, run, transform, may_edit=not shared, created_it=created_it)
        except SAIntegrityError:  # another process created the same version at once
            if attempt == 1:
                break
        except SQLAlchemyError as error:
            warnings.warn(
                f"lineage_nb: run {run.id} keeps the version of its file; the version of the "
                f"code it executed could not be stored: {type(error).__name__}",
                LineageWarning,
                stacklevel=3,
            )
            return None
    return None


def _repoint(
    session: Session, run: Run, transform: Transform, *, may_edit: bool, created_it: bool
) -> Transform | None:
    executed = _executed_code(session, run)
    if executed is None or executed[1] == transform.source_hash:
        return None
    code, digest = executed
    others = session.execute(
        select(func.count())
        .select_from(Run)
        .where(Run.transform_id == transform.id, Run.id != run.id)
    ).scalar_one()
    provisional = may_edit and created_it and others == 0
    final = session.execute(
        select(Transform).where(Transform.key == transform.key, Transform.source_hash == digest)
    ).scalar_one_or_none()
    if final is None and provisional:
        transform.source_hash, transform.source_code = digest, code
        session.flush()
        return transform
    if final is None:
        final = Transform(
            key=transform.key,
            version=_next_version(session, transform.key),
            type="notebook",
            source_hash=digest,
            source_code=code,
            created_by_id=run.created_by_id,
            notebook_id=transform.notebook_id,
        )
        session.add(final)
        session.flush()
    session.execute(update(Run).where(Run.id == run.id).values(transform_id=final.id))
    if provisional:
        session.delete(transform)
        session.flush()
    return final


def finish(status: str = "completed", *, run: Run | None = None) -> Run | None:
    """Close ``run`` (default: the current one) with ``status``; returns it, or None if none.

    A notebook run's transform becomes the code the run executed (see :func:`_final_transform`).

    Raises:
        ValidationError: ``status`` is not one of started, completed, errored, aborted.
    """
    if status not in RUN_STATUSES:
        raise ValidationError(
            {"status": [f"{status!r} is not one of {list(RUN_STATUSES)}."]},
            model="Run",
            value=status,
        )
    active = context.active_of(run) if run is not None else context.get_active()
    run = run or (active.run if active is not None else None)
    if run is None:
        return None
    db = active.db if active is not None else get_database()
    now = utcnow()
    with db.session() as session, session.begin():
        if active is not None:
            reads.write_in_session(session, active)  # what it read and has not written yet
        final = _final_transform(
            db, session, run, created_it=active is not None and active.new_transform
        )
        session.execute(
            update(Run)
            .where(Run.id == run.id)
            .values(
                status=status,
                finished_at=now,
                last_seen_at=now,
                errored_cells=run.errored_cells,
                event_count=event_count(run.id),
            )
        )
    copies = {id(r): r for r in (run, active.run if active is not None else run)}
    for finished in copies.values():  # the run given, and the process's own copy of it
        finished.status, finished.finished_at, finished.last_seen_at = status, now, now
        if final is not None:
            finished.transform_id = final.id
            set_committed_value(finished, "transform", final)
        context.unbind(finished)
    heartbeat_of(db).discard(run.id)
    seal(db)  # hash what the run wrote into the log (skipped, not waited for, when busy)
    return run


def note_cell_error(cell: int | None) -> None:
    """Record on the current run that notebook cell ``cell`` raised (the run keeps going)."""
    active = context.get_active()
    if active is None or cell is None:
        return
    run, db = active.run, active.db
    cells: list[Any] = list(run.errored_cells or [])
    if cell not in cells:
        cells.append(cell)
    run.errored_cells = cells
    with db.session() as session, session.begin():
        session.execute(update(Run).where(Run.id == run.id).values(errored_cells=cells))
