"""PostgreSQL capture: statement-level triggers with transition tables, context in settings.

lineage_nb sends ``set_config('lineage_nb.run'|'.user'|'.cell', value, true)`` before the first
write of a transaction (undone with a rolled-back savepoint, forgotten at commit). The trigger
functions are created in the schema of the lineage tables, with ``SET search_path = pg_catalog,
pg_temp`` and schema-qualified names, so no object a user creates in ``public`` or in ``pg_temp``
can stand in for them. Inserts and deletes are captured by ``FOR EACH STATEMENT`` triggers (one
``INSERT … SELECT`` per statement, however many rows); updates by a statement trigger that joins
the old and new rows on the key. A ``BEFORE UPDATE`` row trigger stamps rows that an update did
not stamp itself (raw SQL), and only fires for those (``WHEN``).

The capture function takes nothing from its trigger's arguments as SQL: the key columns come from
the catalog (``pg_index`` of ``TG_RELID``), the rows only from the trigger's own transition tables
(checked in ``pg_trigger``), and only tables in the lineage schema are recorded. The trigger
arguments written by :func:`trigger_sql` keep their old form (so installed triggers stay current);
only the stamp list is used, as a bound parameter.

Team mode (:mod:`lineage_nb.security.postgres`): ``lineage_nb_team()`` returns the group role
instead of NULL, and is owned by the team's NOLOGIN owner role, so it cannot be replaced or switched
off from a member's session. Then ``lineage_nb_capture`` is ``SECURITY DEFINER`` owned by that role
(the only writer of ``lineage_record_event``), the user is the login (``session_user``; a different
``lineage_nb.user`` is refused), a ``lineage_nb.run`` that is not the login's run is refused
(message naming the run, its user and the login), and the capture refuses tables whose column
types have casts made by non-superusers (it would run them as the owner role).
:func:`create_functions` keeps a team database in team mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

from ..driver import send

if TYPE_CHECKING:
    from . import TableSpec
    from ._context import TransactionContext

__all__ = [
    "create_functions",
    "functions_sql",
    "install",
    "send_context",
    "team_owner",
    "trigger_sql",
]

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


# {s} is the quoted schema of the lineage tables and {sl} its name as a string literal; {security}
# is SECURITY INVOKER, or SECURITY DEFINER on a team database. Nothing else is spliced in.
_TEAM_MARKER = r"""
CREATE FUNCTION {s}.lineage_nb_team() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT NULL::text $$;
"""

_FUNCTIONS = r"""
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
    SELECT u.id INTO found FROM {s}.lineage_user AS u WHERE u.handle = session_user::text;
    IF found IS NULL THEN
        INSERT INTO {s}.lineage_user (handle, created_at)
        VALUES (session_user::text, pg_catalog.now())
        ON CONFLICT (handle) DO NOTHING;
        SELECT u.id INTO found FROM {s}.lineage_user AS u WHERE u.handle = session_user::text;
    END IF;
    RETURN found;
END $$;

-- Refuses (42501) a run that is not the login's: the one check of run ownership, used by
-- lineage_nb_run() here and by the team setup's row and input triggers.
CREATE OR REPLACE FUNCTION {s}.lineage_nb_check_run(target text, run integer) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE owner_handle text;
BEGIN
    IF run IS NULL THEN
        RETURN;
    END IF;
    SELECT u.handle INTO owner_handle FROM {s}.lineage_run AS r
    JOIN {s}.lineage_user AS u ON u.id = r.created_by_id WHERE r.id = run;
    IF owner_handle IS DISTINCT FROM session_user::text THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format(
                '%s = %s refused: run %s %s, not to the database login %s; rows, events and '
                'inputs can only be written in your own runs', target, run, run,
                CASE WHEN owner_handle IS NULL THEN 'does not exist, it does not belong'
                     ELSE 'belongs to ' || owner_handle END, session_user),
            HINT = 'Start your own run with ln.track(), or write without a run.';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION {s}.lineage_nb_run() RETURNS integer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    given integer := NULLIF(pg_catalog.current_setting('lineage_nb.run', true), '')::integer;
BEGIN
    IF given IS NOT NULL AND {s}.lineage_nb_team() IS NOT NULL THEN
        PERFORM {s}.lineage_nb_check_run('lineage_nb.run', given);
    END IF;
    RETURN given;
END $$;

CREATE OR REPLACE FUNCTION {s}.lineage_nb_user() RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    given integer := NULLIF(pg_catalog.current_setting('lineage_nb.user', true), '')::integer;
    login integer;
BEGIN
    IF given IS NOT NULL AND {s}.lineage_nb_team() IS NULL THEN
        RETURN given;
    END IF;
    login := {s}.lineage_nb_login_user();
    IF given IS NOT NULL AND given IS DISTINCT FROM login THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format(
                'lineage_nb.user = %s refused: the database login %s is lineage user %s; nobody '
                'can write as someone else', given, session_user, login),
            HINT = 'Leave it to lineage_nb: on a team database the user is the login role.';
    END IF;
    RETURN login;
END $$;

CREATE OR REPLACE FUNCTION {s}.lineage_nb_capture() RETURNS trigger
LANGUAGE plpgsql VOLATILE {security} SET search_path = pg_catalog, pg_temp SET jit = off AS $fn$
DECLARE
    run integer := {s}.lineage_nb_run();
    who integer := {s}.lineage_nb_user();
    cell integer := {s}.lineage_nb_cell();
    -- stamp columns left out of update diffs: only ever a bound parameter, never SQL text
    stamps text[] := COALESCE(TG_ARGV[3], '{{}}')::text[];
    target text := TG_TABLE_NAME;
    keys text[];
    key_of_r text;
    key_of_o text;
    same_key text;
    diff text;
    new_table name;
    old_table name;
    unsafe text;
BEGIN
    IF TG_WHEN <> 'AFTER' OR TG_LEVEL <> 'STATEMENT' OR TG_OP = 'TRUNCATE'
       OR TG_TABLE_SCHEMA <> {sl} THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format(
                'trigger %s on %I.%I refused: lineage_nb_capture only records AFTER INSERT, UPDATE '
                'or DELETE FOR EACH STATEMENT on tables in schema %s', TG_NAME, TG_TABLE_SCHEMA,
                TG_TABLE_NAME, {sl});
    END IF;
    -- the rows come from this trigger's own transition tables, never from a relation of that name
    SELECT t.tgnewtable, t.tgoldtable INTO new_table, old_table FROM pg_catalog.pg_trigger AS t
    WHERE t.tgrelid = TG_RELID AND t.tgname = TG_NAME;
    IF (TG_OP <> 'DELETE' AND new_table IS DISTINCT FROM 'lineage_nb_new')
       OR (TG_OP <> 'INSERT' AND old_table IS DISTINCT FROM 'lineage_nb_old') THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format(
                'trigger %s on %I.%I refused: lineage_nb_capture needs the transition tables '
                'lineage_nb_new / lineage_nb_old', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME);
    END IF;
    -- the key comes from the catalog (the trigger's arguments are not trusted as SQL)
    SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.n) INTO keys
    FROM pg_catalog.pg_index AS i
    CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = TG_RELID AND i.indisprimary;
    IF keys IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = pg_catalog.format('%I.%I has no primary key: lineage_nb cannot record '
                                        'its rows', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    END IF;
    IF {s}.lineage_nb_team() IS NOT NULL THEN
        -- on a team database this runs as the lineage owner: refuse to call functions a member
        -- made (casts of the table's column types, which to_jsonb and ::text would call)
        WITH RECURSIVE used(typ) AS (
            SELECT a.atttypid FROM pg_catalog.pg_attribute AS a
            WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped
          UNION
            SELECT n.typ FROM used AS u JOIN pg_catalog.pg_type AS t ON t.oid = u.typ
            CROSS JOIN LATERAL (
                SELECT t.typbasetype WHERE t.typbasetype <> 0
                UNION ALL SELECT t.typelem WHERE t.typelem <> 0
                UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute AS a
                WHERE t.typrelid <> 0 AND a.attrelid = t.typrelid AND a.attnum > 0
                  AND NOT a.attisdropped
            ) AS n(typ)
        )
        SELECT pg_catalog.format('%s -> %s', c.castsource::regtype, c.casttarget::regtype)
        INTO unsafe FROM pg_catalog.pg_cast AS c
        JOIN used AS u ON u.typ = c.castsource
        JOIN pg_catalog.pg_proc AS p ON p.oid = c.castfunc
        JOIN pg_catalog.pg_roles AS o ON o.oid = p.proowner
        WHERE NOT o.rolsuper LIMIT 1;
        IF unsafe IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = pg_catalog.format(
                    'writes to %I.%I refused: the cast %s is a function of a non-superuser, '
                    'which lineage capture will not run', TG_TABLE_SCHEMA, TG_TABLE_NAME, unsafe),
                HINT = 'Drop the cast (its owner or an administrator).';
        END IF;
    END IF;
    IF pg_catalog.cardinality(keys) = 1 THEN
        key_of_r := pg_catalog.format('(r.%I)::text', keys[1]);
        key_of_o := pg_catalog.format('(o.%I)::text', keys[1]);
    ELSE
        key_of_r := pg_catalog.format('json_build_array(%s)::text', (
            SELECT pg_catalog.string_agg(pg_catalog.format('r.%I', k.c), ', ' ORDER BY k.n)
            FROM pg_catalog.unnest(keys) WITH ORDINALITY AS k(c, n)));
        key_of_o := pg_catalog.format('json_build_array(%s)::text', (
            SELECT pg_catalog.string_agg(pg_catalog.format('o.%I', k.c), ', ' ORDER BY k.n)
            FROM pg_catalog.unnest(keys) WITH ORDINALITY AS k(c, n)));
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.format('r.%I = o.%I', k.c, k.c), ' AND ' ORDER BY k.n)
    INTO same_key FROM pg_catalog.unnest(keys) WITH ORDINALITY AS k(c, n);
    IF TG_OP = 'INSERT' THEN
        EXECUTE pg_catalog.format(
            'INSERT INTO {s}.lineage_record_event (run_id, user_id, "table", pk, action, cell, at) '
            'SELECT $1, $2, $3, %s, ''insert'', $4, statement_timestamp() FROM lineage_nb_new AS r',
            key_of_r) USING run, who, target, cell;
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE pg_catalog.format(
            'INSERT INTO {s}.lineage_record_event '
            '(run_id, user_id, "table", pk, action, changes, cell, at) '
            'SELECT $1, $2, $3, %s, ''delete'', (SELECT jsonb_object_agg(j.key, '
            'jsonb_build_array(j.value, NULL)) FROM jsonb_each(to_jsonb(r)) AS j)::json, $4, '
            'statement_timestamp() FROM lineage_nb_old AS r', key_of_r) USING run, who, target, cell;
    ELSE
        -- the diff, one expression per column (stamps left out): a native comparison for
        -- pg_catalog types with a pg_catalog equality, else the jsonb values compared, so no
        -- member-made operator runs here
        SELECT pg_catalog.string_agg(pg_catalog.format(
            'CASE WHEN %s THEN pg_catalog.jsonb_build_object(%L, pg_catalog.jsonb_build_array('
            'pg_catalog.to_jsonb(o.%I), pg_catalog.to_jsonb(r.%I))) ELSE ''{}''::jsonb END',
            CASE WHEN t.typnamespace = 'pg_catalog'::pg_catalog.regnamespace AND EXISTS (
                SELECT 1 FROM pg_catalog.pg_operator AS op
                WHERE op.oprname = '=' AND op.oprleft = a.atttypid AND op.oprright = a.atttypid
                  AND op.oprnamespace = 'pg_catalog'::pg_catalog.regnamespace)
            THEN pg_catalog.format('r.%I IS DISTINCT FROM o.%I', a.attname, a.attname)
            ELSE pg_catalog.format('pg_catalog.to_jsonb(r.%I) IS DISTINCT FROM '
                                   'pg_catalog.to_jsonb(o.%I)', a.attname, a.attname) END,
            a.attname, a.attname, a.attname), ' || ' ORDER BY a.attnum)
        INTO diff FROM pg_catalog.pg_attribute AS a
        JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
        WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped
          AND NOT (a.attname::text = ANY (stamps));
        diff := pg_catalog.format('NULLIF(%s, ''{}''::jsonb)', COALESCE(diff, 'NULL::jsonb'));
        -- one statement: rows matched on their key give their changed columns (stamps left out;
        -- none changed: no event); a key that changed gives a delete of the old key (full row)
        -- and an insert of the new one
        EXECUTE pg_catalog.format(
            'INSERT INTO {s}.lineage_record_event '
            '(run_id, user_id, "table", pk, action, changes, cell, at) '
            'SELECT $1, $2, $3, d.pk, d.action, d.changes::json, $4, statement_timestamp() FROM ('
            'SELECT %1$s AS pk, ''update''::text AS action, %4$s AS changes '
            'FROM lineage_nb_new AS r JOIN lineage_nb_old AS o ON %3$s '
            'UNION ALL SELECT %2$s, ''delete'', (SELECT jsonb_object_agg(j.key, '
            'jsonb_build_array(j.value, NULL)) FROM jsonb_each(to_jsonb(o)) AS j) '
            'FROM lineage_nb_old AS o WHERE NOT EXISTS (SELECT 1 FROM lineage_nb_new AS r WHERE %3$s) '
            'UNION ALL SELECT %1$s, ''insert'', NULL FROM lineage_nb_new AS r '
            'WHERE NOT EXISTS (SELECT 1 FROM lineage_nb_old AS o WHERE %3$s)'
            ') AS d WHERE d.changes IS NOT NULL OR d.action = ''insert''',
            key_of_r, key_of_o, same_key, diff) USING run, who, target, cell;
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
        stamps := stamps || pg_catalog.jsonb_build_object('run_id', {s}.lineage_nb_run());
    END IF;
    IF 'updated_at' = ANY (columns) THEN
        stamps := stamps || pg_catalog.jsonb_build_object('updated_at',
                                                          pg_catalog.statement_timestamp());
    END IF;
    IF 'updated_by_id' = ANY (columns) THEN
        stamps := stamps || pg_catalog.jsonb_build_object('updated_by_id', {s}.lineage_nb_user());
    END IF;
    NEW := pg_catalog.jsonb_populate_record(NEW, stamps);
    RETURN NEW;
END $$;
"""


def _schema_name(connection: Connection) -> str:
    return str(connection.execute(text("SELECT current_schema()")).scalar_one())


def _schema(connection: Connection) -> str:
    return _ident(_schema_name(connection))


def functions_sql(schema_name: str, owner: str | None = None) -> str:
    """The DDL of the context and capture functions in schema ``schema_name``.

    ``owner`` None: the single-user functions (all ``SECURITY INVOKER``, as before team mode).
    ``owner`` a role: the team versions, with ``lineage_nb_capture`` ``SECURITY DEFINER`` owned
    by that role (it alone may insert events); whether the functions check the login against
    the context comes from ``lineage_nb_team()``, which only the team setup makes non-NULL.
    """
    security = "SECURITY INVOKER" if owner is None else "SECURITY DEFINER"
    ddl = (
        _FUNCTIONS.replace("{sl}", _literal(schema_name))
        .replace("{s}", _ident(schema_name))
        .replace("{security}", security)
        .replace("{{}}", "{}")
    )
    if owner is not None:
        ddl += _OWNED.replace("{s}", _ident(schema_name)).replace("{owner}", _ident(owner))
    return ddl


_OWNED = """
ALTER FUNCTION {s}.lineage_nb_capture() OWNER TO {owner};
"""

_TEAM_OWNER = (
    "SELECT pg_catalog.pg_get_userbyid(p.proowner) FROM pg_catalog.pg_proc AS p "
    "WHERE p.oid = pg_catalog.to_regprocedure(:marker)"
)
_TEAM_GROUP = "SELECT {s}.lineage_nb_team()"


def team_owner(connection: Connection) -> str | None:
    """The owner of the team functions when ``setup-postgres`` made this a team database.

    Team mode is ``lineage_nb_team()`` returning the group role; the function is owned by the
    team's owner role, so no member can replace it (nor switch team mode off from a session).
    """
    schema = _schema(connection)
    owner = connection.execute(
        text(_TEAM_OWNER), {"marker": schema + ".lineage_nb_team()"}
    ).scalar()
    if (
        owner is None
        or connection.execute(text(_TEAM_GROUP.replace("{s}", schema))).scalar() is None
    ):
        return None
    return str(owner)


def create_functions(connection: Connection) -> None:
    """Create or replace the context and capture functions in the lineage tables' schema.

    Team-aware: on a database set up by ``setup-postgres`` it creates the team versions (so a
    later migration does not undo team mode); otherwise the single-user ones. The marker
    ``lineage_nb_team()`` is created (returning NULL: single user) only when missing.
    """
    name = _schema_name(connection)
    owner = team_owner(connection)
    ddl = functions_sql(name, owner)
    marker = connection.execute(
        text("SELECT pg_catalog.to_regprocedure(:marker) IS NULL"),
        {"marker": _ident(name) + ".lineage_nb_team()"},
    ).scalar_one()
    if marker:
        ddl = _TEAM_MARKER.replace("{s}", _ident(name)) + ddl
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


def current_rows_sql(spec: TableSpec) -> str:
    """Key text and ``to_jsonb`` row (as events render it) of the rows keyed in ``:keys``."""
    key = _key("t", spec)
    return (
        f"SELECT {key}, pg_catalog.to_jsonb(t) FROM {_ident(spec.name)} AS t WHERE {key} IN "
        "(SELECT pg_catalog.jsonb_array_elements_text(CAST(:keys AS jsonb)))"
    )


def rows_sql(spec: TableSpec, *, replacing: bool) -> str:
    """Rows typed as the table's columns from ``:ln_rows`` (``to_jsonb`` objects); with
    ``replacing``, the table's rows not keyed in ``:ln_changed`` first."""
    table = _ident(spec.name)
    columns = ", ".join(f"r.{_ident(c)}" for c in spec.columns)
    from_json = (
        f"SELECT {columns} FROM pg_catalog.jsonb_array_elements(CAST(:ln_rows AS jsonb)) AS d, "
        f"pg_catalog.jsonb_populate_record(NULL::{table}, d.value) AS r"
    )
    if not replacing:
        return from_json
    kept = ", ".join(f"t.{_ident(c)}" for c in spec.columns)
    return (
        f"SELECT {kept} FROM {table} AS t WHERE {_key('t', spec)} NOT IN "
        "(SELECT pg_catalog.jsonb_array_elements_text(CAST(:ln_changed AS jsonb))) "
        f"UNION ALL {from_json}"
    )


def _array(values: Sequence[str]) -> str:
    return (
        "{"
        + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
        + "}"
    )


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
            (
                f"CREATE OR REPLACE TRIGGER lineage_nb_insert AFTER INSERT ON {table} "
                f"REFERENCING NEW TABLE AS lineage_nb_new FOR EACH STATEMENT EXECUTE FUNCTION {capture}"
            ),
            args,
        ),
        "lineage_nb_update": (
            (
                f"CREATE OR REPLACE TRIGGER lineage_nb_update AFTER UPDATE ON {table} "
                "REFERENCING OLD TABLE AS lineage_nb_old NEW TABLE AS lineage_nb_new "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {capture}"
            ),
            args,
        ),
        "lineage_nb_delete": (
            (
                f"CREATE OR REPLACE TRIGGER lineage_nb_delete AFTER DELETE ON {table} "
                f"REFERENCING OLD TABLE AS lineage_nb_old FOR EACH STATEMENT EXECUTE FUNCTION {capture}"
            ),
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
            (
                f"CREATE OR REPLACE TRIGGER lineage_nb_restamp BEFORE UPDATE ON {table} FOR EACH ROW "
                f"WHEN ({unstamped}) EXECUTE FUNCTION {schema}.lineage_nb_restamp("
                f"{_literal(_array(restamped))})"
            ),
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
