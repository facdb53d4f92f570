"""Read benchmarks: load_all of a project, a record's history, DataFrames, the widget browser."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pandas as pd
from context import OURS, OURS_OFF, TRANSFORM, Ctx
from harness import Result
from models import Project, Sample, SAProject, SASample
from sqlalchemy import Float, Select, String, event, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column, selectinload

import lineage_nb as ln

# -- load one project with its samples ---------------------------------------------------------


def load_all(ctx: Ctx) -> None:
    n = ctx.sizes["load"]
    op = f"load 1 project with {n:,} samples"
    ref, target = "SQLAlchemy selectinload", "≤ 1.2× selectinload, statements = depth + 1"

    for lineage in (True, False):
        ctx.use(lineage)
        pid = ctx.project("ours", f"load-{lineage}")
        ctx.fill("ours", pid, n)
        holder: list[Project] = []

        def setup(pid: int = pid, lineage: bool = lineage, holder: list[Project] = holder) -> None:
            if lineage:  # a new run each repeat: noting the records read as inputs is in the work
                ln.finish("completed")
                ln.track(TRANSFORM, db=ctx.on)
            holder[:] = [Project.get(pid)]

        def body(n: int = n, holder: list[Project] = holder) -> None:
            project = holder[0].load_all()
            assert len(project.samples) == n

        note = (
            (
                f"new run per repeat: notes the {n:,} samples as its inputs (written with the "
                "run's next write or at finish)"
            )
            if lineage
            else ""
        )
        ctx.case(
            ctx.add(
                Result(
                    op,
                    OURS if lineage else OURS_OFF,
                    n,
                    reference=ref,
                    target=1.2,
                    target_text=target,
                    note=note,
                )
            ),
            ctx.repeats,
            body,
            setup=setup,
            counter=ctx.count_on if lineage else ctx.count_off,
        )
    ctx.use(True)

    pid = ctx.project("sa", "load")
    ctx.fill("sa", pid, n)

    def selectin() -> None:
        with ctx.sa_session() as session:
            statement = (
                select(SAProject)
                .where(SAProject.id == pid)
                .options(selectinload(SAProject.samples))
            )
            project = session.execute(statement).scalar_one()
            assert len(project.samples) == n

    ctx.case(
        ctx.add(Result(op, ref, n, reference=ref)), ctx.repeats, selectin, counter=ctx.count_sa
    )

    ctx.use(False)
    own = ctx.project("ours", "load-sa")
    ctx.fill("ours", own, n)

    def selectin_same_model() -> None:
        with Session(ctx.off.engine, expire_on_commit=False) as session:  # plain, untracked
            statement = (
                select(Project).where(Project.id == own).options(selectinload(Project.samples))
            )
            project = session.execute(statement).scalar_one()
            assert len(project.samples) == n

    ctx.case(
        ctx.add(
            Result(
                op,
                "SQLAlchemy selectinload, lineage_nb's tables",
                n,
                reference=ref,
                note="+3 TracksRun columns per row, no lineage",
            )
        ),
        ctx.repeats,
        selectin_same_model,
        counter=ctx.count_off,
    )
    ctx.use(True)

    result = ctx.add(Result(op, "ormar load_all", n, reference=ref))
    if ctx.ormar is None:
        result.error = ctx.ormar_error
        return
    o = ctx.ormar
    project = ctx.aio(o.OProject(name="load").save())
    ctx.fill("ormar", project.id, n)
    holder_o: list[Any] = []

    def ormar_setup() -> None:
        holder_o[:] = [ctx.aio(o.OProject.objects.get(id=project.id))]

    async def ormar_load() -> None:
        await holder_o[0].load_all()
        assert len(holder_o[0].samples) == n

    ctx.case(
        result, ctx.repeats, lambda: ctx.aio(ormar_load()), setup=ormar_setup, counter=o.counter
    )


# -- history of one record among many events ---------------------------------------------------


def history(ctx: Ctx) -> None:
    n = ctx.sizes["history"]
    op = f"history of 1 record among {n:,} events"
    ref = "primary-key select of 1 row"
    ctx.use(True)
    pid = ctx.project("ours", "history")
    record = Sample(name="tracked", value=1.0, project_id=pid).save()
    record.update(value=2.0)
    record.update(value=3.0)
    _fill_events(ctx, n)

    def ours() -> None:
        events = record.history()
        assert len(events) == 3

    ctx.case(
        ctx.add(Result(op, OURS, 1, reference=ref, target=3.0, target_text="≤ 3×")),
        ctx.fast_repeats,
        ours,
        counter=ctx.count_on,
        warmup=ours,
    )

    spid = ctx.project("sa", "history")
    ctx.fill("sa", spid, 1)
    with ctx.sa_session() as session:
        key = session.scalars(select(SASample.id).where(SASample.project_id == spid)).one()

    def by_pk() -> None:
        with ctx.sa_session() as session:
            session.execute(select(SASample).where(SASample.id == key)).scalar_one()

    ctx.case(
        ctx.add(Result(op, ref, 1, reference=ref, note="SQLAlchemy ORM, new session")),
        ctx.fast_repeats,
        by_pk,
        counter=ctx.count_sa,
        warmup=by_pk,
    )


def _fill_events(ctx: Ctx, n: int) -> None:
    """Add ``n`` filler events for other records of the same table, in SQL (untimed).

    They have no run (as writes outside ``ln.track``), so the open run's hash chain stays whole.
    """
    existing = ctx.on.engine.connect()
    with existing, existing.begin():
        if ctx.backend.name == "sqlite":
            generator = (
                "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) "
            )
            source = "g"
        else:
            generator, source = "", "generate_series(1, :n) AS g(x)"
        existing.execute(
            text(
                f"{generator}INSERT INTO lineage_record_event "  # noqa: S608 - constant SQL
                '(run_id, user_id, "table", pk, action, changes, cell, at, hash, prev_hash) '
                'SELECT CAST(NULL AS INTEGER), e.user_id, e."table", CAST(1000000000 + x AS VARCHAR(20)), '
                "e.action, e.changes, e.cell, e.at, NULL, NULL "
                f"FROM {source}, (SELECT * FROM lineage_record_event ORDER BY id LIMIT 1) AS e"
            ),
            {"n": n},
        )
        if ctx.backend.name == "postgresql":
            existing.execute(text("ANALYZE lineage_record_event"))


# -- DataFrames ---------------------------------------------------------------------------------


def dataframe(ctx: Ctx) -> None:
    n = ctx.sizes["df"]
    op = f"DataFrame of {n:,} rows"
    ref = "pandas.read_sql"
    ctx.use(True)
    pid = ctx.project("ours", "df")
    ctx.fill("ours", pid, n)
    statement = _statement_of(ctx, lambda: Sample.filter(project_id=pid).df())

    for lineage in (True, False):
        ctx.use(lineage)

        def ours() -> None:
            frame = Sample.filter(project_id=pid).df()
            assert len(frame) == n

        ctx.case(
            ctx.add(
                Result(
                    op,
                    f"lineage_nb Model.filter(...).df(){'' if lineage else ', lineage off'}",
                    n,
                    reference=ref,
                    target=1.3,
                    target_text="≤ 1.3×",
                )
            ),
            ctx.repeats,
            ours,
            counter=ctx.count_on if lineage else ctx.count_off,
        )
    ctx.use(True)

    def read_sql() -> None:
        with ctx.on.engine.connect() as conn:
            frame = pd.read_sql(statement, conn)
        assert len(frame) == n

    ctx.case(
        ctx.add(
            Result(
                op,
                ref,
                n,
                reference=ref,
                note="the SELECT df() sends (with its FK-label joins), same engine",
            )
        ),
        ctx.repeats,
        read_sql,
        counter=ctx.count_on,
    )


def _statement_of(ctx: Ctx, call: Callable[[], Any]) -> Any:
    """The one SELECT statement object ``call`` executes (captured with an engine event)."""
    seen: list[Any] = []

    def capture(_conn: Any, clause: Any, *_args: Any) -> None:
        seen.append(clause)

    event.listen(ctx.on.engine, "before_execute", capture)
    try:
        call()
    finally:
        event.remove(ctx.on.engine, "before_execute", capture)
    selects = [c for c in seen if isinstance(c, Select)]
    assert len(selects) == 1, f"df() ran {len(selects)} SELECTs"
    return selects[0]


# -- the widget browser -------------------------------------------------------------------------


class BrowseBig(ln.Model):
    __tablename__ = "bench_browse_big"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float)
    at: Mapped[dt.datetime | None]


class BrowseSmall(ln.Model):
    __tablename__ = "bench_browse_small"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float)
    at: Mapped[dt.datetime | None]


def browse(ctx: Ctx) -> None:
    """The widget browser: opening it on a big table costs about what it costs on a small one
    (no COUNT of the big table on PostgreSQL, no summaries until asked), a page turn is one
    LIMIT/OFFSET query, and the saved widget state (code included) stays small."""
    big, small = ctx.sizes["browse_big"], ctx.sizes["browse_small"]
    op = "open the widget browser"
    ref = f"browse() on {small:,} rows"
    try:
        from ipywidgets.embed import dependency_state

        from lineage_nb.widgets import browse as open_browser
    except ImportError as error:
        result = ctx.add(Result(op, f"browse() on {big:,} rows", big, reference=ref))
        result.error = f"lineage_nb.widgets.browse unavailable ({error})"
        return
    ctx.use(True)
    for model, count in ((BrowseBig, big), (BrowseSmall, small)):
        _fill_rows(ctx, model.__tablename__, count)

    shown = open_browser(BrowseBig)
    shown.select(shown.row_keys[0])
    state = len(json.dumps(dependency_state([shown], drop_defaults=False)))
    for model, count in ((BrowseBig, big), (BrowseSmall, small)):

        def body(model: Any = model) -> None:
            open_browser(model)

        target = (1.5, "≤ 1.5×") if model is BrowseBig else (None, "")
        note = (
            f"saved widget state with a record selected: {state / 1000:.1f} KB (≤ 50 KB)"
            if model is BrowseBig
            else ""
        )
        ctx.case(
            ctx.add(
                Result(
                    op,
                    f"browse() on {count:,} rows",
                    count,
                    reference=ref,
                    target=target[0],
                    target_text=target[1],
                    note=note,
                )
            ),
            ctx.repeats,
            body,
            counter=ctx.count_on,
            warmup=body,
        )

    turn = "browser page turn"
    budget = "budget 150 ms"
    ctx.add(Result(turn, budget, big, times=[0.150], note="the target, not a measurement"))
    browser = open_browser(BrowseBig)
    pages = [1, 2]

    def next_page() -> None:
        pages.reverse()
        browser.go(pages[0])
        assert len(browser.rows) == browser.page_size and not browser.error

    ctx.case(
        ctx.add(
            Result(
                turn,
                f"next page at {big:,} rows",
                big,
                reference=budget,
                target=1.0,
                target_text="≤ 150 ms",
            )
        ),
        ctx.repeats,
        next_page,
        counter=ctx.count_on,
        warmup=next_page,
    )
    middle = [browser.page_count // 2, browser.page_count // 2 + 1]

    def jump() -> None:
        middle.reverse()
        browser.go(middle[0])
        assert len(browser.rows) == browser.page_size and not browser.error

    ctx.case(
        ctx.add(
            Result(
                turn,
                f"jump to the middle page at {big:,} rows",
                big,
                reference=budget,
                target=1.0,
                target_text="≤ 150 ms",
                note="LIMIT/OFFSET: the database skips half the table",
            )
        ),
        ctx.repeats,
        jump,
        counter=ctx.count_on,
        warmup=jump,
    )
    sorted_browser = open_browser(BrowseBig)
    sorted_browser.sort_by("value")
    sorted_browser.sort_by("value")

    sorted_pages = [1, 2]

    def sorted_turn() -> None:
        sorted_pages.reverse()
        sorted_browser.go(sorted_pages[0])
        assert sorted_browser.rows[0][2] is not None and not sorted_browser.error

    ctx.case(
        ctx.add(
            Result(
                turn,
                f"next page sorted by an unindexed column, {big:,} rows",
                big,
                reference=budget,
                note="no target: a sort of the whole table",
            )
        ),
        ctx.repeats,
        sorted_turn,
        counter=ctx.count_on,
        warmup=sorted_turn,
    )


def _fill_rows(ctx: Ctx, table: str, n: int) -> None:
    with ctx.on.engine.begin() as conn:
        if ctx.backend.name == "sqlite":
            generator = (
                "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) "
            )
            source, now = "g", "CURRENT_TIMESTAMP"
        else:
            generator, source, now = "", "generate_series(1, :n) AS g(x)", "LOCALTIMESTAMP"
        conn.execute(
            text(
                f"{generator}INSERT INTO {table} (name, value, at) "  # noqa: S608 - constant SQL
                f"SELECT 'row ' || CAST(x AS VARCHAR(20)), x * 0.5, {now} FROM {source}"
            ),
            {"n": n},
        )
        # table statistics, as autovacuum or a DBA would keep them (the PG browser reads
        # pg_class.reltuples for big unfiltered tables instead of counting every row)
        conn.execute(text(f"ANALYZE {table}"))
