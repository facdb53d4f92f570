"""Capture in the database: every write to a tracked table leaves events, by any path.

Each tracked table (every ``ln.Model`` table with a primary key) gets triggers that write one
``lineage_record_event`` row per changed row, in the same statement and transaction as the
write: ORM flushes, ``bulk_create``, Core ``insert/update/delete``, ``text()`` SQL and
``DataFrame.to_sql`` through a lineage_nb engine are all recorded, and no Python runs per row.

The triggers read the transaction's *context* (run, user, notebook cell) that lineage_nb attaches
to each connection before it writes:

- SQLite: Python functions ``lineage_nb_run()``, ``lineage_nb_user()``, ``lineage_nb_cell()``
  and ``lineage_nb_now()`` registered on every connection of the engine (see :mod:`._sqlite`).
  A connection without them (the ``sqlite3`` shell, a raw ``sqlite3.connect``) cannot write a
  tracked table: the trigger fails with ``no such function: lineage_nb_run``. Call
  :func:`register_sqlite_functions` on such a connection to have its writes recorded (run empty).
- PostgreSQL: ``set_config('lineage_nb.run', ..., true)`` (and ``.user``, ``.cell``) before the
  transaction's first write, read by schema-qualified functions with a fixed ``search_path``
  (see :mod:`._postgresql`). A writer that sets nothing (``psql``) is recorded with no run and
  the database login as the user.

Event layout (compact): an insert stores no values (the row holds them), an update stores only
the changed columns as ``{field: [old, new]}`` (a no-op update stores nothing), a delete stores the
full old row as ``{field: [old, null]}``. The lineage stamp columns of ``TracksRun`` /
``TracksUpdates`` are not diffed. Keys are text: a single-column key as the stored value's text,
a composite key as a JSON array (:func:`key_renderer`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Connection, Dialect, LargeBinary, Table, inspect

from ...db import Database
from . import _postgresql, _sqlite
from ._context import TransactionContext, context_of

__all__ = [
    "Resolver",
    "TransactionContext",
    "attach",
    "context_of",
    "current_rows_sql",
    "functions_sql",
    "install",
    "key_renderer",
    "register_sqlite_functions",
    "rows_sql",
    "stamp_columns",
]

#: ``resolver(connection) -> (run_id, user_id, cell)`` for a transaction about to write.
Resolver = Callable[[Connection | None], tuple[int | None, int, int | None]]

#: Marks a column as one of lineage_nb's stamps (set by the mixins, never diffed).
STAMP_INFO = "lineage_nb_auto"

register_sqlite_functions = _sqlite.register_functions
#: The PostgreSQL functions' DDL (single-user, or team versions owned by a role): setup-postgres.
functions_sql = _postgresql.functions_sql


def stamp_columns(table: Table) -> frozenset[str]:
    """Names of ``table``'s lineage stamp columns (marked by the mixins, not guessed by name)."""
    return frozenset(c.name for c in table.columns if c.info.get(STAMP_INFO))


@dataclass(frozen=True)
class TableSpec:
    """What the triggers of one table need to know about it."""

    name: str
    key_columns: tuple[str, ...]
    columns: tuple[str, ...]
    stamps: frozenset[str]
    binary: frozenset[str]
    json: frozenset[str]


def _spec(table: Table) -> TableSpec | None:
    keys = tuple(c.name for c in table.primary_key.columns)
    if not keys:
        return None
    return TableSpec(
        name=table.name,
        key_columns=keys,
        columns=tuple(c.name for c in table.columns),
        stamps=stamp_columns(table),
        binary=frozenset(c.name for c in table.columns if isinstance(c.type, LargeBinary)),
        json=frozenset(c.name for c in table.columns if isinstance(c.type, JSON)),
    )


def install(connection: Connection, tables: Iterable[Table]) -> list[str]:
    """Create (or bring up to date) the capture triggers of ``tables`` that exist in the database.

    Idempotent: a trigger whose definition is unchanged is left alone. Returns the tables whose
    triggers were (re)created.
    """
    existing = set(inspect(connection).get_table_names())
    specs = [s for s in (_spec(t) for t in tables) if s is not None and s.name in existing]
    if connection.dialect.name == "sqlite":
        return _sqlite.install(connection, specs)
    return _postgresql.install(connection, specs)


def create_functions(connection: Connection) -> None:
    """Create the database-side context and capture functions (PostgreSQL; SQLite has none)."""
    if connection.dialect.name == "postgresql":
        _postgresql.create_functions(connection)


def _table_spec(table: Table) -> TableSpec:
    spec = _spec(table)
    if spec is None:
        raise ValueError(f"table {table.name!r} has no primary key: it is not tracked")
    return spec


def current_rows_sql(table: Table, dialect: str) -> str:
    """``SELECT key, row`` of ``table``'s rows whose key text is in the JSON array ``:keys``, each
    row as one JSON object rendered exactly as the triggers render values in events (so a current
    row and an event's old values compare)."""
    spec = _table_spec(table)
    if dialect == "sqlite":
        return _sqlite.current_rows_sql(spec)
    return _postgresql.current_rows_sql(spec)


def rows_sql(table: Table, dialect: str, *, replacing: bool) -> str:
    """A ``SELECT`` of ``table``'s columns, typed as stored, from ``:ln_rows`` (a JSON array of
    row objects rendered as the triggers render them); with ``replacing``, the table's other rows
    too: those whose key text is not in the JSON array ``:ln_changed``."""
    spec = _table_spec(table)
    if dialect == "sqlite":
        return _sqlite.rows_sql(spec, replacing=replacing)
    return _postgresql.rows_sql(spec, replacing=replacing)


def key_renderer(key_types: Sequence[Any], dialect: Dialect) -> Callable[[Sequence[Any]], str]:
    """A function giving a record's key text as the triggers store it, from its key values.

    A single-column key is the stored value's text, a composite key a JSON array rendered as the
    backend renders it. ``key_types`` are the key columns' types: a value first becomes what the
    driver stores (e.g. a UUID becomes 32 hex digits on SQLite).
    """
    processors = [t.bind_processor(dialect) for t in key_types]
    if len(processors) == 1:
        processor = processors[0]
        if processor is None:
            return lambda values: _scalar_text(values[0])
        return lambda values: _scalar_text(None if values[0] is None else processor(values[0]))
    separators = (",", ":") if dialect.name == "sqlite" else (", ", ": ")

    def render(values: Sequence[Any]) -> str:
        stored = [
            p(v) if p is not None and v is not None else v
            for p, v in zip(processors, values, strict=True)
        ]
        return json.dumps([_json_key(v) for v in stored], separators=separators, ensure_ascii=False)

    return render


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _json_key(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, str)):
        return value
    return _scalar_text(value)


def attach(db: Database, resolver: Resolver) -> None:
    """Give every connection of ``db`` a transaction context resolved by ``resolver``.

    Installs, on ``db``'s engines (removed again by ``db.close()``): SQLite function
    registration at connect; a context snapshot before each statement of a transaction (and on
    PostgreSQL ``set_config`` before its first write); a reset at commit and rollback.
    """
    if db.dialect == "sqlite":
        db.listen("connect", _sqlite.on_connect(resolver))
        db.listen("handle_error", _sqlite.on_error)
        db.engine.dispose()  # connections opened before this get the functions when reopened
    db.listen("before_cursor_execute", _before_statement(resolver, db.dialect))
    for name in ("commit", "rollback"):
        db.listen(name, _reset)
    db.listen("rollback_savepoint", _savepoint_rolled_back)
    for name in ("checkin", "invalidate", "soft_invalidate"):  # pool events: (dbapi, record, ...)
        db.listen(name, _reset_record)


def _before_statement(resolver: Resolver, dialect: str) -> Callable[..., None]:
    send = _postgresql.send_context if dialect == "postgresql" else None

    def before(conn: Connection, cursor: Any, statement: str, *_args: Any) -> None:
        ctx = context_of(conn)
        if ctx.busy:
            return
        ctx.statement_started()
        if not _writes(statement) or (ctx.sent and ctx.values is not None):
            return
        ctx.busy = True
        try:
            if ctx.values is None:
                ctx.values = resolver(conn)
            if send is not None:
                send(conn, ctx)
            ctx.sent = True
        finally:
            ctx.busy = False

    return before


_OWN_TABLE_WRITE = re.compile(
    r'\s*(?:insert\s+into|update|delete\s+from)\s+(?:"?\w+"?\.)?"?lineage_', re.IGNORECASE
)


def _writes(statement: str) -> bool:
    """Whether a statement may write a tracked table (writes to our own tables need no context).

    Only the statement's target decides: ``UPDATE sample SET run_id = (lineage_nb_run())`` is a
    write of ``sample``.
    """
    head = statement.lstrip()[:16].lower()
    if not head.startswith(("insert", "update", "delete", "with", "merge", "copy")):
        return False
    return _OWN_TABLE_WRITE.match(statement) is None


def _reset(conn: Connection) -> None:
    if not conn.invalidated:  # an invalidated connection is reset by the pool's event instead
        context_of(conn).reset()


def _reset_record(dbapi_connection: Any, record: Any, *_args: Any) -> None:
    if record is not None:
        context_of(record).reset()


def _savepoint_rolled_back(conn: Connection, name: str, context: Any) -> None:
    # On PostgreSQL set_config(..., true) inside the savepoint is undone with it: send again.
    if not conn.invalidated:
        context_of(conn).sent = False
