"""Locate (or start) a PostgreSQL server for the test suite.

Import it from conftest.py or a test module as ``from pg_server import admin_url``
(pytest puts ``tests/`` on ``sys.path``; ``tests/`` is deliberately not a package).

Resolution order for :func:`admin_url`, done once per process and cached:

a) ``LINEAGE_NB_TEST_PG_URL`` if set (``postgresql://`` / ``postgres://`` are
   normalised to ``postgresql+psycopg://``); it must connect, or we fail loudly.
b) a server on 127.0.0.1:5432 that accepts user ``postgres`` without a password
   (skipped when ``LINEAGE_NB_TEST_PG_NO_LOCAL=1``).
c) a throwaway cluster: ``initdb`` into a temp dir (as ``nobody`` when we are
   root), started with ``pg_ctl`` on a free loopback port, stopped and deleted
   at interpreter exit.  ``postgresql`` is apt-installed first when no
   ``initdb`` exists and we are root.

Once resolved, the URL is exported as ``LINEAGE_NB_TEST_PG_URL`` so that child
processes (notebook kernels, subprocess tests) and a second import of this
module under another name reuse the same server instead of starting their own.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from sqlalchemy.engine import URL, make_url

__all__ = [
    "ENV_NO_LOCAL",
    "ENV_URL",
    "ThrowawayCluster",
    "admin_url",
    "connect",
    "drop_database",
    "fresh_database",
    "fresh_database_at",
    "password_admin_url",
    "throwaway_cluster",
]

ENV_URL = "LINEAGE_NB_TEST_PG_URL"
ENV_NO_LOCAL = "LINEAGE_NB_TEST_PG_NO_LOCAL"

_DRIVER = "postgresql+psycopg"
_LOCAL_URL = f"{_DRIVER}://postgres@127.0.0.1:5432/postgres"
_TMP_PREFIX = "lineage_nb_pg_"
_UNPRIVILEGED_USER = "nobody"
_SYSTEM_DATABASES = frozenset({"postgres", "template0", "template1"})

_lock = threading.Lock()
_admin_url: str | None = None
_cluster: ThrowawayCluster | None = None


# --------------------------------------------------------------------------- URLs


def _normalise(url: str) -> str:
    """Turn a libpq-style or SQLAlchemy URL into a ``postgresql+psycopg://`` URL."""
    parsed = make_url(url.strip())
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername=_DRIVER)
    if parsed.drivername != _DRIVER:
        raise ValueError(f"{ENV_URL} must be a postgresql:// URL, got driver {parsed.drivername!r}")
    if not parsed.database:
        parsed = parsed.set(database="postgres")
    return parsed.render_as_string(hide_password=False)


def _libpq(url: str | URL) -> str:
    """The libpq connection URI for a SQLAlchemy URL."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def connect(
    url: str, *, autocommit: bool = True, timeout: int = 10
) -> psycopg.Connection[TupleRow]:
    """A plain psycopg connection for a SQLAlchemy ``postgresql+psycopg://`` URL."""
    return psycopg.connect(_libpq(url), autocommit=autocommit, connect_timeout=timeout)


def _check_superuser(url: str, *, timeout: int) -> str:
    """Connect, make sure the role is a superuser, return the server version."""
    with connect(url, timeout=timeout) as conn:
        row = conn.execute("SELECT current_setting('is_superuser')").fetchone()
        if row is None or row[0] != "on":
            raise RuntimeError(f"{_shown(url)}: role is not a superuser")
        return conn.info.parameter_status("server_version") or str(conn.info.server_version)


def _say(message: str) -> None:
    print(f"[pg_server] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------ throwaway cluster


@dataclass
class ThrowawayCluster:
    """A private PostgreSQL cluster living in a temporary directory."""

    bin_dir: Path
    base_dir: Path
    port: int
    run_as: str | None  # user to run the server binaries as (None: ourselves)
    startup_seconds: float = 0.0
    owner_pid: int = field(default_factory=os.getpid)
    stopped: bool = field(default=False, init=False)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"{_DRIVER}://postgres@127.0.0.1:{self.port}/postgres"

    def postmaster_pid(self) -> int | None:
        return _postmaster_pid(self.data_dir)

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete its directory. Idempotent."""
        if self.stopped or os.getpid() != self.owner_pid:  # e.g. in a forked child
            return
        self.stopped = True
        _stop_and_remove(self.bin_dir, self.base_dir, self.run_as)


def _cmd(argv: list[str], run_as: str | None) -> list[str]:
    return ["runuser", "-u", run_as, "--", *argv] if run_as else argv


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        return int(first)
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_and_remove(bin_dir: Path, base_dir: Path, run_as: str | None) -> None:
    data_dir = base_dir / "data"
    if (data_dir / "postmaster.pid").exists():
        subprocess.run(
            _cmd(
                [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"],
                run_as,
            ),
            cwd=base_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        pid = _postmaster_pid(data_dir)
        if pid is not None and _alive(pid):  # pg_ctl failed: don't leave a server behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
    shutil.rmtree(base_dir, ignore_errors=True)


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", Path(path).parent.parent.name))


def _find_bin_dir() -> Path | None:
    candidates = [p for p in glob.glob("/usr/lib/postgresql/*/bin/initdb") if os.access(p, os.X_OK)]
    if candidates:
        return Path(max(candidates, key=_version_key)).parent
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl", path=str(Path(on_path).resolve().parent)):
        return Path(on_path).resolve().parent
    return None


def _install_postgresql() -> None:
    _say("no initdb found; installing PostgreSQL with apt-get (this takes a while)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
    ):
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, check=True, timeout=900)


def _tmp_root(run_as: str | None) -> str:
    # The server user must be able to traverse the path; /tmp (1777) always allows it.
    return "/tmp" if run_as and os.path.isdir("/tmp") else tempfile.gettempdir()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reap_stale_clusters(bin_dir: Path, run_as: str | None) -> None:
    """Stop and delete throwaway clusters left by processes that died without atexit."""
    pattern = os.path.join(_tmp_root(run_as), _TMP_PREFIX + "*", "owner.pid")
    for owner_file in glob.glob(pattern):
        base_dir = Path(owner_file).parent
        try:
            owner = int(Path(owner_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if owner != os.getpid() and not _alive(owner):
            _stop_and_remove(bin_dir, base_dir, run_as)


def _start_cluster() -> ThrowawayCluster:
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        if os.geteuid() != 0:
            raise RuntimeError(
                "no PostgreSQL server found: set LINEAGE_NB_TEST_PG_URL, run one on "
                "127.0.0.1:5432, or install PostgreSQL (initdb) so tests can start their own"
            )
        _install_postgresql()
        bin_dir = _find_bin_dir()
        if bin_dir is None:
            raise RuntimeError("installed postgresql but found no initdb under /usr/lib/postgresql")

    run_as = _UNPRIVILEGED_USER if os.geteuid() == 0 else None  # initdb refuses to run as root
    _reap_stale_clusters(bin_dir, run_as)

    started = time.monotonic()
    base_dir = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=_tmp_root(run_as)))
    (base_dir / "owner.pid").write_text(f"{os.getpid()}\n")
    socket_dir = base_dir / "sock"
    socket_dir.mkdir()
    if run_as:
        os.chmod(base_dir, 0o755)  # the server user must traverse it; the temp root is 1777
        shutil.chown(base_dir, user=run_as)
        shutil.chown(socket_dir, user=run_as)

    cluster = ThrowawayCluster(bin_dir=bin_dir, base_dir=base_dir, port=0, run_as=run_as)
    atexit.register(cluster.stop)

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _cmd(argv, run_as),
            cwd=base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    init = run(
        [
            str(bin_dir / "initdb"),
            "-D", str(cluster.data_dir),
            "-A", "trust",
            "-U", "postgres",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )  # fmt: skip
    if init.returncode != 0:
        cluster.stop()
        raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")

    last_error = ""
    for _attempt in range(3):  # a free port can be grabbed by someone else before we bind it
        port = _free_port()
        options = (
            f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        start = run(
            [
                str(bin_dir / "pg_ctl"),
                "-D", str(cluster.data_dir),
                "-l", str(cluster.log_file),
                "-o", options,
                "-w", "-t", "60",
                "start",
            ]
        )  # fmt: skip
        if start.returncode == 0:
            cluster.port = port
            cluster.startup_seconds = time.monotonic() - started
            return cluster
        try:
            log_tail = cluster.log_file.read_text()[-2000:]
        except OSError:
            log_tail = ""
        last_error = f"{start.stdout}\n{start.stderr}\n{log_tail}"
        if "already in use" not in log_tail:
            break
    cluster.stop()
    raise RuntimeError(f"pg_ctl start failed:\n{last_error}")


# ----------------------------------------------------------------------- public


def _local_server_version() -> str | None:
    if os.environ.get(ENV_NO_LOCAL, "").strip() not in ("", "0"):
        return None
    try:
        return _check_superuser(_LOCAL_URL, timeout=2)
    except (psycopg.Error, RuntimeError, OSError):
        return None


def admin_url() -> str:
    """SQLAlchemy URL of a superuser on a PostgreSQL server (``.../postgres`` database)."""
    global _admin_url, _cluster
    with _lock:
        if _admin_url is not None:
            return _admin_url
        from_env = os.environ.get(ENV_URL, "").strip()
        if from_env:
            url = _normalise(from_env)
            try:
                version = _check_superuser(url, timeout=10)
            except (psycopg.Error, RuntimeError) as exc:
                raise RuntimeError(f"{ENV_URL}={_shown(url)} is not usable: {exc}") from exc
            _say(f"using PostgreSQL {version} from {ENV_URL}: {_shown(url)}")
        elif (local_version := _local_server_version()) is not None:
            url = _LOCAL_URL
            _say(f"using local PostgreSQL {local_version} at {url}")
        else:
            _cluster = _start_cluster()
            url = _cluster.url
            _say(
                f"started throwaway PostgreSQL ({_cluster.bin_dir}) at {url} "
                f"in {_cluster.startup_seconds:.2f}s, data in {_cluster.base_dir}"
            )
        os.environ[ENV_URL] = url
        _admin_url = url
        return url


def throwaway_cluster() -> ThrowawayCluster | None:
    """The cluster this process started for :func:`admin_url`, if any."""
    return _cluster


def fresh_database(prefix: str = "t") -> str:
    """Create a new, uniquely named, empty database; return its SQLAlchemy URL."""
    return fresh_database_at(admin_url(), prefix)


def drop_database(url: str) -> None:
    """Drop the database named in ``url`` (forcibly disconnecting its sessions on PG >= 13)."""
    name = make_url(url).database
    if not name or name in _SYSTEM_DATABASES:
        raise ValueError(f"refusing to drop database {name!r}")
    admin = make_url(url).set(database="postgres")
    with connect(admin.render_as_string(hide_password=False)) as conn:
        statement = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
        if conn.info.server_version >= 130000:
            statement = sql.SQL("{} WITH (FORCE)").format(statement)
        conn.execute(statement)


# ------------------------------------------------ password-auth throwaway cluster (additive)

_password_lock = threading.Lock()
_password_cluster: tuple[ThrowawayCluster, str] | None = None


def _start_password_cluster(password: str) -> ThrowawayCluster:
    """Like the throwaway cluster of :func:`admin_url`, but every login needs a SCRAM password."""
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        admin_url()  # installs PostgreSQL when we may, or says why not
        bin_dir = _find_bin_dir()
    if bin_dir is None:
        raise RuntimeError("no initdb found for a password-auth PostgreSQL cluster")
    run_as = _UNPRIVILEGED_USER if os.geteuid() == 0 else None
    base_dir = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=_tmp_root(run_as)))
    (base_dir / "owner.pid").write_text(f"{os.getpid()}\n")
    socket_dir = base_dir / "sock"
    socket_dir.mkdir()
    pwfile = base_dir / "pwfile"
    pwfile.write_text(password + "\n")
    os.chmod(pwfile, 0o600)
    if run_as:
        os.chmod(base_dir, 0o755)
        for path in (base_dir, socket_dir, pwfile):
            shutil.chown(path, user=run_as)
    cluster = ThrowawayCluster(bin_dir=bin_dir, base_dir=base_dir, port=0, run_as=run_as)
    atexit.register(cluster.stop)

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _cmd(argv, run_as),
            cwd=base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    init = run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(cluster.data_dir),
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )
    pwfile.unlink()
    if init.returncode != 0:
        cluster.stop()
        raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
    for _attempt in range(3):
        port = _free_port()
        options = (
            f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        start = run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(cluster.data_dir),
                "-l",
                str(cluster.log_file),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        if start.returncode == 0:
            cluster.port = port
            return cluster
    cluster.stop()
    raise RuntimeError(f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}")


def password_admin_url() -> str:
    """SQLAlchemy URL (with password) of the superuser of a password-auth throwaway cluster.

    Started once per process (``initdb --auth=scram-sha-256``, run as ``nobody`` when we are
    root), stopped and deleted at exit. Every role, the superuser too, logs in with a password.
    """
    global _password_cluster
    with _password_lock:
        if _password_cluster is None:
            password = uuid.uuid4().hex
            cluster = _start_password_cluster(password)
            _say(f"started password-auth PostgreSQL at port {cluster.port} in {cluster.base_dir}")
            _password_cluster = (cluster, password)
        cluster, password = _password_cluster
        return URL.create(
            _DRIVER,
            username="postgres",
            password=password,
            host="127.0.0.1",
            port=cluster.port,
            database="postgres",
        ).render_as_string(hide_password=False)


def fresh_database_at(admin: str, prefix: str = "t") -> str:
    """Like :func:`fresh_database`, on the server of ``admin`` (a superuser URL)."""
    stem = re.sub(r"[^a-z0-9_]", "_", prefix.lower())[:30] or "t"
    name = f"{stem}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    with connect(admin) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                sql.Identifier(name)
            )
        )
    return make_url(admin).set(database=name).render_as_string(hide_password=False)
