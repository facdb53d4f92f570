"""Auto-load ``lineage_nb`` in every IPython kernel: a managed block in ``ipython_kernel_config.py``.

:func:`install` appends one marked block to the profile's kernel config (creating the file if
needed) and leaves everything else in it untouched; running it again changes nothing.
:func:`uninstall` removes exactly that block (and the file, when nothing else is left in it).
The block appends to ``c.InteractiveShellApp.extensions``, so the user's own extensions stay.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BEGIN", "END", "ConfigChange", "config_path", "install", "uninstall"]

BEGIN = "# >>> lineage_nb auto-load >>>"
END = "# <<< lineage_nb auto-load <<<"
BLOCK = f"""{BEGIN}
# Managed by `python -m lineage_nb install-kernel-config`; remove it with
# `python -m lineage_nb uninstall-kernel-config`. Loads the extension at every kernel start.
import importlib.util as _lineage_nb_util

if _lineage_nb_util.find_spec("lineage_nb") is not None:
    get_config().InteractiveShellApp.extensions.append("lineage_nb")  # noqa: F821
del _lineage_nb_util
{END}
"""
_BLOCK_RE = re.compile(rf"\n?{re.escape(BEGIN)}.*?{re.escape(END)}\n?", re.DOTALL)


@dataclass(frozen=True)
class ConfigChange:
    """What :func:`install` or :func:`uninstall` did.

    ``action`` is ``installed``, ``updated``, ``unchanged`` (install) or ``removed``,
    ``not-installed`` (uninstall); ``path`` is the config file.
    """

    action: str
    path: Path

    def __str__(self) -> str:
        messages = {
            "installed": "added the lineage_nb auto-load block to",
            "updated": "updated the lineage_nb auto-load block in",
            "unchanged": "lineage_nb auto-load is already installed in",
            "removed": "removed the lineage_nb auto-load block from",
            "not-installed": "lineage_nb auto-load was not installed in",
        }
        return f"{messages.get(self.action, self.action)} {self.path}"


def _ipython_dir() -> Path:
    try:
        from IPython.paths import get_ipython_dir
    except ImportError:
        return Path(os.environ.get("IPYTHONDIR") or Path.home() / ".ipython")
    return Path(get_ipython_dir())


def config_path(
    profile: str = "default", *, ipython_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The kernel config file of ``profile`` (``<ipython dir>/profile_<name>/...``)."""
    base = Path(ipython_dir) if ipython_dir is not None else _ipython_dir()
    return base / f"profile_{profile}" / "ipython_kernel_config.py"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".lineage_nb-", suffix=".py")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _current(profile: str, ipython_dir: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """The kernel config file of ``profile`` and its text (empty when there is no file yet)."""
    path = config_path(profile, ipython_dir=ipython_dir)
    return path, path.read_text(encoding="utf-8") if path.exists() else ""


def install(
    profile: str = "default", *, ipython_dir: str | os.PathLike[str] | None = None
) -> ConfigChange:
    """Make every IPython kernel of ``profile`` load ``lineage_nb`` at start.

    Args:
        profile: the IPython profile (default ``default``).
        ipython_dir: the IPython directory (default ``$IPYTHONDIR`` or ``~/.ipython``).

    Returns:
        What was done and to which file.
    """
    path, current = _current(profile, ipython_dir)
    match = _BLOCK_RE.search(current)
    if match is not None:
        if match.group(0).strip("\n") == BLOCK.strip("\n"):
            return ConfigChange("unchanged", path)
        _write(path, _BLOCK_RE.sub("\n" + BLOCK, current, count=1))
        return ConfigChange("updated", path)
    separator = (
        ""
        if not current or current.endswith("\n\n")
        else ("\n" if current.endswith("\n") else "\n\n")
    )
    _write(path, current + separator + BLOCK)
    return ConfigChange("installed", path)


def uninstall(
    profile: str = "default", *, ipython_dir: str | os.PathLike[str] | None = None
) -> ConfigChange:
    """Remove the auto-load block :func:`install` wrote; the rest of the file stays as it was.

    The arguments and what it returns are those of :func:`install`.
    """
    path, current = _current(profile, ipython_dir)
    if _BLOCK_RE.search(current) is None:
        return ConfigChange("not-installed", path)
    remaining = _BLOCK_RE.sub("\n", current, count=1)
    if not remaining.strip():
        path.unlink()
    else:
        _write(path, remaining.rstrip("\n") + "\n")
    return ConfigChange("removed", path)
