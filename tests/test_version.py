"""The version: written once in pyproject.toml, read from package metadata everywhere else."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

import lineage_nb as ln
from lineage_nb import _version

ROOT = Path(__file__).resolve().parent.parent


def test_version_is_the_distribution_metadata_version() -> None:
    """ln.__version__ is what the installed distribution's metadata says."""
    assert ln.__version__ == importlib.metadata.version("lineage_nb")


def test_metadata_agrees_with_pyproject() -> None:
    """The installed metadata is the version pyproject.toml names (reinstall if this fails)."""
    assert _version._from_pyproject(ROOT / "pyproject.toml") == ln.__version__


def test_source_tree_without_metadata_reads_pyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without installed metadata the version comes from pyproject.toml next to the package."""

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_version.metadata, "version", missing)
    assert _version._version() == _version._from_pyproject(ROOT / "pyproject.toml")
    assert _version._version() != _version.UNKNOWN


def test_openlineage_producer_carries_the_version() -> None:
    """OpenLineage events name lineage_nb's version in their producer URI."""
    from lineage_nb.export.openlineage import PRODUCER

    assert PRODUCER == f"urn:lineage_nb:{ln.__version__}"


def test_no_module_writes_the_version_itself() -> None:
    """No source file of the package spells out the version string: they all read it."""
    quoted = (f'"{ln.__version__}"', f"'{ln.__version__}'", f':{ln.__version__}"')
    spelled = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "lineage_nb").rglob("*.py"))
        if any(text in path.read_text(encoding="utf-8") for text in quoted)
    ]
    assert spelled == []
