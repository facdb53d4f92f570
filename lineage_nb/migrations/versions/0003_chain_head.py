"""Each run stores the hash of its newest event (its chain head).

Writers take the head from the run's row, so one statement chains an event on PostgreSQL, and
``verify`` can tell when a run's last events were deleted. On SQLite a trigger keeps the head
current for every inserted event.

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

SQLITE_TRIGGER = """
CREATE TRIGGER lineage_nb_chain_head AFTER INSERT ON lineage_record_event
WHEN NEW.run_id IS NOT NULL
BEGIN
    UPDATE lineage_run SET chain_head = NEW.hash WHERE id = NEW.run_id;
END
"""


def upgrade() -> None:
    with op.batch_alter_table("lineage_run") as batch:
        batch.add_column(sa.Column("chain_head", sa.String(64)))
    op.execute(
        "UPDATE lineage_run SET chain_head = (SELECT e.hash FROM lineage_record_event e "
        "WHERE e.run_id = lineage_run.id ORDER BY e.id DESC LIMIT 1)"
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS lineage_nb_chain_head")
    with op.batch_alter_table("lineage_run") as batch:
        batch.drop_column("chain_head")
