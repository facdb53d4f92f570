"""SQLite capture: context functions registered per connection, one trigger per table and action.

SQLite triggers are ``FOR EACH ROW`` only and cannot read a TEMP table from the main schema, so the
context comes from Python functions registered on each connection (cheap: they return values
resolved once per transaction). The same functions serve as column ``DEFAULT``s, so rows written
by ``DataFrame.to_sql`` or ``text()`` SQL get their stamps too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from ._context import TransactionContext, context_of

if TYPE_CHECKING:
    from . import Resolver, TableSpec

__all__ = [
    "current_rows_sql",
    "install",
    "on_connect",
    "on_error",
    "register_functions",
    "rows_sql",
    "trigger_sql",
]

EVENTS = "lineage_record_event"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def register_functions(
    dbapi_connection: Any, context: TransactionContext, resolver: Callable[[], Any]
) -> None:
    """Register ``lineage_nb_run/user/cell/now()`` on a DBAPI (sqlite3 or aiosqlite) connection.

    The values come from ``context``; when lineage_nb did not resolve them before the statement
    (a raw DBAPI write), ``resolver()`` is asked once.
    """

    def values() -> tuple[Any, Any, Any]:
        found = context.values
        if found is None:
            found = context.values = resolver()
        return found

    def keeping_interrupts(function: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            try:
                return function()
            except BaseException as error:  # kept: sqlite3 reports only "raised exception"
                context.interrupted = error
                raise

        return call

    dbapi_connection.create_function("lineage_nb_run", 0, keeping_interrupts(lambda: values()[0]))
    dbapi_connection.create_function("lineage_nb_user", 0, keeping_interrupts(lambda: values()[1]))
    dbapi_connection.create_function("lineage_nb_cell", 0, keeping_interrupts(lambda: values()[2]))
    dbapi_connection.create_function("lineage_nb_now", 0, keeping_interrupts(context.now_text))
    dbapi_connection.create_function("lineage_nb_unhex", 1, _unhex, deterministic=True)


def _unhex(value: Any) -> Any:
    """``'hex:0a1b'`` (a BLOB as events store it) back to bytes; anything else unchanged."""
    if isinstance(value, str) and value.startswith("hex:"):
        return bytes.fromhex(value[4:])
    return value


_UDF_FAILED = "user-defined function raised exception"


def on_error(exception_context: Any) -> None:
    """An engine ``handle_error`` listener for Ctrl-C during a statement.

    sqlite3 reports Ctrl-C inside a context function as "user-defined function raised
    exception": it is raised again as the KeyboardInterrupt it was (the functions keep what they
    raise; an interrupt can also arrive as a function is entered, before it can keep anything, so
    a failure with nothing kept is that interrupt). Either way the statement's cursor is closed
    and the connection invalidated at once: a closed connection whose statement is still open
    (referenced by the traceback IPython keeps) would hold SQLite's write lock, blocking every
    writer until the traceback is freed.
    """
    connection = exception_context.connection
    original = exception_context.original_exception
    if connection is None:
        return
    interrupted: BaseException | None = None
    if not isinstance(original, Exception):
        interrupted = original
    elif _UDF_FAILED in str(original):
        context = context_of(connection)
        raised, context.interrupted = context.interrupted, None
        if raised is None or not isinstance(raised, Exception):
            interrupted = raised if raised is not None else KeyboardInterrupt()
    if interrupted is None:
        return
    execution = getattr(exception_context, "execution_context", None)
    cursor = getattr(exception_context, "cursor", None) or getattr(execution, "cursor", None)
    if cursor is not None:
        cursor.close()
    if not connection.invalidated:
        connection.invalidate(original)
    if interrupted is not original:
        raise interrupted


def on_connect(resolver: Resolver) -> Callable[[Any, Any], None]:
    """An engine ``connect`` listener registering the context functions on each new connection."""

    def connect(dbapi_connection: Any, connection_record: Any) -> None:
        context = context_of(connection_record)
        register_functions(dbapi_connection, context, lambda: resolver(None))

    return connect


def _key(alias: str, spec: TableSpec) -> str:
    columns = [f"{alias}.{_ident(c)}" for c in spec.key_columns]
    if len(columns) == 1:
        return columns[0]
    return f"json_array({', '.join(columns)})"


def _value(alias: str, column: str, spec: TableSpec) -> str:
    """A column value as JSON can hold it: BLOBs as ``hex:…`` text, JSON columns embedded."""
    ref = f"{alias}.{_ident(column)}"
    if column in spec.json:
        return f"CASE WHEN json_valid({ref}) THEN json({ref}) ELSE {ref} END"
    return f"CASE typeof({ref}) WHEN 'blob' THEN 'hex:' || lower(hex({ref})) ELSE {ref} END"


def _row_json(alias: str, spec: TableSpec) -> str:
    pairs = ", ".join(f"{_literal(c)}, {_value(alias, c, spec)}" for c in spec.columns)
    return f"json_object({pairs})"


def current_rows_sql(spec: TableSpec) -> str:
    """Key text and row JSON (as events render it) of the rows keyed in ``:keys``."""
    key = _key("t", spec)
    return (
        f"SELECT {key}, {_row_json('t', spec)} FROM {_ident(spec.name)} AS t "
        f"WHERE {key} IN (SELECT value FROM json_each(:keys))"
    )


def rows_sql(spec: TableSpec, *, replacing: bool) -> str:
    """Rows typed as stored from ``:ln_rows`` (BLOBs back from ``hex:`` text); with
    ``replacing``, the table's rows not keyed in ``:ln_changed`` first."""
    columns = []
    for column in spec.columns:
        path = _literal("$." + '"' + column.replace('"', '""') + '"')
        value = f"json_extract(d.value, {path})"
        if column in spec.binary:
            value = f"lineage_nb_unhex({value})"
        elif column in spec.json:  # the stored JSON text of the value, SQL NULL for null
            value = (
                f"CASE json_type(d.value, {path}) WHEN 'null' THEN NULL ELSE d.value -> {path} END"
            )
        columns.append(f"{value} AS {_ident(column)}")
    from_json = f"SELECT {', '.join(columns)} FROM json_each(:ln_rows) AS d"
    if not replacing:
        return from_json
    kept = ", ".join(f"t.{_ident(c)}" for c in spec.columns)
    return (
        f"SELECT {kept} FROM {_ident(spec.name)} AS t "
        f"WHERE {_key('t', spec)} NOT IN (SELECT value FROM json_each(:ln_changed)) "
        f"UNION ALL {from_json}"
    )


def _pairs(spec: TableSpec, columns: Sequence[str], new: str | None, only_changed: bool) -> str:
    """``(SELECT json_group_object(...))`` of ``{column: [old, new]}`` over ``columns``."""
    parts = []
    for column in columns:
        old_value = _value("OLD", column, spec)
        new_value = _value("NEW", column, spec) if new else "NULL"
        where = f" WHERE OLD.{_ident(column)} IS NOT NEW.{_ident(column)}" if only_changed else ""
        parts.append(
            f"SELECT {_literal(column)} AS k, json_array({old_value}, {new_value}) AS v{where}"
        )
    return f"(SELECT json_group_object(k, json(v)) FROM ({' UNION ALL '.join(parts)}))"


def _event(spec: TableSpec, action: str, key_alias: str, changes: str) -> str:
    return (
        f'INSERT INTO {EVENTS} (run_id, user_id, "table", pk, action, changes, cell, at) VALUES '
        f"(lineage_nb_run(), lineage_nb_user(), {_literal(spec.name)}, {_key(key_alias, spec)}, "
        f"{_literal(action)}, {changes}, lineage_nb_cell(), lineage_nb_now());"
    )


def _restamp(spec: TableSpec) -> str:
    """After an update that did not stamp the row itself (raw SQL, Core), stamp it."""
    stamps = spec.stamps
    assignments = []
    if "updated_at" in stamps:
        assignments.append('"updated_at" = lineage_nb_now()')
    if "updated_by_id" in stamps:
        assignments.append('"updated_by_id" = lineage_nb_user()')
    if "run_id" in stamps:
        assignments.append('"run_id" = lineage_nb_run()')
    if not assignments:
        return ""
    if "updated_at" in stamps:
        unstamped = 'NEW."updated_at" IS OLD."updated_at"'
    else:
        unstamped = 'NEW."run_id" IS NOT lineage_nb_run()'
    match = " AND ".join(f"{_ident(c)} = NEW.{_ident(c)}" for c in spec.key_columns)
    return f"UPDATE {_ident(spec.name)} SET {', '.join(assignments)} WHERE {match} AND {unstamped};"


def trigger_sql(spec: TableSpec) -> dict[str, str]:
    """``{trigger name: CREATE TRIGGER statement}`` for one table (insert, update, delete)."""
    table = _ident(spec.name)
    tracked = [c for c in spec.columns if c not in spec.stamps]
    changed = " OR ".join(f"OLD.{_ident(c)} IS NOT NEW.{_ident(c)}" for c in tracked)
    names = {a: f"lineage_nb_{a}_{spec.name}" for a in ("insert", "update", "delete")}
    return {
        names["insert"]: (
            f"CREATE TRIGGER {_ident(names['insert'])} AFTER INSERT ON {table} FOR EACH ROW "
            f"BEGIN {_event(spec, 'insert', 'NEW', 'NULL')} END"
        ),
        names["update"]: (
            f"CREATE TRIGGER {_ident(names['update'])} AFTER UPDATE ON {table} FOR EACH ROW "
            f"WHEN {changed} BEGIN {_event(spec, 'update', 'NEW', _pairs(spec, tracked, 'NEW', True))} "
            f"{_restamp(spec)} END"
        ),
        names["delete"]: (
            f"CREATE TRIGGER {_ident(names['delete'])} AFTER DELETE ON {table} FOR EACH ROW "
            f"BEGIN {_event(spec, 'delete', 'OLD', _pairs(spec, spec.columns, None, False))} END"
        ),
    }


def install(connection: Connection, specs: Sequence[TableSpec]) -> list[str]:
    """Create missing or changed triggers of ``specs``; returns the tables touched."""
    current: dict[str, str] = dict(
        connection.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE :p"),
            {"p": "lineage_nb_%"},
        ).all()
    )
    touched = []
    for spec in specs:
        changed = False
        for name, sql in trigger_sql(spec).items():
            if current.get(name) == sql:
                continue
            if name in current:
                connection.exec_driver_sql(f"DROP TRIGGER {_ident(name)}")
            connection.exec_driver_sql(sql)
            changed = True
        if changed:
            touched.append(spec.name)
    return touched
