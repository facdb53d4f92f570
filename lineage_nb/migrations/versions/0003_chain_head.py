"""Each run stores the hash of its newest event (its chain head).

Writers take the head from the run's row (one statement chains an event on PostgreSQL), and
``verify`` can tell when a run's last events were deleted.

Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lineage_nb.migrations._ops import add_columns, drop_columns

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    add_columns("lineage_run", sa.Column("chain_head", sa.String(64)))
    op.execute(
        "UPDATE lineage_run SET chain_head = (SELECT e.hash FROM lineage_record_event e "
        "WHERE e.run_id = lineage_run.id ORDER BY e.id DESC LIMIT 1)"
    )


def downgrade() -> None:
    drop_columns("lineage_run", "chain_head")
