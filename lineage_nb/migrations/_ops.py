"""Operations the migrations in ``versions/`` share (a module of its own: Alembic takes every
``.py`` file in ``versions/`` for a revision).

Migrations are history: a change here changes every revision that uses it, so these stay as they
are; a migration needing something else writes it out itself.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

__all__ = ["BigInteger", "add_columns", "drop_columns"]

#: A 64-bit integer column type (SQLite's INTEGER is 64-bit already; its autoincrement key must
#: be spelt INTEGER).
BigInteger = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def add_columns(table: str, *columns: sa.Column[Any]) -> None:
    """Add ``columns`` to ``table``, in one batch (on SQLite, Alembic's batch mode)."""
    with op.batch_alter_table(table) as batch:
        for column in columns:
            batch.add_column(column)


def drop_columns(table: str, *names: str) -> None:
    """Drop the columns ``names`` of ``table``, in this order, in one batch."""
    with op.batch_alter_table(table) as batch:
        for name in names:
            batch.drop_column(name)
