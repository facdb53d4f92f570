"""Who writes: the :class:`User` of a database's writes, looked up once and kept in its state.

The handle is ``track(user=...)``, ``LINEAGE_NB_USER`` or the OS login; on a PostgreSQL database
set up by ``setup-postgres`` it is always the login role (the server decides, not the client).
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Table, insert, select, text
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ..db import Database
from .identity import user_handle
from .schema import User
from .state import state_of
from .types import utcnow

__all__ = ["ensure_user", "server_handle", "set_active_handle", "user_id_for"]


def server_handle(db: Database) -> str | None:
    """The login role when ``db`` was set up by ``setup-postgres`` (it then decides the user)."""
    if db.dialect != "postgresql":
        return None
    state = state_of(db)
    if not state.server_handle_known:
        with db.engine.connect() as connection:
            secured = connection.execute(
                text("SELECT to_regprocedure('lineage_nb_user_id()') IS NOT NULL")
            ).scalar()
            role = connection.execute(text("SELECT current_user")).scalar() if secured else None
        state.server_handle = str(role) if role is not None else None
        state.server_handle_known = True
    return state.server_handle


def set_active_handle(db: Database, handle: str) -> None:
    """Make ``handle`` the user of ``db``'s writes outside a run (``track(user=...)`` does)."""
    state_of(db).active_handle = handle


def user_id_for(db: Database, connection: Connection | None = None) -> int:
    """The id of the current user (``track(user=...)``, ``LINEAGE_NB_USER`` or OS login), cached.

    On a PostgreSQL database set up by ``setup-postgres`` it is always the login role's user.
    A user not cached yet is looked up (or created) on ``connection`` when given: inside the
    writing transaction itself, so nothing waits for a second connection (on SQLite that would
    wait for the write lock this transaction may hold).
    """
    state = state_of(db)
    handle = server_handle(db) or state.active_handle or user_handle()
    cached = state.users.get(handle)
    if cached is not None:
        return cached
    if connection is None:
        return ensure_user(db, handle).id
    found, created = _user_on(connection, handle)
    if not created:  # a row created in this transaction is gone if it rolls back: not cached
        state.users[handle] = found
    return found


def _user_on(connection: Connection, handle: str) -> tuple[int, bool]:
    """``(id, created now)`` of user ``handle`` on ``connection``, created if missing."""
    users = cast(Table, User.__table__)
    lookup = select(users.c.id).where(users.c.handle == handle)
    found = connection.execute(lookup).scalar()
    if found is not None:
        return int(found), False
    connection.execute(insert(users).values(handle=handle, created_at=utcnow()))
    return int(connection.execute(lookup).scalar_one()), True


def ensure_user(
    db: Database, handle: str | None = None, *, name: str | None = None, email: str | None = None
) -> User:
    """Get or create the :class:`User` with ``handle`` (default: the current user)."""
    handle = server_handle(db) or handle or user_handle()
    for _attempt in range(3):
        with db.session() as session:
            user = session.execute(select(User).where(User.handle == handle)).scalar_one_or_none()
            if user is None:
                user = User(handle=handle, name=name, email=email)
                session.add(user)
            elif (name and user.name != name) or (email and user.email != email):
                user.name = name or user.name
                user.email = email or user.email
            try:
                session.commit()
            except SAIntegrityError:  # another process created it first
                session.rollback()
                continue
            state_of(db).users[handle] = user.id
            return user
    raise RuntimeError(f"could not create user {handle!r}")  # pragma: no cover
