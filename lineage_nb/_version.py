"""The version of lineage_nb: ``version`` in ``pyproject.toml``, read from package metadata.

``pyproject.toml`` is the one place the version is written; the installed distribution's
metadata carries it, and everything that shows it (``ln.__version__``, ``lineage-nb --version``,
the OpenLineage ``producer``) reads it from here. A source tree used without installing (no
metadata) reads ``pyproject.toml`` next to the package, else reports :data:`UNKNOWN`.

Examples:
    >>> import importlib.metadata
    >>> __version__ == importlib.metadata.version("lineage_nb")
    True
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

__all__ = ["UNKNOWN", "__version__"]

#: The version reported when neither metadata nor a ``pyproject.toml`` says (PEP 440 local).
UNKNOWN = "0+unknown"
_VERSION_LINE = re.compile(r'^version\s*=\s*"([^"]+)"\s*$')


def _from_pyproject(pyproject: Path) -> str:
    """The ``[project]`` table's ``version`` in ``pyproject``, or :data:`UNKNOWN`.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "pyproject.toml"
        >>> _ = path.write_text('[project]\\nname = "x"\\nversion = "1.2.3"\\n[tool.x]\\nversion = "9"\\n')
        >>> _from_pyproject(path), _from_pyproject(path.with_name("missing.toml"))
        ('1.2.3', '0+unknown')
    """
    try:
        lines = pyproject.read_text(encoding="utf-8").splitlines()
    except OSError:
        return UNKNOWN
    in_project = False
    for line in lines:
        if line.startswith("["):  # a table header (array items and closing brackets are indented)
            in_project = line.strip() == "[project]"
        elif in_project and (match := _VERSION_LINE.match(line)):
            return match.group(1)
    return UNKNOWN


def _version() -> str:
    try:
        return metadata.version("lineage_nb")
    except metadata.PackageNotFoundError:
        return _from_pyproject(Path(__file__).resolve().parent.parent / "pyproject.toml")


__version__ = _version()
