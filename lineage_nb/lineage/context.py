"""Where the current run (and notebook cell) lives: ContextVars with a process-wide fallback.

``current_run`` is a ``contextvars.ContextVar``: asyncio tasks and cells see the run bound when the
extension loaded. Plain threads and callbacks that do not inherit the context fall back to the
process-wide active run, so their writes are stamped too.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .schema import Run

__all__ = [
    "current_cell",
    "current_run",
    "get_cell",
    "get_run",
    "set_cell",
    "set_run",
    "unbind",
]

current_run: contextvars.ContextVar[Run | None] = contextvars.ContextVar(
    "lineage_nb_current_run", default=None
)
current_cell: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "lineage_nb_current_cell", default=None
)

_process_run: Run | None = None
_process_cell: int | None = None


def get_run() -> Run | None:
    """The run bound to this context, else the process-wide active run, else None."""
    for run in (current_run.get(), _process_run):
        if run is not None and run.status == "started":
            return run
    return None


def set_run(run: Run | None) -> None:
    """Bind ``run`` to this context and make it the process-wide active run (None unbinds)."""
    global _process_run
    current_run.set(run)
    _process_run = run


def unbind(run: Run) -> None:
    """Unbind ``run`` from this context and from the process fallback, wherever it is bound.

    Another thread's run in the process fallback is left alone.
    """
    global _process_run
    if current_run.get() is run:
        current_run.set(None)
    if _process_run is run:
        _process_run = None


def get_cell() -> int | None:
    """The notebook cell (execution count) being executed, if any."""
    cell = current_cell.get()
    return cell if cell is not None else _process_cell


def set_cell(cell: int | None) -> None:
    """Record the executing cell's execution count (the IPython extension calls this)."""
    global _process_cell
    current_cell.set(cell)
    _process_cell = cell
