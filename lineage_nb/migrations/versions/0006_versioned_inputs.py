"""Inputs pinned to the version read: one row per read, keys packed, a version watermark.

A row of ``lineage_run_input`` is now one read of one table by a run (reads with nothing written
between them share a row): ``pk`` holds the key when one record was read, ``keys`` the packed key
set when several were (:mod:`lineage_nb.lineage._keyset`), ``count`` how many, and ``watermark``
(with ``snapshot`` on PostgreSQL) which events the read could see, so the version each record was
read at is the newest event of it at or below the watermark. Older rows (one per record) keep no
watermark: their version is the record's newest event at or before their read time. The
one-row-per-record unique constraint goes. Runs get ``event_count``, set when they finish, so
listing runs does not count their events.

Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lineage_nb.migrations._ops import BigInteger, add_columns, drop_columns

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    with op.batch_alter_table("lineage_run_input") as batch:
        batch.drop_constraint("uq_lineage_run_input_run_id_table_pk", type_="unique")
        batch.alter_column("pk", existing_type=sa.Text(), nullable=True)
        batch.add_column(sa.Column("keys", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("count", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("watermark", BigInteger, nullable=True))
        batch.add_column(sa.Column("snapshot", sa.Text(), nullable=True))
    op.create_index("ix_lineage_run_input_run_id", "lineage_run_input", ["run_id", "id"])
    add_columns("lineage_run", sa.Column("event_count", BigInteger, nullable=True))


def downgrade() -> None:
    drop_columns("lineage_run", "event_count")
    op.drop_index("ix_lineage_run_input_run_id", "lineage_run_input")
    drop_columns("lineage_run_input", "snapshot", "watermark", "count", "keys")
