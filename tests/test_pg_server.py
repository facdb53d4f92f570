"""Tests for the PostgreSQL test-server helper (tests/pg_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pg_server import ENV_NO_LOCAL, ENV_URL, admin_url, connect, drop_database, fresh_database
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

TESTS_DIR = Path(__file__).resolve().parent


def test_admin_url_connects_as_superuser() -> None:
    url = admin_url()
    assert url.startswith("postgresql+psycopg://")
    assert make_url(url).database == "postgres"
    assert admin_url() == url  # cached
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
            assert conn.execute(text("SELECT current_setting('is_superuser')")).scalar_one() == "on"
    finally:
        engine.dispose()


def test_fresh_database_then_drop() -> None:
    first = fresh_database('Odd "Prefix"-1')
    second = fresh_database()
    try:
        assert first != second
        name = make_url(first).database
        assert name is not None and name.startswith("odd__prefix__1_")
        engine = create_engine(first)
        try:
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE t (id integer PRIMARY KEY)"))
                conn.execute(text("INSERT INTO t VALUES (1), (2)"))
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 2
        finally:
            engine.dispose()
        # dropping must succeed even with a session still connected (PG >= 13)
        lingering = connect(first)
        try:
            drop_database(first)
        finally:
            lingering.close()
        with connect(admin_url()) as admin:
            row = admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
            assert row.fetchone() == (0,)
    finally:
        drop_database(first)
        drop_database(second)


def test_drop_database_refuses_system_databases() -> None:
    with pytest.raises(ValueError):
        drop_database(admin_url())


_CHILD = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import pg_server

    url = pg_server.admin_url()
    cluster = pg_server.throwaway_cluster()
    assert cluster is not None, "expected a throwaway cluster"
    with pg_server.connect(url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    db = pg_server.fresh_database("child")
    with pg_server.connect(db) as conn:
        conn.execute("CREATE TABLE x (a int)")
    pg_server.drop_database(db)
    print(json.dumps({
        "url": url,
        "base_dir": str(cluster.base_dir),
        "pid": cluster.postmaster_pid(),
        "version": version,
        "startup_seconds": cluster.startup_seconds,
    }))
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "Z"
    return next((line for line in status.splitlines() if line.startswith("State:")), "")


@pytest.mark.slow
def test_throwaway_cluster_starts_and_stops_cleanly() -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_URL}
    env[ENV_NO_LOCAL] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(TESTS_DIR)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,  # may apt-get install postgresql on a bare machine
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "started throwaway PostgreSQL" in proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert make_url(info["url"]).port != 5432
    assert info["version"]
    assert isinstance(info["pid"], int)

    # atexit in the child stopped the server and deleted its directory
    deadline = time.monotonic() + 10
    while _alive(info["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(info["pid"]), "postmaster still running after the owner exited"
    assert not Path(info["base_dir"]).exists()
