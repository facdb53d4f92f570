"""Compact HTML tables for records, runs, transforms and users, with a lineage line.

Every value that comes from the database is passed through :func:`html.escape`; these functions
never raise because of the database (a failed lookup is shown, escaped, in place of the line).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from ..lineage.cards import run_html, transform_html, user_html
from ..lineage.labels import LABEL_FIELDS
from ..render.html import card, format_value, when

__all__ = [
    "format_value",
    "lineage_line",
    "record_html",
    "run_html",
    "stale_line",
    "transform_html",
    "user_html",
]


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
    return f"{text}, {when(row.at)}"


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
    for name in LABEL_FIELDS:
        if isinstance(state.dict.get(name), str):
            return str(state.dict[name])
    return f"{type(obj).__name__} {state.identity[0] if state.identity else '?'}"


def record_html(record: Any) -> str:
    """An HTML card of a user record: its loaded fields and its lineage line, all escaped."""
    state = inspect(record)
    ident = ", ".join(str(v) for v in state.identity) if state.identity else "(unsaved)"
    return card(
        f"{type(record).__name__} {ident}",
        lineage_line(record),
        _loaded_fields(record),
        stale_line(record),
        _code(record),
    )
