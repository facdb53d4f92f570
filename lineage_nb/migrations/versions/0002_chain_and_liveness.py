"""Hash chain of record events; liveness and errored cells of runs; record lookup index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lineage_nb.lineage.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lineage_record_event") as batch:
        batch.add_column(sa.Column("hash", sa.String(64)))
        batch.add_column(sa.Column("prev_hash", sa.String(64)))
    op.create_index("ix_lineage_record_event_record", "lineage_record_event", ["table", "pk", "id"])
    with op.batch_alter_table("lineage_run") as batch:
        batch.add_column(sa.Column("last_seen_at", UTCDateTime))
        batch.add_column(sa.Column("errored_cells", sa.JSON))


def downgrade() -> None:
    op.drop_index("ix_lineage_record_event_record", "lineage_record_event")
    with op.batch_alter_table("lineage_record_event") as batch:
        batch.drop_column("prev_hash")
        batch.drop_column("hash")
    with op.batch_alter_table("lineage_run") as batch:
        batch.drop_column("errored_cells")
        batch.drop_column("last_seen_at")
