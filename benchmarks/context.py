"""Everything one backend's benchmark run shares: databases, engines, counters, sizes, ormar."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    SQLITE_PRAGMAS,
    Backend,
    Case,
    Counter,
    Result,
    pg_backend,
    run_cases,
    sqlite_backend,
)
from models import Base, Project, SAProject, ormar_models
from sqlalchemy import Engine, delete, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

import lineage_nb as ln
from lineage_nb import db as db_module
from lineage_nb.db import _sqlite_pragmas

OURS = "lineage_nb"
OURS_OFF = "lineage_nb, lineage off"
TRANSFORM = str(Path(__file__).with_name("run.py"))

FULL = {
    "single": 2_000,
    "bulk": 50_000,
    "update": 2_000,
    "load": 10_000,
    "history": 1_000_000,
    "df": 100_000,
    "browse_big": 1_000_000,
    "browse_small": 1_000,
    "memory": 100_000,
    "save": 2_000,
    "update_set": 50_000,
    "storage": 100_000,
    "df_inputs": 1_000_000,
    "input_storage": 1_000_000,
    "input_gets": 2_000,
    "as_of": 1_000_000,
    "lineage_scale": 100_000,
    "lineage_events": 5_000_000,
}
QUICK = {
    "single": 100,
    "bulk": 2_000,
    "update": 100,
    "load": 1_000,
    "history": 20_000,
    "df": 10_000,
    "browse_big": 20_000,
    "browse_small": 1_000,
    "memory": 5_000,
    "save": 100,
    "update_set": 2_000,
    "storage": 5_000,
    "df_inputs": 20_000,
    "input_storage": 20_000,
    "input_gets": 200,
    "as_of": 20_000,
    "lineage_scale": 5_000,
    "lineage_events": 50_000,
}


@dataclass
class Ormar:
    database: Any
    OProject: Any
    OSample: Any
    counter: Counter


@dataclass
class Ctx:
    """The state of one backend's run."""

    backend: Backend
    quick: bool
    sizes: dict[str, int]
    repeats: int
    fast_repeats: int
    on: ln.Database
    off: ln.Database
    count_on: Counter
    count_off: Counter
    sa: Engine
    count_sa: Counter
    loop: asyncio.AbstractEventLoop
    ormar: Ormar | None = None
    ormar_error: str = ""
    results: list[Result] = field(default_factory=list)
    pending: list[tuple[int, Case]] = field(default_factory=list)
    closers: list[Callable[[], Any]] = field(default_factory=list)

    def case(
        self,
        result: Result,
        repeats: int,
        body: Callable[[], Any],
        *,
        setup: Callable[[], Any] | None = None,
        counter: Counter | None = None,
        warmup: Callable[[], Any] | None = None,
    ) -> Result:
        """Register a case of the current operation; :meth:`run_pending` times them interleaved.

        The Database that is the default now is made the default again before each repeat.
        """
        database = db_module.default_database()
        lineage = database is not self.off

        def before() -> None:
            self.use(lineage)

        self.pending.append((repeats, Case(result, body, setup, counter, warmup, before)))
        return result

    def run_pending(self) -> None:
        """Time the registered cases round-robin, grouped by their number of repeats."""
        groups: dict[int, list[Case]] = {}
        for repeats, case in self.pending:
            groups.setdefault(repeats, []).append(case)
        self.pending.clear()
        for repeats, cases in groups.items():
            run_cases(cases, repeats)
        self.use(True)

    @property
    def sa_session(self) -> sessionmaker[Session]:
        return sessionmaker(self.sa, expire_on_commit=False)

    def use(self, lineage: bool) -> ln.Database:
        """Make the lineage-on (or -off) Database the default one for active-record calls."""
        db = self.on if lineage else self.off
        db_module.set_default(db)  # two Databases on one URL: switch without reconnecting
        return db

    def stamps(self, lineage: bool) -> dict[str, Any]:
        """Extra constructor values: with lineage off nothing fills TracksRun's NOT NULL
        ``created_by_id``, so the caller must (the lineage-on path leaves it to the stamps)."""
        if lineage:
            return {}
        from lineage_nb.lineage.users import user_id_for

        return {"created_by_id": user_id_for(self.on)}

    def aio(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coroutine)

    def add(self, result: Result) -> Result:
        self.results.append(result)
        return result

    # -- the DBAPI baseline (sqlite3 stdlib / psycopg) ------------------------------------------
    def dbapi(self) -> Any:
        if self.backend.name == "sqlite":
            conn = sqlite3.connect(self.backend.sqlite_path)
            for pragma in SQLITE_PRAGMAS:
                conn.execute(pragma)
            return conn
        import psycopg

        url = make_url(self.backend.url).set(drivername="postgresql")
        return psycopg.connect(url.render_as_string(hide_password=False))

    @property
    def dbapi_name(self) -> str:
        return "sqlite3 (stdlib)" if self.backend.name == "sqlite" else "psycopg (DBAPI)"

    def dbapi_sql(self, statement: str) -> str:
        return statement if self.backend.name == "sqlite" else statement.replace("?", "%s")

    # -- fixtures -------------------------------------------------------------------------------
    def project(self, system: str, name: str) -> int:
        """A new project row of ``system`` ('ours', 'sa' or 'ormar'); returns its id."""
        if system == "ours":
            return (
                Project(name=name, **self.stamps(db_module.default_database() is self.on)).save().id
            )
        if system == "sa":
            with self.sa_session() as session, session.begin():
                project = SAProject(name=name)
                session.add(project)
                session.flush()
                return project.id
        assert self.ormar is not None
        return int(self.aio(self.ormar.OProject(name=name).save()).id)

    def clear(self, system: str, project_id: int) -> Callable[[], None]:
        """A setup step deleting the samples of one project (untimed, between repeats)."""

        def run() -> None:
            if system == "ours":
                with self.on.engine.begin() as conn:
                    conn.execute(
                        text("DELETE FROM bench_sample WHERE project_id = :p"), {"p": project_id}
                    )
            elif system == "sa":
                from models import SASample

                with self.sa.begin() as conn:
                    conn.execute(delete(SASample).where(SASample.project_id == project_id))
            else:
                with self.sa.begin() as conn:
                    conn.execute(
                        text("DELETE FROM ormar_sample WHERE project = :p"), {"p": project_id}
                    )

        return run

    def fill(self, system: str, project_id: int, count: int, prefix: str = "row") -> None:
        """Insert ``count`` samples for a project with a Core executemany (untimed setup)."""
        rows = [{"name": f"{prefix}{i}", "value": float(i)} for i in range(count)]
        engine = self.on.engine if system == "ours" else self.sa  # tracked tables need our engine
        with engine.begin() as conn:
            if system == "ours":
                from models import Sample

                from lineage_nb.lineage.users import user_id_for

                user_id = user_id_for(self.on)
                for row in rows:
                    row.update(project_id=project_id, created_by_id=user_id)
                conn.execute(insert(Sample.__table__), rows)
            elif system == "sa":
                from models import SASample

                for row in rows:
                    row["project_id"] = project_id
                conn.execute(insert(SASample.__table__), rows)
            else:
                for row in rows:
                    row["project"] = project_id
                conn.execute(
                    text(
                        "INSERT INTO ormar_sample (name, value, project) "
                        "VALUES (:name, :value, :project)"
                    ),
                    rows,
                )


def open_context(backend: Backend, quick: bool) -> Ctx:
    """Connect every system to ``backend`` with the same settings and create their tables."""
    on = ln.connect(backend.url, lineage=True)
    off = ln.connect(backend.url, lineage=False, create=False)
    sa = backend.engine()
    Base.metadata.create_all(sa)
    counters = Counter(), Counter(), Counter()
    counters[0].watch(on.engine)
    counters[1].watch(off.engine)
    counters[2].watch(sa)
    ctx = Ctx(
        backend=backend,
        quick=quick,
        sizes=QUICK if quick else FULL,
        repeats=3 if quick else 5,
        fast_repeats=7 if quick else 31,
        on=on,
        off=off,
        count_on=counters[0],
        count_off=counters[1],
        sa=sa,
        count_sa=counters[2],
        loop=asyncio.new_event_loop(),
    )
    ctx.use(True)
    ln.track(TRANSFORM, db=on)
    _open_ormar(ctx)
    return ctx


def _open_ormar(ctx: Ctx) -> None:
    try:
        import ormar  # noqa: F401
    except ImportError:
        ctx.ormar_error = "ormar not installed (pip install -e '.[bench]')"
        return
    url = make_url(ctx.backend.url)
    driver = "sqlite+aiosqlite" if ctx.backend.name == "sqlite" else "postgresql+psycopg"
    async_url = url.set(drivername=driver).render_as_string(hide_password=False)
    database, project, sample, metadata = ormar_models(async_url)
    metadata.create_all(ctx.sa)
    ctx.aio(database.connect())
    engine = database._engine.sync_engine  # ormar's own AsyncEngine: same pragmas as everyone
    if ctx.backend.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    counter = Counter()
    counter.watch(engine)
    ctx.ormar = Ormar(database, project, sample, counter)


def close_context(ctx: Ctx) -> None:
    """Finish the run, disconnect everything (the backend itself is dropped by the caller)."""
    for closer in ctx.closers:
        closer()
    try:
        ln.finish("completed")
    except Exception:
        pass
    if ctx.ormar is not None:
        ctx.aio(ctx.ormar.database.disconnect())
    ctx.loop.close()
    ctx.sa.dispose()
    ctx.off.close()
    ctx.on.close()


@contextmanager
def own_database(
    ctx: Ctx, results: Iterable[Result], *, keep_times: bool = False
) -> Iterator[ln.Database]:
    """A fresh database of the backend's kind, the default one with a run open in it; on the way
    out the shared database and a run in it are back. An error marks ``results`` (read when it
    happens, so results added meanwhile count) unmeasurable, their times dropped unless
    ``keep_times``."""
    backend = sqlite_backend() if ctx.backend.name == "sqlite" else pg_backend()
    previous = db_module.default_database()
    db = ln.connect(backend.url)
    try:
        ln.finish("completed")
        ln.track(TRANSFORM, db=db)
        yield db
    except Exception as error:
        for result in results:
            result.error = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
            if not keep_times:
                result.times.clear()
        raise
    finally:
        try:
            ln.finish("completed")
        finally:
            db.close()
            backend.cleanup()
            db_module.set_default(previous)
            ctx.use(True)
            ln.track(TRANSFORM, db=ctx.on)
