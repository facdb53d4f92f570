"""``Browser``: the one widget behind ``ln.widgets.browse`` — a paged table and a detail pane.

An anywidget (the ipywidgets protocol, so JupyterLab, Notebook 7, VS Code and voila show it)
whose front end (``static/browser.js``, ``static/browser.css``, shipped in the package) draws
only the current page. The kernel side keeps the state in synced traits and answers each change
with SQL through :class:`~lineage_nb.widgets._source.PagedSource`: a new page is one
``LIMIT``/``OFFSET`` query; new filters are one ``COUNT`` plus the page (and the summaries when
they are shown).

Traits (synced): ``title``, ``columns`` (name and kind of each column), ``rows`` (display text of
the current page, ``None`` for missing values), ``row_keys`` (the rows' primary keys as text),
``page`` (0-based), ``page_size``, ``page_count``, ``total``, ``estimated`` (the two counts are
the planner.s estimate), ``sort_column``, ``sort_descending``, ``filters`` (column → filter text),
``search`` (text matched in every column), ``show_summaries``, ``summaries`` (column → summary),
``selected`` (primary key of the record opened from the table), ``detail`` (that record, see
:mod:`lineage_nb.widgets.detail`), ``download`` (the last file written) and ``error``.

Messages from the front end: ``{"action": "open", "target": i}`` (a related record, input,
output or picture node), ``{"action": "expand", "node": data_node}`` (a group node of the
picture, drawn one node per record), ``{"action": "back"}``, ``{"action": "download", "format":
"csv" | "parquet"}``. A download is written to the kernel's working directory and, when it is at most
:data:`SEND_BYTES_UP_TO` bytes, also sent to the front end as a message with the file's bytes.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anywidget
from traitlets import Bool, Dict, Int, List, Unicode, observe

from ..lineage.reads import untracked_reads
from ._source import PagedSource
from .detail import Detail

__all__ = ["SEND_BYTES_UP_TO", "Browser"]

STATIC = Path(__file__).with_name("static")
SEND_BYTES_UP_TO = 20_000_000
"""A downloaded file up to this size is also sent to the browser (a download link there)."""

F = TypeVar("F", bound=Callable[..., Any])


def reporting(method: F) -> F:
    """Run a callback from the front end: its reads are not the run's inputs, and an exception
    sets ``self.error`` (shown in the widget) instead of a traceback nobody sees."""

    @functools.wraps(method)
    def wrapper(self: Browser, *args: Any, **kwargs: Any) -> Any:
        try:
            with untracked_reads():
                result = method(self, *args, **kwargs)
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"
            return None
        self.error = ""
        return result

    return wrapper  # type: ignore[return-value]


class Browser(anywidget.AnyWidget):
    """Browse a model's records (or a query's): a sortable, filterable table of one page at a
    time; selecting a row shows the record in the detail pane.

    Args:
        source: a model class or a :class:`~lineage_nb.Query`.
        page_size: rows per page.
        depth: levels of upstream lineage in the detail pane's picture.
    """

    _esm = STATIC / "browser.js"
    _css = STATIC / "browser.css"

    title = Unicode("").tag(sync=True)
    columns: List[Any] = List().tag(sync=True)
    rows: List[Any] = List().tag(sync=True)
    row_keys = List(Unicode()).tag(sync=True)
    page = Int(0).tag(sync=True)
    page_size = Int(20).tag(sync=True)
    page_count = Int(1).tag(sync=True)
    total = Int(0).tag(sync=True)
    estimated = Bool(False).tag(sync=True)
    sort_column = Unicode("").tag(sync=True)
    sort_descending = Bool(False).tag(sync=True)
    filters = Dict().tag(sync=True)
    search = Unicode("").tag(sync=True)
    show_summaries = Bool(False).tag(sync=True)
    summaries = Dict().tag(sync=True)
    selected = Unicode("").tag(sync=True)
    detail = Dict().tag(sync=True)
    download = Dict().tag(sync=True)
    error = Unicode("").tag(sync=True)

    def __init__(self, source: Any, *, page_size: int = 20, depth: int = 3, **kwargs: Any) -> None:
        self.source = PagedSource(source)
        self.details = Detail(depth)
        self._loading = True
        self._total: tuple[int, bool] | None = None
        super().__init__(
            title=self.source.title,
            page_size=max(1, page_size),
            columns=[c.info() for c in self.source.columns],
            **kwargs,
        )
        self.on_msg(self._message)
        self._loading = False
        self.refresh(count=True)

    def __repr__(self) -> str:
        return f"<Browser of {self.source.title}: page {self.page + 1} of {self.page_count}>"

    # -- actions (Python API; the front end does the same through traits and messages) --------
    def go(self, page: int) -> None:
        """Show page ``page`` (0-based; clamped to the pages there are)."""
        self.page = max(0, min(page, self.page_count - 1))

    def sort_by(self, column: str) -> None:
        """Sort by ``column``; sorting by the current sort column again reverses the order."""
        if self.sort_column == column:
            self.sort_descending = not self.sort_descending
        else:
            with self.hold_trait_notifications():
                self.sort_descending = False
                self.sort_column = column

    def filter(self, column: str, text: str) -> None:
        """Set the filter of ``column`` (``""`` removes it); see the README for the syntax."""
        filters = dict(self.filters)
        filters[column] = text
        self.filters = {k: v for k, v in filters.items() if v.strip()}

    def select(self, key: Any) -> None:
        """Open the record with primary key ``key`` in the detail pane."""
        self.selected = str(key)

    def select_row(self, index: int) -> None:
        """Open the ``index``-th row of the current page in the detail pane."""
        if 0 <= index < len(self.row_keys):
            self.selected = self.row_keys[index]

    @reporting
    def open_target(self, target: int) -> None:
        """Open target ``target`` of the detail shown (related record, input, output, node)."""
        self.detail = self.details.open(int(target))

    @reporting
    def expand_group(self, node: str) -> None:
        """Draw the picture's group node ``node`` (its ``data-node``) one node per record."""
        self.detail = self.details.expand(node)

    @reporting
    def back(self) -> None:
        """Return the detail pane to the record shown before."""
        shown = self.details.back()
        if shown is not None:
            self.detail = shown

    @reporting
    def compute_summaries(self) -> None:
        """Compute the per-column summaries of the filtered rows (kept up to date from then on)."""
        self.summaries = self.source.summaries(dict(self.filters), self.search)

    @reporting
    def save(self, format: str = "csv", path: str | Path | None = None) -> Path:
        """Write the filtered, sorted rows with :mod:`lineage_nb.export.files` (all of them, not
        only the page) to ``path``, by default ``<Model>-<UTC time>.<format>`` in the working
        directory; ``download`` names the file.

        Raises:
            ValidationError: ``format`` is neither ``csv`` nor ``parquet``.
        """
        from ..errors import ValidationError
        from ..export.files import to_csv, to_parquet

        if format not in ("csv", "parquet"):
            raise ValidationError(
                f"cannot download as {format!r}.",
                field="format",
                value=format,
                hint="Use csv or parquet.",
            )
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        target = Path(path) if path is not None else Path.cwd() / f"{self.title}-{stamp}.{format}"
        query = self.source.query(
            dict(self.filters), self.search, self.sort_column, self.sort_descending
        )
        written = (to_csv if format == "csv" else to_parquet)(query, target, progress=False)
        size = written.stat().st_size
        self.download = {
            "path": str(written),
            "name": written.name,
            "format": format,
            "bytes": size,
            "sent": size <= SEND_BYTES_UP_TO,
        }
        if size <= SEND_BYTES_UP_TO:
            self.send(
                {"kind": "file", "name": written.name, "format": format}, [written.read_bytes()]
            )
        return written

    # -- state → rows ---------------------------------------------------------------------------
    def _message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        action = content.get("action")
        if action == "open" and isinstance(content.get("target"), int):
            self.open_target(content["target"])
        elif action == "expand" and isinstance(content.get("node"), str):
            self.expand_group(content["node"])
        elif action == "back":
            self.back()
        elif action == "download":
            self.save(str(content.get("format", "csv")))

    @observe("page")
    def _page_changed(self, change: dict[str, Any]) -> None:
        if not self._loading:
            self.refresh()

    @observe("sort_column", "sort_descending", "page_size")
    def _order_changed(self, change: dict[str, Any]) -> None:
        if not self._loading:
            self._first_page(count=False)

    @observe("filters", "search")
    def _filters_changed(self, change: dict[str, Any]) -> None:
        if not self._loading:
            self._first_page(count=True)
            if self.show_summaries and not self.error:
                self.compute_summaries()

    @observe("show_summaries")
    def _summaries_toggled(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.compute_summaries()

    @observe("selected")
    def _selected_changed(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.show_record(change["new"])

    def _first_page(self, count: bool) -> None:
        self._loading = True
        try:
            self.page = 0
        finally:
            self._loading = False
        self.refresh(count=count)

    @reporting
    def refresh(self, count: bool = False) -> None:
        """Fetch the current page (and, with ``count`` or when unknown, the row count)."""
        filters = {str(k): str(v) for k, v in self.filters.items()}
        if count or self._total is None:
            self._total = None
            self._total = self.source.total(filters, self.search)
        page = self.source.page(
            self.page,
            self.page_size,
            filters=filters,
            search=self.search,
            sort=self.sort_column,
            descending=self.sort_descending,
            total=self._total,
        )
        self._total = (page.total, page.estimated)
        self._loading = True
        try:
            with self.hold_sync():
                self.rows, self.row_keys = page.rows, page.keys
                self.page, self.page_count = page.number, page.count
                self.total, self.estimated = page.total, page.estimated
        finally:
            self._loading = False

    @reporting
    def show_record(self, key: Any) -> None:
        """Show the record with primary key ``key`` (its text or value) in the detail pane."""
        column = self.source.mapper.primary_key[0]
        value = key
        if isinstance(key, str):
            try:
                value = column.type.python_type(key)
            except (NotImplementedError, TypeError, ValueError):
                value = key
        self.details.clear()
        self.detail = self.details.show(self.source.get(value))
