"""PostgreSQL as the team backend: roles, grants and server-side stamping of who wrote what.

:func:`setup_postgres` (``lineage-nb setup-postgres --admin-url URL``) brings a database to the
lineage schema and makes it safe to share between *members*: login roles in a group role (default
``lineage_users``) made by :func:`add_user`.

Threat model. A member is an ordinary login (password or other auth) who may run any SQL: read
everything, write data tables, create tables, temporary tables, functions, types, casts and
triggers in ``public`` and ``pg_temp``, and set any session setting (``set_config``, ``SET``,
``SET ROLE`` to the group). Members must not be able to (a) gain more privileges (least of all
superuser) through lineage_nb's functions, (b) act as another user, (c) write lineage that is
false: events, runs, inputs or row stamps in another user's name or run, events about writes that
did not happen, or writes that leave no event. Out of scope: the administrator (a superuser, who
can do anything), denial of service, and what a table's owner can do to their own table's rows
before lineage sees them. The administrator should not write members' tables: PostgreSQL runs a
table owner's own triggers as whoever writes.

What setup does, and what is refused (SQLSTATE 42501 unless said) or recorded:

- every function has ``SET search_path = pg_catalog, pg_temp`` and calls everything
  schema-qualified, and the admin session runs with that search path too, so functions, operators
  or tables a member plants in ``public`` (``public.to_jsonb``, ``public.format`` overloads) or in
  ``pg_temp`` (a temporary ``lineage_user``) are never called or read in their place;
- identity is the login, ``session_user`` (not ``current_user``: ``SET ROLE`` to the group gives
  no shared identity), mapped to ``lineage_user.handle`` and created on first use;
- team mode is the function ``public.lineage_nb_team()`` returning the group, owned by a NOLOGIN
  non-superuser owner role (``<group>_owner``); no session setting turns it off;
- ``lineage_record_event`` is written only by ``lineage_nb_capture``, ``SECURITY DEFINER`` owned by
  the owner role: members have SELECT on it and nothing else (a forged event is refused with
  ``permission denied``); the capture takes its user from the login, refuses another
  ``lineage_nb.user`` and a ``lineage_nb.run`` that is not the login's run (naming both), takes
  key columns from the catalog and rows only from its trigger's transition tables, records only
  tables in ``public``, and will not run casts made by non-superusers
  (:mod:`lineage_nb.lineage.capture._postgresql`);
- ``created_by_id`` / ``updated_by_id`` of data rows, ``created_by_id`` of runs and transforms:
  another user's id is refused, ``created_by_id`` cannot change; a row's ``run_id`` must be a run
  of the login (refused with a message naming the run, its user and the login), and an update
  that leaves it is restamped with the writer's run;
- ``lineage_run``: members insert their own runs and update only status, times and errored cells
  of their own runs (row-level security; another user's run is invisible to UPDATE, changes 0
  rows); the chain head and the rest cannot be updated;
- ``lineage_run_input``: only inputs of the login's own runs (a trigger refuses others);
- ``lineage_user``: members add only their own login and edit only their own name and email;
- ``lineage_seal``: read-only for members, so :func:`lineage_nb.lineage.verify.seal` returns 0
  for them; the administrator seals (``ln.connect(admin_url)`` then ``seal()``);
- DELETE of shared rows is allowed and recorded (an event with the full old row and the login);
  TRUNCATE of data tables is refused (it would delete without events);
- an event trigger protects tables created later (grants to the group, the stamp and TRUNCATE
  triggers), and refuses non-superusers dropping, disabling, renaming or redefining lineage_nb's
  triggers, even on tables they own.

:func:`add_user` creates a login role in the group (with a SCRAM password when given) together
with its ``lineage_user`` row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from ..errors import ConfigurationError, PermissionDenied
from ..lineage.capture import functions_sql

if TYPE_CHECKING:
    import psycopg

__all__ = ["DEFAULT_GROUP", "SetupReport", "add_user", "owner_role", "setup_postgres"]

DEFAULT_GROUP = "lineage_users"

#: Tables members read and may insert into, through checks (nothing else).
APPEND_ONLY = ("lineage_run_input", "lineage_cell", "lineage_cell_source")

#: lineage_nb's own tables (members' grants on them are set one by one below).
LINEAGE_TABLES = (
    "lineage_user",
    "lineage_transform",
    "lineage_run",
    "lineage_record_event",
    "lineage_run_input",
    "lineage_seal",
    "lineage_nb_version",
    "lineage_cell",
    "lineage_cell_source",
)

#: Columns of lineage_run members may update on their own runs while they are ``started`` (what
#: finish(), the heartbeat and the cell hooks write; ``transform_id``: the version of the code the
#: run executed, set at finish()). A finished run can no longer be changed by a member.
RUN_UPDATABLE = (
    "status",
    "finished_at",
    "last_seen_at",
    "errored_cells",
    "event_count",
    "transform_id",
)

#: A run on another host is aborted when silent this many heartbeat intervals plus the margin
#: (seconds); the same rule as :func:`lineage_nb.lineage.liveness.run_gone`, applied by the server.
_SILENT_BEATS, _SILENT_MARGIN_S = 3, 60

_SAFE_PATH = "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)"


def owner_role(group: str) -> str:
    """The NOLOGIN role that owns the team's definer function (capture) and the team marker."""
    return f"{group}_owner"


# Server-side functions. No values are spliced into these texts: they are constant DDL, and the
# dynamic statements inside them quote identifiers with format('%I' / regclass).
_FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION public.lineage_nb_me() RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT u.id FROM public.lineage_user AS u WHERE u.handle = session_user::text $$;

CREATE OR REPLACE FUNCTION public.lineage_nb_user_id() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN public.lineage_nb_login_user();
END $$;

CREATE OR REPLACE FUNCTION public.lineage_nb_stamp_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me integer := public.lineage_nb_user_id();
    column_name text;
    given text;
    previous text;
BEGIN
    -- columns are read one by one as text (integer columns, checked by protect_table): no cast
    -- or output function of a member's type runs here
    FOREACH column_name IN ARRAY TG_ARGV LOOP
        EXECUTE pg_catalog.format('SELECT ($1).%I::text', column_name) INTO given USING NEW;
        IF TG_OP = 'UPDATE' THEN
            EXECUTE pg_catalog.format('SELECT ($1).%I::text', column_name) INTO previous USING OLD;
        END IF;
        IF column_name = 'run_id' THEN
            IF TG_OP = 'UPDATE' AND given IS NOT DISTINCT FROM previous THEN
                -- an update that left the run alone is stamped with the writer's run
                NEW := pg_catalog.jsonb_populate_record(
                    NEW, pg_catalog.jsonb_build_object('run_id', public.lineage_nb_run()));
            ELSE
                PERFORM public.lineage_nb_check_run(
                    pg_catalog.format('%s.run_id', TG_TABLE_NAME), given::integer);
            END IF;
        ELSIF TG_OP = 'INSERT' OR column_name = 'updated_by_id' THEN
            -- given: refused unless it is the login; left as it was by an update: stamped
            IF given IS NOT NULL AND given <> me::text
               AND NOT (TG_OP = 'UPDATE' AND given IS NOT DISTINCT FROM previous) THEN
                RAISE EXCEPTION USING ERRCODE = '42501',
                    MESSAGE = pg_catalog.format(
                        '%s.%s = %s refused: the database user is %s (lineage user id %s); nobody '
                        'can write as someone else', TG_TABLE_NAME, column_name, given, session_user,
                        me),
                    HINT = 'Leave it empty: it is set from the login role.';
            END IF;
            NEW := pg_catalog.jsonb_populate_record(
                NEW, pg_catalog.jsonb_build_object(column_name, me));
        ELSIF given IS DISTINCT FROM previous THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = pg_catalog.format('%s.%s cannot change after insert (%s -> %s)',
                                            TG_TABLE_NAME, column_name, previous, given);
        END IF;
    END LOOP;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION public.lineage_nb_check_input() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM public.lineage_nb_check_run(TG_TABLE_NAME || '.run_id', NEW.run_id);
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION public.lineage_nb_check_cell_source() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.hash IS DISTINCT FROM pg_catalog.encode(
            pg_catalog.sha256(pg_catalog.convert_to(NEW.text, 'UTF8')), 'hex') THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = 'lineage_cell_source.hash must be the SHA-256 of its text';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION public.lineage_nb_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = '42501',
        MESSAGE = pg_catalog.format('TRUNCATE %I.%I refused: it would delete rows without record '
                                    'events', TG_TABLE_SCHEMA, TG_TABLE_NAME),
        HINT = 'Use DELETE, which is recorded.';
END $$;

CREATE OR REPLACE FUNCTION public.lineage_nb_stamp_columns(target regclass) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attname) FROM pg_catalog.pg_attribute AS a
WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped
  AND a.attname IN ('created_by_id', 'updated_by_id', 'run_id')
  AND a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,
                     'pg_catalog.int8'::pg_catalog.regtype) $$;

CREATE OR REPLACE FUNCTION public.lineage_nb_protect_table(target regclass, grantee text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    stamped text[] := public.lineage_nb_stamp_columns(target);
    sequence_name text;
BEGIN
    IF grantee IS NOT NULL THEN
        EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %I',
                                  target, grantee);
        FOR sequence_name IN
            SELECT pg_catalog.pg_get_serial_sequence(target::text, a.attname)
            FROM pg_catalog.pg_attribute AS a
            WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped
              AND pg_catalog.pg_get_serial_sequence(target::text, a.attname) IS NOT NULL
        LOOP
            EXECUTE pg_catalog.format('GRANT USAGE, SELECT ON SEQUENCE %s TO %I',
                                      sequence_name, grantee);
        END LOOP;
    END IF;
    IF stamped IS NOT NULL THEN
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE TRIGGER lineage_nb_stamp BEFORE INSERT OR UPDATE ON %s '
            'FOR EACH ROW EXECUTE FUNCTION public.lineage_nb_stamp_row(%s)', target,
            pg_catalog.array_to_string(ARRAY(SELECT pg_catalog.quote_literal(s)
                                             FROM pg_catalog.unnest(stamped) AS s), ', '));
    END IF;
    EXECUTE pg_catalog.format(
        'CREATE OR REPLACE TRIGGER lineage_nb_truncate BEFORE TRUNCATE ON %s '
        'FOR EACH STATEMENT EXECUTE FUNCTION public.lineage_nb_refuse_truncate()', target);
END $$;

-- What is wrong with lineage_nb's triggers on a table (NULL: nothing). lineage_nb_* triggers must
-- be enabled, unconditional and of their canonical kind; lineage_nb's functions only run from
-- triggers of those names.
CREATE OR REPLACE FUNCTION public.lineage_nb_trigger_problem(target oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
WITH ours(fn, name, kind) AS (VALUES
    ('public.lineage_nb_capture()'::pg_catalog.regprocedure, 'lineage_nb_insert', 4),
    ('public.lineage_nb_capture()'::pg_catalog.regprocedure, 'lineage_nb_update', 16),
    ('public.lineage_nb_capture()'::pg_catalog.regprocedure, 'lineage_nb_delete', 8),
    ('public.lineage_nb_restamp()'::pg_catalog.regprocedure, 'lineage_nb_restamp', 19),
    ('public.lineage_nb_stamp_row()'::pg_catalog.regprocedure, 'lineage_nb_stamp', 23),
    ('public.lineage_nb_refuse_truncate()'::pg_catalog.regprocedure, 'lineage_nb_truncate', 34))
SELECT pg_catalog.format('trigger %s on %s', t.tgname, t.tgrelid::pg_catalog.regclass)
FROM pg_catalog.pg_trigger AS t
LEFT JOIN ours AS o ON o.name = t.tgname
WHERE t.tgrelid = target AND NOT t.tgisinternal
  AND (t.tgname LIKE 'lineage\_nb\_%' OR t.tgfoid IN (SELECT fn FROM ours))
  AND (o.name IS NULL OR t.tgfoid <> o.fn OR t.tgtype <> o.kind OR t.tgenabled NOT IN ('O', 'A')
       OR pg_catalog.cardinality(t.tgattr::int2[]) > 0
       OR (t.tgqual IS NOT NULL AND o.name <> 'lineage_nb_restamp')
       OR (o.name = 'lineage_nb_stamp' AND NOT (
           public.lineage_nb_stamp_columns(t.tgrelid) <@ pg_catalog.string_to_array(
               pg_catalog.encode(t.tgargs, 'escape'), '\000'))))
LIMIT 1 $$;
"""

#: SQL: whether the current role is a superuser (lineage_nb's event triggers let superusers be).
_BY_SUPERUSER = "(SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user)"

_ON_CREATE_TABLE = rf"""
CREATE OR REPLACE FUNCTION public.lineage_nb_on_create_table() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    created record;
    by_superuser boolean := {_BY_SUPERUSER};
BEGIN
    FOR created IN
        SELECT DISTINCT c.oid, c.relname FROM pg_catalog.pg_event_trigger_ddl_commands() AS d
        JOIN pg_catalog.pg_class AS c ON c.oid = d.objid
        WHERE d.object_type = 'table' AND c.relpersistence <> 't'
          AND c.relnamespace = 'public'::pg_catalog.regnamespace
    LOOP
        CONTINUE WHEN by_superuser AND created.relname LIKE 'lineage\_%';  -- lineage_nb's own
        PERFORM public.lineage_nb_protect_table(created.oid::pg_catalog.regclass,
                                                public.lineage_nb_team());
    END LOOP;
END $$;
"""  # noqa: S608 (constant DDL: only the constant _BY_SUPERUSER is spliced in)


def _guard(function: str, find_problem: str, refused: str, cannot_be: str) -> str:
    """An event trigger function that refuses members' DDL touching lineage_nb's triggers.

    ``find_problem`` selects ``INTO problem`` what is wrong (nothing found: allowed); the refusal
    (42501) reads "<refused> refused: ... cannot be <cannot_be> by members", ``%s`` in
    ``refused`` standing for the problem. Superusers are not checked.
    """
    return rf"""
CREATE OR REPLACE FUNCTION public.{function}() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE problem text;
BEGIN
    IF {_BY_SUPERUSER} THEN
        RETURN;
    END IF;
    {find_problem.strip()}
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('{refused} refused: lineage_nb''s triggers record every '
                                        'write and cannot be {cannot_be} by members', problem);
    END IF;
END $$;
"""


_GUARD_TRIGGERS = _guard(
    "lineage_nb_guard_triggers",
    """
    SELECT public.lineage_nb_trigger_problem(x.rel) INTO problem FROM (
        SELECT d.objid AS rel FROM pg_catalog.pg_event_trigger_ddl_commands() AS d
        WHERE d.object_type = 'table'
        UNION
        SELECT t.tgrelid FROM pg_catalog.pg_event_trigger_ddl_commands() AS d
        JOIN pg_catalog.pg_trigger AS t ON t.oid = d.objid WHERE d.object_type = 'trigger'
    ) AS x WHERE public.lineage_nb_trigger_problem(x.rel) IS NOT NULL LIMIT 1;
    """,
    "%s",
    "disabled, renamed or redefined",
)

_GUARD_DROPS = _guard(
    "lineage_nb_guard_drops",
    r"""
    SELECT d.object_identity INTO problem FROM pg_catalog.pg_event_trigger_dropped_objects() AS d
    WHERE d.object_type = 'trigger' AND d.original AND d.object_identity LIKE 'lineage\_nb\_%'
    LIMIT 1;
    """,
    "DROP TRIGGER %s",
    "dropped",
)

#: lineage_nb's event triggers: (name, event, the command tags it fires on (None: every one),
#: the function it runs).
_EVENT_TRIGGER_LIST = (
    (
        "lineage_nb_new_tables",
        "ddl_command_end",
        "'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO'",
        "lineage_nb_on_create_table",
    ),
    (
        "lineage_nb_guard_triggers",
        "ddl_command_end",
        "'ALTER TABLE', 'CREATE TRIGGER', 'ALTER TRIGGER'",
        "lineage_nb_guard_triggers",
    ),
    ("lineage_nb_guard_drops", "sql_drop", None, "lineage_nb_guard_drops"),
)

_EVENT_TRIGGERS = (
    _ON_CREATE_TABLE
    + _GUARD_TRIGGERS
    + _GUARD_DROPS
    + "".join(
        "\n"
        + f"DROP EVENT TRIGGER IF EXISTS {name};\nCREATE EVENT TRIGGER {name} ON {event}\n"
        + ("" if tags is None else f"WHEN TAG IN ({tags})\n")
        + f"EXECUTE FUNCTION public.{function}();\n"
        for name, event, tags, function in _EVENT_TRIGGER_LIST
    )
)

#: BEFORE INSERT OR UPDATE stamp triggers on lineage_nb's own tables: (table, stamped columns).
_LINEAGE_TRIGGERS = {
    "lineage_transform": ("created_by_id",),
    "lineage_run": ("created_by_id",),
}


def _row_security(table: str, own: str, insert_check: str, update: str, update_check: str) -> str:
    """Row-level security on ``public.<table>``: members read every row, insert rows passing
    ``insert_check`` and update the rows ``update`` selects into rows passing ``update_check``
    (policies ``lineage_nb_read``, ``lineage_nb_insert_<own>`` and ``lineage_nb_update_<own>``)."""
    return f"""
ALTER TABLE public.{table} ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS lineage_nb_read ON public.{table};
DROP POLICY IF EXISTS lineage_nb_insert_{own} ON public.{table};
DROP POLICY IF EXISTS lineage_nb_update_{own} ON public.{table};
CREATE POLICY lineage_nb_read ON public.{table} FOR SELECT USING (true);
CREATE POLICY lineage_nb_insert_{own} ON public.{table} FOR INSERT
    WITH CHECK ({insert_check});
CREATE POLICY lineage_nb_update_{own} ON public.{table} FOR UPDATE
    USING ({update})
    WITH CHECK ({update_check});
"""


_BY_ME = "created_by_id OPERATOR(pg_catalog.=) public.lineage_nb_me()"
_IS_LOGIN = "handle OPERATOR(pg_catalog.=) session_user::text"
_RUN_POLICIES = _row_security(
    "lineage_run",
    "own",
    "created_by_id OPERATOR(pg_catalog.=) public.lineage_nb_user_id()",
    f"{_BY_ME} AND status OPERATOR(pg_catalog.=) 'started'",
    _BY_ME,
) + _row_security("lineage_user", "self", _IS_LOGIN, _IS_LOGIN, _IS_LOGIN)


@dataclass
class SetupReport:
    """What :func:`setup_postgres` did.

    Attributes:
        url: the SQLAlchemy URL of the database that was set up (password hidden).
        group: the group role whose members are lineage users.
        protected_tables: data tables that got grants and the ``created_by`` trigger.
    """

    url: str
    group: str
    protected_tables: list[str] = field(default_factory=list)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def _admin(url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit psycopg connection as administrator, with a search path members cannot plant in.

    A statement the server refuses for the role's privileges (SQLSTATE 42501: the URL's role is
    not a superuser) raises :class:`~lineage_nb.errors.PermissionDenied` naming the role.
    """
    import psycopg

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ConfigurationError(
            f"setup-postgres needs a PostgreSQL URL, got {parsed.get_backend_name()!r}.",
            value=parsed.render_as_string(hide_password=True),
            hint="Pass e.g. --admin-url postgresql://postgres@host/lab.",
        )
    try:
        connection = psycopg.connect(_libpq(url), autocommit=True)
    except psycopg.Error as error:
        raise ConfigurationError(
            f"Cannot connect as administrator to {parsed.render_as_string(hide_password=True)}: "
            f"{str(error).strip().splitlines()[0]}",
            value=parsed.render_as_string(hide_password=True),
            hint="Check the URL, and that the server runs and the role may create roles.",
        ) from error
    with connection:
        connection.execute(_SAFE_PATH)
        try:
            yield connection
        except psycopg.errors.InsufficientPrivilege as error:
            role = parsed.username or "the URL's role"
            raise PermissionDenied(
                f"The server refused {role!r} as administrator: "
                f"{str(error).strip().splitlines()[0]}",
                value=parsed.render_as_string(hide_password=True),
                hint="Setting up a team database creates roles and event triggers: give the URL "
                "of a superuser (--admin-url).",
            ) from error


def _ensure_database(admin_url: str, database: str | None) -> str:
    """The URL of ``database`` (created if missing), or ``admin_url`` itself when None."""
    if database is None:
        return admin_url
    from psycopg import sql

    with _admin(admin_url) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return make_url(admin_url).set(database=database).render_as_string(hide_password=False)


def _ensure_role(conn: psycopg.Connection[Any], role: str, *, login: bool) -> None:
    from psycopg import sql

    found = conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (role,)).fetchone()
    if found is None:
        kind = sql.SQL("LOGIN" if login else "NOLOGIN")
        conn.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(role), kind))


def setup_postgres(
    admin_url: str, *, database: str | None = None, group: str = DEFAULT_GROUP
) -> SetupReport:
    """Create or upgrade the lineage schema and the roles, grants and triggers of a team database.

    Safe to run again (after upgrades, or to protect tables created before it). Creates the
    group role and its NOLOGIN owner role (:func:`owner_role`), switches the capture functions
    to team mode (see the module docstring for what is then refused or recorded).

    Args:
        admin_url: URL of a superuser (it creates roles and event triggers).
        database: set up this database (created if missing) instead of the URL's own.
        group: the group role of lineage users.

    Returns:
        A :class:`SetupReport`.

    Raises:
        ConfigurationError: not PostgreSQL, or the server refused to connect.
        PermissionDenied: the URL's role is not allowed to (not a superuser).
    """
    from psycopg import sql

    from ..db import Database
    from ..lineage.migrate import upgrade_schema

    url = _ensure_database(admin_url, database)
    db = Database(url)
    try:
        upgrade_schema(db)
    finally:
        db.close()
    report = SetupReport(make_url(url).render_as_string(hide_password=True), group)
    owner = owner_role(group)
    with _admin(url) as conn, conn.transaction():
        _ensure_role(conn, group, login=False)
        _ensure_role(conn, owner, login=False)
        name = sql.Identifier(group)
        dbname = sql.Identifier(str(conn.info.dbname))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(dbname))
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(dbname, name))
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(name))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(owner)))
        _team_mode(conn, group, owner)
        conn.execute(_FUNCTIONS)
        conn.execute(_EVENT_TRIGGERS)
        conn.execute(sql.SQL("ALTER DATABASE {} RESET lineage_nb.user_group").format(dbname))
        _protect_lineage_tables(conn, group, owner)
        conn.execute(_RUN_POLICIES)
        _abort_silent_runs_function(conn, group, owner)
        tables = conn.execute(
            "SELECT c.relname::text, c.oid FROM pg_catalog.pg_class AS c "
            "WHERE c.relnamespace = 'public'::pg_catalog.regnamespace AND c.relkind IN ('r', 'p') "
            "AND NOT (c.relname = ANY (%s) OR (c.relname LIKE 'lineage\\_%%' AND "
            "(SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.oid = c.relowner))) "
            "ORDER BY 1",
            (list(LINEAGE_TABLES),),
        ).fetchall()
        for table, oid in tables:
            conn.execute(
                "SELECT public.lineage_nb_protect_table(%s::pg_catalog.oid::pg_catalog.regclass, %s)",
                (oid, group),
            )
            report.protected_tables.append(table)
    return report


def _team_mode(conn: psycopg.Connection[Any], group: str, owner: str) -> None:
    """Make ``public.lineage_nb_team()`` return ``group``, owned by ``owner``; team capture."""
    from psycopg import sql

    body = sql.SQL("SELECT {}::text").format(sql.Literal(group)).as_string(conn)
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION public.lineage_nb_team() RETURNS text LANGUAGE sql STABLE "
            "SET search_path = pg_catalog, pg_temp AS {}"
        ).format(sql.Literal(body))
    )
    conn.execute(
        sql.SQL("ALTER FUNCTION public.lineage_nb_team() OWNER TO {}").format(sql.Identifier(owner))
    )
    conn.execute(functions_sql("public", owner))


def _abort_silent_runs_function(conn: psycopg.Connection[Any], group: str, owner: str) -> None:
    """``public.lineage_nb_abort_silent_runs()``: any member may mark runs ``aborted`` whose
    process stopped beating (another user's included, which row security hides from a member's
    own UPDATE); the server checks the rule itself, so a member can abort nothing else.

    ``SECURITY DEFINER`` owned by the owner role, whose only update right on ``lineage_run`` is a
    policy limited to silent ``started`` runs turning ``aborted``.
    """
    from psycopg import sql

    members, definer = sql.Identifier(group), sql.Identifier(owner)
    silent = sql.SQL(
        "status OPERATOR(pg_catalog.=) 'started' AND heartbeat_seconds IS NOT NULL "
        "AND COALESCE(last_seen_at, started_at) OPERATOR(pg_catalog.<) (pg_catalog.now() "
        "OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => "
        "((heartbeat_seconds OPERATOR(pg_catalog.*) {}) OPERATOR(pg_catalog.+) {})))"
    ).format(sql.Literal(_SILENT_BEATS), sql.Literal(_SILENT_MARGIN_S))
    conn.execute("DROP POLICY IF EXISTS lineage_nb_abort_silent ON public.lineage_run")
    conn.execute(
        sql.SQL(
            "CREATE POLICY lineage_nb_abort_silent ON public.lineage_run FOR UPDATE TO {} "
            "USING ({}) WITH CHECK (status OPERATOR(pg_catalog.=) 'aborted')"
        ).format(definer, silent)
    )
    conn.execute(
        sql.SQL(
            "GRANT UPDATE (status, finished_at, last_seen_at) ON public.lineage_run TO {}"
        ).format(definer)
    )
    body = (
        sql.SQL(
            "UPDATE public.lineage_run SET status = 'aborted', "
            "finished_at = COALESCE(last_seen_at, started_at), "
            "last_seen_at = COALESCE(last_seen_at, started_at) WHERE {} RETURNING id"
        )
        .format(silent)
        .as_string(conn)
    )
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION public.lineage_nb_abort_silent_runs() "
            "RETURNS SETOF integer LANGUAGE sql SECURITY DEFINER "
            "SET search_path = pg_catalog, pg_temp AS {}"
        ).format(sql.Literal(body))
    )
    conn.execute(
        sql.SQL("ALTER FUNCTION public.lineage_nb_abort_silent_runs() OWNER TO {}").format(definer)
    )
    conn.execute("REVOKE ALL ON FUNCTION public.lineage_nb_abort_silent_runs() FROM PUBLIC")
    conn.execute(
        sql.SQL("GRANT EXECUTE ON FUNCTION public.lineage_nb_abort_silent_runs() TO {}").format(
            members
        )
    )


def _protect_lineage_tables(conn: psycopg.Connection[Any], group: str, owner: str) -> None:
    from psycopg import sql

    members, definer = sql.Identifier(group), sql.Identifier(owner)

    def table(name: str) -> sql.Composed:
        return sql.SQL("public.{}").format(sql.Identifier(name))

    for name in LINEAGE_TABLES:
        conn.execute(
            sql.SQL("REVOKE ALL ON {} FROM PUBLIC, {}, {}").format(table(name), members, definer)
        )
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(table(name), members))
    for name in ("lineage_transform", "lineage_run", "lineage_user", *APPEND_ONLY):
        conn.execute(sql.SQL("GRANT INSERT ON {} TO {}").format(table(name), members))
    conn.execute(
        sql.SQL("GRANT UPDATE ({}) ON public.lineage_run TO {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in RUN_UPDATABLE), members
        )
    )
    conn.execute(sql.SQL("GRANT UPDATE (name, email) ON public.lineage_user TO {}").format(members))
    # data tables of members point at runs and users (TracksRun); that needs REFERENCES
    conn.execute(
        sql.SQL("GRANT REFERENCES ON public.lineage_run, public.lineage_user TO {}").format(members)
    )
    # the capture function (SECURITY DEFINER, owned by the owner role) writes the events
    conn.execute(
        sql.SQL("GRANT SELECT ON public.lineage_run, public.lineage_user TO {}").format(definer)
    )
    conn.execute(
        sql.SQL("GRANT INSERT ON public.lineage_record_event, public.lineage_user TO {}").format(
            definer
        )
    )
    sequences = conn.execute(
        "SELECT pg_catalog.pg_get_serial_sequence(t, 'id') FROM pg_catalog.unnest(%s::text[]) AS t",
        (
            [
                f"public.{name}"
                for name in LINEAGE_TABLES
                if name not in ("lineage_nb_version", "lineage_cell_source")
            ],
        ),
    ).fetchall()
    for (sequence,) in sequences:
        if sequence is None:
            continue
        ident = sql.SQL(sequence)  # pg_get_serial_sequence returns it quoted and qualified
        conn.execute(sql.SQL("REVOKE ALL ON SEQUENCE {} FROM PUBLIC").format(ident))
        conn.execute(sql.SQL("GRANT USAGE, SELECT ON SEQUENCE {} TO {}").format(ident, members))
    for name in ("lineage_record_event", "lineage_user"):
        found = conn.execute(
            "SELECT pg_catalog.pg_get_serial_sequence(%s, 'id')", (f"public.{name}",)
        ).fetchone()
        if found is not None and found[0] is not None:
            conn.execute(
                sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(sql.SQL(found[0]), definer)
            )
    # events are written by the capture function alone: the old per-row stamp goes
    conn.execute("DROP TRIGGER IF EXISTS lineage_nb_stamp ON public.lineage_record_event")
    for name, columns in _LINEAGE_TRIGGERS.items():
        conn.execute(
            sql.SQL(
                "CREATE OR REPLACE TRIGGER lineage_nb_stamp BEFORE INSERT OR UPDATE ON {} "
                "FOR EACH ROW EXECUTE FUNCTION public.lineage_nb_stamp_row({})"
            ).format(table(name), sql.SQL(", ").join(sql.Literal(c) for c in columns))
        )
    for name in ("lineage_run_input", "lineage_cell"):
        conn.execute(
            sql.SQL(
                "CREATE OR REPLACE TRIGGER lineage_nb_check_input BEFORE INSERT "
                "ON {} FOR EACH ROW EXECUTE FUNCTION public.lineage_nb_check_input()"
            ).format(table(name))
        )
    conn.execute(
        "CREATE OR REPLACE TRIGGER lineage_nb_check_source BEFORE INSERT "
        "ON public.lineage_cell_source FOR EACH ROW "
        "EXECUTE FUNCTION public.lineage_nb_check_cell_source()"
    )


def _scram_verifier(password: str) -> str:
    """A SCRAM-SHA-256 verifier for ``password``, so the clear password never reaches the server."""
    salt, iterations = os.urandom(16), 4096
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def add_user(
    admin_url: str,
    role: str,
    *,
    database: str | None = None,
    name: str | None = None,
    email: str | None = None,
    group: str = DEFAULT_GROUP,
    password: str | None = None,
) -> int:
    """Create login role ``role`` (if missing) in the lineage group, with its ``lineage_user`` row.

    Args:
        admin_url: URL of a superuser on the team database (as for :func:`setup_postgres`).
        role: the login role; it is also the user's handle in lineage.
        database: the team database, when not the one in ``admin_url``.
        name: the person's name, stored on the lineage user.
        email: the person's email.
        group: the group role made by :func:`setup_postgres`.
        password: the login's password, stored as a SCRAM-SHA-256 verifier computed here (the
            clear text is not sent); None leaves the role's password as it is.

    Returns:
        The ``lineage_user`` id of the role.
    """
    from psycopg import sql

    url = (
        admin_url
        if database is None
        else (make_url(admin_url).set(database=database).render_as_string(hide_password=False))
    )
    with _admin(url) as conn, conn.transaction():
        _ensure_role(conn, role, login=True)
        if password is not None:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(_scram_verifier(password))
                )
            )
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(role)))
        row = conn.execute(
            "INSERT INTO public.lineage_user AS u (handle, name, email, created_at) "
            "VALUES (%s, %s, %s, pg_catalog.now()) ON CONFLICT (handle) DO UPDATE SET "
            "name = COALESCE(EXCLUDED.name, u.name), "
            "email = COALESCE(EXCLUDED.email, u.email) RETURNING id",
            (role, name, email),
        ).fetchone()
    assert row is not None
    return int(row[0])
