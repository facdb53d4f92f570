"""PostgreSQL team backend: two real password-auth login roles; forged authorship and event edits
are refused. The attacks of a member on a team database are in ``test_postgres_attacks.py``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pg_server
import psycopg
import pytest
from models import Project, Sample
from psycopg import sql
from sqlalchemy.engine import make_url

import lineage_nb as ln
from lineage_nb.errors import LineageWarning, PermissionDenied
from lineage_nb.lineage.verify import verify
from lineage_nb.security import add_user, setup_postgres
from lineage_nb.security.postgres import owner_role


@dataclass
class Team:
    admin: str
    group: str
    alice: str
    bob: str

    def url(self, role: str) -> str:
        return (
            make_url(self.admin)
            .set(username=role, password=f"pw-{role}")
            .render_as_string(hide_password=False)
        )


@pytest.fixture
def team() -> Iterator[Team]:
    """A fresh database set up by setup_postgres on a password-auth cluster, with login roles
    alice_* and bob_* (password ``pw-<role>``)."""
    admin = pg_server.fresh_database_at(pg_server.password_admin_url(), "roles")
    suffix = uuid.uuid4().hex[:8]
    team = Team(admin, f"lineage_users_{suffix}", f"alice_{suffix}", f"bob_{suffix}")
    report = setup_postgres(admin, group=team.group)
    assert report.group == team.group
    add_user(admin, team.alice, name="Alice", group=team.group, password=f"pw-{team.alice}")
    add_user(admin, team.bob, email="bob@example.org", group=team.group, password=f"pw-{team.bob}")
    yield team
    pg_server.drop_database(admin)
    server = make_url(admin).set(database="postgres").render_as_string(hide_password=False)
    with pg_server.connect(server) as conn:
        for role in (team.alice, team.bob, team.group, owner_role(team.group)):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _raw(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return pg_server.connect(url)


def _user_id(conn: psycopg.Connection[tuple[object, ...]], handle: str) -> int:
    row = conn.execute("SELECT id FROM lineage_user WHERE handle = %s", (handle,)).fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


def test_roles_created_by_comes_from_login(team: Team) -> None:
    """Records, runs and events written by alice carry alice's user, set from her login role."""
    db = ln.connect(team.url(team.alice))
    with pytest.warns(LineageWarning, match="login role"):
        run = ln.track(__file__, user="someone-else")
    project = Project(name="alice's").save()
    ln.finish()
    with _raw(team.admin) as conn:
        alice = _user_id(conn, team.alice)
        assert conn.execute(
            "SELECT created_by_id FROM project WHERE id = %s", (project.id,)
        ).fetchone() == (alice,)
        assert conn.execute(
            "SELECT created_by_id, status FROM lineage_run WHERE id = %s", (run.id,)
        ).fetchone() == (alice, "completed")
        assert conn.execute(
            "SELECT DISTINCT user_id FROM lineage_record_event WHERE run_id = %s", (run.id,)
        ).fetchall() == [(alice,)]
    assert project.created_by_id == alice
    db.close()
    assert verify(ln.connect(team.admin)) == []


def test_roles_forged_created_by_is_refused(team: Team) -> None:
    """Alice cannot stamp a record, a run or an event as bob: ORM or raw SQL, all refused."""
    db = ln.connect(team.url(team.alice))
    ln.track(__file__)
    project = Project(name="p").save()
    with _raw(team.admin) as conn:
        bob = _user_id(conn, team.bob)
    forged = Sample(name="forged", value=1.0, project_id=project.id, created_by_id=bob)
    with pytest.raises(PermissionDenied, match="nobody can write as someone else") as info:
        forged.save()
    assert "refused this for your login role" in str(info.value)
    assert "Nothing was written" in str(info.value)
    assert Sample.filter(name="forged").count() == 0
    ln.finish()
    db.close()
    with _raw(team.url(team.alice)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="created_by_id"):
            conn.execute(
                "INSERT INTO project (name, created_by_id, created_at) VALUES (%s, %s, now())",
                ("raw-forged", bob),
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(  # events are written by the capture trigger alone
                'INSERT INTO lineage_record_event (user_id, "table", pk, action, at) '
                "VALUES (%s, %s, %s, %s, now())",
                (bob, "project", "1", "insert"),
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="cannot change"):
            conn.execute("UPDATE project SET created_by_id = %s WHERE id = %s", (bob, project.id))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO lineage_user (handle) VALUES (%s)", ("mallory",))
    with _raw(team.admin) as conn:
        assert conn.execute("SELECT count(*) FROM project").fetchone() == (1,)


def test_roles_events_are_insert_only(team: Team) -> None:
    """Bob can read alice's events but not edit, delete or truncate them, nor extend her run."""
    db = ln.connect(team.url(team.alice))
    alice_run = ln.track(__file__)
    project = Project(name="p").save()
    Sample(name="s", value=1.0, project_id=project.id).save()
    ln.finish()
    db.close()
    with _raw(team.url(team.bob)) as conn:
        count = conn.execute(
            "SELECT count(*) FROM lineage_record_event WHERE run_id = %s", (alice_run.id,)
        ).fetchone()
        assert count == (2,)
        for statement in (
            "UPDATE lineage_record_event SET action = 'delete' WHERE run_id = %s",
            "DELETE FROM lineage_record_event WHERE run_id = %s",
            "DELETE FROM lineage_run_input WHERE run_id = %s",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(statement, (alice_run.id,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE lineage_record_event")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(
                'INSERT INTO lineage_record_event (run_id, "table", pk, action, at) '
                "VALUES (%s, %s, %s, %s, now())",
                (alice_run.id, "project", str(project.id), "update"),
            )
        cursor = conn.execute(
            "UPDATE lineage_run SET status = 'aborted' WHERE id = %s", (alice_run.id,)
        )
        assert cursor.rowcount == 0
    with _raw(team.url(team.alice)) as conn:  # not even the author can rewrite history
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(
                "UPDATE lineage_record_event SET pk = 'x' WHERE run_id = %s", (alice_run.id,)
            )
    admin_db = ln.connect(team.admin)
    assert verify(admin_db) == []
    assert [r.status for r in ln.runs() if r.id == alice_run.id] == ["completed"]
    admin_db.close()


def test_roles_share_data_tables(team: Team) -> None:
    """Bob reads alice's records and adds his own to her tables, stamped as bob."""
    alice_db = ln.connect(team.url(team.alice))
    ln.track(__file__)
    project = Project(name="shared").save()
    ln.finish()
    alice_db.close()
    bob_db = ln.connect(team.url(team.bob))
    ln.track(__file__)
    assert Project.get(project.id).name == "shared"
    sample = Sample(name="bob's", value=2.0, project_id=project.id).save()
    sample.update(value=3.0)
    ln.finish()
    bob_db.close()
    with _raw(team.admin) as conn:
        bob = _user_id(conn, team.bob)
        assert conn.execute(
            "SELECT created_by_id, updated_by_id, value FROM sample WHERE id = %s", (sample.id,)
        ).fetchone() == (bob, bob, 3.0)
        assert conn.execute(
            "SELECT email FROM lineage_user WHERE handle = %s", (team.bob,)
        ).fetchone() == ("bob@example.org",)


def test_setup_postgres_is_idempotent(team: Team) -> None:
    """Running setup again keeps data and protects tables created since."""
    db = ln.connect(team.url(team.alice))
    Project(name="kept").save()
    db.close()
    report = setup_postgres(team.admin, group=team.group)
    assert "project" in report.protected_tables
    db = ln.connect(team.url(team.alice))
    assert [p.name for p in Project.filter().all()] == ["kept"]
    db.close()


def test_roles_silent_run_of_another_member_is_aborted_by_any_connect(team: Team) -> None:
    """A run on another host that stopped beating is aborted by the next member's connect(),
    although row security hides it from that member's own UPDATE; a run still beating stays."""
    ln.connect(team.url(team.alice))
    silent = ln.track(__file__)
    with pytest.warns(LineageWarning, match="finished the open run"):
        beating = ln.track(__file__)  # finishes `silent`: the admin re-opens it below
    with _raw(team.admin) as conn:
        conn.execute(
            "UPDATE lineage_run SET status = 'started', finished_at = NULL, host = 'elsewhere', "
            "heartbeat_seconds = 60, last_seen_at = now() - interval '10 minutes' WHERE id = %s",
            (silent.id,),
        )
        conn.execute(
            "UPDATE lineage_run SET host = 'elsewhere', heartbeat_seconds = 60, "
            "last_seen_at = now() - interval '1 minute' WHERE id = %s",
            (beating.id,),
        )
    with pytest.warns(LineageWarning, match=f"run {silent.id} .*stopped sending its heartbeat"):
        ln.connect(team.url(team.bob))
    with _raw(team.admin) as conn:
        rows = dict(
            conn.execute(
                "SELECT id, status FROM lineage_run WHERE id = ANY(%s)", ([silent.id, beating.id],)
            ).fetchall()
        )
    assert rows == {silent.id: "aborted", beating.id: "started"}


def test_roles_finished_run_cannot_be_changed_by_its_member(team: Team) -> None:
    """Once finished, a member's own run is immutable to that member (row security)."""
    ln.connect(team.url(team.alice))
    run = ln.track(__file__)
    ln.finish()
    with _raw(team.url(team.alice)) as conn:
        changed = conn.execute(
            "UPDATE lineage_run SET status = 'started', finished_at = NULL WHERE id = %s",
            (run.id,),
        ).rowcount
    assert changed == 0
    with _raw(team.admin) as conn:
        assert conn.execute(
            "SELECT status FROM lineage_run WHERE id = %s", (run.id,)
        ).fetchone() == ("completed",)


def test_roles_notebook_version_is_the_code_that_ran(team: Team, tmp_path: Path) -> None:
    """On a team database too, a notebook run ends on the version of the code it executed (a
    new version inserted by the member; the file's version is left as it is)."""
    import datetime as dt

    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from lineage_nb.lineage.cells import record_cell
    from lineage_nb.lineage.identity import notebook_code

    notebook = tmp_path / "analysis.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), str(notebook))
    db = ln.connect(team.url(team.alice))
    run = ln.track(notebook)
    filed = run.transform_id
    now = dt.datetime.now(dt.timezone.utc)
    record_cell(
        db, run, execution_count=1, source="x = 2", started_at=now, finished_at=now, status="ok"
    )
    ln.finish()
    with _raw(team.admin) as conn:
        found = conn.execute(
            "SELECT t.id, t.source_hash, t.version FROM lineage_run AS r "
            "JOIN lineage_transform AS t ON t.id = r.transform_id WHERE r.id = %s",
            (run.id,),
        ).fetchone()
        assert conn.execute(
            "SELECT count(*) FROM lineage_transform WHERE id = %s", (filed,)
        ).fetchone() == (1,)
    assert found is not None
    assert found[0] != filed and found[1] == notebook_code(["x = 2"])[1] and found[2] == "2"
