"""Write benchmarks: single-row inserts, bulk inserts, row-by-row updates, bulk-insert memory."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

from context import OURS, OURS_OFF, Ctx
from harness import Result, measure
from models import Sample, SASample
from sqlalchemy import insert, select

RAW_INSERT = "INSERT INTO sa_sample (name, value, project_id) VALUES (?, ?, ?)"


# -- single-row inserts, one transaction each -------------------------------------------------


def single_insert(ctx: Ctx) -> None:
    n = ctx.sizes["single"]
    op = f"single-row insert ×{n:,}, own transaction each"
    ref, target = "SQLAlchemy ORM", "≤ 1.3× SQLAlchemy ORM"

    def ours(lineage: bool) -> None:
        ctx.use(lineage)
        pid = ctx.project("ours", f"single-{lineage}")
        extra = ctx.stamps(lineage)

        def body(count: int = n) -> None:
            for i in range(count):
                Sample(name=f"s{i}", value=float(i), project_id=pid, **extra).save()

        name = OURS if lineage else OURS_OFF
        ctx.case(
            ctx.add(Result(op, name, n, reference=ref, target=1.3, target_text=target)),
            ctx.repeats,
            body,
            setup=ctx.clear("ours", pid),
            counter=ctx.count_on if lineage else ctx.count_off,
            warmup=lambda: body(20),
        )

    ours(True)
    ours(False)

    pid = ctx.project("sa", "single")
    conn = ctx.dbapi()
    raw = Result(op, ctx.dbapi_name, n, reference=ref)

    def dbapi() -> None:
        cursor = conn.cursor()
        sql = ctx.dbapi_sql(RAW_INSERT)
        for i in range(n):
            cursor.execute(sql, (f"s{i}", float(i), pid))
            conn.commit()
        raw.statements = n

    ctx.case(ctx.add(raw), ctx.repeats, dbapi, setup=ctx.clear("sa", pid))
    ctx.closers.append(conn.close)

    def orm() -> None:
        with ctx.sa_session() as session:
            for i in range(n):
                session.add(SASample(name=f"s{i}", value=float(i), project_id=pid))
                session.commit()

    ctx.case(
        ctx.add(Result(op, "SQLAlchemy ORM", n, reference=ref, note="expire_on_commit=False")),
        ctx.repeats,
        orm,
        setup=ctx.clear("sa", pid),
        counter=ctx.count_sa,
    )
    _ormar(ctx, op, n, ref, lambda o, p: _ormar_single(o, p, n))


async def _ormar_single(o: Any, project: Any, n: int) -> None:
    for i in range(n):
        await o.OSample(name=f"s{i}", value=float(i), project=project).save()


def _ormar(
    ctx: Ctx,
    op: str,
    rows: int,
    ref: str,
    make: Callable[[Any, Any], Any],
    repeats: int | None = None,
) -> None:
    """Measure an ormar coroutine factory ``make(ormar, project)`` (or record why it cannot)."""
    result = ctx.add(Result(op, "ormar", rows, reference=ref))
    if ctx.ormar is None:
        result.error = ctx.ormar_error
        return
    o = ctx.ormar
    pid = ctx.aio(o.OProject(name=op[:90]).save()).id
    holder: list[Any] = []
    clear = ctx.clear("ormar", pid)

    def setup() -> None:
        # a fresh Project object each repeat: ormar keeps every child created with it in its
        # reverse relation, and that list (from earlier repeats) slows the next ones down
        clear()
        holder[:] = [ctx.aio(o.OProject.objects.get(id=pid))]

    ctx.case(
        result,
        repeats or ctx.repeats,
        lambda: ctx.aio(make(o, holder[0])),
        setup=setup,
        counter=o.counter,
    )


# -- bulk inserts, one transaction --------------------------------------------------------------


def bulk_insert(ctx: Ctx) -> None:
    n = ctx.sizes["bulk"]
    op = f"bulk insert ×{n:,}, one transaction"
    ref, core, to_sql = "SQLAlchemy ORM add_all", "SQLAlchemy Core insert", "DataFrame.to_sql"
    frame_ok = _bulk_create_takes_frames(ctx)

    for lineage in (True, False):
        ctx.use(lineage)
        counter = ctx.count_on if lineage else ctx.count_off
        suffix = "" if lineage else ", lineage off"
        pid = ctx.project("ours", f"bulk-{lineage}")
        extra = ctx.stamps(lineage)

        def instances(pid: int = pid, extra: dict[str, Any] = extra) -> None:
            Sample.bulk_create(
                [Sample(name=f"s{i}", value=float(i), project_id=pid, **extra) for i in range(n)]
            )

        def dicts(pid: int = pid, extra: dict[str, Any] = extra) -> None:
            Sample.bulk_create(
                [{"name": f"s{i}", "value": float(i), "project_id": pid, **extra} for i in range(n)]
            )

        ctx.case(
            ctx.add(
                Result(
                    op,
                    f"lineage_nb bulk_create(instances){suffix}",
                    n,
                    reference=ref,
                    target=0.5,
                    target_text="≤ 0.5× ORM add_all",
                )
            ),
            ctx.repeats,
            instances,
            setup=ctx.clear("ours", pid),
            counter=counter,
        )
        ctx.case(
            ctx.add(
                Result(
                    op,
                    f"lineage_nb bulk_create(dicts){suffix}",
                    n,
                    reference=core,
                    target=2.0,
                    also=[(to_sql, 1.5)],
                    target_text="≤ 2× Core executemany, ≤ 1.5× to_sql",
                )
            ),
            ctx.repeats,
            dicts,
            setup=ctx.clear("ours", pid),
            counter=counter,
        )

        # the DataFrame is the user's already: built untimed (setup), inserted timed
        frames: list[Any] = []
        clear = ctx.clear("ours", pid)

        def frame_setup(
            pid: int = pid,
            extra: dict[str, Any] = extra,
            frames: list[Any] = frames,
            clear: Callable[[], None] = clear,
        ) -> None:
            clear()
            frames[:] = [_frame(n, pid, extra)]

        if not lineage:  # a frame may not carry the stamps, and lineage off nothing fills them
            continue
        frame = ctx.add(
            Result(
                op,
                "lineage_nb bulk_create(DataFrame)",
                n,
                reference=core,
                target=2.0,
                also=[(to_sql, 1.5)],
                target_text="≤ 2× Core executemany, ≤ 1.5× to_sql",
            )
        )
        if frame_ok is None:
            ctx.case(
                frame,
                ctx.repeats,
                lambda frames=frames: Sample.bulk_create(frames[0]),
                setup=frame_setup,
                counter=counter,
            )
        else:
            frame.note = f"not available: {frame_ok}"
    ctx.use(True)

    pid = ctx.project("sa", "bulk")
    conn = ctx.dbapi()
    raw = Result(op, f"{ctx.dbapi_name} executemany", n, reference=ref)

    def dbapi() -> None:
        rows = [(f"s{i}", float(i), pid) for i in range(n)]
        conn.cursor().executemany(ctx.dbapi_sql(RAW_INSERT), rows)
        conn.commit()
        raw.statements = 1

    ctx.case(ctx.add(raw), ctx.repeats, dbapi, setup=ctx.clear("sa", pid))
    ctx.closers.append(conn.close)

    def core() -> None:
        rows = [{"name": f"s{i}", "value": float(i), "project_id": pid} for i in range(n)]
        with ctx.sa.begin() as connection:
            connection.execute(insert(SASample), rows)

    ctx.case(
        ctx.add(Result(op, "SQLAlchemy Core insert", n, reference=ref, note="executemany")),
        ctx.repeats,
        core,
        setup=ctx.clear("sa", pid),
        counter=ctx.count_sa,
    )

    frames: list[Any] = []
    clear_sa = ctx.clear("sa", pid)

    def to_sql_setup() -> None:
        clear_sa()
        frames[:] = [_frame(n, pid, {})]

    def pandas_to_sql() -> None:
        with ctx.sa.begin() as connection:
            frames[0].to_sql("sa_sample", connection, if_exists="append", index=False)

    ctx.case(
        ctx.add(
            Result(
                op,
                to_sql,
                n,
                reference=ref,
                note="untracked, plain engine, method=None (executemany)",
            )
        ),
        ctx.repeats,
        pandas_to_sql,
        setup=to_sql_setup,
        counter=ctx.count_sa,
    )

    def orm() -> None:
        with ctx.sa_session() as session:
            session.add_all(
                [SASample(name=f"s{i}", value=float(i), project_id=pid) for i in range(n)]
            )
            session.commit()

    ctx.case(
        ctx.add(Result(op, ref, n, reference=ref, note="expire_on_commit=False")),
        ctx.repeats,
        orm,
        setup=ctx.clear("sa", pid),
        counter=ctx.count_sa,
    )

    async def ormar_bulk(o: Any, project: Any) -> None:
        await o.OSample.objects.bulk_create(
            [o.OSample(name=f"s{i}", value=float(i), project=project) for i in range(n)]
        )

    _ormar(ctx, op, n, ref, ormar_bulk)


def _frame(n: int, pid: int, extra: dict[str, Any]) -> Any:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "name": [f"s{i}" for i in range(n)],
            "value": [float(i) for i in range(n)],
            "project_id": pid,
        }
    )
    for key, value in extra.items():
        frame[key] = value
    return frame


def _bulk_create_takes_frames(ctx: Ctx) -> str | None:
    """None if ``Model.bulk_create`` accepts a DataFrame (a one-row probe), else why not."""
    try:
        pid = ctx.project("ours", "bulk-frame-probe")
        Sample.bulk_create(_frame(1, pid, {}))
        found = Sample.filter(project_id=pid).all()
        if len(found) != 1 or found[0].name != "s0":
            return f"bulk_create(DataFrame) wrote {len(found)} rows for a 1-row frame"
    except Exception as error:
        return f"bulk_create(DataFrame) raises {type(error).__name__}"
    return None


# -- updates one by one -------------------------------------------------------------------------


def updates(ctx: Ctx) -> None:
    n = ctx.sizes["update"]
    op = f"update ×{n:,} one by one, own transaction each"
    ref, target = "SQLAlchemy ORM", "≤ 1.3× SQLAlchemy ORM"

    for lineage in (True, False):
        ctx.use(lineage)
        pid = ctx.project("ours", f"update-{lineage}")
        ctx.fill("ours", pid, n)
        records = Sample.filter(project_id=pid).all()

        def body(records: list[Sample] = records) -> None:
            for record in records:
                record.update(value=record.value + 1.0)

        ctx.case(
            ctx.add(
                Result(
                    op,
                    OURS if lineage else OURS_OFF,
                    n,
                    reference=ref,
                    target=1.3,
                    target_text=target,
                )
            ),
            ctx.repeats,
            body,
            counter=ctx.count_on if lineage else ctx.count_off,
        )
    ctx.use(True)

    pid = ctx.project("sa", "update")
    ctx.fill("sa", pid, n)
    for expire in (False, True):
        session = ctx.sa_session(expire_on_commit=expire)
        objects = session.scalars(select(SASample).where(SASample.project_id == pid)).all()
        session.commit()

        def orm(session: Any = session, objects: Any = objects) -> None:
            for obj in objects:
                obj.value = obj.value + 1.0
                session.commit()

        name = "SQLAlchemy ORM" if not expire else "SQLAlchemy ORM, expire_on_commit=True"
        ctx.case(
            ctx.add(
                Result(op, name, n, reference=ref, note=f"expire_on_commit={expire}, one session")
            ),
            ctx.repeats,
            orm,
            counter=ctx.count_sa,
        )
        ctx.closers.append(session.close)

    result = ctx.add(Result(op, "ormar", n, reference=ref))
    if ctx.ormar is None:
        result.error = ctx.ormar_error
        return
    o = ctx.ormar
    project = ctx.aio(o.OProject(name="update").save())
    ctx.fill("ormar", project.id, n)
    rows = ctx.aio(o.OSample.objects.filter(project=project.id).all())

    async def ormar_update() -> None:
        for row in rows:
            await row.update(value=row.value + 1.0)

    ctx.case(result, ctx.repeats, lambda: ctx.aio(ormar_update()), counter=o.counter)


# -- peak memory of a bulk insert ---------------------------------------------------------------


def memory(ctx: Ctx) -> None:
    n = ctx.sizes["memory"]
    op = f"peak memory, bulk insert ×{n:,} (tracemalloc)"
    ref = "SQLAlchemy ORM add_all"
    repeats = 1  # a tracemalloc peak barely varies between runs; one 100k run is slow enough

    def peak(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            gc.collect()
            tracemalloc.start()
            try:
                fn()
                _, top = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            samples.append(top / 2**20)

        return run

    def record(result: Result, fn: Callable[[], None], setup: Callable[[], None]) -> None:
        samples.clear()
        measure(ctx.add(result), repeats, peak(fn), setup=setup)
        result.times = list(samples) if not result.error else []

    samples: list[float] = []
    for lineage in (True, False):
        ctx.use(lineage)
        pid = ctx.project("ours", f"memory-{lineage}")
        extra = ctx.stamps(lineage)

        def ours(pid: int = pid, extra: dict[str, Any] = extra) -> None:
            Sample.bulk_create(
                [Sample(name=f"s{i}", value=float(i), project_id=pid, **extra) for i in range(n)]
            )

        record(
            Result(
                op,
                f"lineage_nb bulk_create(instances){'' if lineage else ', lineage off'}",
                n,
                reference=ref,
                target=1.0,
                target_text="≤ 1.0× ORM add_all",
                unit="MiB",
            ),
            ours,
            ctx.clear("ours", pid),
        )
    ctx.use(True)
    pid = ctx.project("sa", "memory")

    def orm() -> None:
        with ctx.sa_session() as session:
            session.add_all(
                [SASample(name=f"s{i}", value=float(i), project_id=pid) for i in range(n)]
            )
            session.commit()

    record(
        Result(op, ref, n, reference=ref, unit="MiB", note="expire_on_commit=False"),
        orm,
        ctx.clear("sa", pid),
    )
