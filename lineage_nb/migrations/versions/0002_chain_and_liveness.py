"""Hash chain of record events; liveness and errored cells of runs; record lookup index.

Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lineage_nb.lineage.types import UTCDateTime
from lineage_nb.migrations._ops import add_columns, drop_columns

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    add_columns(
        "lineage_record_event",
        sa.Column("hash", sa.String(64)),
        sa.Column("prev_hash", sa.String(64)),
    )
    op.create_index("ix_lineage_record_event_record", "lineage_record_event", ["table", "pk", "id"])
    add_columns(
        "lineage_run", sa.Column("last_seen_at", UTCDateTime), sa.Column("errored_cells", sa.JSON)
    )


def downgrade() -> None:
    op.drop_index("ix_lineage_record_event_record", "lineage_record_event")
    drop_columns("lineage_record_event", "prev_hash", "hash")
    drop_columns("lineage_run", "errored_cells", "last_seen_at")
