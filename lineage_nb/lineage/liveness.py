"""Whether a run is still running, and the heartbeat that lets other hosts know.

A run left ``started`` by a process that is gone is marked ``aborted`` by the next
``track()`` or ``ln.connect()`` on the database (:func:`mark_dead_runs`). On the run's own
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
import functools
import os
import socket
import threading
import warnings
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text, update

from ..db import Database
from ..errors import LineageWarning
from .schema import RecordEvent, Run
from .state import state_of
from .types import utcnow
from .users import server_handle

__all__ = [
    "DEFAULT_HEARTBEAT_SECONDS",
    "HEARTBEAT_ENV",
    "MISSED_BEATS",
    "STALE_MARGIN",
    "Heartbeat",
    "beat",
    "can_beat",
    "event_count",
    "heartbeat_interval",
    "heartbeat_of",
    "mark_dead_runs",
    "own_process_start",
    "process_start",
    "run_gone",
]


def event_count(run_id: int) -> Any:
    """The number of events of run ``run_id``, as a scalar subquery (stored when it ends)."""
    return select(func.count(RecordEvent.id)).where(RecordEvent.run_id == run_id).scalar_subquery()


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


@functools.lru_cache(maxsize=1)
def _start_of(pid: int) -> str | None:
    return process_start(pid)


def own_process_start() -> str | None:
    """This process's :func:`process_start`, read once per process (a fork reads it again)."""
    return _start_of(os.getpid())


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
            current = own_process_start()
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
                    event_count=event_count(run.id),
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


def can_beat(db: Database) -> bool:
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


class Heartbeat:
    """One daemon thread per database beating for this process's open runs on it.

    It sleeps for the shortest interval of its runs (a run added meanwhile wakes it to take
    its interval), writes one UPDATE per beat, ends when no run is left or the database is
    closed, and never raises: a failed beat is reported once in one line and tried again.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._changed = threading.Condition()
        self._runs: dict[int, int] = {}  # run id -> its interval in seconds
        self._thread: threading.Thread | None = None
        self._added = False
        self._warned = False

    def add(self, run_id: int, interval: int) -> None:
        """Beat for run ``run_id`` every ``interval`` seconds (at least)."""
        with self._changed:
            self._runs[run_id] = interval
            self._added = True
            self._changed.notify()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="lineage_nb-heartbeat", daemon=True
                )
                self._thread.start()

    def discard(self, run_id: int) -> None:
        """Stop beating for run ``run_id`` (it finished)."""
        with self._changed:
            self._runs.pop(run_id, None)

    def stop(self) -> None:
        """Stop beating for every run and wake the thread so it ends now (the database closed)."""
        with self._changed:
            self._runs.clear()
            self._changed.notify()

    def _loop(self) -> None:
        while True:
            with self._changed:
                if not self._runs or self._db.closed:
                    self._runs.clear()
                    self._thread = None
                    return
                self._added = False
                self._changed.wait(min(self._runs.values()))
                if self._added:  # a run was added: sleep again with its interval counted
                    continue
                run_ids = list(self._runs)
            if not self._db.closed:
                self._beat(run_ids)

    def _beat(self, run_ids: list[int]) -> None:
        try:
            beat(self._db, run_ids)
        except Exception as error:  # never into the user's code: say it once, try again later
            if not self._warned:
                self._warned = True
                first = (str(error).strip().splitlines() or [""])[0]
                warnings.warn(
                    f"lineage_nb: could not update the heartbeat of run(s) {run_ids}: "
                    f"{type(error).__name__}: {first}",
                    LineageWarning,
                    stacklevel=1,
                )


def heartbeat_of(db: Database) -> Heartbeat:
    """The :class:`Heartbeat` of ``db`` (one per database, kept in its :class:`LineageState`)."""
    state = state_of(db)
    with state.lock:
        if state.heartbeat is None:
            state.heartbeat = Heartbeat(db)
            db.on_close(state.heartbeat.stop)
        return state.heartbeat
