"""Benchmarks: lineage_nb against SQLAlchemy, the DBAPI and ormar doing the same work.

Usage::

    python benchmarks/run.py [--quick] [--backend sqlite|postgresql] [--only OP ...]
                             [--write-results benchmarks/RESULTS.md]

Every system runs in this one process, against the same database with the same settings, each
in its own pair of tables. Times are medians of repeats. Ratios never make this script fail:
it exits 0 whenever it could run (CI prints the table; noise decides nothing).

PostgreSQL: ``LINEAGE_NB_BENCH_PG_URL`` (an admin URL) or the local server at 127.0.0.1:5432 as
user ``postgres``; a fresh database is created for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ops_capture
import ops_inputs
import ops_read
import ops_verify
import ops_write
from context import Ctx, close_context, open_context
from harness import SETTINGS, Backend, machine, pg_backend, sqlite_backend, table

OPERATIONS: dict[str, Callable[[Ctx], None]] = {
    "single": ops_write.single_insert,
    "bulk": ops_write.bulk_insert,
    "update": ops_write.updates,
    "load": ops_read.load_all,
    "history": ops_read.history,
    "df": ops_read.dataframe,
    "browse": ops_read.browse,
    "memory": ops_write.memory,
    "save": ops_capture.save,
    "update_set": ops_capture.update_set,
    "storage": ops_capture.storage,
    "df_inputs": ops_inputs.df_inputs,
    "input_storage": ops_inputs.input_storage,
    "as_of": ops_inputs.as_of,
    "lineage_scale": ops_inputs.lineage_scale,
    "lineage_events": ops_inputs.lineage_events,
    "verify_1m": ops_verify.verify_1m,
}


def run_backend(name: str, quick: bool, only: list[str]) -> tuple[str, str]:
    """Run the operations on one backend; returns ``(title, markdown)``."""
    started = time.perf_counter()
    try:
        backend: Backend = sqlite_backend() if name == "sqlite" else pg_backend()
    except Exception as error:
        return name, f"_not measured: cannot create a {name} database ({error})_"
    ctx = open_context(backend, quick)
    server = _server_version(ctx)
    try:
        for op in only:
            op_started = time.perf_counter()
            try:
                OPERATIONS[op](ctx)
                ctx.run_pending()
            except Exception:
                traceback.print_exc()
                print(f"[bench] {name} {op}: failed (see traceback); continuing", file=sys.stderr)
            print(f"[bench] {name} {op}: {time.perf_counter() - op_started:.1f}s", file=sys.stderr)
    finally:
        close_context(ctx)
        backend.cleanup()
    title = (
        f"{name} {server} ({SETTINGS[name]}); whole section {time.perf_counter() - started:.0f}s"
    )
    return title, table(ctx.results, name)


def _revision() -> str:
    """The git commit the run measured (``+ local changes`` when the tree was dirty)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            text=True,
            capture_output=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "lineage_nb"],
            cwd=root,
            text=True,
            capture_output=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "an unknown commit"
    return f"`{head}`" + (" + local changes in lineage_nb/" if dirty.strip() else "")


def _server_version(ctx: Ctx) -> str:
    query = "SHOW server_version" if ctx.backend.name == "postgresql" else "SELECT sqlite_version()"
    with ctx.sa.connect() as conn:
        return str(conn.exec_driver_sql(query).scalar())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (CI)")
    parser.add_argument(
        "--backend", choices=["sqlite", "postgresql"], action="append", help="default: both"
    )
    parser.add_argument("--only", choices=list(OPERATIONS), nargs="+", default=list(OPERATIONS))
    parser.add_argument("--write-results", type=Path, help="also write the markdown file")
    args = parser.parse_args(argv)
    os.environ.setdefault("LINEAGE_NB_USER", "bench")
    warnings.simplefilter("ignore")  # e.g. track() finishing the previous run: expected here

    revision = _revision()  # the code measured: taken before the run, not when it ends
    sections = []
    for name in args.backend or ["sqlite", "postgresql"]:
        title, body = run_backend(name, args.quick, args.only)
        section = f"### {title}\n\n{body}\n"
        print(section, flush=True)
        sections.append(section)

    if args.write_results:
        mode = "--quick" if args.quick else "full"
        header = (
            "# Benchmark results\n\n"
            f"Produced by `python benchmarks/run.py{' --quick' if args.quick else ''}` ({mode} run) "
            f"on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, code at {revision}.\n\n"
            f"Machine: {machine()}.\n\n"
            "Columns: **median** wall time of the repeats (5 full / 3 quick; 31 / 7 for the "
            "one-row history lookups; memory rows: one tracemalloc peak), **spread** ± half of "
            "(max − min) / median, **statements** sent to the driver in one repeat, **ratio** "
            "to the system named in it, **verdict** against the issue's target (lineage_nb rows "
            "only). Repeats of all systems of an operation are interleaved. Method, what was "
            "optimized and why the missed targets are missed: see the notes below the tables.\n\n"
        )
        notes = Path(__file__).with_name("NOTES.md")
        footer = f"\n{notes.read_text()}" if notes.exists() else ""
        args.write_results.write_text(header + "\n".join(sections) + footer)
        print(f"[bench] wrote {args.write_results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
