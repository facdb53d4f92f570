"""lineage_nb: record-level data lineage for Jupyter.

Which notebook run, which cell, by whom and when produced or changed every record in your
database, on SQLite (embedded default) or PostgreSQL (shared team backend).

Examples:
    >>> import lineage_nb as ln
    >>> db = ln.connect("sqlite://")
"""

from __future__ import annotations

from . import errors as errors
from ._version import __version__ as __version__
from .connect import connect as connect
from .db import Database as Database
from .db import atomic as atomic
from .db import get_database as get_database
from .lineage import context as context
from .lineage.graph import runs as runs
from .lineage.graph import runs_df as runs_df
from .lineage.history import diff as diff
from .lineage.history import stale as stale
from .lineage.mixins import TracksRun as TracksRun
from .lineage.mixins import TracksUpdates as TracksUpdates
from .lineage.reads import untracked_reads as untracked_reads
from .lineage.runs import finish as finish
from .lineage.runs import track as track
from .lineage.runs import tracking as tracking
from .lineage.schema import Cell as Cell
from .lineage.schema import CellSource as CellSource
from .lineage.schema import RecordEvent as RecordEvent
from .lineage.schema import Run as Run
from .lineage.schema import RunInput as RunInput
from .lineage.schema import Transform as Transform
from .lineage.schema import User as User
from .lineage.verify import anchor as anchor
from .lineage.verify import verify as verify
from .model import Model as Model
from .orm import signals as signals
from .orm.query import Query as Query

__all__ = [
    "Cell",
    "CellSource",
    "Database",
    "Model",
    "Query",
    "RecordEvent",
    "Run",
    "RunInput",
    "TracksRun",
    "TracksUpdates",
    "Transform",
    "User",
    "anchor",
    "atomic",
    "connect",
    "context",
    "diff",
    "errors",
    "export",
    "finish",
    "get_database",
    "runs",
    "runs_df",
    "signals",
    "stale",
    "track",
    "tracking",
    "untracked_reads",
    "verify",
    "widgets",
]


def __getattr__(name: str) -> object:
    """Import the optional layers ``ln.export`` and ``ln.widgets`` on first use."""
    if name in ("export", "widgets"):
        import importlib

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'lineage_nb' has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext lineage_nb``: connect, identify the notebook and open a run."""
    from .ipython.extension import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """``%unload_ext lineage_nb``: finish the run."""
    from .ipython.extension import unload_ipython_extension as unload

    unload(ipython)
