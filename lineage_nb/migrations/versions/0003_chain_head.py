"""Each run stores the hash of its newest event (its chain head).

Writers take the head from the run's row (one statement chains an event on PostgreSQL), and
``verify`` can tell when a run's last events were deleted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lineage_run") as batch:
        batch.add_column(sa.Column("chain_head", sa.String(64)))
    op.execute(
        "UPDATE lineage_run SET chain_head = (SELECT e.hash FROM lineage_record_event e "
        "WHERE e.run_id = lineage_run.id ORDER BY e.id DESC LIMIT 1)"
    )


def downgrade() -> None:
    with op.batch_alter_table("lineage_run") as batch:
        batch.drop_column("chain_head")
