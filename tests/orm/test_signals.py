"""Signals: pre/post save, update, delete per model class; a raising receiver aborts the write."""

from __future__ import annotations

from typing import Any

import pytest
from models import Project, Sample

import lineage_nb as ln
from lineage_nb import signals


def test_save_signals_per_model(db: ln.Database) -> None:
    """pre_save/post_save reach receivers connected for that model only."""
    calls: list[tuple[str, str, Any]] = []

    def on_pre(sender: type, instance: Any, **kwargs: Any) -> None:
        calls.append(("pre", sender.__name__, instance.name))

    def on_post(sender: type, instance: Any, **kwargs: Any) -> None:
        calls.append(("post", sender.__name__, kwargs["created"]))

    signals.pre_save.connect(on_pre, sender=Project)
    signals.post_save.connect(on_post, sender=Project)
    try:
        project = Project(name="p").save()
        Sample(name="not listened", project=project).save()
        project.name = "p2"
        project.save()
    finally:
        signals.pre_save.disconnect(on_pre, sender=Project)
        signals.post_save.disconnect(on_post, sender=Project)
    assert calls == [
        ("pre", "Project", "p"),
        ("post", "Project", True),
        ("pre", "Project", "p2"),
        ("post", "Project", False),
    ]
    Project(name="after disconnect").save()
    assert len(calls) == 4


def test_update_and_delete_signals(db: ln.Database) -> None:
    """pre/post_update and pre/post_delete fire with the instance; connect_via works."""
    seen: list[str] = []

    @signals.pre_update.connect_via(Project)
    def pre_update(sender: type, instance: Any, **kwargs: Any) -> None:
        seen.append(f"pre_update {instance.name}")

    @signals.post_delete.connect_via(Project)
    def post_delete(sender: type, instance: Any, **kwargs: Any) -> None:
        seen.append(f"post_delete {instance.id}")

    try:
        project = Project(name="a").save()
        project.update(name="b")
        project.delete()
    finally:
        signals.pre_update.disconnect(pre_update, sender=Project)
        signals.post_delete.disconnect(post_delete, sender=Project)
    assert seen == ["pre_update b", f"post_delete {project.id}"]


@pytest.mark.parametrize("signal", ["pre_save", "post_save"])
def test_raising_receiver_aborts_write(db: ln.Database, signal: str) -> None:
    """A receiver that raises aborts the save: no row and no event are stored."""

    def veto(sender: type, instance: Any, **kwargs: Any) -> None:
        raise RuntimeError("vetoed")

    getattr(signals, signal).connect(veto, sender=Project)
    try:
        with pytest.raises(RuntimeError, match="vetoed"):
            Project(name="vetoed").save()
    finally:
        getattr(signals, signal).disconnect(veto, sender=Project)
    assert Project.objects().count() == 0
    assert ln.RecordEvent.filter(table="project").count() == 0


def test_raising_pre_delete_keeps_row(db: ln.Database) -> None:
    """A raising pre_delete receiver keeps the row."""
    project = Project(name="keep").save()

    def veto(sender: type, instance: Any, **kwargs: Any) -> None:
        raise PermissionError("no deleting")

    signals.pre_delete.connect(veto, sender=Project)
    try:
        with pytest.raises(PermissionError):
            project.delete()
    finally:
        signals.pre_delete.disconnect(veto, sender=Project)
    assert Project.get(project.id).name == "keep"


def test_bad_receivers_are_refused_at_connect() -> None:
    """A receiver without **kwargs or a non-callable is refused when connected, naming it."""

    def no_kwargs(sender: type, instance: Any) -> None:
        pass

    with pytest.raises(ln.errors.UsageError, match=r"no_kwargs .*\*\*kwargs"):
        signals.pre_save.connect(no_kwargs, sender=Project)
    with pytest.raises(ln.errors.UsageError, match="not callable"):
        signals.post_save.connect("not a function", sender=Project)  # type: ignore[arg-type]
    with pytest.raises(ln.errors.UsageError):

        @signals.pre_delete.connect_via(Project)
        def decorated(sender: type) -> None:
            pass


def test_lambda_receiver_is_kept_alive(db: ln.Database) -> None:
    """A lambda connected for a model keeps receiving after the code that made it is gone."""
    import gc

    calls: list[str] = []

    def connect() -> Any:
        receiver = lambda sender, **kwargs: calls.append(kwargs["instance"].name)  # noqa: E731
        signals.post_save.connect(receiver, sender=Project)
        return id(receiver)

    connect()
    gc.collect()
    try:
        Project(name="still heard").save()
    finally:
        for receiver in list(signals.post_save.receivers_for(Project)):
            signals.post_save.disconnect(receiver, sender=Project)
    assert calls == ["still heard"]


def test_receiver_writes_join_the_write_that_sent_them(db: ln.Database) -> None:
    """A post_save receiver that saves another record (an audit log) writes in the same
    transaction: no second connection waiting on the lock, and it rolls back with the save."""
    from models import Specimen

    def audit(sender: type, instance: Any, **kwargs: Any) -> None:
        Specimen(label=f"saved {instance.name}").save()
        if instance.name == "refused":
            raise RuntimeError("receiver refuses")

    signals.post_save.connect(audit, sender=Project)
    try:
        Project(name="kept").save()
        with pytest.raises(RuntimeError):
            Project(name="refused").save()
    finally:
        signals.post_save.disconnect(audit, sender=Project)
    assert [p.name for p in Project.objects().all()] == ["kept"]
    assert [s.label for s in Specimen.objects().all()] == ["saved kept"]


async def test_async_receiver_writes_join_the_write(db: ln.Database) -> None:
    """The same through asave(): the receiver's sync save() joins the async write's transaction."""
    from models import Specimen

    def audit(sender: type, instance: Any, **kwargs: Any) -> None:
        Specimen(label=f"saved {instance.name}").save()

    signals.post_save.connect(audit, sender=Project)
    try:
        await Project(name="async").asave()
    finally:
        signals.post_save.disconnect(audit, sender=Project)
    assert [s.label for s in await Specimen.objects().aall()] == ["saved async"]
