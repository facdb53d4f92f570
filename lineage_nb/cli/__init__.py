"""The ``lineage-nb`` command (also ``python -m lineage_nb``): :func:`main` and its parser.

:mod:`~lineage_nb.cli.main` holds the parser and ``main()``, :mod:`~lineage_nb.cli.commands` the
command line's table: the verbs shared with ``%lineage`` (:mod:`lineage_nb.commands`) and its
own (``demo``, the kernel config, ``setup-postgres``).
"""

from __future__ import annotations

from .commands import COMMANDS
from .main import build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
