"""Models shared by the tests: Project 1—N Sample 1—N Measurement, and a Specimen of every type."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    Interval,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    Time,
    Uuid,
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


class Document(ln.Model):
    """A record with a deferred column (not loaded until read)."""

    __tablename__ = "document"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    body: Mapped[str | None] = mapped_column(Text, deferred=True)


class Level(enum.Enum):
    """Member names differ from their values: SQLAlchemy's Enum stores the names."""

    low = "L"
    high = "H"


class EveryType(ln.Model):
    """One nullable column of each SQLAlchemy column type (tests/integration/test_column_roundtrip.py)."""

    __tablename__ = "every_type"

    id: Mapped[int] = mapped_column(primary_key=True)
    short_text: Mapped[str | None] = mapped_column(String(20))
    long_text: Mapped[str | None] = mapped_column(Text)
    small_int: Mapped[int | None] = mapped_column(SmallInteger)
    int32: Mapped[int | None] = mapped_column(Integer)
    big_int: Mapped[int | None] = mapped_column(BigInteger)
    double: Mapped[float | None] = mapped_column(Float)
    amount: Mapped[decimal.Decimal | None] = mapped_column(Numeric(12, 4))
    flag: Mapped[bool | None] = mapped_column(Boolean)
    day: Mapped[dt.date | None] = mapped_column(Date)
    naive_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=False))
    aware_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    naive_time: Mapped[dt.time | None] = mapped_column(Time(timezone=False))
    aware_time: Mapped[dt.time | None] = mapped_column(Time(timezone=True))
    duration: Mapped[dt.timedelta | None] = mapped_column(Interval)
    doc: Mapped[object | None] = mapped_column(JSON)
    blob: Mapped[bytes | None] = mapped_column(LargeBinary)
    level: Mapped[Level | None] = mapped_column(Enum(Level))
    uid: Mapped[uuid.UUID | None] = mapped_column(Uuid)
