"""``Browser``: the app behind ``ln.widgets.browse`` — a paged table beside a detail pane."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
from traitlets import Unicode, observe

from ._source import PagedSource
from ._util import error_html, parse_pk, reporting
from .detail import DetailPane
from .table import PagedTable

__all__ = ["Browser"]


class Browser(w.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """Browse a model's records (or a query's): select a row to see it in the detail pane.

    Args:
        source: a model class or a :class:`~lineage_nb.Query`.
        page_size: rows per page.

    Attributes:
        table: the :class:`PagedTable` (traits ``page``, ``filter_text``, ``sort_column``, ...).
        detail: the :class:`DetailPane` (traits ``title``, ``related``, ``error``).
    """

    error = Unicode("").tag(sync=True)

    def __init__(self, source: Any, *, page_size: int = 20, **kwargs: Any) -> None:
        self.source = PagedSource(source)
        self.table = PagedTable(self.source, page_size)
        self.detail = DetailPane()
        self.error_box = w.HTML()
        self.table.observe(self._selected, names="selected")
        heading = w.HTML(f"<h3 style='margin:4px 0'>{html.escape(self.source.title)}</h3>")
        self.table.layout = w.Layout(flex="1 1 auto", min_width="0", max_width="60%")
        self.detail.layout.flex = "1 1 40%"
        body = w.HBox([self.table, self.detail],
                      layout=w.Layout(align_items="flex-start", flex_flow="row wrap"))
        super().__init__([heading, self.error_box, body], **kwargs)

    def __repr__(self) -> str:
        return f"<Browser of {self.source.title}: page {self.table.page + 1}>"

    @observe("error")
    def _show_error(self, change: dict[str, Any]) -> None:
        self.error_box.value = error_html(change["new"])

    def _selected(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.show_record(change["new"])

    @reporting
    def show_record(self, pk: Any) -> None:
        """Show the record with primary key ``pk`` (text or value) in the detail pane."""
        column = self.source.mapper.primary_key[0]
        value = parse_pk(column, pk) if isinstance(pk, str) else pk
        self.detail.show(self.source.get(value))
