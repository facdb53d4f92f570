"""The command table shared by ``lineage-nb`` and the ``%lineage`` magic.

Every verb both front ends have (``runs``, ``show``, ``export``, ``verify``, ``anchor``) is one
:class:`Command` of :data:`SHARED`: its name, help, arguments and the one function that does the
work and returns an :class:`Output` (text for a terminal, frames and records for a notebook).
``lineage_nb.cli`` adds the command line's own verbs around them and ``lineage_nb.ipython.magics``
the notebook's; each builds its parser from the table and only shows what the verbs return.

Modules: :mod:`~lineage_nb.commands.table` (what a command is), :mod:`~lineage_nb.commands.verbs`
(the shared verbs), :mod:`~lineage_nb.commands.records` (finding, reading and printing records
and tables).
"""

from __future__ import annotations

from .table import Argument, Command, Context, Output, arg
from .verbs import SHARED

__all__ = ["SHARED", "Argument", "Command", "Context", "Output", "arg"]
