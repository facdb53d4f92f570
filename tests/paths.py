"""Where the test tree's shared things are, for test modules in any folder under ``tests/``.

``tests/`` is on ``sys.path`` because pytest imports ``tests/conftest.py`` in its default
``prepend`` import mode; neither ``tests/`` nor its folders are packages (no ``__init__.py``), so
helpers import as ``from models import Project`` or ``from paths import FILES``, and test file
names are unique across the folders. A child process that imports the helpers needs ``TESTS`` on
its ``sys.path`` (or ``PYTHONPATH``).
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent  # the helper modules: models, pg_server, nbkernel, ...
ROOT = TESTS.parent  # the repository: README.md, pyproject.toml, lineage_nb/
FILES = TESTS / "files"  # notebooks and scripts the tests run
FIXTURES = TESTS / "fixtures"  # data the tests compare against (schemas)
