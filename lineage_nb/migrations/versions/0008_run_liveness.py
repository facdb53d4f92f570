"""Run liveness and notebook identity: the run's process start and heartbeat interval, the
path its notebook had, and a notebook's stable id on its transforms.

``process_start`` tells a live process from a later one that got the same pid;
``heartbeat_seconds`` is how often the run promised to update ``last_seen_at`` (None: a run of an
older version, which never beats, is not judged by its heartbeat); ``source_path`` is where the
notebook was when the run ran (it may have been renamed since); ``notebook_id`` is the id kept in
the notebook's metadata, so a renamed notebook keeps its transform.

Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lineage_nb.migrations._ops import add_columns, drop_columns

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    add_columns(
        "lineage_run",
        sa.Column("process_start", sa.String(64)),
        sa.Column("heartbeat_seconds", sa.Integer()),
        sa.Column("source_path", sa.String(1000)),
    )
    add_columns("lineage_transform", sa.Column("notebook_id", sa.String(64)))
    op.create_index("ix_lineage_transform_notebook_id", "lineage_transform", ["notebook_id"])


def downgrade() -> None:
    op.drop_index("ix_lineage_transform_notebook_id", "lineage_transform")
    drop_columns("lineage_transform", "notebook_id")
    drop_columns("lineage_run", "source_path", "heartbeat_seconds", "process_start")
