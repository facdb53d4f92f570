"""A member of a team database attacks it: each attack is refused, or recorded as what it was.

Real PostgreSQL: a throwaway cluster with SCRAM password authentication (started once per process
by ``pg_server.password_admin_url``), a fresh database per test set up by ``setup_postgres``, and
two ordinary members, alice and bob, who log in with their passwords. Alice wrote a project in a
run through lineage_nb; bob attacks with raw SQL (psycopg), as any member can.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pg_server
import psycopg
import pytest
from models import Project, Sample
from psycopg import sql
from sqlalchemy.engine import make_url

import lineage_nb as ln
from lineage_nb.lineage.verify import seal, verify
from lineage_nb.security import add_user, setup_postgres
from lineage_nb.security.postgres import owner_role

Conn = psycopg.Connection[tuple[object, ...]]


@dataclass
class Team:
    admin: str
    group: str
    alice: str
    bob: str
    alice_id: int
    bob_id: int
    alice_run: int
    project: int  # alice's project (with a sample)
    lonely: int  # alice's project without samples

    def url(self, role: str) -> str:
        return (
            make_url(self.admin)
            .set(username=role, password=f"pw-{role}")
            .render_as_string(hide_password=False)
        )

    def connect(self, role: str) -> Conn:
        return pg_server.connect(self.url(role))


@pytest.fixture
def team() -> Iterator[Team]:
    admin = pg_server.fresh_database_at(pg_server.password_admin_url(), "attacks")
    suffix = uuid.uuid4().hex[:8]
    group, alice, bob = f"lineage_users_{suffix}", f"alice_{suffix}", f"bob_{suffix}"
    setup_postgres(admin, group=group)
    alice_id = add_user(admin, alice, group=group, password=f"pw-{alice}")
    bob_id = add_user(admin, bob, group=group, password=f"pw-{bob}")
    partial = Team(admin, group, alice, bob, alice_id, bob_id, 0, 0, 0)
    db = ln.connect(partial.url(alice))
    run = ln.track(__file__)
    project = Project(name="alice's").save()
    Sample(name="s", value=1.0, project_id=project.id).save()
    lonely = Project(name="lonely").save()
    ln.finish()
    db.close()
    yield Team(admin, group, alice, bob, alice_id, bob_id, run.id, project.id, lonely.id)
    pg_server.drop_database(admin)
    server = make_url(admin).set(database="postgres").render_as_string(hide_password=False)
    with pg_server.connect(server) as conn:
        for role in (alice, bob, group, owner_role(group)):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _one(conn: Conn, query: str, params: tuple[object, ...] = ()) -> object:
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return row[0]


def _events(admin: Conn, table: str, pk: object) -> list[tuple[object, ...]]:
    return admin.execute(
        'SELECT action, user_id, run_id FROM lineage_record_event WHERE "table" = %s AND pk = %s '
        "ORDER BY id",
        (table, str(pk)),
    ).fetchall()


def _bob_table(conn: Conn, name: str = "bobs") -> None:
    """A table bob owns, with lineage_nb's capture triggers as lineage_nb installs them."""
    conn.execute(
        sql.SQL(
            "CREATE TABLE public.{} (id integer PRIMARY KEY, note text, "
            "created_by_id integer REFERENCES public.lineage_user (id))"
        ).format(sql.Identifier(name))
    )
    for trigger, event, refs in (
        ("lineage_nb_insert", "INSERT", "NEW TABLE AS lineage_nb_new"),
        ("lineage_nb_delete", "DELETE", "OLD TABLE AS lineage_nb_old"),
    ):
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {} AFTER {} ON public.{} REFERENCING {} FOR EACH STATEMENT "
                "EXECUTE FUNCTION public.lineage_nb_capture('(r.id)::text', '(o.id)::text', "
                "'r.id = o.id', '{{}}')"
            ).format(sql.Identifier(trigger), sql.SQL(event), sql.Identifier(name), sql.SQL(refs))
        )


# -- (a) planted overloads of built-ins -------------------------------------------------------


def test_planted_builtin_overloads_never_run(team: Team) -> None:
    """(a) bob's public.to_jsonb / format / jsonb_populate_record overloads that would make him
    superuser: the admin's setup and writes, and alice's, never call them."""
    with team.connect(team.bob) as bob:
        bob.execute("CREATE TABLE public.pwned (who text)")
        bob.execute("GRANT INSERT ON public.pwned TO PUBLIC")
        body = sql.SQL(
            "BEGIN INSERT INTO public.pwned VALUES (current_user); "
            "EXECUTE 'ALTER ROLE ' || quote_ident({}) || ' SUPERUSER'; RETURN {}; END"
        )
        for signature, result in (
            ("to_jsonb(public.project) RETURNS jsonb", "'{}'::jsonb"),
            ("to_jsonb(public.sample) RETURNS jsonb", "'{}'::jsonb"),
            ("format(text, text) RETURNS text", "''"),
            ("format(text, text, text) RETURNS text", "''"),
            ("format(text, text, integer) RETURNS text", "''"),
            ("jsonb_populate_record(public.sample, jsonb) RETURNS public.sample", "$1"),
            ("json_build_array(integer) RETURNS json", "'[]'::json"),
            ("current_setting(text, boolean) RETURNS text", "''"),
        ):
            bob.execute(
                sql.SQL("CREATE FUNCTION public.{} LANGUAGE plpgsql AS {}").format(
                    sql.SQL(signature),
                    sql.Literal(body.format(sql.Literal(team.bob), sql.SQL(result)).as_string(bob)),
                )
            )
    setup_postgres(team.admin, group=team.group)
    admin_db = ln.connect(team.admin)
    project = Project(name="admin's").save()
    project.update(name="admin's 2")
    sample = Sample(name="t", value=2.0, project_id=project.id).save()
    sample.update(value=3.0)
    sample.delete()
    admin_db.close()
    alice_db = ln.connect(team.url(team.alice))
    ln.track(__file__)
    Sample(name="u", value=1.0, project_id=team.project).save().update(value=5.0)
    ln.finish()
    alice_db.close()
    with pg_server.connect(team.admin) as admin:
        assert _one(admin, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (team.bob,)) is False
        assert _one(admin, "SELECT count(*) FROM public.pwned") == 0


def test_every_function_has_fixed_search_path(team: Team) -> None:
    """Every lineage_nb function in the team database runs with search_path pg_catalog, pg_temp."""
    with pg_server.connect(team.admin) as admin:
        rows = admin.execute(
            "SELECT p.proname, p.proconfig FROM pg_proc p WHERE p.proname LIKE 'lineage\\_nb\\_%%' "
            "AND p.pronamespace = 'public'::regnamespace"
        ).fetchall()
    assert len(rows) >= 20
    unsafe = [n for n, config in rows if "search_path=pg_catalog, pg_temp" not in (config or [])]
    assert unsafe == []


# -- (b) a temporary lineage_user, SET ROLE, and the session settings ---------------------------


def test_temp_lineage_user_does_not_change_identity(team: Team) -> None:
    """(b) bob's TEMP TABLE lineage_user mapping his login to alice's id changes nothing."""
    with team.connect(team.bob) as bob:
        bob.execute("CREATE TEMP TABLE lineage_user (id integer, handle text)")
        bob.execute("INSERT INTO lineage_user VALUES (%s, %s)", (team.alice_id, team.bob))
        bob.execute("CREATE TEMP TABLE lineage_run (id integer, created_by_id integer)")
        bob.execute("INSERT INTO lineage_run VALUES (%s, %s)", (team.alice_run, team.alice_id))
        assert _one(bob, "SELECT public.lineage_nb_me()") == team.bob_id
        assert _one(bob, "SELECT public.lineage_nb_user()") == team.bob_id
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="nobody can write as"):
            bob.execute(
                "INSERT INTO public.lineage_run (uid, transform_id, status, started_at, "
                "created_by_id) SELECT %s, transform_id, 'started', now(), %s "
                "FROM public.lineage_run WHERE id = %s",
                (str(uuid.uuid4()), team.alice_id, team.alice_run),
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"lineage_nb\.run = "):
            bob.execute("SELECT set_config('lineage_nb.run', %s, false)", (str(team.alice_run),))
            bob.execute("INSERT INTO public.project (name) VALUES ('as alice')")
        bob.execute("SELECT set_config('lineage_nb.run', '', false)")
        new = _one(bob, "INSERT INTO public.project (name) VALUES ('bob raw') RETURNING id")
        assert _one(bob, "SELECT created_by_id FROM public.project WHERE id = %s", (new,)) == (
            team.bob_id
        )
    with pg_server.connect(team.admin) as admin:
        assert _events(admin, "project", new) == [("insert", team.bob_id, None)]


def test_set_role_to_group_keeps_the_login(team: Team) -> None:
    """SET ROLE to the group role gives no shared identity: rows and events are still bob's."""
    with team.connect(team.bob) as bob:
        bob.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(team.group)))
        new = _one(bob, "INSERT INTO public.project (name) VALUES ('as group') RETURNING id")
        assert _one(bob, "SELECT created_by_id FROM public.project WHERE id = %s", (new,)) == (
            team.bob_id
        )
        assert (
            _one(bob, "SELECT count(*) FROM public.lineage_user WHERE handle = %s", (team.group,))
            == 0
        )
    with pg_server.connect(team.admin) as admin:
        assert _events(admin, "project", new) == [("insert", team.bob_id, None)]


def test_context_user_of_someone_else_is_refused(team: Team) -> None:
    """set_config('lineage_nb.user', <alice>) is refused, naming the value and the login."""
    with team.connect(team.bob) as bob:
        bob.execute("SELECT set_config('lineage_nb.user', %s, false)", (str(team.alice_id),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            bob.execute("INSERT INTO public.project (name) VALUES ('as alice')")
        assert f"lineage_nb.user = {team.alice_id} refused: the database login {team.bob}" in str(
            info.value
        )


def test_context_run_of_someone_else_is_refused(team: Team) -> None:
    """set_config('lineage_nb.run', <alice's run>) is refused, naming the run and its user."""
    with team.connect(team.bob) as bob:
        bob.execute("SELECT set_config('lineage_nb.run', %s, false)", (str(team.alice_run),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            bob.execute("UPDATE public.sample SET value = 9 WHERE project_id = %s", (team.project,))
        assert (
            f"run {team.alice_run} belongs to {team.alice}, not to the database login {team.bob}"
            in str(info.value)
        )
    with pg_server.connect(team.admin) as admin:
        assert _one(admin, "SELECT value FROM public.sample") == 1.0


def test_team_mode_cannot_be_switched_off(team: Team) -> None:
    """The team marker and the capture function belong to the owner role: no member replaces them."""
    with team.connect(team.bob) as bob:
        for statement in (
            (
                "CREATE OR REPLACE FUNCTION public.lineage_nb_team() RETURNS text LANGUAGE sql "
                "AS $$ SELECT NULL::text $$"
            ),
            (
                "CREATE OR REPLACE FUNCTION public.lineage_nb_capture() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"
            ),
            "ALTER FUNCTION public.lineage_nb_user() SECURITY INVOKER",
            "DROP FUNCTION public.lineage_nb_run()",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner"):
                bob.execute(statement)
        bob.execute("SET lineage_nb.user_group = ''")
        bob.execute("SELECT set_config('lineage_nb.user', %s, false)", (str(team.alice_id),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="refused"):
            bob.execute("INSERT INTO public.project (name) VALUES ('x')")


# -- (c) runs, inputs, events and rows of others --------------------------------------------------


def test_row_with_another_users_run_is_refused(team: Team) -> None:
    """(c) a row stamped with alice's run_id, on insert or update, is refused naming run and user."""
    with team.connect(team.bob) as bob:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            bob.execute(
                "INSERT INTO public.project (name, run_id) VALUES ('x', %s)", (team.alice_run,)
            )
        assert (
            f"project.run_id = {team.alice_run} refused: run {team.alice_run} belongs to "
            f"{team.alice}, not to the database login {team.bob}" in str(info.value)
        )
        bobs_sample = _one(
            bob,
            "INSERT INTO public.sample (name, value, project_id) VALUES ('b', 1, %s) RETURNING id",
            (team.project,),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="belongs to"):
            bob.execute(
                "UPDATE public.sample SET run_id = %s, updated_at = now() WHERE id = %s",
                (team.alice_run, bobs_sample),
            )
        # where the restamp trigger fires first, the forged run is replaced by bob's (no) run
        mine = _one(bob, "INSERT INTO public.project (name) VALUES ('bob') RETURNING id")
        bob.execute("UPDATE public.project SET run_id = %s WHERE id = %s", (team.alice_run, mine))
        assert _one(bob, "SELECT run_id FROM public.project WHERE id = %s", (mine,)) is None
        # setting it to the run it already has restamps it with bob's (here: no) run
        bob.execute(
            "UPDATE public.project SET run_id = %s WHERE id = %s", (team.alice_run, team.project)
        )
        assert _one(bob, "SELECT run_id FROM public.project WHERE id = %s", (team.project,)) is None
        # an update that leaves alice's run_id alone is stamped with bob's (here: no) run
        bob.execute("UPDATE public.project SET name = 'renamed' WHERE id = %s", (team.lonely,))
        assert _one(bob, "SELECT run_id FROM public.project WHERE id = %s", (team.lonely,)) is None


def test_inputs_of_another_users_run_are_refused(team: Team) -> None:
    """(c) bob cannot add inputs to alice's run."""
    with team.connect(team.bob) as bob:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            bob.execute(
                'INSERT INTO public.lineage_run_input (run_id, "table", pk, at) '
                "VALUES (%s, 'project', %s, now())",
                (team.alice_run, str(team.lonely)),
            )
        assert (
            f"lineage_run_input.run_id = {team.alice_run} refused: run {team.alice_run} "
            f"belongs to {team.alice}" in str(info.value)
        )


def test_cells_of_another_users_run_and_forged_sources_are_refused(team: Team) -> None:
    """(c) bob cannot add cells to alice's run, nor store a cell source under a hash that is
    not its text's (which would change the code shown for someone else's cell)."""
    import hashlib

    with team.connect(team.bob) as bob:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            bob.execute(
                "INSERT INTO public.lineage_cell_source (hash, text) VALUES (%s, 'evil()')",
                (hashlib.sha256(b"harmless()").hexdigest(),),
            )
        assert "must be the SHA-256 of its text" in str(info.value)
    with team.connect(team.bob) as bob:
        digest = hashlib.sha256(b"x = 1").hexdigest()
        bob.execute(
            "INSERT INTO public.lineage_cell_source (hash, text) VALUES (%s, 'x = 1')", (digest,)
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            bob.execute(
                "INSERT INTO public.lineage_cell (run_id, execution_count, source_hash, "
                "started_at, finished_at, status) VALUES (%s, 1, %s, now(), now(), 'ok')",
                (team.alice_run, digest),
            )
        assert f"lineage_cell.run_id = {team.alice_run} refused" in str(info.value)


def test_forged_events_are_refused(team: Team) -> None:
    """(c) no member inserts events itself: run-less, in alice's run, or as alice."""
    with team.connect(team.bob) as bob:
        for run, user in (
            (None, team.bob_id),
            (team.alice_run, team.bob_id),
            (None, team.alice_id),
        ):
            with pytest.raises(
                psycopg.errors.InsufficientPrivilege,
                match="permission denied for table lineage_record_event",
            ):
                bob.execute(
                    'INSERT INTO public.lineage_record_event (run_id, user_id, "table", pk, '
                    "action, at) VALUES (%s, %s, 'project', %s, 'delete', now())",
                    (run, user, str(team.project)),
                )


def test_run_of_another_user_cannot_be_rewritten(team: Team) -> None:
    """(b/c) alice's run: status unchanged (row-level security), chain head not updatable."""
    with team.connect(team.bob) as bob:
        cursor = bob.execute(
            "UPDATE public.lineage_run SET status = 'aborted' WHERE id = %s", (team.alice_run,)
        )
        assert cursor.rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            bob.execute(
                "UPDATE public.lineage_run SET chain_head = 'x' WHERE id = %s", (team.alice_run,)
            )
    with team.connect(team.alice) as alice:  # not even on her own run
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            alice.execute(
                "UPDATE public.lineage_run SET chain_head = 'x' WHERE id = %s", (team.alice_run,)
            )
    with pg_server.connect(team.admin) as admin:
        assert (
            _one(admin, "SELECT status FROM lineage_run WHERE id = %s", (team.alice_run,))
            == "completed"
        )


def test_raw_delete_of_shared_row_is_recorded(team: Team) -> None:
    """(c) bob's raw DELETE of alice's row leaves a delete event: bob, no run, the full old row."""
    with team.connect(team.bob) as bob:
        bob.execute("DELETE FROM public.project WHERE id = %s", (team.lonely,))
    with pg_server.connect(team.admin) as admin:
        assert _events(admin, "project", team.lonely)[-1] == ("delete", team.bob_id, None)
        changes = _one(
            admin,
            "SELECT changes FROM lineage_record_event WHERE \"table\" = 'project' AND pk = %s "
            "AND action = 'delete'",
            (str(team.lonely),),
        )
        assert changes["name"] == ["lonely", None]  # type: ignore[index]


def test_truncate_is_refused(team: Team) -> None:
    """TRUNCATE would delete without events: refused on alice's tables and on bob's own."""
    with team.connect(team.bob) as bob:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            bob.execute("TRUNCATE public.project CASCADE")
        _bob_table(bob)
        bob.execute("INSERT INTO public.bobs (id, note) VALUES (1, 'a')")
        with pytest.raises(
            psycopg.errors.InsufficientPrivilege,
            match=r"TRUNCATE public\.bobs refused: it would delete rows without",
        ):
            bob.execute("TRUNCATE public.bobs")
        assert _one(bob, "SELECT count(*) FROM public.bobs") == 1


# -- the capture trigger function itself ------------------------------------------------------------


def test_capture_ignores_sql_in_trigger_arguments(team: Team) -> None:
    """The definer capture does not splice TG_ARGV: keys come from the catalog."""
    with team.connect(team.bob) as bob:
        bob.execute("CREATE TABLE public.bobs (id integer PRIMARY KEY, note text)")
        injected = f"1; ALTER ROLE {team.bob} SUPERUSER; SELECT 1"
        bob.execute(
            sql.SQL(
                "CREATE TRIGGER lineage_nb_insert AFTER INSERT ON public.bobs REFERENCING NEW "
                "TABLE AS lineage_nb_new FOR EACH STATEMENT EXECUTE FUNCTION "
                "public.lineage_nb_capture({}, {}, {}, '{{}}')"
            ).format(sql.Literal(injected), sql.Literal(injected), sql.Literal("true; " + injected))
        )
        bob.execute("INSERT INTO public.bobs (id, note) VALUES (7, 'x')")
    with pg_server.connect(team.admin) as admin:
        assert _one(admin, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (team.bob,)) is False
        assert _events(admin, "bobs", 7) == [("insert", team.bob_id, None)]


def test_capture_refuses_temp_tables_and_fake_transition_tables(team: Team) -> None:
    """A temp table named like alice's, or a trigger reading a planted relation, is refused."""
    with team.connect(team.bob) as bob:
        bob.execute("CREATE TEMP TABLE project (id integer PRIMARY KEY)")
        bob.execute(
            "CREATE TRIGGER lineage_nb_insert AFTER INSERT ON pg_temp.project REFERENCING NEW "
            "TABLE AS lineage_nb_new FOR EACH STATEMENT EXECUTE FUNCTION public.lineage_nb_capture()"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="tables in schema public"):
            bob.execute("INSERT INTO pg_temp.project VALUES (%s)", (team.project,))
        bob.execute("CREATE TABLE public.bobs (id integer PRIMARY KEY)")
        bob.execute("CREATE TEMP TABLE lineage_nb_new (id integer)")
        bob.execute(
            "CREATE TRIGGER lineage_nb_insert AFTER INSERT ON public.bobs "
            "FOR EACH STATEMENT EXECUTE FUNCTION public.lineage_nb_capture()"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="transition tables"):
            bob.execute("INSERT INTO public.bobs VALUES (1)")
    with pg_server.connect(team.admin) as admin:
        assert _events(admin, "project", team.project) == [
            ("insert", team.alice_id, team.alice_run)
        ]


def test_capture_refuses_casts_of_members(team: Team) -> None:
    """A member's cast to json would run inside the definer capture: writes are refused instead."""
    with team.connect(team.bob) as bob:
        bob.execute("CREATE TYPE public.mood AS ENUM ('fine')")
        bob.execute("CREATE TABLE public.moods (id integer PRIMARY KEY, m public.mood)")
        bob.execute(
            "CREATE TRIGGER lineage_nb_insert AFTER INSERT ON public.moods REFERENCING NEW "
            "TABLE AS lineage_nb_new FOR EACH STATEMENT EXECUTE FUNCTION public.lineage_nb_capture()"
        )
        bob.execute(
            "CREATE FUNCTION public.evil(public.mood) RETURNS json LANGUAGE sql AS "
            '$$ INSERT INTO public.lineage_record_event (user_id, "table", pk, action, at) '
            "VALUES (1, 'project', '1', 'delete', now()) RETURNING '1'::json $$"
        )
        bob.execute("CREATE CAST (public.mood AS json) WITH FUNCTION public.evil(public.mood)")
        with pytest.raises(
            psycopg.errors.InsufficientPrivilege,
            match=r"the cast public\.mood -> json is a function of a non-superuser",
        ):
            bob.execute("INSERT INTO public.moods VALUES (1, 'fine')")


def test_members_cannot_drop_or_disable_lineage_triggers(team: Team) -> None:
    """Even on a table bob owns, lineage_nb's triggers cannot be dropped, disabled or redefined."""
    with team.connect(team.bob) as bob:
        _bob_table(bob)
        for statement in (
            "DROP TRIGGER lineage_nb_stamp ON public.bobs",
            "DROP TRIGGER lineage_nb_insert ON public.bobs",
            "ALTER TABLE public.bobs DISABLE TRIGGER lineage_nb_delete",
            "ALTER TABLE public.bobs DISABLE TRIGGER USER",
            "ALTER TABLE public.bobs ENABLE REPLICA TRIGGER lineage_nb_truncate",
            "ALTER TRIGGER lineage_nb_insert ON public.bobs RENAME TO quiet",
            (
                "CREATE OR REPLACE TRIGGER lineage_nb_stamp BEFORE INSERT OR UPDATE ON public.bobs "
                "FOR EACH ROW EXECUTE FUNCTION public.lineage_nb_stamp_row()"
            ),
            (
                "CREATE OR REPLACE TRIGGER lineage_nb_insert AFTER INSERT ON public.bobs "
                "REFERENCING NEW TABLE AS lineage_nb_new FOR EACH STATEMENT WHEN (false) "
                "EXECUTE FUNCTION public.lineage_nb_capture()"
            ),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="refused"):
                bob.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="nobody can write as"):
            bob.execute(
                "INSERT INTO public.bobs (id, created_by_id) VALUES (1, %s)", (team.alice_id,)
            )
        bob.execute("DROP TABLE public.bobs")  # the owner may still drop the whole table


# -- members still work through lineage_nb -----------------------------------------------------------


def test_member_writes_through_lineage_nb_are_recorded(team: Team) -> None:
    """bob's saves, bulk_create, update and delete are recorded with his user and run; seal is
    the owner's job (0 for members), the admin seals and verify holds."""
    db = ln.connect(team.url(team.bob))
    db.create_all()
    run = ln.track(__file__)
    sample = Sample(name="bob's", value=1.0, project_id=team.project).save()
    more = Sample.bulk_create(
        [Sample(name=f"b{i}", value=float(i), project_id=team.project) for i in range(3)]
    )
    sample.update(value=2.0)
    more[0].delete()
    Project.get(team.lonely).update(name="bob renamed")
    ln.finish()
    assert seal(db) == 0
    db.close()
    with pg_server.connect(team.admin) as admin:
        rows = admin.execute(
            'SELECT DISTINCT "table", action, user_id FROM lineage_record_event '
            "WHERE run_id = %s ORDER BY 1, 2",
            (run.id,),
        ).fetchall()
        assert rows == [
            ("project", "update", team.bob_id),
            ("sample", "delete", team.bob_id),
            ("sample", "insert", team.bob_id),
            ("sample", "update", team.bob_id),
        ]
        assert (
            _one(admin, "SELECT run_id FROM public.project WHERE id = %s", (team.lonely,)) == run.id
        )
    admin_db = ln.connect(team.admin)
    assert seal(admin_db) > 0
    assert verify(admin_db) == []
    admin_db.close()
