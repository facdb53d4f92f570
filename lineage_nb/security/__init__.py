"""Team-backend security: PostgreSQL roles, grants and server-side stamping (``setup-postgres``)."""

from __future__ import annotations

from .postgres import DEFAULT_GROUP, SetupReport, add_user, owner_role, setup_postgres

__all__ = ["DEFAULT_GROUP", "SetupReport", "add_user", "owner_role", "setup_postgres"]
