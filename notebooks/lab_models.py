"""The quickstart's models, shared by the notebook and the lab's scripts (``ingest.py``,
``correct.py``): plain SQLAlchemy 2 classes with ``ln.Model`` as the base."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

import lineage_nb as ln


class Project(ln.Model, ln.TracksRun):
    __tablename__ = "project"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    samples: Mapped[list[Sample]] = relationship(back_populates="project")


class Sample(ln.Model, ln.TracksRun, ln.TracksUpdates):
    """A raw measurement, written by the ingest script."""

    __tablename__ = "sample"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float]
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    project: Mapped[Project] = relationship(back_populates="samples")


class Summary(ln.Model, ln.TracksRun):
    """A derived result, computed in the analysis notebook from the samples it read."""

    __tablename__ = "summary"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    project: Mapped[Project] = relationship()
    n: Mapped[int]
    mean: Mapped[float]
