"""Alembic environment for lineage_nb's schema; run by ``lineage_nb.lineage.migrate``."""

from __future__ import annotations

from alembic import context

from lineage_nb.lineage.migrate import VERSION_TABLE
from lineage_nb.lineage.schema import LineageModel

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=LineageModel.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
