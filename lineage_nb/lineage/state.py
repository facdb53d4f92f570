"""What lineage keeps for one :class:`~lineage_nb.db.Database`: one :class:`LineageState` each.

The state lives with the database it describes (``db.extensions``), not in module globals: two
databases never share a user cache or a heartbeat, and a closed database takes its state along.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..db import Database
    from .liveness import Heartbeat

__all__ = ["LineageState", "state_of"]

_KEY = "lineage_nb.lineage"


class LineageState:
    """User ids, the current user's handle, the login role and the heartbeat of one database."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: user handle -> user id (rows known to be committed)
        self.users: dict[str, int] = {}
        #: the handle the last ``track(user=...)`` on this database ran as
        self.active_handle: str | None = None
        #: the login role when the database was set up by ``setup-postgres`` (looked up once)
        self.server_handle: str | None = None
        self.server_handle_known = False
        #: the thread beating for this database's open runs (made on the first run)
        self.heartbeat: Heartbeat | None = None


def state_of(db: Database) -> LineageState:
    """The :class:`LineageState` of ``db`` (made on first use).

    Examples:
        >>> from lineage_nb.db import Database
        >>> db = Database("sqlite://")
        >>> state_of(db) is state_of(db)
        True
    """
    found = db.extensions.get(_KEY)
    if found is None:
        found = db.extensions.setdefault(_KEY, LineageState())
    assert isinstance(found, LineageState)
    return found
