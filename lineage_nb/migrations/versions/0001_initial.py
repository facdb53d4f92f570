"""Users, transforms, runs, record events and run inputs.

Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lineage_nb.lineage.types import BigIntegerPK, UTCDateTime

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "lineage_user",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("handle", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("email", sa.String(200)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lineage_user"),
        sa.UniqueConstraint("handle", name="uq_lineage_user_handle"),
    )
    op.create_table(
        "lineage_transform",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(1000), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("source_code", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by_id", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_lineage_transform"),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["lineage_user.id"],
            name="fk_lineage_transform_created_by_id_lineage_user",
        ),
        sa.UniqueConstraint("key", "source_hash", name="uq_lineage_transform_key_source_hash"),
    )
    op.create_index("ix_lineage_transform_key", "lineage_transform", ["key"])
    op.create_table(
        "lineage_run",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("transform_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("created_by_id", sa.Integer, nullable=False),
        sa.Column("python_version", sa.String(100)),
        sa.Column("environment", sa.JSON),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_lineage_run"),
        sa.UniqueConstraint("uid", name="uq_lineage_run_uid"),
        sa.ForeignKeyConstraint(
            ["transform_id"],
            ["lineage_transform.id"],
            name="fk_lineage_run_transform_id_lineage_transform",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["lineage_user.id"], name="fk_lineage_run_created_by_id_lineage_user"
        ),
    )
    op.create_index("ix_lineage_run_transform_id", "lineage_run", ["transform_id"])
    op.create_index("ix_lineage_run_status", "lineage_run", ["status"])
    op.create_index("ix_lineage_run_created_by_id", "lineage_run", ["created_by_id"])
    op.create_table(
        "lineage_record_event",
        sa.Column("id", BigIntegerPK, primary_key=True),
        sa.Column("run_id", sa.Integer),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("table", sa.String(255), nullable=False),
        sa.Column("pk", sa.String(255), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("changes", sa.JSON),
        sa.Column("cell", sa.Integer),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lineage_record_event"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["lineage_run.id"], name="fk_lineage_record_event_run_id_lineage_run"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["lineage_user.id"], name="fk_lineage_record_event_user_id_lineage_user"
        ),
    )
    op.create_index("ix_lineage_record_event_run_id", "lineage_record_event", ["run_id", "id"])
    op.create_table(
        "lineage_run_input",
        sa.Column("id", BigIntegerPK, primary_key=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("table", sa.String(255), nullable=False),
        sa.Column("pk", sa.String(255), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lineage_run_input"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["lineage_run.id"], name="fk_lineage_run_input_run_id_lineage_run"
        ),
        sa.UniqueConstraint("run_id", "table", "pk", name="uq_lineage_run_input_run_id_table_pk"),
    )
    op.create_index("ix_lineage_run_input_record", "lineage_run_input", ["table", "pk"])


def downgrade() -> None:
    for table in (
        "lineage_run_input",
        "lineage_record_event",
        "lineage_run",
        "lineage_transform",
        "lineage_user",
    ):
        op.drop_table(table)
