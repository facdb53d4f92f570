"""Interactive views for notebooks (an anywidget, imported only when used).

``browse(Sample)`` or ``browse(Sample.filter(...))`` opens one widget: a table of one page at a
time, sorted, filtered and summarised in SQL, with a detail pane (fields, staleness, related
records, history with cell sources, inputs, outputs and the lineage picture) of the selected row.
The core of lineage_nb never imports this package; anywidget and ipywidgets are needed only here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .browser import Browser

__all__ = ["Browser", "browse"]


def browse(source: Any, *, page_size: int = 20) -> Browser:
    """A browser widget of a model's records or a query's results.

    Args:
        source: a model class such as ``Sample``, or a query such as ``Sample.filter(...)``.
        page_size: rows per page; each page is one ``LIMIT``/``OFFSET`` query, each new set of
            filters one ``COUNT`` (an unfiltered, analyzed big table shows the planner's
            estimate instead).

    Returns:
        The :class:`~lineage_nb.widgets.browser.Browser` widget; display it in a notebook.

    Raises:
        ConfigurationError: anywidget or ipywidgets is not installed.
        ValidationError: ``source`` is neither a model class nor a query.
    """
    try:
        from .browser import Browser
    except ImportError as error:
        from ..errors import ConfigurationError

        raise ConfigurationError(
            f"ln.widgets.browse needs anywidget and ipywidgets ({error}).",
            hint="Install it with: pip install 'lineage_nb[jupyter]'.",
        ) from error
    return Browser(source, page_size=page_size)


def __getattr__(name: str) -> Any:
    if name == "Browser":
        from .browser import Browser

        return Browser
    raise AttributeError(f"module 'lineage_nb.widgets' has no attribute {name!r}")
