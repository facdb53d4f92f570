"""Run-input benchmarks (issue 15): what noting a run's reads costs, stores, and what the
queries over them (time travel, lineage graphs, the run list) cost.

- ``df_inputs``: ``Model.df()`` of N rows inside a run, its N inputs noted and written
  (``reads.write_now``: what the end of a notebook cell or a lineage query does), against
  ``pandas.read_sql`` of the same SELECT on the same engine.
- ``input_storage``: how many bytes ``lineage_run_input`` (table + indexes) grows by per record
  a run read: a ``df()`` of N rows, a ``df()`` of a random tenth of them, and G ``Model.get()``
  of random keys one by one.
- ``as_of``: ``Model.as_of(t).df()`` of an N-row table a tenth of whose rows changed after
  ``t``, against ``Model.df()`` of the same table, in a database of its own (N inserts + N/10
  updates: the only events there).
- ``lineage_scale``: ``record.lineage(depth=3)`` of a record whose run read K records, and
  ``ln.runs_df()``, at E events and again after 3E more, in a database of its own.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable

import pandas as pd
from context import OURS, OURS_OFF, TRANSFORM, Ctx, own_database
from harness import Case, Counter, Result, run_cases
from models import Project, Reading
from ops_read import _statement_of
from sqlalchemy import func, select, text

import lineage_nb as ln
from lineage_nb.lineage import reads

# -- fixtures ---------------------------------------------------------------------------------


def _fill(db: ln.Database, project_id: int, n: int) -> None:
    """Insert ``n`` readings with SQL in the open run (untimed): the triggers record an insert
    event for each. ``value`` is random in [0, 1), so ``value < 0.1`` is a random tenth."""
    with db.engine.begin() as conn:
        if db.dialect == "sqlite":
            generator = (
                "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) "
            )
            source, value = "g", "(abs(random()) % 1000000) / 1000000.0"
        else:
            generator, source, value = "", "generate_series(1, :n) AS g(x)", "random()"
        conn.execute(
            text(
                f"{generator}INSERT INTO bench_reading (name, value, project_id) "  # noqa: S608
                f"SELECT 'reading ' || CAST(x AS VARCHAR(20)), {value}, :p FROM {source}"
            ),
            {"n": n, "p": project_id},
        )
    _analyze(db)


def _analyze(db: ln.Database) -> None:
    """PostgreSQL: table statistics after a bulk write, as autovacuum keeps them (a minute
    later); without them the planner takes the fresh event table for a small one."""
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("bench_reading", "lineage_record_event", "lineage_run_input"):
                conn.exec_driver_sql(f"ANALYZE {table}")


def _readings(ctx: Ctx, n: int) -> None:
    """``bench_reading`` of the shared database holding ``n`` rows (filled by the first op)."""
    with ctx.on.engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(Reading.__table__)).scalar_one()
    if count == 0:
        ctx.use(True)
        _fill(ctx.on, ctx.project("ours", "readings"), n)
    elif count != n:
        raise RuntimeError(f"bench_reading holds {count:,} rows, this op reads {n:,}")


def _events(db: ln.Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM lineage_record_event").scalar_one())


def _new_run(db: ln.Database) -> ln.Run:
    ln.finish("completed")
    return ln.track(TRANSFORM, db=db)


def _verdict(value: float, limit: float) -> str:
    return "pass" if value <= limit else "fall short"


# -- df() of N rows in a run, its inputs noted and written ---------------------------------------


def df_inputs(ctx: Ctx) -> None:
    n = ctx.sizes["df_inputs"]
    op = f"DataFrame of {n:,} rows in a run (inputs noted)"
    ref = "pandas.read_sql"
    _readings(ctx, n)
    ctx.use(True)
    statement = _statement_of(ctx, Reading.df)
    reads.write_now(ctx.on)

    def write_waiting() -> None:  # untimed: the run starts each repeat with nothing waiting
        reads.write_now(ctx.on)

    def written() -> None:
        frame = Reading.df()
        reads.write_now(ctx.on)
        assert len(frame) == n

    ctx.case(
        ctx.add(
            Result(
                op,
                f"{OURS} Model.df() + inputs written",
                n,
                reference=ref,
                target=1.3,
                target_text="≤ 1.3×",
                note="df(), then reads.write_now(): what a cell's end, finish() "
                "or a lineage query does; 1 input row",
            )
        ),
        ctx.repeats,
        written,
        setup=write_waiting,
        counter=ctx.count_on,
    )

    def noted() -> None:
        assert len(Reading.df()) == n

    ctx.case(
        ctx.add(
            Result(
                op,
                f"{OURS} Model.df(), inputs noted (written later)",
                n,
                reference=ref,
                note="the keys kept in memory on the run",
            )
        ),
        ctx.repeats,
        noted,
        setup=write_waiting,
        counter=ctx.count_on,
    )

    def read_untimed() -> None:
        write_waiting()
        Reading.df()

    def write_only() -> None:
        reads.write_now(ctx.on)

    ctx.case(
        ctx.add(
            Result(
                op,
                f"{OURS} inputs written alone",
                n,
                reference=ref,
                note="reads.write_now() after an untimed df(): pack + 1 INSERT",
            )
        ),
        ctx.repeats,
        write_only,
        setup=read_untimed,
        counter=ctx.count_on,
    )

    ctx.use(False)

    def off() -> None:
        assert len(Reading.df()) == n

    ctx.case(
        ctx.add(Result(op, f"{OURS_OFF} Model.df()", n, reference=ref)),
        ctx.repeats,
        off,
        counter=ctx.count_off,
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
                note="the SELECT df() sends (with its FK-label join), same engine",
            )
        ),
        ctx.repeats,
        read_sql,
        counter=ctx.count_on,
    )


# -- bytes stored per record read ---------------------------------------------------------------


def _bytes(db: ln.Database, table: str) -> tuple[int, int]:
    """``(on disk, stored)`` bytes of ``table`` with its indexes (and TOAST on PostgreSQL).

    On disk: SQLite dbstat pages after a checkpoint, PostgreSQL ``pg_total_relation_size`` after
    VACUUM ANALYZE; both grow by whole pages (4 / 8 KiB), so one small row often adds nothing.
    Stored: the bytes of the rows and index entries themselves, SQLite dbstat ``payload``,
    PostgreSQL pgstattuple's ``tuple_len`` (live tuples of the table, its TOAST and indexes).
    """
    if db.dialect == "sqlite":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            pages, payload = conn.execute(
                text(
                    "SELECT coalesce(sum(s.pgsize), 0), coalesce(sum(s.payload), 0) FROM dbstat AS s "
                    "JOIN sqlite_master AS m ON m.name = s.name WHERE m.tbl_name = :t"
                ),
                {"t": table},
            ).one()
            return int(pages), int(payload)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        conn.exec_driver_sql(f'VACUUM ANALYZE "{table}"')
        pages = conn.execute(
            text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": table}
        ).scalar_one()
        tuples = conn.execute(
            text(
                "WITH r AS (SELECT CAST(CAST(:t AS regclass) AS oid) AS oid UNION ALL "
                "SELECT reltoastrelid FROM pg_class WHERE oid = CAST(:t AS regclass) "
                "AND reltoastrelid <> 0), "
                "i AS (SELECT indexrelid AS oid FROM pg_index WHERE indrelid IN (SELECT oid FROM r)) "
                "SELECT coalesce(sum((pgstattuple(CAST(a.oid AS regclass))).tuple_len), 0) "
                "FROM (SELECT oid FROM r UNION ALL SELECT oid FROM i) AS a"
            ),
            {"t": table},
        ).scalar_one()
        return int(pages), int(tuples)


def _packed(db: ln.Database) -> int:
    """Bytes of the packed key sets in ``lineage_run_input``."""
    with db.engine.connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT coalesce(sum(length(keys)), 0) FROM lineage_run_input"
            ).scalar_one()
        )


def _input_rows(db: ln.Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM lineage_run_input").scalar_one())


def input_storage(ctx: Ctx) -> None:
    n, gets = ctx.sizes["input_storage"], ctx.sizes["input_gets"]
    op = "lineage_run_input growth per record a run read"
    ref = "data table bench_reading, per row"
    target = "≤ 16 B/record"
    _readings(ctx, n)
    ctx.use(True)
    disk, data = _bytes(ctx.on, "bench_reading")
    stored = (
        "dbstat payload of table + indexes"
        if ctx.on.dialect == "sqlite"
        else "pgstattuple tuple_len of table + TOAST + indexes, after VACUUM ANALYZE"
    )
    ctx.add(
        Result(
            op,
            ref,
            n,
            reference=ref,
            unit="B/record",
            times=[data / n],
            note=f"stored bytes: {stored}; {n:,} rows; on disk {disk / n:.1f} B/row",
        )
    )
    with ctx.on.engine.connect() as conn:
        first = conn.execute(select(func.min(Reading.id))).scalar_one()
    keys = random.Random(15).sample(range(first, first + n), gets)

    def all_rows() -> int:
        return len(Reading.df())

    def tenth() -> int:
        return len(Reading.filter(Reading.value < 0.1).df())

    def one_by_one() -> int:
        for key in keys:
            Reading.get(key)
        return gets

    cases: list[tuple[str, Callable[[], int]]] = [
        (f"{OURS}, df() of all {n:,} rows", all_rows),
        (f"{OURS}, df() of a random tenth of {n:,} rows", tenth),
        (f"{OURS}, {gets:,} Model.get() of random keys, one each", one_by_one),
    ]
    for system, work in cases:
        result = ctx.add(Result(op, system, 0, reference=ref, unit="B/record", target_text=target))
        try:
            reads.write_now(ctx.on)
            _new_run(ctx.on)
            disk_before, before = _bytes(ctx.on, "lineage_run_input")
            keys_before, rows_before = _packed(ctx.on), _input_rows(ctx.on)
            started = time.perf_counter()
            count = work()
            took = time.perf_counter() - started
            ln.finish("completed")  # writes the run's inputs
            disk_after, after = _bytes(ctx.on, "lineage_run_input")
            packed, rows = _packed(ctx.on) - keys_before, _input_rows(ctx.on) - rows_before
        except Exception as error:
            result.error = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
            raise
        finally:
            if ln.context.get_run() is None:
                ln.track(TRANSFORM, db=ctx.on)
        result.rows = count
        result.times = [(after - before) / count]
        disk = disk_after - disk_before
        result.note = (
            f"{_verdict((after - before) / count, 16)}; {count:,} records read in "
            f"{took:.2f} s; +{rows:,} input rows of {after - before:,} B, packed keys "
            f"{packed:,} B; on disk +{disk:,} B ({disk / count:.3f} B/record)"
        )
        if rows > 1:  # reads are grouped by table, watermark and (PostgreSQL) snapshot
            result.note += (
                "; one input row per distinct watermark/snapshot: on PostgreSQL any "
                "transaction on the server between two reads changes the snapshot"
            )


# -- the table as it stood at a past time ------------------------------------------------------


def as_of(ctx: Ctx) -> None:
    n = ctx.sizes["as_of"]
    changed = n // 10
    op = f"table of {n:,} rows as of a time before {changed:,} of them changed"
    ref = "Model.df() of the same table"
    results = [
        Result(op, f"{OURS} Model.as_of(t).df()", n, reference=ref, target=5.0, target_text="≤ 5×"),
        Result(
            op,
            ref,
            n,
            reference=ref,
            note="in the run: inputs noted, written between repeats (untimed)",
        ),
    ]
    for result in results:
        ctx.add(result)
    with own_database(ctx, results) as db:
        counter = Counter()
        counter.watch(db.engine)
        pid = Project(name="as_of").save().id
        started = time.perf_counter()
        _fill(db, pid, n)
        filled = time.perf_counter() - started
        with db.engine.connect() as conn:
            total = conn.exec_driver_sql("SELECT sum(value) FROM bench_reading").scalar_one()
        time.sleep(0.05)
        when = dt.datetime.now(dt.timezone.utc)
        time.sleep(0.05)
        started = time.perf_counter()
        with db.engine.begin() as conn:  # one UPDATE: an update event for each changed row
            updated = conn.execute(
                text("UPDATE bench_reading SET value = value + 1 WHERE id % 10 = 0")
            ).rowcount
        took = time.perf_counter() - started
        assert updated == changed, updated
        _analyze(db)
        events = _events(db)

        def ours() -> None:
            frame = Reading.as_of(when).df()
            assert len(frame) == n
            assert abs(frame["value"].sum() - total) < 1e-6 * n  # the values before the UPDATE

        def plain() -> None:
            assert len(Reading.df()) == n

        results[0].note = (
            f"{events:,} events in the database; fill {filled:.1f} s, "
            f"UPDATE of {changed:,} rows {took:.1f} s"
        )
        run_cases(
            [
                Case(results[0], ours, counter=counter, warmup=ours),
                Case(
                    results[1],
                    plain,
                    setup=lambda: reads.write_now(db),
                    counter=counter,
                    warmup=plain,
                ),
            ],
            ctx.repeats,
        )


# -- lineage graphs and the run list as events pile up ----------------------------------------


def lineage_scale(ctx: Ctx) -> None:
    k = ctx.sizes["lineage_scale"]
    graph_op = f"record.lineage(depth=3), its run read {k:,} records"
    runs_op = "ln.runs_df()"
    results: dict[str, Result] = {}
    measured: list[Result] = []
    with own_database(ctx, measured) as db:
        counter = Counter()
        counter.watch(db.engine)
        source = Project(name="source").save()  # run 1 writes a source record
        _new_run(db)  # run 2 reads it and writes k readings
        Project.get(source.id)
        _fill(db, source.id, k)
        _new_run(db)  # run 3 reads the k readings and writes one derived record
        assert len(Reading.df()) == k
        derived = Project(name="derived").save()
        _new_run(db)  # run 4: this benchmark's own (it writes the filler events below)
        _analyze(db)
        graph = derived.lineage(depth=3)  # also the warm-up of the first round
        runs = sorted(node[1] for node, kind in graph.nodes(data="kind") if kind == "run")
        assert runs == [1, 2, 3], runs  # derived ← run 3 ← readings ← run 2 ← source ← run 1
        assert ("record", "bench_project", str(source.id)) in graph
        nodes = graph.number_of_nodes()

        def lineage() -> None:
            derived.lineage(depth=3)

        def runs_df() -> None:
            ln.runs_df()

        rounds = [_events(db)]
        for step in ("E", "4E"):
            if step == "4E":  # run 5 inserts 3E more readings (3E more insert events) and
                _new_run(db)  # ends: the events pile up in the log, not in the open run 6,
                _fill(db, source.id, 3 * rounds[0])  # whose own events runs_df counts live
                _new_run(db)
                rounds.append(_events(db))
            events = rounds[-1]
            label = f"at {events:,} events ({step})"
            first = f"at {rounds[0]:,} events (E)"
            found = [
                Result(graph_op, label, k, reference=first),
                Result(
                    runs_op,
                    label,
                    len(ln.runs_df()),
                    reference=first,
                    target=1.5 if step == "4E" else None,
                    target_text="flat: ≤ 1.5× at E" if step == "4E" else "",
                ),
            ]
            results[step] = found[0]
            for result in found:
                measured.append(ctx.add(result))
            run_cases(
                [
                    Case(
                        found[0], lineage, counter=counter, warmup=lineage if step == "4E" else None
                    )
                ],
                ctx.repeats,
            )
            run_cases([Case(found[1], runs_df, counter=counter, warmup=runs_df)], ctx.fast_repeats)
    for step, result in results.items():
        if result.median is not None:
            verdict = _verdict(result.median, 0.005)
            result.target_text = "≤ 5 ms"
            result.note = f"{verdict}; {nodes:,} graph nodes, 3 runs" + (
                "" if step == "E" else "; the 3E new events are other records'"
            )


# -- a typical record's lineage in a large event log ---------------------------------------------


def lineage_events(ctx: Ctx) -> None:
    n = ctx.sizes["lineage_events"]
    op = f"record.lineage(depth=3) of a typical record, {n:,}+ events in the database"
    result = Result(op, f"{OURS} record.lineage(depth=3)", n)
    ctx.add(result)
    with own_database(ctx, [result]) as db:
        counter = Counter()
        counter.watch(db.engine)
        sources = [Project(name=f"source {i}").save() for i in range(3)]  # run 1 writes them
        started = time.perf_counter()
        _fill(db, sources[0].id, n)  # ... and n readings: n insert events
        filled = time.perf_counter() - started
        _new_run(db)  # run 2 reads the sources and 5 readings, writes a derived record
        for source in sources:
            Project.get(source.id)
        assert len(Reading.filter(Reading.id <= 5).all()) == 5
        derived = Project(name="derived").save()
        _new_run(db)  # run 3 reads the derived record and writes the one looked at
        Project.get(derived.id)
        typical = Project(name="typical").save()
        _new_run(db)
        _analyze(db)
        graph = typical.lineage(depth=3)
        runs = sorted(node[1] for node, kind in graph.nodes(data="kind") if kind == "run")
        assert runs == [1, 2, 3], runs  # typical ← run 3 ← derived ← run 2 ← sources ← run 1
        assert ("record", "bench_reading", "5") in graph

        def lineage() -> None:
            typical.lineage(depth=3)

        run_cases([Case(result, lineage, counter=counter, warmup=lineage)], ctx.fast_repeats)
        if result.median is not None:
            result.target_text = "≤ 5 ms"
            result.note = (
                f"{_verdict(result.median, 0.005)}; {_events(db):,} events, "
                f"{graph.number_of_nodes()} graph nodes; fill {filled:.0f} s"
            )
