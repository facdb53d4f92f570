"""Async twins run on a real async driver (aiosqlite, psycopg async) through one implementation."""

from __future__ import annotations

import pytest
from models import Project, Sample

import lineage_nb as ln
from lineage_nb.errors import NotFound


async def test_async_crud_round_trip(db: ln.Database, run: ln.Run) -> None:
    """asave/aupdate/aload/aload_all/adelete/aget behave like their sync twins, events included."""
    project = await Project(name="async").asave()
    sample = await Sample(name="s", value=1.0, project_id=project.id).asave()
    await sample.aupdate(value=2.0)
    assert (await Sample.aget(sample.id)).value == 2.0
    sample.value = 99.0
    await sample.aload()
    assert sample.value == 2.0
    await project.aload_all()
    assert [s.name for s in project.samples] == ["s"]
    await sample.adelete()
    with pytest.raises(NotFound):
        await Sample.aget(sample.id)
    actions = [e.action for e in ln.RecordEvent.filter(table="sample").order_by("id").all()]
    assert actions == ["insert", "update", "delete"]
    assert {e.run_id for e in ln.RecordEvent.objects().all()} == {run.id}


async def test_async_engine_uses_async_driver(db: ln.Database) -> None:
    """The async engine's driver is aiosqlite or psycopg's async connection."""
    driver = db.async_engine.dialect.driver
    assert driver in ("aiosqlite", "psycopg")
    assert db.async_engine.dialect.is_async


async def test_async_upsert_save_related_refresh(db: ln.Database) -> None:
    """aupsert, asave_related and arefresh_from_db."""
    project = await Project(name="u").aupsert()
    await project.aupsert(name="u2")
    await Sample(name="child", project=project).asave()
    await project.aload_all()
    project.samples[0].value = 5.0
    assert await project.asave_related() == 1
    await project.arefresh_from_db(fields=["name"])
    assert project.name == "u2"
    bulk = await Sample.abulk_create([{"name": "b", "project_id": project.id}])
    assert bulk[0]["id"] is not None


async def test_async_atomic_rolls_back(db: ln.Database) -> None:
    """async with ln.atomic(): an exception rolls back every write inside."""
    with pytest.raises(ZeroDivisionError):
        async with ln.atomic():
            await Project(name="in tx").asave()
            raise ZeroDivisionError("abort the transaction")
    assert await Project.objects().acount() == 0
    async with ln.atomic():
        await Project(name="a").asave()
        await Project(name="b").asave()
    assert await Project.objects().acount() == 2


async def test_sync_call_inside_async_atomic_is_refused(db: ln.Database) -> None:
    """Calling a sync method inside `async with ln.atomic()` says to use the a-twin."""
    async with ln.atomic():
        with pytest.raises(ln.errors.UsageError, match="a-prefixed"):
            Project(name="x").save()
