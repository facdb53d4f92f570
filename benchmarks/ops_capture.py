"""Capture-target benchmarks (issue 13): what the database triggers cost.

- ``save``: one ``save()`` per record against SQLAlchemy ORM ``add`` on a reused session, both
  inside one transaction (``ln.atomic()`` / one ``session.begin()``, a flush per record) and
  with a commit per record.
- ``update_set``: one set-based ``session.execute(update(...))`` of N rows on a tracked table
  against the same statement on an untracked copy of it (same columns, indexes, foreign key).
- ``storage``: lineage storage after N inserts + N single-field updates, against the data's own
  size, in a database of its own (nothing else in either table).
"""

from __future__ import annotations

import time
from typing import Any

from context import OURS, OURS_OFF, TRANSFORM, Ctx, own_database
from harness import Result
from models import Project, Sample, SASample
from sqlalchemy import MetaData, Table, insert, text, update
from sqlalchemy.orm import Session

import lineage_nb as ln

# -- save(): inside one transaction, and a commit each -------------------------------------------


def save(ctx: Ctx) -> None:
    n = ctx.sizes["save"]
    ref, target = "SQLAlchemy ORM", "≤ 1.3× SQLAlchemy ORM"

    # (a) one transaction: ln.atomic() around n save()s / one ORM session, add + flush each
    op = f"save() ×{n:,} in one transaction (ln.atomic / ORM add+flush each, one commit)"
    for lineage in (True, False):
        ctx.use(lineage)
        pid = ctx.project("ours", f"save-atomic-{lineage}")
        extra = ctx.stamps(lineage)

        def atomic(pid: int = pid, extra: dict[str, Any] = extra, count: int = n) -> None:
            with ln.atomic():
                for i in range(count):
                    Sample(name=f"s{i}", value=float(i), project_id=pid, **extra).save()

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
            atomic,
            setup=ctx.clear("ours", pid),
            counter=ctx.count_on if lineage else ctx.count_off,
            warmup=lambda atomic=atomic: atomic(count=20),
        )
    ctx.use(True)
    pid_on = ctx.project("ours", "save-session")

    def tracked_session(count: int = n) -> None:
        with ctx.on.session() as session, session.begin():
            for i in range(count):
                session.add(Sample(name=f"s{i}", value=float(i), project_id=pid_on))
                session.flush()

    ctx.case(
        ctx.add(
            Result(
                op,
                "lineage_nb session, ORM add+flush",
                n,
                reference=ref,
                note="the ORM baseline's code on a tracked session",
            )
        ),
        ctx.repeats,
        tracked_session,
        setup=ctx.clear("ours", pid_on),
        counter=ctx.count_on,
    )

    pid_sa = ctx.project("sa", "save")

    def orm_atomic() -> None:
        with ctx.sa_session() as session, session.begin():
            for i in range(n):
                session.add(SASample(name=f"s{i}", value=float(i), project_id=pid_sa))
                session.flush()

    ctx.case(
        ctx.add(Result(op, ref, n, reference=ref, note="expire_on_commit=False")),
        ctx.repeats,
        orm_atomic,
        setup=ctx.clear("sa", pid_sa),
        counter=ctx.count_sa,
    )
    ctx.run_pending()

    # (b) a commit per record: save() opens its own transaction; the ORM reuses one session
    op = f"save() ×{n:,}, a commit each (ORM: one session, add+commit each)"
    for lineage in (True, False):
        ctx.use(lineage)
        pid = ctx.project("ours", f"save-commit-{lineage}")
        extra = ctx.stamps(lineage)

        def each(pid: int = pid, extra: dict[str, Any] = extra, count: int = n) -> None:
            for i in range(count):
                Sample(name=f"s{i}", value=float(i), project_id=pid, **extra).save()

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
            each,
            setup=ctx.clear("ours", pid),
            counter=ctx.count_on if lineage else ctx.count_off,
            warmup=lambda each=each: each(count=20),
        )
    ctx.use(True)

    def tracked_commits() -> None:
        with ctx.on.session() as session:
            for i in range(n):
                session.add(Sample(name=f"s{i}", value=float(i), project_id=pid_on))
                session.commit()

    ctx.case(
        ctx.add(
            Result(
                op,
                "lineage_nb session, ORM add+commit",
                n,
                reference=ref,
                note="the ORM baseline's code on a tracked session",
            )
        ),
        ctx.repeats,
        tracked_commits,
        setup=ctx.clear("ours", pid_on),
        counter=ctx.count_on,
    )

    def orm_commits() -> None:
        with ctx.sa_session() as session:
            for i in range(n):
                session.add(SASample(name=f"s{i}", value=float(i), project_id=pid_sa))
                session.commit()

    ctx.case(
        ctx.add(Result(op, ref, n, reference=ref, note="expire_on_commit=False")),
        ctx.repeats,
        orm_commits,
        setup=ctx.clear("sa", pid_sa),
        counter=ctx.count_sa,
    )


# -- one set-based UPDATE of N rows ----------------------------------------------------------


def _plain_copy(ctx: Ctx) -> Table:
    """An untracked copy of ``bench_sample`` (same columns, indexes, foreign key; no triggers)."""
    metadata = MetaData()
    for fk in Sample.__table__.foreign_keys:  # their targets exist already: not recreated
        fk.column.table.to_metadata(metadata)
    plain = Sample.__table__.to_metadata(metadata, name="plain_sample")
    for column in plain.columns:  # no lineage: the stamps' DEFAULT / ON UPDATE SQL call
        column.server_default = None  # lineage_nb's functions (values are given here)
        column.onupdate = None
    metadata.create_all(ctx.sa, tables=[plain])
    return plain


def update_set(ctx: Ctx) -> None:
    n = ctx.sizes["update_set"]
    op = f"UPDATE of {n:,} rows, one statement (session.execute(update(...)))"
    ref = "untracked copy, plain engine"
    target = "≤ 3× untracked"
    from lineage_nb.lineage.users import user_id_for

    user_id = user_id_for(ctx.on)
    ctx.use(True)
    plain = _plain_copy(ctx)

    for fresh_run in (True, False):
        pid = ctx.project("ours", f"update-set-{fresh_run}")
        ctx.fill("ours", pid, n)
        statement = update(Sample).where(Sample.project_id == pid).values(value=Sample.value + 1.0)

        def setup() -> None:  # rows written by an earlier run: the triggers restamp run_id
            ln.finish("completed")
            ln.track(TRANSFORM, db=ctx.on)

        def tracked(statement: Any = statement) -> None:
            with ctx.on.session() as session, session.begin():
                assert session.execute(statement).rowcount == n

        def same_run(pid: int = pid) -> None:  # stamps are not diffed: no event, no restamp
            run = ln.context.get_run()
            assert run is not None
            with ctx.on.engine.begin() as conn:
                conn.execute(update(Sample).where(Sample.project_id == pid).values(run_id=run.id))

        name = f"{OURS}, rows of an earlier run" if fresh_run else f"{OURS}, rows of this run"
        note = (
            "new run per repeat: every row is restamped (run_id)"
            if fresh_run
            else "rows already carry this run: no restamp"
        )
        ctx.case(
            ctx.add(Result(op, name, n, reference=ref, target=3.0, target_text=target, note=note)),
            ctx.repeats,
            tracked,
            setup=setup if fresh_run else same_run,
            counter=ctx.count_on,
        )

    pid = ctx.project("ours", "update-set-plain")
    run = ln.context.get_run()
    rows = [
        {
            "name": f"row{i}",
            "value": float(i),
            "project_id": pid,
            "created_by_id": user_id,
            "run_id": run.id if run is not None else None,
        }
        for i in range(n)
    ]
    with ctx.sa.begin() as conn:
        conn.execute(insert(plain), rows)
    plain_statement = (
        update(plain).where(plain.c.project_id == pid).values(value=plain.c.value + 1.0)
    )

    def untracked() -> None:
        with Session(ctx.sa) as session, session.begin():
            assert session.execute(plain_statement).rowcount == n

    ctx.case(
        ctx.add(
            Result(
                op,
                ref,
                n,
                reference=ref,
                note="plain_sample: bench_sample's columns, indexes and foreign key, no triggers",
            )
        ),
        ctx.repeats,
        untracked,
        counter=ctx.count_sa,
    )

    def untracked_off() -> None:
        with ctx.off.session() as session, session.begin():
            assert session.execute(plain_statement).rowcount == n

    ctx.use(False)
    ctx.case(
        ctx.add(
            Result(
                op,
                f"{OURS_OFF}, untracked copy",
                n,
                reference=ref,
                note="ln.connect(url, lineage=False) session",
            )
        ),
        ctx.repeats,
        untracked_off,
        counter=ctx.count_off,
    )
    ctx.use(True)


# -- lineage storage after N inserts and N single-field updates --------------------------------


def _sizes(db: ln.Database, tables: list[str]) -> dict[str, int]:
    """Bytes of each table with its indexes (and TOAST on PostgreSQL), after VACUUM/ANALYZE."""
    if db.dialect == "sqlite":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
            found = dict(
                conn.exec_driver_sql(
                    "SELECT m.tbl_name, sum(s.pgsize) FROM dbstat AS s "
                    "JOIN sqlite_master AS m ON m.name = s.name GROUP BY m.tbl_name"
                ).all()
            )
        return {t: int(found.get(t, 0)) for t in tables}
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        sizes = {}
        for name in tables:
            conn.exec_driver_sql(f'VACUUM ANALYZE "{name}"')
            sizes[name] = int(
                conn.execute(
                    text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": name}
                ).scalar_one()
            )
        return sizes


def storage(ctx: Ctx) -> None:
    n = ctx.sizes["storage"]
    op = f"storage after {n:,} inserts + {n:,} single-field updates"
    ref = "data table bench_sample"
    postgresql = ctx.backend.name != "sqlite"
    mib = 2**20
    results = {
        "data": ctx.add(
            Result(
                op,
                ref,
                n,
                reference=ref,
                unit="MiB",
                note="table + indexes"
                + (" + TOAST, after VACUUM ANALYZE" if postgresql else " (dbstat pages)"),
            )
        ),
        "events": ctx.add(
            Result(
                op,
                "lineage_record_event",
                2 * n,
                reference=ref,
                unit="MiB",
                target=1.5,
                target_text="≤ 1.5× the data",
            )
        ),
    }
    # a database of its own: only this op's rows in both tables
    with own_database(ctx, results.values(), keep_times=True) as db:
        pid = Project(name="storage").save().id

        def work() -> None:
            for start in range(0, n, 50_000):  # bulk_create keeps every row in memory: chunks
                Sample.bulk_create(
                    [
                        {"name": f"sample {i}", "value": float(i), "project_id": pid}
                        for i in range(start, min(n, start + 50_000))
                    ]
                )
            with db.session() as session, session.begin():  # n updates of one field each
                session.execute(update(Sample).values(value=Sample.value + 0.5))

        started = time.perf_counter()
        work()
        took = time.perf_counter() - started
        sizes = _sizes(db, ["bench_sample", "lineage_record_event"])
        with db.engine.connect() as conn:
            events = conn.exec_driver_sql("SELECT count(*) FROM lineage_record_event").scalar_one()
            rows = conn.exec_driver_sql("SELECT count(*) FROM bench_sample").scalar_one()
        results["data"].times = [sizes["bench_sample"] / mib]
        results["data"].note += f"; {rows:,} rows, {sizes['bench_sample'] / rows:.0f} B/row"
        results["events"].times = [sizes["lineage_record_event"] / mib]
        results["events"].note = (
            f"table + indexes; {events:,} events, "
            f"{sizes['lineage_record_event'] / events:.0f} B/event; "
            f"the writes took {took:.1f} s"
        )
        if postgresql:  # the data table also holds n dead row versions
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM FULL bench_sample")
            compact = _sizes(db, ["bench_sample"])["bench_sample"]
            results["compact"] = ctx.add(
                Result(
                    op,
                    "data table, VACUUM FULL",
                    n,
                    reference=ref,
                    unit="MiB",
                    note="dead row versions removed",
                )
            )
            results["compact"].times = [compact / mib]
            results["events"].also = [("data table, VACUUM FULL", 1.5)]
