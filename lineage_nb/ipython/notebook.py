"""Find which notebook a kernel is running, by every mechanism that exists.

In order: an explicit path (``%lineage track --notebook PATH``), VS Code's
``__vsc_ipynb_file__``, the running Jupyter server's session of this kernel (its current path,
also after a rename; :func:`server_session_path`), ipykernel's ``__session__`` (set from ``JPY_SESSION_NAME`` by Jupyter
Server, JupyterLab and nbclient runners that pass it), ``JPY_SESSION_NAME`` itself, and last the
working directory the kernel was started in when it holds exactly one notebook (nbclient and
papermill start the kernel in the notebook's folder).

A notebook is keyed by its path relative to its project root (the git work tree it is in, else
the directory the extension loaded in), so ``teamA/analysis.ipynb`` and ``teamB/analysis.ipynb``
are two notebooks, plus a stable id kept in its metadata (``metadata["lineage_nb"]["id"]``,
written into the file when absent and the file is writable), so a renamed notebook keeps its
transform (see :func:`identify`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import urllib.request
import uuid
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
    "kernel_id",
    "notebook_file",
    "notebook_id",
    "notebook_key",
    "project_root",
    "server_session_path",
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
    server_session: str | os.PathLike[str] | None = None,
) -> NotebookLocation | None:
    """The running notebook's file, or None when no mechanism finds one.

    Args:
        user_ns: the kernel's user namespace (``__vsc_ipynb_file__``, ``__session__``).
        environ: environment variables (default ``os.environ``).
        cwd: the kernel's working directory (default the current one).
        explicit: a path given by the user; it wins when it exists.
        server_session: the path a running Jupyter server has for this kernel's session
            (:func:`server_session_path`).

    Returns:
        The path and the mechanism that found it, or None.
    """
    environ = os.environ if environ is None else environ
    base = Path(cwd) if cwd is not None else Path.cwd()
    candidates: list[tuple[object, str]] = [
        (explicit, "given with --notebook"),
        (user_ns.get("__vsc_ipynb_file__"), "VS Code (__vsc_ipynb_file__)"),
        (server_session, SERVER_SESSION),
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
        return NotebookLocation(
            notebooks[0].resolve(), "the only notebook in the working directory"
        )
    return None


def unnamed_identity() -> SourceIdentity:
    """The identity used when the notebook's file cannot be found."""
    return SourceIdentity(UNNAMED_KEY, "notebook", None, hashlib.sha256(b"").hexdigest())


SERVER_SESSION = "Jupyter server session (/api/sessions)"


def kernel_id() -> str | None:
    """This kernel's id (from its connection file ``kernel-<id>.json``), or None outside one."""
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).name
    except Exception:  # not in a kernel, or no connection file
        return None
    if name.startswith("kernel-") and name.endswith(".json"):
        return name[len("kernel-") : -len(".json")]
    return None


def _server_files(runtime_dir: Path | None) -> list[Path]:
    if runtime_dir is None:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime_dir = Path(jupyter_runtime_dir())
    try:
        return sorted([*runtime_dir.glob("jpserver-*.json"), *runtime_dir.glob("nbserver-*.json")])
    except OSError:
        return []


def server_session_path(
    kernel: str, runtime_dir: Path | None = None, *, timeout: float = 1.0
) -> tuple[Path | None, str]:
    """The notebook a running Jupyter server has open with kernel ``kernel``, and what was tried.

    Reads the servers' files in the Jupyter runtime directory (``jpserver-*.json``; classic
    ``nbserver-*.json``), asks each ``GET /api/sessions`` with its token, and returns the
    session's path under the server's root (as the ``ipynbname`` package does). This is the
    notebook's current path, also after a rename in the browser. Never raises: a server that does
    not answer is skipped.

    Returns:
        ``(path or None, a one-line account of what was asked)``.
    """
    files = _server_files(runtime_dir)
    asked = 0
    for file in files:
        try:
            info = json.loads(file.read_text(encoding="utf-8"))
            base = str(info["url"]).rstrip("/") + "/"
            request = urllib.request.Request(f"{base}api/sessions")
            if info.get("token"):
                request.add_header("Authorization", f"token {info['token']}")
            if not base.startswith(("http://", "https://")):
                continue
            asked += 1
            with urllib.request.urlopen(request, timeout=timeout) as response:
                sessions = json.loads(response.read().decode("utf-8"))
            root = Path(info.get("root_dir") or info.get("notebook_dir") or "")
            for session in sessions:
                if (session.get("kernel") or {}).get("id") == kernel:
                    path = session.get("path") or (session.get("notebook") or {}).get("path")
                    if isinstance(path, str) and path:
                        return (root / path).expanduser(), f"found by {base}api/sessions"
        except Exception:  # a stale file, a server that is gone or refuses: try the next
            continue
    where = files[0].parent if files else (runtime_dir or "the Jupyter runtime directory")
    return None, f"asked {asked} running Jupyter server(s) listed in {where} for kernel {kernel}"


def project_root(notebook: Path, load_dir: Path) -> Path:
    """The git work tree ``notebook`` is in (a folder holding ``.git``), else ``load_dir``."""
    for folder in [notebook.parent, *notebook.parent.parents]:
        if (folder / ".git").exists():
            return folder
    return load_dir


def notebook_key(notebook: Path, root: Path) -> str:
    """``notebook``'s path relative to ``root`` with ``/`` separators (absolute when outside)."""
    resolved = notebook.resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


ID_FIELD = "lineage_nb"


def notebook_id(notebook: Path) -> tuple[str | None, str | None]:
    """The stable id in ``notebook``'s metadata, written into the file when it has none.

    The id lives at ``metadata["lineage_nb"]["id"]``. When absent and the file is writable, a new
    one is written (atomically: a temporary file replaces it). Never raises.

    Returns:
        ``(id or None, None or a one-line reason the id could not be read or written)``.
    """
    import nbformat

    try:
        document = nbformat.read(str(notebook), as_version=4)  # type: ignore[no-untyped-call]
        section = document.metadata.get(ID_FIELD)
        found = section.get("id") if isinstance(section, Mapping) else None
        if isinstance(found, str) and found.strip():
            return found.strip()[:64], None
        if not os.access(notebook, os.W_OK) or not os.access(notebook.parent, os.W_OK):
            return None, f"{notebook.name} is not writable, so it has no lineage_nb id"
        new = str(uuid.uuid4())
        document.metadata[ID_FIELD] = {
            **(section if isinstance(section, Mapping) else {}),
            "id": new,
        }
        handle, temporary = tempfile.mkstemp(
            prefix=".lineage_nb-", suffix=".ipynb", dir=notebook.parent
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                nbformat.write(document, out)  # type: ignore[no-untyped-call]
            mode = notebook.stat().st_mode & 0o777
            os.chmod(temporary, mode)
            os.replace(temporary, notebook)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return new, None
    except Exception as error:
        text = (str(error).strip().splitlines() or [""])[0]
        return None, f"could not keep an id in {notebook.name}: {type(error).__name__}: {text}"


def identify(location: NotebookLocation | None, load_dir: Path | None = None) -> SourceIdentity:
    """The transform identity of ``location`` (code cells' source hashed), or the unnamed one.

    The key is the path relative to the project root (:func:`project_root`; ``load_dir``
    defaults to the working directory) and the notebook's stable id is read, or written when
    missing (:func:`notebook_id`; a reason it could not be is printed in one line).
    """
    if location is None:
        return unnamed_identity()
    root = project_root(location.path, load_dir or Path.cwd())
    stable, problem = notebook_id(location.path)
    if problem is not None:
        print(f"lineage_nb: {problem}; a renamed copy will be a new notebook", file=sys.stderr)
    return notebook_identity(
        location.path, key=notebook_key(location.path, root), notebook_id=stable
    )
