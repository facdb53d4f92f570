"""Capture in the database: trigger functions, keys of any length, the seal log.

Record events are written by triggers on the tracked tables (installed by ``connect`` and
``create_all``), so keys are text of any length (composite keys as JSON arrays) and the per-run
hash chain of Python-written events is succeeded by seals over all events
(:mod:`lineage_nb.lineage.verify`). Old events and their hashes stay as they are and verify.

Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lineage_nb.lineage.capture import create_functions
from lineage_nb.lineage.types import UTCDateTime
from lineage_nb.migrations._ops import BigInteger

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":  # SQLite does not enforce VARCHAR lengths
        op.alter_column("lineage_record_event", "pk", type_=sa.Text())
        op.alter_column("lineage_run_input", "pk", type_=sa.Text())
    op.create_table(
        "lineage_seal",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("prev_id", sa.Integer, nullable=False),
        sa.Column("last_event_id", BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lineage_seal"),
        sa.UniqueConstraint("prev_id", name="uq_lineage_seal_prev_id"),
    )
    create_functions(bind)


def downgrade() -> None:
    op.drop_table("lineage_seal")
