"""``python -m lineage_nb demo``: run the quickstart notebook headless and print its lineage.

The notebook (with the Python files beside it: its models and the lab's scripts it runs) is
copied into a fresh directory and executed top to bottom with nbclient on a real IPython kernel
against a fresh SQLite file there; the kernel gets ``JPY_SESSION_NAME`` (so it knows its
notebook) and ``LINEAGE_NB_DATABASE_URL``. Afterwards the recorded lineage is read back from
that database and printed: the runs of the ingest script, the analysis notebook and the
correction, per record who wrote it, when and in which cell, what each run read at which
version, which records are now stale, and what changed since the analysis read its inputs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["QUICKSTART", "execute_notebook", "main", "print_lineage"]

_PACKAGE = Path(__file__).resolve().parent
#: The quickstart: shipped inside the package when built with it, else the source tree's copy.
QUICKSTART = next(
    (
        p
        for p in (
            _PACKAGE / "notebooks" / "quickstart.ipynb",
            _PACKAGE.parent / "notebooks" / "quickstart.ipynb",
        )
        if p.is_file()
    ),
    _PACKAGE.parent / "notebooks" / "quickstart.ipynb",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lineage_nb demo",
        description="Execute the quickstart notebook headless against a fresh SQLite database "
        "and print the lineage it recorded.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="directory for the database, the executed notebook and its exports "
        "(default: a new temporary directory, kept and printed)",
    )
    parser.add_argument(
        "--notebook", type=Path, default=QUICKSTART, help="notebook to run (default: quickstart)"
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        default=None,
        help="record into this database instead of a fresh SQLite file in --dir",
    )
    parser.add_argument("--timeout", type=int, default=300, help="seconds allowed per cell")
    return parser


def execute_notebook(
    notebook: Path, workdir: Path, database_url: str, *, timeout: int = 300
) -> Path:
    """Execute ``notebook`` (copied into ``workdir``) on a fresh kernel; return the executed copy.

    The kernel runs in ``workdir`` with ``JPY_SESSION_NAME`` = the copy's path and
    ``LINEAGE_NB_DATABASE_URL`` = ``database_url``; it is shut down gracefully afterwards, so
    the notebook's run is finished as ``completed``.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised.
    """
    import nbformat
    from nbclient import NotebookClient

    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / notebook.name
    shutil.copyfile(notebook, copy)
    for companion in sorted(notebook.parent.glob("*.py")):  # models and scripts it imports/runs
        shutil.copyfile(companion, workdir / companion.name)
    document = nbformat.read(str(copy), as_version=4)  # type: ignore[no-untyped-call]
    env = {
        **os.environ,
        "JPY_SESSION_NAME": str(copy),
        "LINEAGE_NB_DATABASE_URL": database_url,
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    client = NotebookClient(
        document,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    try:
        client.execute(env=env)
    finally:
        executed = workdir / f"{copy.stem}.executed.ipynb"
        nbformat.write(document, str(executed))  # type: ignore[no-untyped-call]
    return executed


def _table(frame: Any) -> str:
    return str(frame.to_string(index=False, na_rep="-")) if len(frame) else "  (none)"


def _when(value: Any) -> str:
    return "-" if value is None or value != value else f"{value:%Y-%m-%d %H:%M:%S}"


def print_lineage(database_url: str, out: Any = None) -> int:
    """Print the runs, notebooks, per-record events, inputs, stale records and a diff recorded
    in ``database_url``.

    Returns:
        The number of record events printed.
    """
    import pandas as pd

    import lineage_nb as ln

    out = out or sys.stdout
    db = ln.connect(database_url)
    try:
        runs = ln.runs(limit=None)
        transforms = {run.transform.id: run.transform for run in runs}
        print("Notebooks and scripts", file=out)
        print(
            _table(
                pd.DataFrame(
                    [
                        {
                            "key": t.key,
                            "version": t.version,
                            "type": t.type,
                            "source sha256": t.source_hash[:12],
                            "code lines": len((t.source_code or "").splitlines()),
                        }
                        for t in transforms.values()
                    ]
                )
            ),
            file=out,
        )
        print("\nRuns", file=out)
        print(
            _table(
                pd.DataFrame(
                    [
                        {
                            "run": r.id,
                            "notebook": r.transform.key,
                            "version": r.transform.version,
                            "user": r.created_by.handle,
                            "status": r.status,
                            "started (UTC)": _when(r.started_at),
                            "finished (UTC)": _when(r.finished_at),
                            "errored cells": ",".join(map(str, r.errored_cells or [])) or "-",
                        }
                        for r in reversed(runs)
                    ]
                )
            ),
            file=out,
        )
        rows = []
        for run in reversed(runs):
            for event in run.records_df().to_dict("records"):
                changes: dict[str, Any] = (
                    event["changes"] if isinstance(event["changes"], dict) else {}
                )
                cell = event["cell"]
                rows.append(
                    {
                        "record": f"{event['table']} {event['pk']}",
                        "action": event["action"],
                        "who": event["user_handle"],
                        "when (UTC)": f"{event['at']:%H:%M:%S.%f}"[:-3],
                        "cell": f"[{int(cell)}]"
                        if isinstance(cell, (int, float)) and cell == cell
                        else "-",
                        "run": event["run_id"],
                        "fields": ", ".join(sorted(changes)),
                    }
                )
        print("\nRecords: who wrote what, when, in which cell", file=out)
        print(_table(pd.DataFrame(rows)), file=out)
        read_by = {run.id: run.inputs_df() for run in runs}
        inputs = [
            {
                "run": run.id,
                "record read": f"{row['table']} {row['pk']}",
                "read (UTC)": f"{row['at']:%H:%M:%S.%f}"[:-3],
                "version read": row["read_version"],
                "current version": row["current_version"],
                "changed since": "yes" if row["changed_since"] else "no",
            }
            for run in reversed(runs)
            for row in read_by[run.id].to_dict("records")
        ]
        print("\nInputs: records each run read, at which version (event id)", file=out)
        print(_table(pd.DataFrame(inputs)), file=out)
        print("\nStale: records whose run read an input that has changed since", file=out)
        print(_table(ln.stale()), file=out)
        readers = [r for r in runs if len(read_by[r.id])]
        readers.sort(key=lambda r: (r.transform.type == "notebook", r.id), reverse=True)
        if readers:
            reader = readers[0]  # the newest notebook run that read records
            now = dt.datetime.now(dt.timezone.utc)
            print(f"\nWhat changed between what run {reader.id} read and now (ln.diff)", file=out)
            print(_table(ln.diff(reader, now)), file=out)
        return len(rows)
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code (0 on success)."""
    args = _parser().parse_args(argv)
    try:
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as error:
        print(f"demo: {error.name} is missing; pip install 'lineage_nb[jupyter]'", file=sys.stderr)
        return 2
    notebook: Path = args.notebook
    if not notebook.is_file():
        print(
            f"demo: notebook {notebook} not found (it ships in the source tree under "
            "notebooks/; pass --notebook PATH)",
            file=sys.stderr,
        )
        return 2
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="lineage_nb-demo-"))
    database = workdir / "lineage.db"
    if args.database:
        url = str(args.database)
    else:
        if database.exists():
            database.unlink()
        url = f"sqlite:///{database}"
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    print(f"demo: executing {notebook.name} headless in {workdir} against {shown}", flush=True)
    started = time.perf_counter()
    try:
        executed = execute_notebook(notebook, workdir, url, timeout=args.timeout)
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        print(f"demo: the notebook failed: {first}", file=sys.stderr)
        return 1
    print(f"demo: executed in {time.perf_counter() - started:.1f}s -> {executed}\n", flush=True)
    count = print_lineage(url)
    print(f"\ndemo: {count} record event(s) recorded in {database if not args.database else shown}")
    return 0 if count else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
