"""Database fixtures: every database test runs on SQLite (temp file) and PostgreSQL (real server).

PostgreSQL comes from ``LINEAGE_NB_TEST_PG_URL``, the local server on 127.0.0.1:5432, or a
throwaway cluster that ``pg_server`` starts; each test gets its own database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import models  # noqa: F401  (registers the test models on ln.Model.metadata)
import pytest
from pg_server import drop_database, fresh_database

import lineage_nb as ln
from lineage_nb import db as db_module
from lineage_nb.lineage import context

BACKENDS = ["sqlite", "postgresql"]


def database_url(backend: str, tmp_path: Path) -> str:
    """A fresh, empty database URL for ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return fresh_database("ln")


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No run, cell or default database leaks between tests; a fixed user handle."""
    monkeypatch.setenv("LINEAGE_NB_USER", "tester")
    monkeypatch.delenv(db_module.URL_ENV, raising=False)
    yield
    context.set_run(None)
    context.set_cell(None)
    db_module.set_default(None)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend name; tests marked ``sqlite_only`` skip PostgreSQL."""
    if request.param != "sqlite" and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("SQLite-only test")
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the current backend; dropped afterwards."""
    url = database_url(backend, tmp_path)
    yield url
    if backend == "postgresql":
        drop_database(url)


@pytest.fixture
def db(db_url: str) -> Iterator[ln.Database]:
    """A connected database with the lineage schema and the test models' tables."""
    database = ln.connect(db_url)
    yield database
    database.close()


@pytest.fixture
def run(db: ln.Database) -> Iterator[ln.Run]:
    """An open run of this test file, finished afterwards."""
    opened = ln.track(__file__)
    yield opened
    if opened.status == "started":
        ln.finish(run=opened)


def pytest_report_header() -> str:
    return f"lineage_nb test backends: {', '.join(BACKENDS)}; PG URL env: " + (
        "set" if os.environ.get("LINEAGE_NB_TEST_PG_URL") else "auto"
    )
