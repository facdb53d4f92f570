"""``%load_ext lineage_nb``: connect, identify the notebook, open a run and stamp every cell.

The run is bound when the extension loads (in a synchronous cell, so the ``ContextVar`` reaches
every later cell; see ipykernel issue 749) and is also the process-wide active run, which covers
threads and widget callbacks that do not inherit the context. ``pre_run_cell`` records the cell's
execution count, ``post_run_cell`` records cells that raised and clears the cell, so writes outside
any cell (a widget callback fired by the browser, a thread still running after its cell) carry
the run and no cell. Kernel shutdown and restart fire
``atexit`` (never ``unload_ipython_extension``), so the run is finished there as ``completed``;
a killed kernel's run is marked ``aborted`` by the next ``track()`` on the same database.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from ..db import Database, connect, get_database
from ..errors import ConfigurationError
from ..lineage import cells, context, reads, runs
from ..lineage.schema import Run
from ..lineage.types import utcnow
from .notebook import NotebookLocation, find_notebook, identify, notebook_file

__all__ = [
    "ExtensionState",
    "load_ipython_extension",
    "state",
    "track_notebook",
    "unload_ipython_extension",
]


@dataclass
class ExtensionState:
    """What the loaded extension is tracking in this kernel."""

    shell: Any = None
    db: Database | None = None
    run: Run | None = None
    location: NotebookLocation | None = None
    warned_unnamed: bool = False
    #: when the executing cell started (None: it started before the extension loaded)
    cell_started: dt.datetime | None = None


_state = ExtensionState()


def state() -> ExtensionState:
    """The extension's state in this process (``shell`` is None when not loaded)."""
    return _state


def _say(message: str, *, error: bool = False) -> None:
    print(f"lineage_nb: {message}", file=sys.stderr if error else sys.stdout, flush=True)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _database() -> Database:
    try:
        return get_database()
    except ConfigurationError:
        return connect()


def track_notebook(
    shell: Any, *, notebook: str | os.PathLike[str] | None = None, user: str | None = None
) -> Run:
    """Finish the open run (if any) and open one for the notebook this kernel runs.

    Args:
        shell: the IPython shell (its ``user_ns`` is searched for the notebook's path).
        notebook: an explicit notebook path; it wins over every detection mechanism.
        user: the user's handle (default ``LINEAGE_NB_USER`` or the OS login).

    Returns:
        The new run, bound to ``ln.context.current_run`` and process-wide.

    Raises:
        ConfigurationError: ``notebook`` was given but is not a readable notebook.
    """
    if notebook is not None and notebook_file(notebook) is None:
        raise ConfigurationError(
            f"No notebook file at {str(notebook)!r}.",
            value=str(notebook),
            hint="Pass the path of an existing .ipynb file to --notebook.",
        )
    db = _database()
    location = find_notebook(getattr(shell, "user_ns", {}) or {}, explicit=notebook)
    identity = identify(location)
    if _state.run is not None and _state.run.status == "started":
        runs.finish("completed", run=_state.run)
    run = runs.track(identity, user=user, db=db)
    _state.db, _state.run, _state.location = db, run, location
    where = f"{run.transform.label}" + (f" (found via {location.mechanism})" if location else "")
    _say(f"tracking run {run.id} of {where} as {run.created_by.handle} in {db.url!r}")
    if location is None and not _state.warned_unnamed:
        _state.warned_unnamed = True
        _say(
            "could not find this notebook's file (no __vsc_ipynb_file__, __session__ or "
            "JPY_SESSION_NAME, and not exactly one .ipynb in the working directory); tracking "
            f"it as {identity.key!r}. Name it with: %lineage track --notebook PATH",
            error=True,
        )
    return run


def _cell_count(shell: Any, *, fallback: bool = True) -> int | None:
    """The execution count of the cell being run.

    IPython >= 9.8 increments ``shell.execution_count`` before ``pre_run_cell`` (older versions
    after the cell), so read the count from the ``ExecutionResult`` that ``run_cell_async`` is
    filling in; fall back to ``shell.execution_count``.
    """
    frame = sys._getframe(1)
    for _ in range(100):
        if frame.f_back is None:
            break
        frame = frame.f_back
        if frame.f_code.co_name == "run_cell_async":
            count = getattr(frame.f_locals.get("result"), "execution_count", None)
            if isinstance(count, int):
                return count
            break
    if not fallback:
        return None
    count = getattr(shell, "execution_count", None)
    return count if isinstance(count, int) else None


def _pre_run_cell(info: Any = None) -> None:
    shell = _state.shell
    _state.cell_started = utcnow()
    if shell is not None:
        context.set_cell(_cell_count(shell))


def _cell_status(result: Any) -> str:
    error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
    if error is None:
        return "ok"
    return "interrupted" if isinstance(error, KeyboardInterrupt) else "error"


def _record_cell(result: Any) -> None:
    """Store the cell that just ran (its exact source) with the run."""
    run, db = _state.run, _state.db
    count = getattr(result, "execution_count", None)
    source = getattr(getattr(result, "info", None), "raw_cell", None)
    if run is None or db is None or run.status != "started" or not isinstance(count, int):
        return
    if not isinstance(source, str):
        return
    finished = utcnow()
    cells.record_cell(
        db, run, execution_count=count, source=source,
        started_at=_state.cell_started or run.started_at or finished, finished_at=finished,
        status=_cell_status(result),
    )


def _post_run_cell(result: Any) -> None:
    failed = (
        getattr(result, "error_in_exec", None) is not None
        or getattr(result, "error_before_exec", None) is not None
    )
    try:
        if failed:
            runs.note_cell_error(getattr(result, "execution_count", None))
    except Exception as error:  # never break the user's next cell
        _say(f"could not record the failed cell: {_one_line(error)}", error=True)
    try:
        _record_cell(result)
    except Exception as error:
        _say(f"could not record the cell's code: {_one_line(error)}", error=True)
    try:
        if _state.db is not None:
            reads.write_now(_state.db)  # the records this cell read, once per cell
    except Exception as error:
        _say(f"could not record the cell's inputs: {_one_line(error)}", error=True)
    finally:
        context.set_cell(None)
        _state.cell_started = None


def _finish_at_exit() -> None:
    run = _state.run
    if run is not None and run.status == "started":
        try:
            runs.finish("completed", run=run)
        except Exception as error:  # the interpreter is going away; report, never raise
            _say(f"could not finish run {run.id}: {_one_line(error)}", error=True)


def _check_ipykernel() -> None:
    try:
        version = metadata.version("ipykernel")
    except metadata.PackageNotFoundError:
        return
    if version.startswith("7.0."):
        _say(
            f"ipykernel {version} loses context variables between cells (ipykernel issue "
            "1457); lineage falls back to the process-wide run. Upgrade: pip install "
            "'ipykernel!=7.0.*'",
            error=True,
        )


def load_ipython_extension(shell: Any) -> None:
    """Connect, identify the notebook, open a run and hook the cell events.

    Errors are reported in one line; the magic ``%lineage`` stays available to retry.
    """
    from .magics import register

    if _state.shell is not None:
        run = _state.run
        _say(f"already loaded (run {run.id if run else 'none'}); see %lineage status")
        return
    _state.shell = shell
    register(shell)
    shell.events.register("pre_run_cell", _pre_run_cell)
    shell.events.register("post_run_cell", _post_run_cell)
    atexit.register(_finish_at_exit)
    _check_ipykernel()
    try:
        track_notebook(shell)
    except Exception as error:
        _say(f"not tracking this notebook: {_one_line(error)}", error=True)
    context.set_cell(_cell_count(shell, fallback=False))  # the %load_ext cell, if any


def unload_ipython_extension(shell: Any) -> None:
    """Finish the run as ``completed`` and unhook the cell events."""
    if _state.shell is None:
        return
    for name, callback in (("pre_run_cell", _pre_run_cell), ("post_run_cell", _post_run_cell)):
        try:
            shell.events.unregister(name, callback)
        except ValueError:
            pass
    atexit.unregister(_finish_at_exit)
    run = _state.run
    if run is not None and run.status == "started":
        runs.finish("completed", run=run)
        _say(f"run {run.id} completed")
    context.set_cell(None)
    _state.shell = _state.run = _state.location = _state.db = None
