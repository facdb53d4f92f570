"""HTML cards of the lineage tables' rows: runs (with their counts), transforms and users.

The values are read here (the lineage layer owns these tables); the card is drawn by the pure
:func:`lineage_nb.render.html.card`, which escapes every value.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from ..orm.session_scope import run_sync
from ..render.html import card, format_value, when
from .reads import write_pending
from .schema import RecordEvent, RunInput

__all__ = ["run_html", "transform_html", "user_html"]


def _loaded(obj: Any, name: str) -> Any:
    return inspect(obj).dict.get(name)


def _run_counts(run_id: int) -> tuple[int, int] | None:
    statement = select(
        select(func.count(RecordEvent.id)).where(RecordEvent.run_id == run_id).scalar_subquery(),
        select(func.coalesce(func.sum(RunInput.count), 0))
        .where(RunInput.run_id == run_id)
        .scalar_subquery(),
    )

    def counts(session: Session) -> Any:
        write_pending(session)  # inputs this process noted and has not written yet
        return session.execute(statement).one()

    try:
        row = run_sync(counts)
    except Exception:  # a display must not raise; the counts are simply left out
        return None
    return int(row[0]), int(row[1])


def run_html(run: Any) -> str:
    """An HTML card of a run: transform, user, status, times, counts; all escaped."""
    transform, user = _loaded(run, "transform"), _loaded(run, "created_by")
    of = f" of {transform.label}" if transform is not None else ""
    by = f" by {user.handle}" if user is not None else ""
    started, finished = _loaded(run, "started_at"), _loaded(run, "finished_at")
    status = _loaded(run, "status")
    line = f"run {run.id}{of}{by}, started {when(started)}"
    if status != "started":
        line += f", {status} {when(finished)}".rstrip()
    rows = [
        ("status", format_value(_loaded(run, "status"))),
        ("transform", transform.label if transform is not None else "—"),
        ("user", user.handle if user is not None else "—"),
        ("started", format_value(started)),
        ("finished", format_value(finished)),
    ]
    if started is not None and finished is not None:
        rows.append(("duration", str(finished - started).split(".")[0]))
    counts = _run_counts(run.id) if run.id is not None else None
    if counts is not None:
        rows.append(("wrote / read", f"{counts[0]} events / {counts[1]} records"))
    for name in ("errored_cells", "python_version", "host", "pid", "uid"):
        if _loaded(run, name) is not None:
            rows.append((name, format_value(_loaded(run, name))))
    return card(f"run {run.id}", line, rows)


def transform_html(t: Any) -> str:
    """An HTML card of a transform (a notebook or script at one version); all escaped."""
    line = (
        f"{_loaded(t, 'type') or 'transform'} {t.label}, first run {when(_loaded(t, 'created_at'))}"
    )
    rows = [
        (name, format_value(_loaded(t, name)))
        for name in ("key", "version", "type", "source_hash", "created_at")
    ]
    return card(t.label, line, rows)


def user_html(u: Any) -> str:
    """An HTML card of a user; all escaped."""
    rows = [
        (name, format_value(_loaded(u, name))) for name in ("handle", "name", "email", "created_at")
    ]
    return card(f"user {_loaded(u, 'handle')}", f"since {when(_loaded(u, 'created_at'))}", rows)
