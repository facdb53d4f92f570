"""Helpers shared by the widgets: error reporting in the widget, cell text, pk parsing."""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd

from ..lineage.reads import untracked_reads
from ..views.html import format_value

__all__ = ["cell_text", "error_html", "parse_pk", "reporting"]

F = TypeVar("F", bound=Callable[..., Any])


def error_html(message: str) -> str:
    """The escaped error banner shown inside a widget."""
    if not message:
        return ""
    return (
        '<div style="color:#b71c1c;background:#ffebee;padding:4px 8px;border-radius:4px">'
        f"⚠ {html.escape(message)}</div>"
    )


def reporting(method: F) -> F:
    """Run a widget callback (its reads are not the run's inputs); an exception sets
    ``self.error`` instead of raising a traceback."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with untracked_reads():  # looking at records is not using them
                result = method(self, *args, **kwargs)
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"
            return None
        self.error = ""
        return result

    return wrapper  # type: ignore[return-value]


def cell_text(value: Any) -> str:
    """Short display text of one table cell (plain text; Label widgets show it as text)."""
    if value is None or (not isinstance(value, (list, dict)) and bool(pd.isna(value))):
        return "—"
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    text = format_value(value)
    return text if len(text) <= 60 else text[:59] + "…"


def parse_pk(column: Any, text: str) -> Any:
    """``text`` as a value of primary-key ``column`` (``"3"`` → ``3`` for integer keys)."""
    try:
        return column.type.python_type(text)
    except (NotImplementedError, TypeError, ValueError):
        return text
