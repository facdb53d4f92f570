"""PostgreSQL as the team backend: roles, grants and server-side stamping of who wrote what.

:func:`setup_postgres` (``lineage-nb setup-postgres --admin-url URL``) brings a database to the
lineage schema and makes it safe to share:

- a group role (default ``lineage_users``) whose members read everything, write data tables,
  and may only *insert* into ``lineage_record_event`` and ``lineage_run_input`` (no UPDATE,
  DELETE or TRUNCATE), so lineage cannot be rewritten by its users;
- ``created_by_id`` of data rows, ``created_by_id`` of runs and transforms and ``user_id`` of
  events come from the database login (``current_user``, mapped to ``lineage_user.handle`` and
  created on first use): a trigger refuses any other value, and refuses changing them later;
- users may only add events to their own runs, and only change their own runs;
- an event trigger applies the same to every table a member creates later (``db.create_all()``).

:func:`add_user` creates a login role in the group together with its ``lineage_user`` row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from ..errors import ConfigurationError

if TYPE_CHECKING:
    import psycopg

__all__ = ["DEFAULT_GROUP", "SetupReport", "add_user", "setup_postgres"]

DEFAULT_GROUP = "lineage_users"

#: Tables written only by inserts; their users get SELECT and INSERT, nothing else.
APPEND_ONLY = ("lineage_record_event", "lineage_run_input")

# Server-side functions. No values are spliced into these texts: they are constant DDL, and the
# dynamic statements inside them quote identifiers with format('%I' / regclass).
_FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION public.lineage_nb_me() RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT id FROM public.lineage_user WHERE handle = current_user::text $$;

CREATE OR REPLACE FUNCTION public.lineage_nb_user_id() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE found integer := public.lineage_nb_me();
BEGIN
    IF found IS NULL THEN
        INSERT INTO public.lineage_user (handle, created_at) VALUES (current_user::text, now())
        ON CONFLICT (handle) DO NOTHING;
        found := public.lineage_nb_me();
    END IF;
    RETURN found;
END $$;

CREATE OR REPLACE FUNCTION public.lineage_nb_stamp_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me integer := public.lineage_nb_user_id();
    new_row jsonb := to_jsonb(NEW);
    column_name text;
    given text;
BEGIN
    FOREACH column_name IN ARRAY TG_ARGV LOOP
        CONTINUE WHEN NOT new_row ? column_name;
        given := new_row ->> column_name;
        IF TG_OP = 'INSERT' OR column_name = 'updated_by_id' THEN
            IF given IS NOT NULL AND given <> me::text THEN
                RAISE EXCEPTION USING ERRCODE = '42501',
                    MESSAGE = format('%s.%s = %s refused: the database user is %s (lineage user '
                                     'id %s); nobody can write as someone else',
                                     TG_TABLE_NAME, column_name, given, current_user, me),
                    HINT = 'Leave it empty: it is set from the login role.';
            END IF;
            NEW := jsonb_populate_record(NEW, jsonb_build_object(column_name, me));
        ELSIF given IS DISTINCT FROM (to_jsonb(OLD) ->> column_name) THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = format('%s.%s cannot change after insert (%s -> %s)',
                                 TG_TABLE_NAME, column_name, to_jsonb(OLD) ->> column_name, given);
        END IF;
    END LOOP;
    IF TG_TABLE_NAME = 'lineage_record_event' AND new_row ->> 'run_id' IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM public.lineage_run
                       WHERE id = (new_row ->> 'run_id')::integer AND created_by_id = me) THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = format('run %s belongs to another user than %s; events can only be '
                                 'added to your own runs', new_row ->> 'run_id', current_user);
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION public.lineage_nb_protect_table(target regclass, grantee text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    stamped text[];
    sequence_name text;
BEGIN
    SELECT array_agg(attname::text ORDER BY attname) INTO stamped FROM pg_attribute
    WHERE attrelid = target AND NOT attisdropped
      AND attname IN ('created_by_id', 'updated_by_id');
    IF grantee IS NOT NULL THEN
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %I', target, grantee);
        FOR sequence_name IN
            SELECT pg_get_serial_sequence(target::text, attname) FROM pg_attribute
            WHERE attrelid = target AND attnum > 0 AND NOT attisdropped
              AND pg_get_serial_sequence(target::text, attname) IS NOT NULL
        LOOP
            EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO %I', sequence_name, grantee);
        END LOOP;
    END IF;
    IF stamped IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_trigger WHERE tgrelid = target AND tgname = 'lineage_nb_stamp'
    ) THEN
        EXECUTE format('CREATE TRIGGER lineage_nb_stamp BEFORE INSERT OR UPDATE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION public.lineage_nb_stamp_row(%s)',
                       target, array_to_string(ARRAY(SELECT quote_literal(s)
                                                     FROM unnest(stamped) s), ', '));
    END IF;
END $$;
"""

_EVENT_TRIGGER = r"""
CREATE OR REPLACE FUNCTION public.lineage_nb_on_create_table() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE created record;
BEGIN
    FOR created IN SELECT objid FROM pg_event_trigger_ddl_commands()
                   WHERE command_tag = 'CREATE TABLE' AND object_type = 'table'
    LOOP
        CONTINUE WHEN (SELECT relname FROM pg_class WHERE oid = created.objid) LIKE 'lineage\_%';
        PERFORM public.lineage_nb_protect_table(
            created.objid::regclass, current_setting('lineage_nb.user_group', true));
    END LOOP;
END $$;

DROP EVENT TRIGGER IF EXISTS lineage_nb_new_tables;
CREATE EVENT TRIGGER lineage_nb_new_tables ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
EXECUTE FUNCTION public.lineage_nb_on_create_table();
"""

_LINEAGE_TRIGGERS = {
    "lineage_transform": ("created_by_id",),
    "lineage_run": ("created_by_id",),
    "lineage_record_event": ("user_id",),
}

_RUN_POLICIES = r"""
ALTER TABLE lineage_run ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS lineage_nb_read ON lineage_run;
DROP POLICY IF EXISTS lineage_nb_insert_own ON lineage_run;
DROP POLICY IF EXISTS lineage_nb_update_own ON lineage_run;
CREATE POLICY lineage_nb_read ON lineage_run FOR SELECT USING (true);
CREATE POLICY lineage_nb_insert_own ON lineage_run FOR INSERT
    WITH CHECK (created_by_id = public.lineage_nb_user_id());
CREATE POLICY lineage_nb_update_own ON lineage_run FOR UPDATE
    USING (created_by_id = public.lineage_nb_me()) WITH CHECK (created_by_id = public.lineage_nb_me());
"""


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
        yield connection


def _ensure_database(admin_url: str, database: str | None) -> str:
    """The URL of ``database`` (created if missing), or ``admin_url`` itself when None."""
    if database is None:
        return admin_url
    from psycopg import sql

    with _admin(admin_url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return make_url(admin_url).set(database=database).render_as_string(hide_password=False)


def _ensure_role(conn: psycopg.Connection[Any], role: str, *, login: bool) -> None:
    from psycopg import sql

    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
        kind = sql.SQL("LOGIN" if login else "NOLOGIN")
        conn.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(role), kind))


def setup_postgres(
    admin_url: str, *, database: str | None = None, group: str = DEFAULT_GROUP
) -> SetupReport:
    """Create or upgrade the lineage schema and the roles, grants and triggers of a team database.

    Safe to run again (after upgrades, or to protect tables created before it).

    Args:
        admin_url: URL of a superuser (it creates roles and an event trigger).
        database: set up this database (created if missing) instead of the URL's own.
        group: the group role of lineage users.

    Returns:
        A :class:`SetupReport`.

    Raises:
        ConfigurationError: not PostgreSQL, or the server refused to connect.
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
    with _admin(url) as conn, conn.transaction():
        _ensure_role(conn, group, login=False)
        name = sql.Identifier(group)
        dbname = sql.Identifier(str(conn.info.dbname))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(dbname))
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(dbname, name))
        conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(name))
        conn.execute(_FUNCTIONS)
        conn.execute(_EVENT_TRIGGER)
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET lineage_nb.user_group = {}").format(
                dbname, sql.Literal(group)
            )
        )
        _protect_lineage_tables(conn, name)
        conn.execute(_RUN_POLICIES)
        tables = conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
            "AND c.relname NOT LIKE %s ORDER BY 1",
            ("lineage\\_%",),
        ).fetchall()
        for (table,) in tables:
            conn.execute("SELECT public.lineage_nb_protect_table(%s::regclass, %s)", (table, group))
            report.protected_tables.append(table)
    return report


def _protect_lineage_tables(conn: psycopg.Connection[Any], group: Any) -> None:
    from psycopg import sql

    for table in ("lineage_user", "lineage_transform", "lineage_run", *APPEND_ONLY,
                  "lineage_nb_version"):
        ident = sql.Identifier(table)
        conn.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC, {}").format(ident, group))
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(ident, group))
    for table in ("lineage_transform", "lineage_run", *APPEND_ONLY):
        conn.execute(sql.SQL("GRANT INSERT ON {} TO {}").format(sql.Identifier(table), group))
    conn.execute(sql.SQL("GRANT UPDATE ON lineage_run TO {}").format(group))
    # data tables of members point at runs and users (TracksRun); that needs REFERENCES
    conn.execute(sql.SQL("GRANT REFERENCES ON lineage_run, lineage_user TO {}").format(group))
    # lineage_user rows are created by lineage_nb_user_id() for current_user only (policy below).
    conn.execute(sql.SQL("GRANT INSERT ON lineage_user TO {}").format(group))
    conn.execute(sql.SQL("GRANT UPDATE (name, email) ON lineage_user TO {}").format(group))
    conn.execute("ALTER TABLE lineage_user ENABLE ROW LEVEL SECURITY")
    for policy in ("lineage_nb_read", "lineage_nb_insert_self", "lineage_nb_update_self"):
        conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON lineage_user").format(
            sql.Identifier(policy)))
    conn.execute("CREATE POLICY lineage_nb_read ON lineage_user FOR SELECT USING (true)")
    conn.execute(
        "CREATE POLICY lineage_nb_insert_self ON lineage_user FOR INSERT "
        "WITH CHECK (handle = current_user::text)"
    )
    conn.execute(
        "CREATE POLICY lineage_nb_update_self ON lineage_user FOR UPDATE "
        "USING (handle = current_user::text) WITH CHECK (handle = current_user::text)"
    )
    conn.execute(
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(group)
    )
    for table, columns in _LINEAGE_TRIGGERS.items():
        ident = sql.Identifier(table)
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS lineage_nb_stamp ON {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER lineage_nb_stamp BEFORE INSERT OR UPDATE ON {} "
                "FOR EACH ROW EXECUTE FUNCTION public.lineage_nb_stamp_row({})"
            ).format(ident, sql.SQL(", ").join(sql.Literal(c) for c in columns))
        )


def add_user(
    admin_url: str,
    role: str,
    *,
    database: str | None = None,
    name: str | None = None,
    email: str | None = None,
    group: str = DEFAULT_GROUP,
) -> int:
    """Create login role ``role`` (if missing) in the lineage group, with its ``lineage_user`` row.

    Args:
        admin_url: URL of a superuser on the team database (as for :func:`setup_postgres`).
        role: the login role; it is also the user's handle in lineage.
        database: the team database, when not the one in ``admin_url``.
        name: the person's name, stored on the lineage user.
        email: the person's email.
        group: the group role made by :func:`setup_postgres`.

    Returns:
        The ``lineage_user`` id of the role.
    """
    from psycopg import sql

    url = admin_url if database is None else (
        make_url(admin_url).set(database=database).render_as_string(hide_password=False)
    )
    with _admin(url) as conn, conn.transaction():
        _ensure_role(conn, role, login=True)
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(role))
        )
        row = conn.execute(
            "INSERT INTO lineage_user (handle, name, email, created_at) "
            "VALUES (%s, %s, %s, now()) ON CONFLICT (handle) DO UPDATE SET "
            "name = COALESCE(EXCLUDED.name, lineage_user.name), "
            "email = COALESCE(EXCLUDED.email, lineage_user.email) RETURNING id",
            (role, name, email),
        ).fetchone()
    assert row is not None
    return int(row[0])
