"""Open and close runs: :func:`track`, :func:`finish`, users, and clean-up of crashed runs.

Liveness. A run left ``started`` by a process that is gone is marked ``aborted`` by the next
:func:`track` or ``ln.connect()`` on the database (:func:`mark_dead_runs`). On the run's own
host that is known for sure: its pid no longer exists, or now belongs to a later process (the
process start time stored with the run, ``process_start``, differs; read from ``/proc`` on
Linux, unknown elsewhere, where the pid alone decides). A run on another host cannot be asked:
its process updates ``last_seen_at`` every ``LINEAGE_NB_HEARTBEAT_SECONDS`` (default 60) from a
daemon thread, stores that interval with the run, and the run counts as gone when it has not
been seen for ``MISSED_BEATS`` (3) intervals plus ``STALE_MARGIN`` (60 s, for clock skew and a
busy database). Runs without a stored interval (older versions, in-memory SQLite) are never
judged by their heartbeat.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError as SAOperationalError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..db import Database, get_database
from ..errors import ValidationError
from ..orm.translate import translate
from . import context, reads
from .identity import SourceIdentity, environment, notebook_code, script_identity, user_handle
from .schema import RUN_STATUSES, Cell, CellSource, RecordEvent, Run, Transform, User
from .types import utcnow
from .verify import seal

__all__ = [
    "LineageWarning",
    "beat",
    "db_key",
    "ensure_user",
    "finish",
    "heartbeat_interval",
    "mark_dead_runs",
    "note_cell_error",
    "process_start",
    "run_gone",
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


HEARTBEAT_ENV = "LINEAGE_NB_HEARTBEAT_SECONDS"
DEFAULT_HEARTBEAT_SECONDS = 60
#: A run on another host is gone when not seen for this many of its heartbeat intervals ...
MISSED_BEATS = 3
#: ... plus this margin (clock skew between hosts, a database busy for a while).
STALE_MARGIN = dt.timedelta(seconds=60)


def heartbeat_interval() -> int:
    """Seconds between heartbeats: ``LINEAGE_NB_HEARTBEAT_SECONDS`` (a whole number >= 1), else 60."""
    try:
        value = int(os.environ.get(HEARTBEAT_ENV, "").strip() or DEFAULT_HEARTBEAT_SECONDS)
    except ValueError:
        return DEFAULT_HEARTBEAT_SECONDS
    return max(1, value)


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat[stat.rindex(")") + 2 :].split()
    except (OSError, ValueError):
        return None


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as ``<boot id>:<start tick>`` (Linux), or None if unknown.

    Two processes that had the same pid have different values, across reboots too.
    """
    fields = _proc_stat(pid)
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return None
    if fields is None or len(fields) < 20:
        return None
    return f"{boot}:{fields[19]}"[:64]  # field 22 of stat: starttime in clock ticks since boot


_own_start: dict[int, str | None] = {}


def _own_process_start() -> str | None:
    """This process's :func:`process_start`, read once per process (a fork reads it again)."""
    pid = os.getpid()
    if pid not in _own_start:
        _own_start.clear()
        _own_start[pid] = process_start(pid)
    return _own_start[pid]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:  # not a pid this OS can have
        return False
    fields = _proc_stat(pid)
    return not (fields is not None and fields[0] in ("Z", "X"))  # a zombie is gone


def run_gone(run: Run, host: str, now: dt.datetime) -> str | None:
    """Why ``run`` (status ``started``) can no longer be running, or None when it may be.

    On this host: its pid is not alive, or belongs to a process that started at another time
    than the run's. On another host: it stored a heartbeat interval and has not been seen for
    ``MISSED_BEATS`` intervals plus ``STALE_MARGIN``.
    """
    if run.host == host:
        if run.pid is None:
            return None
        if run.pid == os.getpid():
            current = _own_process_start()
        elif not _pid_alive(run.pid):
            return "no longer exists"
        else:
            current = process_start(run.pid)
        if run.process_start and current and current != run.process_start:
            return "now belongs to a later process"
        return None
    if not run.heartbeat_seconds:
        return None
    seen = max(filter(None, [run.last_seen_at, run.started_at]))
    limit = MISSED_BEATS * dt.timedelta(seconds=run.heartbeat_seconds) + STALE_MARGIN
    if now - seen > limit:
        return f"on {run.host} has not been seen since {seen:%Y-%m-%d %H:%M:%S} UTC"
    return None


def mark_dead_runs(db: Database) -> list[Run]:
    """Mark ``started`` runs whose process is gone as ``aborted`` (see :func:`run_gone`).

    ``finished_at`` (and ``last_seen_at``) become the time of the run's last event or heartbeat,
    or its start. Called by :func:`track` and by every ``ln.connect()``. Returns the runs marked.
    """
    host = socket.gethostname()
    now = utcnow()
    aborted: list[tuple[Run, str]] = []
    with db.session() as session, session.begin():
        candidates = session.execute(select(Run).where(Run.status == "started")).scalars().all()
        for run in candidates:
            reason = run_gone(run, host, now)
            if reason is None:
                continue
            last_event = session.execute(
                select(func.max(RecordEvent.at)).where(RecordEvent.run_id == run.id)
            ).scalar()
            seen = max(filter(None, [last_event, run.last_seen_at, run.started_at]))
            changed = session.execute(
                update(Run)
                .where(Run.id == run.id, Run.status == "started")
                .values(
                    status="aborted",
                    finished_at=seen,
                    last_seen_at=seen,
                    event_count=_event_count(run.id),
                )
            )
            if changed.rowcount:  # type: ignore[attr-defined]
                run.status, run.finished_at, run.last_seen_at = "aborted", seen, seen
                aborted.append((run, reason))
    if server_handle(db) is not None:  # a team database: the server aborts silent runs of anyone
        aborted.extend(_aborted_by_server(db))
    for run, reason in aborted:
        warnings.warn(
            f"lineage_nb: run {run.id} was left 'started' by a process (pid {run.pid}) that "
            f"{reason}; "
            f"marked it 'aborted' as of {run.finished_at:%Y-%m-%d %H:%M:%S} UTC.",
            LineageWarning,
            stacklevel=3,
        )
    return [run for run, _reason in aborted]


def _aborted_by_server(db: Database) -> list[tuple[Run, str]]:
    """On a team database: runs of any member that stopped beating, aborted by the server
    (``lineage_nb_abort_silent_runs``, which applies :func:`run_gone`'s rule for other hosts)."""
    with db.session() as session, session.begin():
        ids = session.execute(text("SELECT public.lineage_nb_abort_silent_runs()")).scalars().all()
        runs = session.execute(select(Run).where(Run.id.in_(ids))).scalars().all() if ids else []
    return [(run, "stopped sending its heartbeat") for run in runs]


def _can_beat(db: Database) -> bool:
    """Whether another thread can reach ``db`` (an in-memory SQLite database is per connection)."""
    return not (db.dialect == "sqlite" and db.url.database in (None, "", ":memory:"))


def beat(db: Database, run_ids: list[int]) -> int:
    """Set ``last_seen_at`` of the ``started`` runs ``run_ids`` to now; returns how many."""
    if not run_ids:
        return 0
    with db.session() as session, session.begin():
        changed = session.execute(
            update(Run)
            .where(Run.id.in_(run_ids), Run.status == "started")
            .values(last_seen_at=utcnow())
        )
    return int(changed.rowcount)  # type: ignore[attr-defined]


class _Heartbeat:
    """One daemon thread per process beating for the process's open runs.

    It sleeps for the shortest interval of its runs (a run added meanwhile wakes it to take
    its interval), writes one UPDATE per database per beat, ends when no run is left, and never
    raises: a failed beat is reported once per database in one line and tried again next time.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._runs: dict[int, tuple[Database, int]] = {}
        self._thread: threading.Thread | None = None
        self._added = False
        self._warned: set[str] = set()

    def add(self, run_id: int, db: Database, interval: int) -> None:
        with self._changed:
            self._runs[run_id] = (db, interval)
            self._added = True
            self._changed.notify()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="lineage_nb-heartbeat", daemon=True
                )
                self._thread.start()

    def discard(self, run_id: int) -> None:
        with self._changed:
            self._runs.pop(run_id, None)

    def _loop(self) -> None:
        while True:
            with self._changed:
                if not self._runs:
                    self._thread = None
                    return
                self._added = False
                self._changed.wait(min(i for _db, i in self._runs.values()))
                if self._added:  # a run was added: sleep again with its interval counted
                    continue
                by_db: dict[int, tuple[Database, list[int]]] = {}
                for run_id, (db, _i) in self._runs.items():
                    by_db.setdefault(id(db), (db, []))[1].append(run_id)
            for db, run_ids in by_db.values():
                self._beat(db, run_ids)

    def _beat(self, db: Database, run_ids: list[int]) -> None:
        if getattr(db, "_closed", False):  # closed by the user: nothing left to beat for
            for run_id in run_ids:
                self.discard(run_id)
            return
        try:
            beat(db, run_ids)
        except Exception as error:  # never into the user's code: say it once, try again later
            if db.cache_key not in self._warned:
                self._warned.add(db.cache_key)
                first = (str(error).strip().splitlines() or [""])[0]
                warnings.warn(
                    f"lineage_nb: could not update the heartbeat of run(s) {run_ids}: "
                    f"{type(error).__name__}: {first}",
                    LineageWarning,
                    stacklevel=1,
                )


_heartbeat = _Heartbeat()


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
        run = _open_run(db, transform, identity, user_id, env)
    run._ln_db = db  # type: ignore[attr-defined]
    run._ln_thread = threading.get_ident()  # type: ignore[attr-defined]
    context.set_run(run)
    if run.heartbeat_seconds:
        _heartbeat.add(run.id, db, run.heartbeat_seconds)
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
    """Insert the run (and its transform when new), again when another process created the
    same transform at the same moment."""
    for attempt in range(3):
        try:
            return _insert_run(db, transform, identity, user_id, env)
        except SAIntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _insert_run(
    db: Database,
    transform: Transform | SourceIdentity | str | os.PathLike[str] | None,
    identity: SourceIdentity | None,
    user_id: int,
    env: dict[str, Any],
) -> Run:
    with db.session() as session, session.begin():
        chosen = transform if isinstance(transform, Transform) else None
        created = False
        if identity is not None:
            chosen, created = _transform_for(session, identity, user_id)
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
            process_start=_own_process_start(),
            heartbeat_seconds=heartbeat_interval() if _can_beat(db) else None,
            last_seen_at=utcnow(),
            source_path=identity.path if identity is not None else None,
        )
        session.add(run)
        session.flush()
        session.refresh(run)  # load transform and created_by for use after the session
    run._ln_new_transform = created  # type: ignore[attr-defined]
    return run


@contextmanager
def _our_write_errors() -> Iterator[None]:
    """Turn the database refusing a write (full disk, read-only, connection lost) into ours."""
    try:
        yield
    except SAOperationalError as error:
        raise translate(error) from error


def _event_count(run_id: int) -> Any:
    """The number of events of run ``run_id``, as a scalar subquery (stored when it ends)."""
    return select(func.count(RecordEvent.id)).where(RecordEvent.run_id == run_id).scalar_subquery()


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


def _final_transform(db: Database, session: Session, run: Run) -> Transform | None:
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
                return _repoint(session, run, transform, may_edit=not shared)
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
    session: Session, run: Run, transform: Transform, *, may_edit: bool
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
    provisional = may_edit and bool(getattr(run, "_ln_new_transform", False)) and others == 0
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
    run = run or context.get_run()
    if run is None:
        return None
    db: Database = getattr(run, "_ln_db", None) or get_database()
    now = utcnow()
    with db.session() as session, session.begin():
        reads.write_in_session(session, run)  # what it read and has not written yet
        final = _final_transform(db, session, run)
        session.execute(
            update(Run)
            .where(Run.id == run.id)
            .values(
                status=status,
                finished_at=now,
                last_seen_at=now,
                errored_cells=run.errored_cells,
                event_count=_event_count(run.id),
            )
        )
    run.status, run.finished_at, run.last_seen_at = status, now, now
    if final is not None:
        run.transform_id = final.id
        set_committed_value(run, "transform", final)
    _heartbeat.discard(run.id)
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
