"""Find which notebook a kernel is running, by every mechanism that exists.

In order: an explicit path (``%lineage track --notebook PATH``), VS Code's
``__vsc_ipynb_file__``, ipykernel's ``__session__`` (set from ``JPY_SESSION_NAME`` by Jupyter
Server, JupyterLab and nbclient runners that pass it), ``JPY_SESSION_NAME`` itself, and last the
working directory the kernel was started in when it holds exactly one notebook (nbclient and
papermill start the kernel in the notebook's folder).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..lineage.identity import SourceIdentity, notebook_identity

__all__ = [
    "UNNAMED_KEY",
    "NotebookLocation",
    "find_notebook",
    "identify",
    "notebook_file",
    "unnamed_identity",
]

UNNAMED_KEY = "<unnamed notebook>"


@dataclass(frozen=True)
class NotebookLocation:
    """Where the notebook was found and by which mechanism (for ``%lineage status``)."""

    path: Path
    mechanism: str


def _existing(candidate: object, cwd: Path) -> Path | None:
    if not isinstance(candidate, (str, os.PathLike)) or not str(candidate).strip():
        return None
    text = str(candidate).strip()
    if text.startswith("file://"):
        text = text[len("file://") :]
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = cwd / path
    if path.suffix != ".ipynb":
        return None
    if path.is_file():
        return path
    in_cwd = cwd / path.name  # a server-relative path seen from the notebook's own folder
    return in_cwd if in_cwd.is_file() else None


def notebook_file(
    path: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None
) -> Path | None:
    """``path`` as an existing ``.ipynb`` file (relative to ``cwd``), or None."""
    return _existing(path, Path(cwd) if cwd is not None else Path.cwd())


def find_notebook(
    user_ns: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    explicit: str | os.PathLike[str] | None = None,
) -> NotebookLocation | None:
    """The running notebook's file, or None when no mechanism finds one.

    Args:
        user_ns: the kernel's user namespace (``__vsc_ipynb_file__``, ``__session__``).
        environ: environment variables (default ``os.environ``).
        cwd: the kernel's working directory (default the current one).
        explicit: a path given by the user; it wins when it exists.

    Returns:
        The path and the mechanism that found it, or None.
    """
    environ = os.environ if environ is None else environ
    base = Path(cwd) if cwd is not None else Path.cwd()
    candidates: list[tuple[object, str]] = [
        (explicit, "given with --notebook"),
        (user_ns.get("__vsc_ipynb_file__"), "VS Code (__vsc_ipynb_file__)"),
        (user_ns.get("__session__"), "Jupyter session (__session__)"),
        (environ.get("JPY_SESSION_NAME"), "JPY_SESSION_NAME"),
    ]
    for candidate, mechanism in candidates:
        found = _existing(candidate, base)
        if found is not None:
            return NotebookLocation(found.resolve(), mechanism)
    try:
        notebooks = sorted(p for p in base.glob("*.ipynb") if p.is_file())
    except OSError:
        notebooks = []
    if len(notebooks) == 1:
        return NotebookLocation(notebooks[0].resolve(), "the only notebook in the working directory")
    return None


def unnamed_identity() -> SourceIdentity:
    """The identity used when the notebook's file cannot be found."""
    return SourceIdentity(UNNAMED_KEY, "notebook", None, hashlib.sha256(b"").hexdigest())


def identify(location: NotebookLocation | None) -> SourceIdentity:
    """The transform identity of ``location`` (code cells' source hashed), or the unnamed one."""
    if location is None:
        return unnamed_identity()
    return notebook_identity(location.path)
