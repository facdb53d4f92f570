"""Tamper-evidence benchmark (issue 17): what checking the sealed event log costs.

- ``verify_1m``: ``ln.verify()`` of a log of N sealed events (1M; 50k with ``--quick``) in a
  database of its own: N/2 inserts of readings, then one ``UPDATE`` of all of them (N/2 update
  events carrying their changes), sealed once. The target is per million events (≤ 3 s on
  SQLite), so the row is also given scaled to 1M. The note gives what sealing the same events
  cost, and ``record.proof()`` of one event (which rehashes its seal: all N events here).
"""

from __future__ import annotations

import time

from context import OURS, Ctx, own_database
from harness import Case, Counter, Result, run_cases
from models import Project, Reading
from ops_inputs import _analyze, _events, _fill, _verdict
from sqlalchemy import text

from lineage_nb.lineage.verify import check_proof, seal, verify

FULL_EVENTS = 1_000_000
QUICK_EVENTS = 50_000
PER = 1_000_000  # the target is per million events


def verify_1m(ctx: Ctx) -> None:
    n = QUICK_EVENTS if ctx.quick else FULL_EVENTS
    op = f"verify() of {n:,} sealed events"
    ref = f"{OURS} verify()"
    results = [
        Result(op, ref, n, reference=ref),
        Result(
            op, f"{OURS} verify(), per 1M events", PER, target_text="≤ 3 s per 1M events (SQLite)"
        ),
    ]
    for result in results:
        ctx.add(result)
    with own_database(ctx, results) as db:
        counter = Counter()
        counter.watch(db.engine)
        project = Project(name="verify").save()
        started = time.perf_counter()
        _fill(db, project.id, n // 2)
        with db.engine.begin() as conn:  # one UPDATE: an update event (with changes) per row
            conn.execute(text("UPDATE bench_reading SET value = value + 1"))
        filled = time.perf_counter() - started
        _analyze(db)
        events = _events(db)
        started = time.perf_counter()
        sealed = seal(db)
        sealing = time.perf_counter() - started
        assert sealed == events, (sealed, events)
        reading = Reading.filter().first()
        assert reading is not None
        started = time.perf_counter()
        proof = reading.proof()
        proving = time.perf_counter() - started
        assert check_proof(proof)

        def check() -> None:
            assert verify(db) == []

        run_cases([Case(results[0], check, counter=counter, warmup=check)], ctx.repeats)
        results[1].times = [t * PER / events for t in results[0].times]
        results[1].statements = results[0].statements
        median = results[1].median
        verdict = "" if median is None else _verdict(median, 3.0) + "; "
        if ctx.backend.name != "sqlite":
            verdict = "reported (the 3 s target is SQLite's); "
        results[1].note = (
            f"{verdict}{events:,} events ({events - n // 2:,} with changes) filled in "
            f"{filled:.1f} s; seal() of them {sealing:.2f} s; record.proof() of one "
            f"{proving * 1000:.0f} ms, audit path of {len(proof.path)} hashes; statements: "
            "SQLAlchemy's only (the events are streamed by one driver cursor)"
        )
