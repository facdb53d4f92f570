"""Pure HTML cards: a title, a line, a table of fields, a warning and code, all escaped here.

Every argument is plain text; nothing here reads a database.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from typing import Any

__all__ = ["MAX_CHARS", "MAX_CODE", "card", "format_value", "when"]

MAX_CHARS = 200
_STYLE = (
    "<style>.lnb-card{font:13px/1.4 system-ui,sans-serif;margin:2px 0}"
    ".lnb-card table{border-collapse:collapse}"
    ".lnb-card th{text-align:left;color:#555;font-weight:600;padding:1px 10px 1px 0;"
    "vertical-align:top}.lnb-card td{padding:1px 0;font-family:ui-monospace,monospace}"
    ".lnb-title{font-weight:700}.lnb-line{color:#444;margin:2px 0 4px}"
    ".lnb-stale{color:#8a5300;background:#fff8e1;padding:2px 4px;margin:2px 0 4px}</style>"
)


def when(moment: dt.datetime | None) -> str:
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


def card(
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
