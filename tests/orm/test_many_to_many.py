"""Many-to-many relations: links are written by save() and save_related(), and recorded."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

import lineage_nb as ln

hq_nick = Table(
    "m2m_hq_nick",
    ln.Model.metadata,
    Column("hq_id", ForeignKey("m2m_hq.id"), primary_key=True),
    Column("nick_id", ForeignKey("m2m_nick.id"), primary_key=True),
)


class Nick(ln.Model):
    __tablename__ = "m2m_nick"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class HQ(ln.Model):
    __tablename__ = "m2m_hq"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    nicks: Mapped[list[Nick]] = relationship(secondary=hq_nick)


def _links(db: ln.Database) -> list[tuple[int, int]]:
    with db.engine.connect() as connection:
        return sorted(tuple(r) for r in connection.execute(hq_nick.select()).all())


def _link_events() -> list[str]:
    return [e.action for e in ln.RecordEvent.filter(table="m2m_hq_nick").order_by("id").all()]


def test_save_writes_and_removes_links(db: ln.Database) -> None:
    """hq.nicks = [n]; hq.save() writes the link row (one insert event); emptying the list and
    saving removes it (one delete event)."""
    db.create_all()
    nick = Nick(name="n").save()
    hq = HQ(name="h").save()
    hq.nicks = [nick]
    hq.save()
    assert _links(db) == [(hq.id, nick.id)]
    assert [n.name for n in HQ.get(hq.id).load_all().nicks] == ["n"]
    hq.nicks = []
    hq.save()
    assert _links(db) == []
    assert _link_events() == ["insert", "delete"]


def test_append_and_save_related_writes_links(db: ln.Database) -> None:
    """Appending a new and a stored record and calling save_related() inserts the new one and
    writes both links; the count says so."""
    db.create_all()
    stored = Nick(name="stored").save()
    hq = HQ(name="h").save().load_all()
    hq.nicks.append(stored)
    hq.nicks.append(Nick(name="new"))
    assert hq.save_related() >= 2
    assert len(_links(db)) == 2
    assert sorted(n.name for n in HQ.get(hq.id).load_all().nicks) == ["new", "stored"]
