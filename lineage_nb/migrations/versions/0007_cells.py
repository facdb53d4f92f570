"""The code that ran: each executed notebook cell of a run, its source stored once per text.

Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lineage_nb.lineage.types import UTCDateTime
from lineage_nb.migrations._ops import BigInteger

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "lineage_cell_source",
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("hash", name="pk_lineage_cell_source"),
    )
    op.create_table(
        "lineage_cell",
        sa.Column("id", BigInteger, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("execution_count", sa.Integer(), nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lineage_cell"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["lineage_run.id"], name="fk_lineage_cell_run_id_lineage_run"
        ),
        sa.ForeignKeyConstraint(
            ["source_hash"],
            ["lineage_cell_source.hash"],
            name="fk_lineage_cell_source_hash_lineage_cell_source",
        ),
        sa.UniqueConstraint(
            "run_id", "execution_count", name="uq_lineage_cell_run_id_execution_count"
        ),
    )


def downgrade() -> None:
    op.drop_table("lineage_cell")
    op.drop_table("lineage_cell_source")
