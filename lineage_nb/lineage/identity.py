"""Who and what: the user's handle, a script's or notebook's key, source and hash, the environment."""

from __future__ import annotations

import getpass
import hashlib
import os
import platform
import socket
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

__all__ = [
    "SourceIdentity",
    "environment",
    "notebook_code",
    "notebook_identity",
    "script_identity",
    "user_handle",
]

USER_ENV = "LINEAGE_NB_USER"


def user_handle() -> str:
    """``LINEAGE_NB_USER`` if set, else the OS login name."""
    handle = os.environ.get(USER_ENV, "").strip()
    if handle:
        return handle
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


@dataclass(frozen=True)
class SourceIdentity:
    """What a transform is: its key (path), kind, source text and the hash of that text."""

    key: str
    type: str
    source_code: str | None
    source_hash: str
    #: A notebook's stable id from its metadata (None: none could be read or written).
    notebook_id: str | None = None
    #: Where the file is now, as recorded on the run (a renamed notebook keeps its old key).
    path: str | None = None


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _key_for(path: Path) -> str:
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def script_identity(path: str | os.PathLike[str] | None = None) -> SourceIdentity:
    """Identity of a Python script: key = path (relative to the working directory when inside it).

    With no path, the running ``__main__`` script; an interactive session gets key ``<interactive>``.
    A name that is not a path and no file (``"nightly-import"``) is a logical transform of type
    ``job``: its key is the name, it has no source, and it stays version 1.
    """
    if path is None:
        main = sys.modules.get("__main__")
        path = getattr(main, "__file__", None)
        if path is None:
            return SourceIdentity("<interactive>", "script", None, _hash(""))
    file = Path(path)
    if str(file).endswith(".ipynb"):
        return notebook_identity(file)
    if isinstance(path, str) and is_transform_name(path) and not file.exists():
        return SourceIdentity(path, "job", None, _hash(""))
    try:
        source = file.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as error:
        raise ConfigurationError(
            f"Cannot read the script {str(file)!r} to identify it: {error.strerror}.",
            value=str(file),
            hint="Pass an existing path to ln.track().",
        ) from error
    return SourceIdentity(_key_for(file), "script", source, _hash(source))


def is_transform_name(text: str) -> bool:
    """Whether ``text`` names a transform without a file (``"nightly-import"``): no path
    separator and no ``.py``/``.ipynb`` suffix."""
    return (
        bool(text.strip())
        and "/" not in text
        and os.sep not in text
        and not text.endswith((".py", ".ipynb"))
    )


def notebook_identity(
    path: str | os.PathLike[str], *, key: str | None = None, notebook_id: str | None = None
) -> SourceIdentity:
    """Identity of a notebook: the hash covers code cells' source only (not outputs, metadata).

    ``key`` defaults to the path relative to the working directory; ``notebook_id`` is the id
    kept in the notebook's metadata, when known (``path`` is then the key too).

    Raises:
        ConfigurationError: the file is missing or not a readable notebook.
    """
    import nbformat

    file = Path(path)
    try:
        notebook = nbformat.read(str(file), as_version=4)  # type: ignore[no-untyped-call]
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        nbformat.ValidationError,
    ) as error:
        raise ConfigurationError(
            f"Cannot read the notebook {str(file)!r}: {error}.",
            value=str(file),
            hint="Check the path; the file must be a valid .ipynb (nbformat 4).",
        ) from error
    source, digest = notebook_code(
        [c.source for c in notebook.cells if c.get("cell_type") == "code"]
    )
    key = key or _key_for(file)
    return SourceIdentity(key, "notebook", source, digest, notebook_id=notebook_id, path=key)


#: Between two cells in a notebook transform's ``source_code``.
CELL_SEPARATOR = "\n\n# %% ----\n\n"


def notebook_code(cells: list[str]) -> tuple[str, str]:
    """The source text and hash of a notebook's code: ``cells`` in order, blank ones left out.

    The same function makes a notebook file's version (its code cells, when tracking starts) and
    a run's final one (the cells it executed, at ``finish()``), so a notebook run top to bottom
    unchanged gets the version of its file. Trailing newlines of a cell do not count (IPython's
    history drops them) and blank cells neither (runners do not execute them).
    """
    kept = [cell.rstrip("\n") for cell in cells if cell.strip()]
    source = CELL_SEPARATOR.join(kept)
    return source, _hash(source)


def environment() -> dict[str, Any]:
    """Python, platform, host and installed distributions (name → version)."""
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name] = dist.version
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "host": socket.gethostname(),
        "packages": dict(sorted(packages.items(), key=lambda kv: kv[0].lower())),
    }
