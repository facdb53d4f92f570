"""Models shared by the tests: Project 1—N Sample 1—N Measurement, and a Specimen of every type."""

from __future__ import annotations

import datetime as dt
import decimal
import enum

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

import lineage_nb as ln


class Project(ln.Model, ln.TracksRun):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    samples: Mapped[list[Sample]] = relationship(back_populates="project")


class Sample(ln.Model, ln.TracksRun, ln.TracksUpdates):
    __tablename__ = "sample"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None]
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    project: Mapped[Project] = relationship(back_populates="samples")
    measurements: Mapped[list[Measurement]] = relationship(back_populates="sample")


class Measurement(ln.Model, ln.TracksRun):
    __tablename__ = "measurement"
    __table_args__ = (CheckConstraint("reading >= 0", name="ck_measurement_reading"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reading: Mapped[float]
    sample_id: Mapped[int] = mapped_column(ForeignKey("sample.id"))
    sample: Mapped[Sample] = relationship(back_populates="measurements")


class Color(enum.Enum):
    red = "red"
    green = "green"


class Specimen(ln.Model):
    """Untracked by TracksRun (events still written): one column of each common type."""

    __tablename__ = "specimen"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(50))
    notes: Mapped[str | None] = mapped_column(Text)
    count: Mapped[int | None]
    ratio: Mapped[float | None]
    flag: Mapped[bool | None]
    color: Mapped[Color | None] = mapped_column(Enum(Color))
    taken_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=False))
    day: Mapped[dt.date | None] = mapped_column(Date)
    amount: Mapped[decimal.Decimal | None] = mapped_column(Numeric(12, 4))
    extra: Mapped[dict[str, object] | None] = mapped_column(JSON)
