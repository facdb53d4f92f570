"""Run liveness and notebook identity: the run's process start and heartbeat interval, the
path its notebook had, and a notebook's stable id on its transforms.

``process_start`` tells a live process from a later one that got the same pid;
``heartbeat_seconds`` is how often the run promised to update ``last_seen_at`` (None: a run of an
older version, which never beats, is not judged by its heartbeat); ``source_path`` is where the
notebook was when the run ran (it may have been renamed since); ``notebook_id`` is the id kept in
the notebook's metadata, so a renamed notebook keeps its transform.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lineage_run") as batch:
        batch.add_column(sa.Column("process_start", sa.String(64)))
        batch.add_column(sa.Column("heartbeat_seconds", sa.Integer()))
        batch.add_column(sa.Column("source_path", sa.String(1000)))
    with op.batch_alter_table("lineage_transform") as batch:
        batch.add_column(sa.Column("notebook_id", sa.String(64)))
    op.create_index("ix_lineage_transform_notebook_id", "lineage_transform", ["notebook_id"])


def downgrade() -> None:
    op.drop_index("ix_lineage_transform_notebook_id", "lineage_transform")
    with op.batch_alter_table("lineage_transform") as batch:
        batch.drop_column("notebook_id")
    with op.batch_alter_table("lineage_run") as batch:
        batch.drop_column("source_path")
        batch.drop_column("heartbeat_seconds")
        batch.drop_column("process_start")
