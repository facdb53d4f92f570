"""The same two tables, Project 1—N Sample, for each system (each system has its own tables).

``Sample``: name String(100), value float, project foreign key. lineage_nb's models also carry
the ``TracksRun`` columns (run_id, created_by_id, created_at): that is what lineage costs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

import lineage_nb as ln

# -- lineage_nb ----------------------------------------------------------------------------------


class Project(ln.Model, ln.TracksRun):
    __tablename__ = "bench_project"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    samples: Mapped[list[Sample]] = relationship(back_populates="project")


class Sample(ln.Model, ln.TracksRun):
    __tablename__ = "bench_sample"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float)
    project_id: Mapped[int] = mapped_column(ForeignKey("bench_project.id"), index=True)
    project: Mapped[Project] = relationship(back_populates="samples")


class Reading(ln.Model, ln.TracksRun):
    """The rows the run-input benchmarks read (``ops_inputs.py``): ``Sample``'s columns, in a
    table of their own so that ``Reading.df()`` reads exactly the rows put there."""

    __tablename__ = "bench_reading"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float)
    project_id: Mapped[int] = mapped_column(ForeignKey("bench_project.id"), index=True)
    project: Mapped[Project] = relationship()


# -- plain SQLAlchemy (ORM, Core, and the DBAPI baselines use these tables) ------------------------


class Base(DeclarativeBase):
    metadata = MetaData()


class SAProject(Base):
    __tablename__ = "sa_project"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    samples: Mapped[list[SASample]] = relationship(back_populates="project")


class SASample(Base):
    __tablename__ = "sa_sample"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float)
    project_id: Mapped[int] = mapped_column(ForeignKey("sa_project.id"), index=True)
    project: Mapped[SAProject] = relationship(back_populates="samples")


# -- ormar (optional: the [bench] extra) -----------------------------------------------------------


def ormar_models(async_url: str) -> tuple[Any, Any, Any, MetaData]:
    """``(database, OProject, OSample, metadata)`` for ormar >= 0.21 (``OrmarConfig``).

    Raises:
        ImportError: ormar is not installed (``pip install -e .[bench]``).
    """
    import ormar

    metadata = MetaData()
    database = ormar.DatabaseConnection(async_url)
    base = ormar.OrmarConfig(metadata=metadata, database=database)

    class OProject(ormar.Model):
        ormar_config = base.copy(tablename="ormar_project")

        id: int = ormar.Integer(primary_key=True)
        name: str = ormar.String(max_length=100)

    class OSample(ormar.Model):
        ormar_config = base.copy(tablename="ormar_sample")

        id: int = ormar.Integer(primary_key=True)
        name: str = ormar.String(max_length=100)
        value: float | None = ormar.Float(nullable=True)
        project: OProject | None = ormar.ForeignKey(OProject, related_name="samples", index=True)

    return database, OProject, OSample, metadata
