"""``PagedTable``: one page of rows at a time, with a text filter, column sort and row selection."""

from __future__ import annotations

from typing import Any

import ipywidgets as w
from traitlets import Bool, Int, List, Unicode, observe

from ..views.frames import label_columns
from ._source import PagedSource
from ._util import cell_text, error_html, reporting

__all__ = ["PagedTable"]

def _cell_layout() -> w.Layout:
    """A layout of its own for every cell (rows are hidden one by one)."""
    return w.Layout(overflow="hidden", margin="0 6px 0 0", max_width="180px")


class PagedTable(w.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """A server-side paged table: each page costs a row count and one LIMIT/OFFSET query.

    State lives in traits: ``page`` (0-based), ``page_count``, ``total``, ``estimated`` (the
    two counts are PostgreSQL's estimate of a big table, shown as "about"), ``filter_text``,
    ``sort_column``, ``sort_descending``, ``selected`` (primary key of the chosen row, as text),
    ``columns``, ``pks`` (the page's keys) and ``error``.
    """

    page = Int(0).tag(sync=True)
    page_count = Int(1).tag(sync=True)
    total = Int(0).tag(sync=True)
    estimated = Bool(False).tag(sync=True)
    filter_text = Unicode("").tag(sync=True)
    sort_column = Unicode("").tag(sync=True)
    sort_descending = Bool(False).tag(sync=True)
    selected = Unicode("").tag(sync=True)
    columns = List(Unicode()).tag(sync=True)
    pks = List(Unicode()).tag(sync=True)
    error = Unicode("").tag(sync=True)

    def __init__(self, source: PagedSource, page_size: int = 20, **kwargs: Any) -> None:
        self.source, self.page_size, self._loading = source, page_size, False
        labels = {label.name: label.key for label in label_columns(source.model)}
        hidden = set(labels.values())
        shown = [c for c in source.columns if c not in hidden]
        for name, key in labels.items():  # the label column takes the place of its foreign key
            shown.insert(shown.index(key) if key in shown else len(shown), name)
        self._sort_keys = {**{c: c for c in source.columns}, **labels}
        self.filter_box = w.Text(placeholder="filter (text or id)…", continuous_update=False,
                                 layout=w.Layout(width="260px"))
        self.filter_box.observe(lambda ch: setattr(self, "filter_text", ch["new"]), names="value")
        self.prev_button = w.Button(description="◀ prev", layout=w.Layout(width="80px"))
        self.next_button = w.Button(description="next ▶", layout=w.Layout(width="80px"))
        self.prev_button.on_click(lambda _: self.go(self.page - 1))
        self.next_button.on_click(lambda _: self.go(self.page + 1))
        self.status = w.Label()
        self.error_box = w.HTML()
        self.headers = [self._header(c) for c in shown]
        self.row_buttons = [self._row_button(i) for i in range(page_size)]
        self.cells = [[w.Label(layout=_cell_layout()) for _ in shown] for _ in range(page_size)]
        grid: list[w.Widget] = [w.Label("", layout=_cell_layout()), *self.headers]
        for button, row in zip(self.row_buttons, self.cells, strict=True):
            grid += [button, *row]
        self.grid = w.GridBox(grid, layout=w.Layout(
            grid_template_columns=f"auto repeat({len(shown)}, max-content)",
            grid_gap="1px 2px", align_items="center", overflow="auto"))
        toolbar = w.HBox([self.filter_box, self.prev_button, self.next_button, self.status])
        super().__init__([toolbar, self.error_box, self.grid], **kwargs)
        self.columns = shown
        self.refresh()

    def _header(self, column: str) -> w.Button:
        button = w.Button(description=column, tooltip=f"sort by {column}",
                          layout=w.Layout(width="auto"), style={"font_weight": "bold"})
        button.on_click(lambda _: self.sort_by(column))
        return button

    def _row_button(self, index: int) -> w.Button:
        button = w.Button(layout=w.Layout(width="auto", min_width="48px"))
        button.on_click(lambda _: self.select_row(index))
        return button

    # -- actions (what the user clicks) --------------------------------------------------------
    def go(self, page: int) -> None:
        """Show page ``page`` (0-based; clamped)."""
        self.page = max(0, min(page, self.page_count - 1))

    def sort_by(self, column: str) -> None:
        """Sort by ``column``; choosing the current sort column again reverses the order."""
        if self.sort_column == column:
            self.sort_descending = not self.sort_descending
        else:
            with self.hold_trait_notifications():
                self.sort_column, self.sort_descending = column, False

    def select_row(self, index: int) -> None:
        """Select the ``index``-th row of the current page."""
        if 0 <= index < len(self.pks):
            self.selected = self.pks[index]
            self._highlight()

    # -- state → view ----------------------------------------------------------------------
    @observe("page", "filter_text", "sort_column", "sort_descending")
    def _changed(self, change: dict[str, Any]) -> None:
        if self._loading:
            return
        if change["name"] == "filter_text":
            self.filter_box.value = change["new"]
        if change["name"] != "page":
            if self.page != 0:
                self.page = 0  # triggers the refresh
                return
        self.refresh()

    @observe("error")
    def _show_error(self, change: dict[str, Any]) -> None:
        self.error_box.value = error_html(change["new"])

    @reporting
    def refresh(self) -> None:
        """Fetch the current page from the database and show it."""
        sort = self._sort_keys.get(self.sort_column, self.sort_column)
        page = self.source.page(self.page, self.page_size, self.filter_text, sort,
                                self.sort_descending)
        frame = page.frame
        self._loading = True
        try:
            self.page, self.page_count, self.total = page.number, page.count, page.total
            self.estimated = page.estimated
        finally:
            self._loading = False
        self.pks = [str(v) for v in frame[self.source.pk_name]] if len(frame) else []
        for i, (button, row) in enumerate(zip(self.row_buttons, self.cells, strict=True)):
            visible = i < len(frame)
            button.layout.display = None if visible else "none"
            for name, cell in zip(self.columns, row, strict=True):
                cell.value = cell_text(frame[name].iloc[i]) if visible else ""
                cell.layout.display = None if visible else "none"
            button.description = self.pks[i] if visible else ""
        for name, header in zip(self.columns, self.headers, strict=True):
            arrow = (" ▼" if self.sort_descending else " ▲") if name == self.sort_column else ""
            header.description = name + arrow
        about = "about " if page.estimated else ""
        self.status.value = (
            f"page {page.number + 1} of {about}{page.count} · {about}{page.total:,} rows"
        )
        self.prev_button.disabled = page.number == 0
        self.next_button.disabled = page.number >= page.count - 1
        self._highlight()

    def _highlight(self) -> None:
        for pk, button in zip(self.pks, self.row_buttons, strict=False):
            button.button_style = "info" if pk == self.selected else ""
