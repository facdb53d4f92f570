"""Benchmark plumbing: timing, statement counting, database setup and the results table."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from lineage_nb.db import SQLITE_BUSY_TIMEOUT_MS, _sqlite_pragmas

PG_ENV = "LINEAGE_NB_BENCH_PG_URL"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

#: Applied by lineage_nb to every SQLite connection; the baselines get exactly the same.
SQLITE_PRAGMAS = (
    f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys = ON",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
)
SETTINGS = {
    "sqlite": "journal_mode=WAL, synchronous=NORMAL, foreign_keys=ON, busy_timeout=30s "
    "(same pragmas on every connection of every system)",
    "postgresql": "server defaults (synchronous_commit=on, fsync=on), one fresh database, "
    "psycopg 3 for every system (ormar: psycopg async)",
}


@dataclass
class Result:
    """One measured (operation, system) pair."""

    operation: str
    system: str
    rows: int
    times: list[float] = field(default_factory=list)
    statements: int | None = None
    reference: str | None = None  # system name the ratio is taken against
    target: float | None = None  # max ratio for this row (ours only)
    target_text: str = ""
    unit: str = "s"  # "s" (time) or "MiB" (peak memory)
    note: str = ""
    error: str | None = None
    also: list[tuple[str, float]] = field(default_factory=list)  # more (reference, max ratio)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def spread(self) -> float | None:
        """(max - min) / median of the repeats: how noisy this row was."""
        if len(self.times) < 2 or not self.median:
            return None
        return (max(self.times) - min(self.times)) / self.median


@dataclass
class Counter:
    """Counts statements sent to the driver (one per cursor execute / executemany call)."""

    count: int = 0

    def watch(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._hit)

    def _hit(self, *_args: Any) -> None:
        self.count += 1

    @contextmanager
    def counting(self) -> Iterator[Counter]:
        self.count = 0
        yield self


@dataclass
class Case:
    """One system's way of doing an operation: ``body`` is timed, ``setup`` is not."""

    result: Result
    body: Callable[[], Any]
    setup: Callable[[], Any] | None = None
    counter: Counter | None = None
    warmup: Callable[[], Any] | None = None
    before: Callable[[], Any] | None = None  # e.g. make this case's Database the default


def run_cases(cases: list[Case], repeats: int) -> None:
    """Warm every case up, then time them round-robin (repeat 1 of each, repeat 2 of each...).

    Interleaving spreads the machine's noise (other processes on 2 cores) over all systems
    instead of letting it land on whichever ran during a busy stretch. A case that raises is
    recorded as not measurable and dropped from later rounds.
    """
    live = list(cases)
    for case in list(live):
        if case.warmup is not None and not _step(case, case.warmup, timed=False):
            live.remove(case)
    for _ in range(repeats):
        for case in list(live):
            if not _step(case, case.body, timed=True):
                live.remove(case)


def _step(case: Case, body: Callable[[], Any], timed: bool) -> bool:
    result = case.result
    try:
        if case.before is not None:
            case.before()
        if case.setup is not None:
            case.setup()
        gc.collect()
        if case.counter is not None:
            case.counter.count = 0
        started = time.perf_counter()
        body()
        elapsed = time.perf_counter() - started
        if timed:
            result.times.append(elapsed)
            if case.counter is not None:
                result.statements = case.counter.count
    except Exception as error:  # a baseline that cannot do the work is a result too
        result.error = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
        result.times.clear()
        return False
    return True


def measure(
    result: Result,
    repeats: int,
    body: Callable[[], Any],
    *,
    setup: Callable[[], Any] | None = None,
    counter: Counter | None = None,
    warmup: Callable[[], Any] | None = None,
) -> Result:
    """Time one case on its own (see :func:`run_cases` for several, interleaved)."""
    run_cases([Case(result, body, setup, counter, warmup)], repeats)
    return result


# -- databases ---------------------------------------------------------------------------------


@dataclass
class Backend:
    """One database all systems of a run share (each system has its own tables in it)."""

    name: str
    url: str
    cleanup: Callable[[], None]

    @property
    def sqlite_path(self) -> str:
        return str(make_url(self.url).database)

    def engine(self) -> Engine:
        """A plain SQLAlchemy engine with lineage_nb's connection settings (no lineage)."""
        engine = create_engine(self.url)
        if self.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine


def sqlite_backend() -> Backend:
    folder = tempfile.mkdtemp(prefix="lnbench_")
    path = Path(folder) / "bench.db"

    def cleanup() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.rmdir(folder)

    return Backend("sqlite", f"sqlite:///{path}", cleanup)


def pg_backend() -> Backend:
    """A fresh database on the PostgreSQL server (dropped by ``cleanup``)."""
    import psycopg
    from psycopg import sql

    admin = make_url(os.environ.get(PG_ENV) or PG_DEFAULT)
    if admin.drivername in ("postgresql", "postgres"):
        admin = admin.set(drivername="postgresql+psycopg")
    name = f"lnbench_{uuid.uuid4().hex[:10]}"
    libpq = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def cleanup() -> None:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    url = admin.set(database=name).render_as_string(hide_password=False)
    return Backend("postgresql", url, cleanup)


# -- the machine -------------------------------------------------------------------------------


def machine() -> str:
    """CPU model, cores, memory, OS and library versions, for the results file."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    import sqlite3

    import pandas
    import sqlalchemy

    versions = [
        f"Python {platform.python_version()}",
        f"SQLAlchemy {sqlalchemy.__version__}",
        f"SQLite {sqlite3.sqlite_version}",
        f"pandas {pandas.__version__}",
    ]
    try:
        import ormar

        versions.append(f"ormar {ormar.__version__}")
    except ImportError:
        versions.append("ormar not installed")
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
        + ", ".join(versions)
    )


# -- the table ---------------------------------------------------------------------------------


def _fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit == "B/record":
        return f"{value:,.2f} B/record"
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def table(results: list[Result], backend: str) -> str:
    """The markdown table of one backend's results."""
    by_name = {(r.operation, r.system): r for r in results}
    lines = [
        "| operation | system | median | spread | rows/s | statements | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        median = r.median
        ratio = None
        ref = by_name.get((r.operation, r.reference)) if r.reference else None
        if median is not None and ref is not None and ref.median:
            ratio = median / ref.median
        rate = "—"
        if median and r.unit == "s" and r.rows:
            rate = f"{r.rows / median:,.0f}"
        spread = f"±{r.spread * 50:.0f}%" if r.spread is not None else "—"
        verdict = ""
        if r.error:
            verdict = f"not measurable: {r.error}"
        elif r.target is not None and ratio is not None:
            verdict = "pass" if ratio <= r.target else "fall short"
        ratio_text = "—" if ratio is None else f"{ratio:.2f}× {r.reference}"
        if r.reference == r.system:
            ratio_text = "1.00 (reference)"
        for other, limit in r.also:  # a second baseline the same row is held against
            ref2 = by_name.get((r.operation, other))
            if median is None or ref2 is None or not ref2.median or r.error:
                continue
            ratio2 = median / ref2.median
            ratio_text += f"; {ratio2:.2f}× {other}"
            if verdict == "pass" and ratio2 > limit:
                verdict = "fall short"
        if r.note:
            verdict = f"{verdict} ({r.note})" if verdict else r.note
        stmts = "—" if r.statements is None else f"{r.statements:,}"
        lines.append(
            f"| {r.operation} | {r.system} | {_fmt_value(median, r.unit)} | {spread} | {rate} | "
            f"{stmts} | {ratio_text} | {r.target_text} | {verdict} |"
        )
    return "\n".join(lines)
