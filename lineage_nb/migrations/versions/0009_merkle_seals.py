"""Merkle seals: each new seal's hash covers the Merkle root of its events; old events sealed.

A seal of ``format`` 2 stores the RFC 9162 Merkle root of its events (``root``) and chains it to
the previous seal, so one event's inclusion in the log has a proof of O(log n) hashes
(``record.proof()``); seals written before (``format`` 1, one running hash) keep verifying as
they were written. The upgrade then seals every event no seal covers yet, and counts on the
seals the events an older lineage_nb wrote before schema revision 0002 with no hash chain
(``unchained``), which ``verify`` reports instead of counting them as protected since written
(see :func:`lineage_nb.lineage.verify.seal_at_upgrade`). On PostgreSQL it waits for transactions
writing events to end. The downgrade drops the columns; Merkle seals then no longer verify.

Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lineage_nb.lineage.verify import seal_at_upgrade
from lineage_nb.migrations._ops import add_columns, drop_columns

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    add_columns(
        "lineage_seal",
        sa.Column("format", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("root", sa.String(64)),
        sa.Column("unchained", sa.Integer(), nullable=False, server_default="0"),
    )
    seal_at_upgrade(op.get_bind())


def downgrade() -> None:
    drop_columns("lineage_seal", "unchained", "root", "format")
