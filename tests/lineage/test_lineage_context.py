"""The current run reaches threads, asyncio tasks and callbacks (ContextVar + process fallback)."""

from __future__ import annotations

import asyncio
import threading

from models import Project

import lineage_nb as ln


def test_thread_writes_are_stamped(db: ln.Database, run: ln.Run) -> None:
    """A plain threading.Thread (no inherited context) still stamps the process run."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            assert ln.context.current_run.get() is None  # a new thread starts with an empty context
            Project(name="from thread").save()
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert not errors
    assert Project.filter(name="from thread").one().run_id == run.id


async def test_asyncio_task_writes_are_stamped(db: ln.Database, run: ln.Run) -> None:
    """Tasks inherit the ContextVar; async writes carry the run."""

    async def work(name: str) -> int | None:
        project = await Project(name=name).asave()
        return project.run_id

    results = await asyncio.gather(*(asyncio.create_task(work(f"t{i}")) for i in range(3)))
    assert results == [run.id] * 3


def test_callback_writes_are_stamped(db: ln.Database, run: ln.Run) -> None:
    """A callback run later from another thread (threading.Timer) is stamped."""
    done = threading.Event()
    timer = threading.Timer(0.01, lambda: (Project(name="callback").save(), done.set()))
    timer.start()
    assert done.wait(10)
    assert Project.filter(name="callback").one().run_id == run.id


def test_finish_unbinds_and_writes_have_no_run(db: ln.Database, run: ln.Run) -> None:
    """After finish(), the run is closed and new writes carry run=None."""
    finished = ln.finish()
    assert finished is run and run.status == "completed" and run.finished_at is not None
    assert ln.context.get_run() is None
    assert Project(name="after").save().run_id is None
