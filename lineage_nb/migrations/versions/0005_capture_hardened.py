"""Capture functions hardened for team databases: keys from the catalog, context checked.

``lineage_nb_capture`` no longer splices SQL from its trigger's arguments (the key columns come
from the catalog, the rows only from its own transition tables), and the new ``lineage_nb_team()``
marker lets ``setup-postgres`` switch a database to team mode, where the user is the login and a
run must be the login's (see :mod:`lineage_nb.security.postgres`). Installed triggers are
unchanged. On a team database this migration must be run by the administrator
(``lineage-nb setup-postgres`` does); it keeps the team versions.

Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

from lineage_nb.lineage.capture import create_functions

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    create_functions(op.get_bind())  # PostgreSQL only; SQLite registers Python functions


def downgrade() -> None:
    """The 0004 functions are not restored: the hardened ones record the same events."""
