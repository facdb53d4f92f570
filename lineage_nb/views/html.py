"""Compact HTML tables for records, runs, transforms and users, with a lineage line.

Every value that comes from the database is passed through :func:`html.escape`; these functions
never raise because of the database (a failed lookup is shown, escaped, in place of the line).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

__all__ = ["lineage_line", "record_html", "run_html", "transform_html", "user_html"]

MAX_CHARS = 200
_STYLE = (
    "<style>.lnb-card{font:13px/1.4 system-ui,sans-serif;margin:2px 0}"
    ".lnb-card table{border-collapse:collapse}"
    ".lnb-card th{text-align:left;color:#555;font-weight:600;padding:1px 10px 1px 0;"
    "vertical-align:top}.lnb-card td{padding:1px 0;font-family:ui-monospace,monospace}"
    ".lnb-title{font-weight:700}.lnb-line{color:#444;margin:2px 0 4px}"
    ".lnb-stale{color:#8a5300;background:#fff8e1;padding:2px 4px;margin:2px 0 4px}</style>"
)


def _when(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M}"


def format_value(value: Any) -> str:
    """A short display text of a field value (not yet escaped).

    Examples:
        >>> format_value("x" * 300)[-14:]
        'x… (300 chars)'
        >>> format_value(None)
        '—'
    """
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    text = value.value if hasattr(value, "value") and not isinstance(value, str) else value
    text = str(text)
    if len(text) > MAX_CHARS:
        return f"{text[:MAX_CHARS]}… ({len(text)} chars)"
    return text


#: The longest code shown in a card; the rest is cut (``record.code()`` has all of it).
MAX_CODE = 2_000


def _card(
    title: str, line: str, rows: Iterable[tuple[str, str]], warning: str = "", code: str = ""
) -> str:
    """Assemble a card; every argument is plain text and gets escaped here."""
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    alert = f'<div class="lnb-stale">⚠ {html.escape(warning)}</div>' if warning else ""
    if len(code) > MAX_CODE:
        code = code[:MAX_CODE] + "\n…"
    shown = (
        f'<details class="lnb-code"><summary>code that wrote it</summary>'
        f"<pre>{html.escape(code)}</pre></details>"
        if code
        else ""
    )
    return (
        f'{_STYLE}<div class="lnb-card"><div class="lnb-title">{html.escape(title)}</div>'
        f'<div class="lnb-line">{html.escape(line)}</div>{alert}<table>{body}</table>{shown}</div>'
    )


def _code(record: Any) -> str:
    """The code of the cell (or script) that last wrote ``record`` ("" when unknown)."""
    code = getattr(record, "code", None)
    if inspect(record).key is None or not callable(code):
        return ""
    try:
        return str(code() or "")
    except Exception:  # a display must not raise for want of the code
        return ""


def stale_line(record: Any) -> str:
    """Why ``record`` is stale (plain text, not escaped), or "" when it is not.

    Returns:
        e.g. ``stale: its run read 2 records that changed since (sample 2: changed: value;
        sample 3: deleted)``.
    """
    stale_inputs = getattr(record, "stale_inputs", None)
    if inspect(record).key is None or not callable(stale_inputs):
        return ""
    try:
        frame = stale_inputs()
    except Exception as error:  # a display must not raise: show what went wrong instead
        return f"staleness unavailable ({type(error).__name__}: {error})"
    if not len(frame):
        return ""
    shown = "; ".join(
        f"{t} {pk}: {change}"
        for t, pk, change in zip(
            frame["table"][:5], frame["pk"][:5], frame["change"][:5], strict=True
        )
    )
    more = f"; … {len(frame) - 5} more" if len(frame) > 5 else ""
    return f"stale: its run read {len(frame)} record(s) that changed since ({shown}{more})"


def _event_phrase(verb: str, row: Any) -> str:
    """``created by alice in run 12 of analysis.ipynb v3, cell [7], 2026-11-23 14:02``."""
    text = f"{verb} by {row.handle}"
    if row.run_id is not None:
        text += f" in run {row.run_id} of {row.key} v{row.version}"
    else:
        text += " outside any run"
    if row.cell is not None:
        text += f", cell [{row.cell}]"
    return f"{text}, {_when(row.at)}"


def _event_query(table: str, pk: str, newest: bool) -> Any:
    from ..lineage.schema import RecordEvent, Run, Transform, User

    order = RecordEvent.id.desc() if newest else RecordEvent.id.asc()
    return (
        select(
            RecordEvent.action,
            RecordEvent.run_id,
            RecordEvent.cell,
            RecordEvent.at,
            User.handle,
            Transform.key,
            Transform.version,
        )
        .join(User, User.id == RecordEvent.user_id)
        .outerjoin(Run, Run.id == RecordEvent.run_id)
        .outerjoin(Transform, Transform.id == Run.transform_id)
        .where(RecordEvent.table == table, RecordEvent.pk == pk)
        .order_by(order)
        .limit(1)
    )


def lineage_line(record: Any) -> str:
    """One sentence on where ``record`` came from (plain text, not escaped).

    Returns:
        e.g. ``created by alice in run 12 of analysis.ipynb v3, cell [7], 2026-11-23 14:02;
        updated by bob in run 14 of clean.py v1, 2026-11-24 09:00``.
    """
    from ..lineage.stamping import record_key
    from ..orm.session_scope import run_sync

    if inspect(record).key is None:
        return "not saved yet"
    table, pk = record_key(record)

    def build(session: Session) -> str:
        first = session.execute(_event_query(table, pk, newest=False)).first()
        last = session.execute(_event_query(table, pk, newest=True)).first()
        if first is None or last is None:
            return "no lineage recorded"
        parts = [_event_phrase("created" if first.action == "insert" else first.action, first)]
        if last is not None and (last.at, last.run_id) != (first.at, first.run_id):
            verb = {"update": "last updated", "delete": "deleted"}.get(last.action, "written")
            parts.append(_event_phrase(verb, last))
        return "; ".join(parts)

    try:
        return run_sync(build)
    except Exception as error:  # a display must not raise: show what went wrong instead
        return f"lineage unavailable ({type(error).__name__}: {error})"


def _loaded_fields(record: Any) -> list[tuple[str, str]]:
    state = inspect(record)
    rows: list[tuple[str, str]] = []
    related = {
        next(iter(rel.local_columns)).key: rel.key
        for rel in state.mapper.relationships
        if rel.direction.name == "MANYTOONE" and len(rel.local_columns) == 1
    }
    for attr in state.mapper.column_attrs:
        if attr.key not in state.dict:
            rows.append((attr.key, "(not loaded)"))
            continue
        text = format_value(state.dict[attr.key])
        other = state.dict.get(related.get(attr.columns[0].key, ""))
        if other is not None:
            text += f" ({_label(other)})"
        rows.append((attr.key, text))
    return rows


def _label(obj: Any) -> str:
    label = getattr(type(obj), "label", None)
    if isinstance(label, property):
        return str(obj.label)
    state = inspect(obj)
    for name in ("name", "label", "title", "handle", "key"):
        if isinstance(state.dict.get(name), str):
            return str(state.dict[name])
    return f"{type(obj).__name__} {state.identity[0] if state.identity else '?'}"


def record_html(record: Any) -> str:
    """An HTML card of a user record: its loaded fields and its lineage line, all escaped."""
    state = inspect(record)
    ident = ", ".join(str(v) for v in state.identity) if state.identity else "(unsaved)"
    return _card(
        f"{type(record).__name__} {ident}",
        lineage_line(record),
        _loaded_fields(record),
        stale_line(record),
        _code(record),
    )


def _loaded(obj: Any, name: str) -> Any:
    return inspect(obj).dict.get(name)


def _run_counts(run_id: int) -> tuple[int, int] | None:
    from ..lineage.reads import write_pending
    from ..lineage.schema import RecordEvent, RunInput
    from ..orm.session_scope import run_sync

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
    line = f"run {run.id}{of}{by}, started {_when(started)}"
    if status != "started":
        line += f", {status} {_when(finished)}".rstrip()
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
    return _card(f"run {run.id}", line, rows)


def transform_html(t: Any) -> str:
    """An HTML card of a transform (a notebook or script at one version); all escaped."""
    line = f"{_loaded(t, 'type') or 'transform'} {t.label}, first run {_when(_loaded(t, 'created_at'))}"
    rows = [
        (name, format_value(_loaded(t, name)))
        for name in ("key", "version", "type", "source_hash", "created_at")
    ]
    return _card(t.label, line, rows)


def user_html(u: Any) -> str:
    """An HTML card of a user; all escaped."""
    rows = [
        (name, format_value(_loaded(u, name))) for name in ("handle", "name", "email", "created_at")
    ]
    return _card(f"user {_loaded(u, 'handle')}", f"since {_when(_loaded(u, 'created_at'))}", rows)
