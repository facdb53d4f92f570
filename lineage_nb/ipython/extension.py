"""``%load_ext lineage_nb``: connect, identify the notebook, open a run and stamp every cell.

The run is bound when the extension loads (in a synchronous cell, so the ``ContextVar`` reaches
every later cell; see ipykernel issue 749) and is also the process-wide active run, which covers
threads and widget callbacks that do not inherit the context. ``pre_run_cell`` records the cell's
execution count, ``post_run_cell`` records cells that raised and clears the cell, so writes outside
any cell (a widget callback fired by the browser, a thread still running after its cell) carry
the run and no cell. Kernel shutdown and restart fire
``atexit`` (never ``unload_ipython_extension``), so the run is finished there; a killed kernel's
run is marked ``aborted`` by the next ``connect()`` to the same database.

How the run ends at shutdown (see :func:`exit_status`): a *headless* run (nbclient,
``jupyter nbconvert --execute``, papermill) whose last executed cell raised stopped on that
error, so it ends ``errored``; every other run ends ``completed``, the cells that raised listed
in ``errored_cells``. A kernel is interactive when a frontend is known to own it: VS Code
(``__vsc_ipynb_file__``), Jupyter Server (it sets ``JPY_SESSION_NAME`` in the kernels it
starts; runners do not) or a running Jupyter server listing a session for this kernel. A plain
IPython shell (no kernel) is interactive too. Everything else is headless.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ..connect import connect
from ..db import Database, get_database
from ..errors import ConfigurationError
from ..lineage import cells, context, reads, runs
from ..lineage.schema import Run
from ..lineage.types import utcnow
from .notebook import (
    SERVER_SESSION,
    NotebookLocation,
    find_notebook,
    identify,
    kernel_id,
    notebook_file,
    server_session_path,
)

__all__ = [
    "ExtensionState",
    "exit_status",
    "frontend",
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
    #: how the last cell that ran ended (``ok``, ``error``, ``interrupted``; None: none yet)
    last_cell_status: str | None = None
    #: the interactive frontend that owns this kernel, as found when the run opened (None: none)
    frontend: str | None = None
    #: the directory the extension loaded in (the project root outside a git work tree)
    load_dir: Path | None = None
    warned_session: bool = False


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
    user_ns = getattr(shell, "user_ns", {}) or {}
    session, tried = _server_session(user_ns, notebook)
    location = find_notebook(user_ns, explicit=notebook, server_session=session)
    if (
        location is not None
        and session is None
        and not _state.warned_session
        and location.mechanism in ("Jupyter session (__session__)", "JPY_SESSION_NAME")
    ):
        _state.warned_session = True
        _say(
            f"{tried}, none has it; using {location.mechanism}, the name the notebook had when "
            "the kernel started (a rename since then is not seen)",
            error=True,
        )
    identity = identify(location, _state.load_dir)
    if _state.run is not None and _state.run.status == "started":
        runs.finish("completed", run=_state.run)
    run = runs.track(identity, user=user, db=db)
    _state.db, _state.run, _state.location = db, run, location
    _state.last_cell_status = None
    _state.frontend = frontend(shell) or (
        "Jupyter Server" if location is not None and location.mechanism == SERVER_SESSION else None
    )
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


def _server_session(user_ns: Mapping[str, Any], explicit: object) -> tuple[Path | None, str]:
    """The notebook path a running Jupyter server has for this kernel, and what was tried.

    Skipped (nothing asked) when the path was given or VS Code names it, or outside a kernel.
    """
    if explicit is not None or user_ns.get("__vsc_ipynb_file__"):
        return None, "not asked"
    kernel = kernel_id()
    if kernel is None:
        return None, "not in a kernel with a connection file"
    return server_session_path(kernel)


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
        db,
        run,
        execution_count=count,
        source=source,
        started_at=_state.cell_started or run.started_at or finished,
        finished_at=finished,
        status=_cell_status(result),
    )


def _post_run_cell(result: Any) -> None:
    failed = (
        getattr(result, "error_in_exec", None) is not None
        or getattr(result, "error_before_exec", None) is not None
    )
    if isinstance(getattr(result, "execution_count", None), int):
        _state.last_cell_status = _cell_status(result)
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


def frontend(shell: Any, environ: Mapping[str, str] | None = None) -> str | None:
    """The interactive frontend known to own this kernel, or None for a headless kernel.

    VS Code sets ``__vsc_ipynb_file__``; Jupyter Server starts its kernels with
    ``JPY_SESSION_NAME`` (nbclient, nbconvert and papermill do not); a shell without a kernel is
    a terminal IPython session.
    """
    environ = os.environ if environ is None else environ
    if getattr(shell, "kernel", None) is None:
        return "IPython terminal"
    if (getattr(shell, "user_ns", None) or {}).get("__vsc_ipynb_file__"):
        return "VS Code"
    if environ.get("JPY_SESSION_NAME"):
        return "Jupyter Server (JPY_SESSION_NAME)"
    return None


def exit_status(state: ExtensionState) -> str:
    """How the run ends when the kernel shuts down: ``errored`` or ``completed``.

    ``errored`` when the kernel is headless (no interactive frontend owns it, see
    :func:`frontend`) and the last cell that ran raised (or was interrupted, as nbclient does
    on a cell timeout): a runner stops at the first error (nbclient's ``allow_errors=False``) and
    shuts the kernel down right after it, so that error ended the run. An interactive user
    carries on after errors, so their run ends ``completed`` with ``errored_cells`` listed; so
    does a headless run that went on after an error (``allow_errors=True``).
    """
    stopped_on_error = state.last_cell_status in ("error", "interrupted")
    interactive = state.frontend is not None or frontend(state.shell) is not None
    return "errored" if stopped_on_error and not interactive else "completed"


def _finish_at_exit() -> None:
    run = _state.run
    if run is not None and run.status == "started":
        try:
            runs.finish(exit_status(_state), run=run)
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


def _record_earlier_cells(shell: Any, load_cell: int | None) -> None:
    """Store with the run the cells this kernel executed before the ``%load_ext`` cell.

    They are part of the code that ran (a notebook run top to bottom executes its first cells
    before the extension loads). IPython keeps their exact source, not when or how they ended:
    they are stored with the run's start time and status ``ok``.
    """
    run, db = _state.run, _state.db
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    if run is None or db is None or not isinstance(load_cell, int) or not history:
        return
    at = run.started_at
    for count in range(1, min(load_cell, len(history))):
        source = history[count]
        if isinstance(source, str) and source.strip():
            cells.record_cell(
                db,
                run,
                execution_count=count,
                source=source,
                started_at=at,
                finished_at=at,
                status="ok",
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
    _state.load_dir = Path.cwd()
    register(shell, state=state, track_notebook=track_notebook)
    shell.events.register("pre_run_cell", _pre_run_cell)
    shell.events.register("post_run_cell", _post_run_cell)
    atexit.register(_finish_at_exit)
    _check_ipykernel()
    load_cell = _cell_count(shell, fallback=False)  # the %load_ext cell, if any
    try:
        track_notebook(shell)
    except Exception as error:
        _say(f"not tracking this notebook: {_one_line(error)}", error=True)
    try:
        _record_earlier_cells(shell, load_cell)
    except Exception as error:
        _say(f"could not record the cells run before %load_ext: {_one_line(error)}", error=True)
    context.set_cell(load_cell)


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
