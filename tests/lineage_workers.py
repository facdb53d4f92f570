"""Child processes for the concurrency and fault tests: ``python lineage_workers.py CMD URL ...``.

``saves URL WORKER COUNT PROJECT_ID``: open a run, save COUNT samples, print the run as JSON.
``bulk URL COUNT PROJECT_ID``: open a run, print it, bulk_create COUNT samples and stop after the
third INSERT batch (printing ``mid``) so the parent can kill the process inside the transaction.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from models import Sample
from sqlalchemy import event

import lineage_nb as ln


def _say(payload: object) -> None:
    print(json.dumps(payload), flush=True)


def saves(url: str, worker: int, count: int, project_id: int) -> None:
    """Open a run and save ``count`` samples one by one, each its own transaction."""
    ln.connect(url, create=False)
    run = ln.track(__file__)
    for index in range(count):
        Sample(name=f"w{worker}-{index}", value=float(index), project_id=project_id).save()
    ln.finish()
    _say({"run_id": run.id, "pid": os.getpid(), "worker": worker})


def bulk(url: str, count: int, project_id: int) -> None:
    """Open a run and bulk_create ``count`` samples, stalling after the third INSERT batch."""
    db = ln.connect(url, create=False)
    run = ln.track(__file__)
    _say({"run_id": run.id, "pid": os.getpid()})
    batches = 0

    @event.listens_for(db.engine, "after_cursor_execute")
    def _stall(conn: object, cursor: object, statement: str, *args: object) -> None:
        nonlocal batches
        if statement.lstrip().upper().startswith("INSERT INTO SAMPLE"):
            batches += 1
            if batches == 3:
                _say("mid")
                time.sleep(600)  # the parent sends SIGKILL now

    Sample.bulk_create(
        [{"name": f"bulk-{i}", "value": float(i), "project_id": project_id} for i in range(count)]
    )
    _say("committed")  # pragma: no cover - never reached when killed


if __name__ == "__main__":
    command, url, *rest = sys.argv[1:]
    if command == "saves":
        saves(url, int(rest[0]), int(rest[1]), int(rest[2]))
    elif command == "bulk":
        bulk(url, int(rest[0]), int(rest[1]))
    else:
        raise SystemExit(f"unknown command {command!r}")
