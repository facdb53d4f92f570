"""The database: :class:`Database` (engines, sessions), :func:`atomic` and the default database.

SQLite (a file, WAL mode, busy timeout, foreign keys on) is the embedded default; PostgreSQL
through psycopg 3 is the shared backend. ``ln.connect()`` (:mod:`lineage_nb.connect`) opens a
:class:`Database`, wires the layers above into it and makes it the default for active-record calls
such as ``Sample(...).save()``.

Examples:
    >>> import lineage_nb as ln
    >>> db = ln.connect("sqlite://")
    >>> db.dialect
    'sqlite'
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any, NoReturn

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    MetaData,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Mapper, Session, make_transient

from .errors import ConfigurationError, UsageError

__all__ = [
    "Database",
    "ErrorTranslator",
    "LineageSession",
    "atomic",
    "database_of",
    "default_database",
    "get_database",
    "set_default",
]

DEFAULT_URL = "sqlite:///lineage.db"
URL_ENV = "LINEAGE_NB_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class LineageSession(Session):
    """The SQLAlchemy ``Session`` every lineage_nb session is made of.

    Each :class:`Database` makes its sessions of its own subclass (``db.session_class``), whose
    events lineage listens to (:meth:`Database.listen_sessions`): plain SQLAlchemy code run
    through ``db.session()`` is tracked exactly like ``Model.save()``, and sessions of another
    database never run this one's listeners.
    """


#: ``(error, committing, dialect) -> our error or None``: turns a database error of an
#: ``atomic()`` block (``committing``: raised by its COMMIT) into ours.
ErrorTranslator = Callable[[BaseException, bool, str], "BaseException | None"]

#: The process's default database (``ln.connect()`` sets it; :func:`set_default`).
_default: Database | None = None
_ambient: contextvars.ContextVar[Session | AsyncSession | None] = contextvars.ContextVar(
    "lineage_nb_ambient_session", default=None
)


def _normalize_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"Cannot parse database URL {str(url)!r}.",
            value=str(url),
            hint="Use e.g. 'sqlite:///lineage.db' or 'postgresql+psycopg://user@host/dbname'.",
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"Unsupported database backend {parsed.get_backend_name()!r} in {parsed!r}.",
            value=parsed.render_as_string(hide_password=True),
            hint="lineage_nb supports SQLite and PostgreSQL (psycopg 3).",
        )
    return parsed


def _async_url(url: URL) -> URL:
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    return url.set(drivername="postgresql+psycopg")


#: Advisory lock key of lineage_nb's schema changes on PostgreSQL (any fixed 64-bit number).
SCHEMA_LOCK_KEY = 0x6C696E65  # "line" (the key earlier versions' upgrades took)

#: Execution option of an ``atomic()`` block's connection: on SQLite it begins ``IMMEDIATE``.
WRITE_TRANSACTION = "lineage_nb_write_transaction"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    """An ``atomic()`` block begins ``BEGIN IMMEDIATE``: its reads are inside its transaction.

    The sqlite3 module begins a transaction only before the first INSERT/UPDATE/DELETE, so a
    block's reads would see no lock and a read-modify-write could lose another writer's update.
    Taking the write lock at the start makes other writers wait (within ``busy_timeout``).
    Other transactions keep the module's late begin: readers never wait, and a session that
    reads and then writes does not fail on a snapshot another writer made stale.
    """
    if connection.get_execution_options().get(WRITE_TRANSACTION, False):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """A connected database: the SQLAlchemy engines, sessions and transactions for one URL.

    Args:
        url: a SQLAlchemy URL (``sqlite:///file.db``, ``postgresql+psycopg://...``).
        echo: log every SQL statement (SQLAlchemy's ``echo``).
        lineage: write lineage (run/user stamps and record events); ``False`` only for measuring.
    """

    def __init__(self, url: str | URL, *, echo: bool = False, lineage: bool = True) -> None:
        self.url: URL = _normalize_url(url)
        self.echo = echo
        self.lineage = lineage
        self._closed = False
        self.engine: Engine = create_engine(self.url, echo=echo, **self._engine_options())
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._async_engine: AsyncEngine | None = None
        #: Engine listeners of the layers above (installed on every engine of this database).
        self._listeners: list[tuple[str, Callable[..., Any]]] = []
        #: Called with the connection after :meth:`create_all` created the model tables.
        self.create_all_hooks: list[Callable[[Connection], None]] = []
        #: The metadata of the models whose tables :meth:`create_all` creates (set by connect()).
        self.models: MetaData | None = None
        #: What the layers above keep for this database, by owner (e.g. lineage's user cache).
        self.extensions: dict[str, Any] = {}
        #: This database's own Session class: listeners installed on it hear only its sessions.
        self.session_class: type[LineageSession] = type(
            "LineageSession", (LineageSession,), {"__module__": __name__}
        )
        self._session_listeners: list[tuple[str, Callable[..., Any]]] = []
        self._on_close: list[Callable[[], None]] = []
        #: Turn database errors of ``atomic()`` blocks into ours (``ln.connect()`` gives the
        #: ORM's): tried in order, the first answer wins.
        self.error_translators: list[ErrorTranslator] = []

    def listen(self, identifier: str, fn: Callable[..., Any]) -> None:
        """Install an engine/pool event listener on this database's sync and async engines.

        The layers above wire themselves to one database this way (removed by :meth:`close`),
        instead of listening to every engine of the process.
        """
        self._listeners.append((identifier, fn))
        event.listen(self.engine, identifier, fn)
        if self._async_engine is not None:
            event.listen(self._async_engine.sync_engine, identifier, fn)

    def listen_sessions(self, identifier: str, fn: Callable[..., Any]) -> None:
        """Install a Session event listener for this database's sessions (sync and async).

        Removed by :meth:`close`; sessions of other databases never call it.
        """
        self._session_listeners.append((identifier, fn))
        event.listen(self.session_class, identifier, fn)

    def on_close(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when this database is closed (layers above undo their wiring)."""
        self._on_close.append(fn)

    def _engine_options(self) -> dict[str, Any]:
        if self.dialect == "postgresql":
            return {"pool_pre_ping": True}
        return {}

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @functools.cached_property
    def cache_key(self) -> str:
        """The full URL as text: a stable key for per-database caches (rendered once)."""
        return self.url.render_as_string(hide_password=False)

    @property
    def dialect(self) -> str:
        """The backend name: ``'sqlite'`` or ``'postgresql'``."""
        return str(self.url.get_backend_name())

    @property
    def async_engine(self) -> AsyncEngine:
        """The ``AsyncEngine`` (aiosqlite or psycopg async) for the ``a``-prefixed methods."""
        self._check_open()
        if self._async_engine is None:
            options = self._engine_options()
            self._async_engine = create_async_engine(
                _async_url(self.url), echo=self.echo, **options
            )
            if self.dialect == "sqlite":
                event.listen(self._async_engine.sync_engine, "connect", _sqlite_pragmas)
                event.listen(self._async_engine.sync_engine, "begin", _sqlite_begin)
            for identifier, fn in self._listeners:
                event.listen(self._async_engine.sync_engine, identifier, fn)
        return self._async_engine

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (the database can no longer be used)."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError(
                f"{self!r} is closed.", hint="Call ln.connect() again to reopen it."
            )

    def session(self, **kwargs: Any) -> LineageSession:
        """A new tracked SQLAlchemy ``Session`` (``expire_on_commit=False``); close it when done."""
        self._check_open()
        kwargs.setdefault("expire_on_commit", False)
        session = self.session_class(bind=self.engine, **kwargs)
        session.info[_SESSION_DB] = self
        return session

    def async_session(self, **kwargs: Any) -> AsyncSession:
        """A new tracked ``AsyncSession`` whose flushes are stamped like sync ones."""
        kwargs.setdefault("expire_on_commit", False)
        session = AsyncSession(
            bind=self.async_engine, sync_session_class=self.session_class, **kwargs
        )
        session.sync_session.info[_SESSION_DB] = self
        return session

    def create_all(self) -> None:
        """Create the tables of every ``ln.Model`` subclass defined so far (existing ones are kept).

        Raises:
            ConfigurationError: this database was not opened by ``ln.connect()``, which tells it
                which models are its tables.
        """
        self._check_open()
        if self.models is None:
            raise ConfigurationError(
                "This Database does not know its models: it was not opened by ln.connect().",
                hint="Open it with ln.connect(url), or call sqlalchemy's "
                "Model.metadata.create_all(db.engine).",
            )
        with self.engine.begin() as connection:
            self.lock_schema(connection)
            self.models.create_all(connection)
            for hook in self.create_all_hooks:
                hook(connection)

    def lock_schema(self, connection: Connection) -> None:
        """Serialize schema changes of processes connecting at once, until the transaction ends.

        Creating tables and triggers checks what exists and then creates what is missing; two
        processes doing that at once both try to create the same table. PostgreSQL: a
        transaction-level advisory lock; SQLite: the write lock (``BEGIN IMMEDIATE``).
        """
        if self.dialect == "postgresql":
            connection.execute(
                text("SELECT pg_catalog.pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY}
            )
        elif not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    def atomic(self, *, isolation: str | None = None) -> Atomic:
        """A transaction on this database; see :func:`atomic`."""
        return Atomic(self, isolation=isolation)

    def close(self) -> None:
        """Dispose of the connection pools; later use raises ``ConfigurationError``."""
        global _default  # noqa: PLW0603 (the process default: see tests/lineage/test_lineage_state.py)
        for undo in self._on_close:  # the layers above first: nothing of theirs uses it after
            undo()
        self._on_close.clear()
        engines = [self.engine]
        if self._async_engine is not None:
            engines.append(self._async_engine.sync_engine)
        for engine in engines:
            engine.dispose()
            for identifier, fn in self._listeners:
                if event.contains(engine, identifier, fn):
                    event.remove(engine, identifier, fn)
        for identifier, fn in self._session_listeners:
            if event.contains(self.session_class, identifier, fn):
                event.remove(self.session_class, identifier, fn)
        self._session_listeners.clear()
        self._closed = True
        if _default is self:
            _default = None


#: ``session.info`` key: the Database that made the session.
_SESSION_DB = "lineage_nb_db"


def database_of(session: Session) -> Database | None:
    """The :class:`Database` whose ``session()`` made ``session`` (None for other sessions)."""
    db = session.info.get(_SESSION_DB)
    return db if isinstance(db, Database) else None


def set_default(db: Database | None) -> None:
    """Make ``db`` the database of active-record calls (what ``ln.connect()`` does last).

    ``None`` forgets the default (``get_database()`` then raises until the next connect).
    """
    global _default  # noqa: PLW0603 (the process default: see tests/lineage/test_lineage_state.py)
    if db is not None:
        db._check_open()
    _default = db


def default_database() -> Database | None:
    """The default database, or None when none is connected (:func:`get_database` raises)."""
    return _default


def get_database() -> Database:
    """The default database set by the last :func:`connect` call.

    Raises:
        ConfigurationError: ``connect()`` was not called yet (or the database was closed).
    """
    if _default is None:
        raise ConfigurationError(
            "No database is connected.",
            hint="Call ln.connect() (or %load_ext lineage_nb in a notebook) first.",
        )
    return _default


def ambient_session() -> Session | AsyncSession | None:
    """The session of the innermost open :func:`atomic` block in this context, if any."""
    return _ambient.get()


@contextmanager
def ambient_scope(session: Session) -> Iterator[Session]:
    """Make ``session`` the ambient one inside the block (a write's own transaction).

    Active-record calls made meanwhile (e.g. by a signal receiver) join that transaction
    instead of opening a second one that would wait on its lock or outlive its rollback.
    """
    token = _ambient.set(session)
    try:
        yield session
    finally:
        _ambient.reset(token)


class Atomic:
    """Context manager (sync and async) making every write inside one transaction.

    Nested blocks become savepoints. An exception rolls back the block and propagates.
    """

    def __init__(self, db: Database | None = None, *, isolation: str | None = None) -> None:
        if isolation is not None and isolation.lower() not in _ISOLATION:
            raise UsageError(
                f"atomic(isolation={isolation!r}) is not a known isolation level.",
                value=isolation,
                hint=f"Use one of {', '.join(sorted(_ISOLATION))} (or leave it out).",
            )
        self._db = db
        self._isolation = None if isolation is None else _ISOLATION[isolation.lower()]

    def _options(self) -> dict[str, Any]:
        """Execution options of the block's connection (PostgreSQL: its isolation level)."""
        options: dict[str, Any] = {WRITE_TRANSACTION: True}
        if self._isolation is not None and (self._db or get_database()).dialect == "postgresql":
            options["isolation_level"] = self._isolation
        return options

    def __enter__(self) -> Session:
        self._sync_cm = self._sync_scope()
        return self._sync_cm.__enter__()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return self._sync_cm.__exit__(et, ev, tb)

    async def __aenter__(self) -> AsyncSession:
        self._async_cm = self._async_scope()
        return await self._async_cm.__aenter__()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await self._async_cm.__aexit__(et, ev, tb)

    @contextmanager
    def _sync_scope(self) -> Iterator[Session]:
        outer = _outer_block(nested_in_wrong=AsyncSession)
        if isinstance(outer, Session):
            with outer.begin_nested():
                yield outer
            return
        db = self._db or get_database()
        session = db.session()
        event.listen(session, "pending_to_persistent", _note_inserted)
        token = _ambient.set(session)
        committing = False
        try:
            with session.begin():
                session.connection(execution_options=self._options())
                yield session
                committing = True
        except BaseException as error:
            _reload_after_rollback(session)
            _raise_ours(db, error, committing)
        finally:
            _ambient.reset(token)
            session.close()

    @asynccontextmanager
    async def _async_scope(self) -> AsyncIterator[AsyncSession]:
        """The async twin of :meth:`_sync_scope`."""
        outer = _outer_block(nested_in_wrong=Session)
        if isinstance(outer, AsyncSession):
            async with outer.begin_nested():
                yield outer
            return
        db = self._db or get_database()
        session = db.async_session()
        event.listen(session.sync_session, "pending_to_persistent", _note_inserted)
        token = _ambient.set(session)
        committing = False
        try:
            async with session.begin():
                await session.connection(execution_options=self._options())
                yield session
                committing = True
        except BaseException as error:
            await session.run_sync(_reload_after_rollback)
            _raise_ours(db, error, committing)
        finally:
            _ambient.reset(token)
            await session.close()


#: ``(message, hint)`` of an ``atomic()`` block nested in a block of the other kind.
_WRONG_NESTING: dict[type, tuple[str, str]] = {
    AsyncSession: (
        "A sync atomic() block cannot nest inside `async with ln.atomic()`.",
        "Use `async with ln.atomic()` and the a-prefixed methods.",
    ),
    Session: (
        "An async atomic() block cannot nest inside a sync `with ln.atomic()`.",
        "Use one kind of block for the whole transaction.",
    ),
}


def _outer_block(*, nested_in_wrong: type) -> Session | AsyncSession | None:
    """The session of the enclosing ``atomic()`` block, refusing one of the other kind."""
    outer = _ambient.get()
    if isinstance(outer, nested_in_wrong):
        message, hint = _WRONG_NESTING[nested_in_wrong]
        raise UsageError(message, hint=hint)
    return outer


def _raise_ours(db: Database, error: BaseException, committing: bool) -> NoReturn:
    """Raise our error for ``error`` of an ``atomic()`` block (``error`` itself if none)."""
    ours = _translated(db, error, committing)
    if ours is error:
        raise error
    raise ours from error


def _translated(db: Database, error: BaseException, committing: bool) -> BaseException:
    """Our error for a database error of an ``atomic()`` block; anything else unchanged."""
    if isinstance(error, SQLAlchemyError):
        for translator in db.error_translators:
            ours = translator(error, committing, db.dialect)
            if ours is not None:
                return ours
    return error


def _reload_after_rollback(session: Session) -> None:
    """Give the records a rolled-back block touched the values the database has.

    A rollback expires every record of the session; closed, they would be husks that raise on
    every read. Stored ones are read again (one SELECT per table); rows the block inserted are
    gone, so those records become new again (key cleared when the database generated it).
    """
    by_class: dict[type, list[Any]] = {}
    for record in list(session.identity_map.values()):
        by_class.setdefault(type(record), []).append(record)
    for cls, records in by_class.items():
        mapper: Mapper[Any] = inspect(cls)
        keys = [inspect(r).key[1] for r in records]
        found: Sequence[Any]
        try:
            if len(mapper.primary_key) == 1:
                column = mapper.primary_key[0]
                found = session.scalars(
                    select(cls)
                    .where(column.in_([k[0] for k in keys]))
                    .execution_options(populate_existing=True)
                ).all()
            else:
                found = [session.get(cls, k, populate_existing=True) for k in keys]
        except SQLAlchemyError:  # the database is unreachable: leave the records as they are
            return
        present = {id(r) for r in found if r is not None}
        for record in records:
            if id(record) not in present:
                session.expunge(record)
                make_transient(record)
    for record in session.info.pop(_INSERTED, ()):
        if inspect(record).transient:  # its INSERT was rolled back: new again, key not taken
            record_mapper: Mapper[Any] = inspect(type(record))
            keys_of = record_mapper.primary_key
            generated = len(keys_of) == 1 and keys_of[0].autoincrement in (True, "auto")
            if generated and isinstance(keys_of[0].type, Integer):
                setattr(record, record_mapper.get_property_by_column(keys_of[0]).key, None)


#: ``session.info`` key: records a block's flushes inserted (see :func:`_note_inserted`).
_INSERTED = "lineage_nb_inserted"


def _note_inserted(session: Session, instance: Any) -> None:
    session.info.setdefault(_INSERTED, []).append(instance)


_ISOLATION = {
    "read committed": "READ COMMITTED",
    "repeatable read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}


def atomic(db: Database | None = None, *, isolation: str | None = None) -> Atomic:
    """Run every write inside as one transaction, lineage events included.

    Works as ``with ln.atomic():`` and ``async with ln.atomic():``; nested blocks are savepoints.

    Reads inside the block are part of the transaction. On SQLite the block takes the write lock
    when it starts (``BEGIN IMMEDIATE``), so a read-modify-write block is never interleaved with
    another writer's. PostgreSQL runs it at READ COMMITTED unless ``isolation`` says otherwise:
    with ``isolation="serializable"`` a concurrent conflicting block fails with
    ``OperationalError`` (run it again) instead of losing an update.

    Raises:
        UsageError: ``isolation`` is no known level; a sync block inside an async one (or the
            other way round).

    Examples:
        >>> import lineage_nb as ln
        >>> _ = ln.connect("sqlite://")
        >>> with ln.atomic() as session:
        ...     pass
    """
    return Atomic(db, isolation=isolation)
