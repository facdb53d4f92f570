"""PostgreSQL capture: statement-level triggers with transition tables, context in settings.

lineage_nb sends ``set_config('lineage_nb.run'|'.user'|'.cell', value, true)`` before the first
write of a transaction (undone with a rolled-back savepoint, forgotten at commit). The trigger
functions are created in the schema of the lineage tables, with ``SET search_path = pg_catalog,
pg_temp`` and schema-qualified names, so no object a user creates in ``public`` or in ``pg_temp``
can stand in for them. Inserts and deletes are captured by ``FOR EACH STATEMENT`` triggers (one
``INSERT … SELECT`` per statement, however many rows); updates by a statement trigger that joins
the old and new rows on the key. A ``BEFORE UPDATE`` row trigger stamps rows that an update did
not stamp itself (raw SQL), and only fires for those (``WHEN``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

from ..driver import send

if TYPE_CHECKING:
    from . import TableSpec
    from ._context import TransactionContext

__all__ = ["create_functions", "install", "send_context"]

_SET_CONTEXT = (
    "SELECT set_config('lineage_nb.run', %(run)s, true), "
    "set_config('lineage_nb.user', %(user)s, true), "
    "set_config('lineage_nb.cell', %(cell)s, true)"
)


def send_context(conn: Connection, context: TransactionContext) -> None:
    """Send the transaction's context to the server (one statement, local to the transaction)."""
    assert context.values is not None
    run, user, cell = context.values
    params = {
        "run": "" if run is None else str(run),
        "user": "" if user is None else str(user),
        "cell": "" if cell is None else str(cell),
    }
    send(conn, _SET_CONTEXT, params).close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# {s} is the quoted schema of the lineage tables; nothing else is spliced into these texts.
_FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION {s}.lineage_nb_run() RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT NULLIF(pg_catalog.current_setting('lineage_nb.run', true), '')::integer $$;

CREATE OR REPLACE FUNCTION {s}.lineage_nb_cell() RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT NULLIF(pg_catalog.current_setting('lineage_nb.cell', true), '')::integer $$;

CREATE OR REPLACE FUNCTION {s}.lineage_nb_now() RETURNS timestamptz
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.statement_timestamp() $$;

CREATE OR REPLACE FUNCTION {s}.lineage_nb_login_user() RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE found integer;
BEGIN
    SELECT id INTO found FROM {s}.lineage_user WHERE handle = session_user::text;
    IF found IS NULL THEN
        INSERT INTO {s}.lineage_user (handle, created_at) VALUES (session_user::text, now())
        ON CONFLICT (handle) DO NOTHING;
        SELECT id INTO found FROM {s}.lineage_user WHERE handle = session_user::text;
    END IF;
    RETURN found;
END $$;

CREATE OR REPLACE FUNCTION {s}.lineage_nb_user() RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE given integer := NULLIF(current_setting('lineage_nb.user', true), '')::integer;
BEGIN
    IF given IS NOT NULL THEN
        RETURN given;
    END IF;
    RETURN {s}.lineage_nb_login_user();
END $$;

CREATE OR REPLACE FUNCTION {s}.lineage_nb_capture() RETURNS trigger
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    run integer := {s}.lineage_nb_run();
    who integer := {s}.lineage_nb_user();
    cell integer := {s}.lineage_nb_cell();
    key_of_r text := TG_ARGV[0];
    key_of_o text := TG_ARGV[1];
    same_key text := TG_ARGV[2];
    stamps text[] := TG_ARGV[3]::text[];
    target text := TG_TABLE_NAME;
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE format(
            'INSERT INTO {s}.lineage_record_event (run_id, user_id, "table", pk, action, cell, at) '
            'SELECT $1, $2, $3, %s, ''insert'', $4, statement_timestamp() FROM lineage_nb_new AS r',
            key_of_r) USING run, who, target, cell;
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE format(
            'INSERT INTO {s}.lineage_record_event '
            '(run_id, user_id, "table", pk, action, changes, cell, at) '
            'SELECT $1, $2, $3, %s, ''delete'', (SELECT jsonb_object_agg(j.key, '
            'jsonb_build_array(j.value, NULL)) FROM jsonb_each(to_jsonb(r)) AS j)::json, $4, '
            'statement_timestamp() FROM lineage_nb_old AS r', key_of_r) USING run, who, target, cell;
    ELSE
        -- rows matched on their key: the changed columns, stamps left out; none changed: no event
        EXECUTE format(
            'INSERT INTO {s}.lineage_record_event '
            '(run_id, user_id, "table", pk, action, changes, cell, at) '
            'SELECT $1, $2, $3, d.pk, ''update'', d.changes::json, $4, statement_timestamp() FROM ('
            'SELECT %s AS pk, (SELECT jsonb_object_agg(nj.key, jsonb_build_array(oj.value, '
            'nj.value)) FROM jsonb_each(to_jsonb(r)) AS nj JOIN jsonb_each(to_jsonb(o)) AS oj '
            'ON oj.key = nj.key WHERE nj.value IS DISTINCT FROM oj.value '
            'AND NOT (nj.key = ANY ($5))) AS changes '
            'FROM lineage_nb_new AS r JOIN lineage_nb_old AS o ON %s) AS d '
            'WHERE d.changes IS NOT NULL', key_of_r, same_key) USING run, who, target, cell, stamps;
        -- rows whose key changed: the old key deleted (full row), the new key inserted
        EXECUTE format(
            'INSERT INTO {s}.lineage_record_event '
            '(run_id, user_id, "table", pk, action, changes, cell, at) '
            'SELECT $1, $2, $3, %s, ''delete'', (SELECT jsonb_object_agg(j.key, '
            'jsonb_build_array(j.value, NULL)) FROM jsonb_each(to_jsonb(o)) AS j)::json, $4, '
            'statement_timestamp() FROM lineage_nb_old AS o '
            'WHERE NOT EXISTS (SELECT 1 FROM lineage_nb_new AS r WHERE %s)',
            key_of_o, same_key) USING run, who, target, cell;
        EXECUTE format(
            'INSERT INTO {s}.lineage_record_event (run_id, user_id, "table", pk, action, cell, at) '
            'SELECT $1, $2, $3, %s, ''insert'', $4, statement_timestamp() FROM lineage_nb_new AS r '
            'WHERE NOT EXISTS (SELECT 1 FROM lineage_nb_old AS o WHERE %s)',
            key_of_r, same_key) USING run, who, target, cell;
    END IF;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION {s}.lineage_nb_restamp() RETURNS trigger
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    stamps jsonb := '{{}}'::jsonb;
    columns text[] := TG_ARGV[0]::text[];
BEGIN
    IF 'run_id' = ANY (columns) THEN
        stamps := stamps || jsonb_build_object('run_id', {s}.lineage_nb_run());
    END IF;
    IF 'updated_at' = ANY (columns) THEN
        stamps := stamps || jsonb_build_object('updated_at', statement_timestamp());
    END IF;
    IF 'updated_by_id' = ANY (columns) THEN
        stamps := stamps || jsonb_build_object('updated_by_id', {s}.lineage_nb_user());
    END IF;
    NEW := jsonb_populate_record(NEW, stamps);
    RETURN NEW;
END $$;
"""


def _schema(connection: Connection) -> str:
    return _ident(str(connection.execute(text("SELECT current_schema()")).scalar_one()))


def create_functions(connection: Connection) -> None:
    """Create or replace the context and capture functions in the lineage tables' schema."""
    ddl = _FUNCTIONS.replace("{s}", _schema(connection)).replace("{{}}", "{}")
    cursor = connection.connection.cursor()  # no parameters: psycopg leaves format()'s %s alone
    try:
        cursor.execute(ddl)
    finally:
        cursor.close()


def _key(alias: str, spec: TableSpec) -> str:
    columns = [f"{alias}.{_ident(c)}" for c in spec.key_columns]
    if len(columns) == 1:
        return f"({columns[0]})::text"
    return f"json_build_array({', '.join(columns)})::text"


def _array(values: Sequence[str]) -> str:
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def _args(spec: TableSpec) -> list[str]:
    same_key = " AND ".join(f"r.{_ident(c)} = o.{_ident(c)}" for c in spec.key_columns)
    return [_key("r", spec), _key("o", spec), same_key, _array(sorted(spec.stamps))]


def _restamped(spec: TableSpec) -> list[str]:
    return sorted(spec.stamps & {"run_id", "updated_at", "updated_by_id"})


def trigger_sql(spec: TableSpec, schema: str) -> dict[str, tuple[str, list[str]]]:
    """``{trigger name: (CREATE OR REPLACE TRIGGER statement, its arguments)}`` for one table."""
    table = _ident(spec.name)
    args = _args(spec)
    capture = f"{schema}.lineage_nb_capture({', '.join(_literal(a) for a in args)})"
    statements = {
        "lineage_nb_insert": (
            f"CREATE OR REPLACE TRIGGER lineage_nb_insert AFTER INSERT ON {table} "
            f"REFERENCING NEW TABLE AS lineage_nb_new FOR EACH STATEMENT EXECUTE FUNCTION {capture}",
            args,
        ),
        "lineage_nb_update": (
            f"CREATE OR REPLACE TRIGGER lineage_nb_update AFTER UPDATE ON {table} "
            "REFERENCING OLD TABLE AS lineage_nb_old NEW TABLE AS lineage_nb_new "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {capture}",
            args,
        ),
        "lineage_nb_delete": (
            f"CREATE OR REPLACE TRIGGER lineage_nb_delete AFTER DELETE ON {table} "
            f"REFERENCING OLD TABLE AS lineage_nb_old FOR EACH STATEMENT EXECUTE FUNCTION {capture}",
            args,
        ),
    }
    restamped = _restamped(spec)
    if restamped:
        if "updated_at" in restamped:
            unstamped = "NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at"
        else:
            unstamped = f"NEW.run_id IS DISTINCT FROM {schema}.lineage_nb_run()"
        statements["lineage_nb_restamp"] = (
            f"CREATE OR REPLACE TRIGGER lineage_nb_restamp BEFORE UPDATE ON {table} FOR EACH ROW "
            f"WHEN ({unstamped}) EXECUTE FUNCTION {schema}.lineage_nb_restamp("
            f"{_literal(_array(restamped))})",
            [_array(restamped)],
        )
    return statements


def install(connection: Connection, specs: Sequence[TableSpec]) -> list[str]:
    """Create or replace the triggers of ``specs`` that are missing or differ; returns those tables."""
    schema = _schema(connection)
    current: dict[tuple[str, str], list[str]] = {}
    for table, name, raw in connection.execute(
        text(
            "SELECT c.relname, t.tgname, t.tgargs FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace "
            "AND t.tgname LIKE 'lineage_nb_%' AND NOT t.tgisinternal"
        )
    ).all():
        current[(table, name)] = bytes(raw).decode().split("\x00")[:-1]
    touched = []
    for spec in specs:
        changed = False
        for name, (sql, args) in trigger_sql(spec, schema).items():
            if current.get((spec.name, name)) == args:
                continue
            connection.exec_driver_sql(sql)
            changed = True
        if changed:
            touched.append(spec.name)
    return touched
