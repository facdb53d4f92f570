"""``DetailPane``: one record's fields, related records (clickable), history and lineage picture."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
from sqlalchemy import inspect
from traitlets import List, Unicode, observe

from ..views.html import record_html
from ..views.picture import LineagePicture
from ._util import error_html, reporting

__all__ = ["DetailPane"]

MAX_RELATED = 20
_HISTORY_COLUMNS = ["at", "action", "changes", "cell", "run", "user_handle"]
_HISTORY_STYLE = (
    "<style>.lnb-history{border-collapse:collapse;font-size:12px}.lnb-history th,"
    ".lnb-history td{text-align:left;padding:1px 8px 1px 0;vertical-align:top}</style>"
)


def _title(obj: Any) -> str:
    state = inspect(obj)
    transform = state.dict.get("transform")
    if transform is not None:  # a run: "run 12 · analysis.ipynb v3"
        return f"{obj.label} · {transform.label}"
    if isinstance(getattr(type(obj), "label", None), property):
        return f"{type(obj).__name__} {obj.label}"
    for name in ("name", "label", "title", "handle", "key"):
        if isinstance(state.dict.get(name), str):
            return f"{type(obj).__name__} {state.identity[0]}: {state.dict[name]}"
    return f"{type(obj).__name__} {', '.join(str(v) for v in state.identity or ())}"


def _section(title: str) -> w.HTML:
    return w.HTML(f"<h4 style='margin:8px 0 2px'>{html.escape(title)}</h4>")


class DetailPane(w.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """Shows the selected record; related records are buttons that open them here.

    Traits: ``title`` (e.g. ``"Sample 3: s1"``), ``related`` (the related records' button
    labels), ``trail`` (titles of the records ``back`` returns to) and ``error``.
    """

    title = Unicode("").tag(sync=True)
    related = List(Unicode()).tag(sync=True)
    trail = List(Unicode()).tag(sync=True)
    error = Unicode("").tag(sync=True)

    def __init__(self, *, depth: int = 3, **kwargs: Any) -> None:
        self.depth, self._trail = depth, list[Any]()
        self.record: Any = None
        self.header = w.HTML("<i>Select a row to see the record.</i>")
        self.back_button = w.Button(description="◀ back", disabled=True,
                                    layout=w.Layout(width="80px"))
        self.back_button.on_click(lambda _: self.back())
        self.error_box = w.HTML()
        self.fields, self.history, self.lineage = w.HTML(), w.HTML(), w.HTML()
        self.related_box = w.VBox(layout=w.Layout(align_items="flex-start"))
        super().__init__([
            w.HBox([self.back_button, self.header]), self.error_box, self.fields,
            _section("Related records"), self.related_box, _section("History"), self.history,
            _section("Lineage"), self.lineage,
        ], layout=w.Layout(min_width="360px", padding="0 0 0 12px"), **kwargs)

    @observe("error")
    def _show_error(self, change: dict[str, Any]) -> None:
        self.error_box.value = error_html(change["new"])

    @reporting
    def show(self, record: Any, *, remember: bool = True) -> None:
        """Show ``record`` (its related records should be loaded, e.g. with ``load_all()``)."""
        self._show(record, remember)

    def _show(self, record: Any, remember: bool = True) -> None:
        if remember and self.record is not None:
            self._trail.append(self.record)
        self.record = record
        self.title = _title(record)
        self.header.value = f"<b>{html.escape(self.title)}</b>"
        self.fields.value = (
            record._repr_html_() if hasattr(record, "_repr_html_") else record_html(record)
        )
        self._show_related(record)
        self.history.value = self._history_html(record)
        lineage = getattr(record, "lineage", None)
        self.lineage.value = (
            LineagePicture(lineage(self.depth), title=f"Lineage of {self.title}").svg
            if callable(lineage) else "<i>—</i>"
        )
        self.trail = [_title(r) for r in self._trail]
        self.back_button.disabled = not self._trail

    def _show_related(self, record: Any) -> None:
        state = inspect(record)
        buttons: list[w.Widget] = []
        labels: list[str] = []
        for rel in state.mapper.relationships:
            value = state.dict.get(rel.key)
            items = list(value) if isinstance(value, (list, set, tuple)) else [value]
            items = [item for item in items if item is not None]
            for item in items[:MAX_RELATED]:
                label = f"{rel.key}: {_title(item)}"
                button = w.Button(description=label, tooltip=label,
                                  layout=w.Layout(width="auto", max_width="420px"))
                button.on_click(lambda _, item=item: self.open_related(item))
                buttons.append(button)
                labels.append(label)
            if len(items) > MAX_RELATED:
                buttons.append(w.Label(f"… and {len(items) - MAX_RELATED} more {rel.key}"))
        self.related_box.children = buttons or [w.HTML("<i>none loaded</i>")]
        self.related = labels

    @staticmethod
    def _history_html(record: Any) -> str:
        if not hasattr(record, "history_df"):
            return "<i>—</i>"
        frame = record.history_df()
        if not len(frame):
            return "<i>no events recorded</i>"
        shown = frame[[c for c in _HISTORY_COLUMNS if c in frame.columns]].astype(object)
        shown = shown.where(shown.notna(), "—")
        shown["at"] = [f"{t:%Y-%m-%d %H:%M:%S}" for t in frame["at"]]
        table = shown.to_html(index=False, escape=True, border=0, classes="lnb-history")
        return _HISTORY_STYLE + str(table)

    # -- navigation ----------------------------------------------------------------------------
    @reporting
    def open_related(self, item: Any) -> None:
        """Open a related record (reloaded with its own related records)."""
        pk = inspect(item).identity
        fresh = type(item).get(pk[0] if pk and len(pk) == 1 else pk)
        self._show(fresh.load_all() if hasattr(fresh, "load_all") else fresh)

    @reporting
    def back(self) -> None:
        """Return to the previously shown record."""
        if self._trail:
            self._show(self._trail.pop(), remember=False)
