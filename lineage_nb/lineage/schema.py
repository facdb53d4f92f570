"""lineage_nb's own tables: User, Transform, Run, RecordEvent and RunInput.

They live in their own ``MetaData`` (managed by the Alembic migrations in
``lineage_nb/migrations``), in the same database as the user's tables, and are written in the
same transaction as the data they describe.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ..orm.model import ActiveRecord
from .framed import BuildsFrames
from .types import BigIntegerPK, UTCDateTime, utcnow

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

__all__ = [
    "CELL_STATUSES",
    "RUN_STATUSES",
    "Cell",
    "CellSource",
    "LineageModel",
    "RecordEvent",
    "Run",
    "RunInput",
    "Seal",
    "Transform",
    "User",
]

RUN_STATUSES = ("started", "completed", "errored", "aborted")
CELL_STATUSES = ("ok", "error", "interrupted")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class LineageModel(BuildsFrames, ActiveRecord, DeclarativeBase):
    """Base of lineage_nb's own tables; their writes are not themselves tracked."""

    __lineage_internal__: ClassVar[bool] = True
    metadata = MetaData(naming_convention=NAMING)


class User(LineageModel):
    """A person (or service account) who runs notebooks and scripts."""

    __tablename__ = "lineage_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handle: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def _repr_html_(self) -> str:
        from .cards import user_html

        return user_html(self)


class Transform(LineageModel):
    """A notebook or script at one version: key (path), source hash and source code."""

    __tablename__ = "lineage_transform"
    __table_args__ = (UniqueConstraint("key", "source_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(1000), index=True)
    version: Mapped[str] = mapped_column(String(50))
    type: Mapped[str] = mapped_column(String(20), default="script")
    source_hash: Mapped[str] = mapped_column(String(64))
    source_code: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("lineage_user.id"))
    #: The id kept in a notebook's metadata (``metadata["lineage_nb"]["id"]``): a renamed
    #: notebook keeps its transforms. None for scripts, jobs and notebooks that had none.
    notebook_id: Mapped[str | None] = mapped_column(String(64), index=True)

    @property
    def label(self) -> str:
        """``key vN``, e.g. ``analysis.ipynb v3``."""
        return f"{self.key} v{self.version}"

    def _repr_html_(self) -> str:
        from .cards import transform_html

        return transform_html(self)


class Run(LineageModel):
    """One execution of a transform by a user: when, where, with what, and how it ended."""

    __tablename__ = "lineage_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    transform_id: Mapped[int] = mapped_column(ForeignKey("lineage_transform.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="started", index=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("lineage_user.id"), index=True)
    python_version: Mapped[str | None] = mapped_column(String(100))
    environment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    errored_cells: Mapped[list[int] | None] = mapped_column(JSON)
    #: The hash of the run's newest record event (see :mod:`lineage_nb.lineage.chain`).
    chain_head: Mapped[str | None] = mapped_column(String(64))
    #: How many events the run wrote, counted when it finished (None while it runs), so listing
    #: runs does not count events.
    event_count: Mapped[int | None] = mapped_column(BigIntegerPK)
    #: When the run's process started, as the OS tells it (Linux: boot id and start tick), so a
    #: later process that got the same pid is not taken for it. None where unknown.
    process_start: Mapped[str | None] = mapped_column(String(64))
    #: How often (seconds) the run's process updates ``last_seen_at`` while it lives; None: it
    #: does not (runs of older versions), so it is never judged by its heartbeat.
    heartbeat_seconds: Mapped[int | None] = mapped_column(Integer)
    #: Where the notebook was (relative to its project root) when this run ran; None for others.
    source_path: Mapped[str | None] = mapped_column(String(1000))

    transform: Mapped[Transform] = relationship(lazy="joined", innerjoin=True)
    created_by: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    @property
    def label(self) -> str:
        """``run 12``."""
        return f"run {self.id}"

    def records_df(self) -> pd.DataFrame:
        """Every record event this run wrote, as a DataFrame (one query)."""
        from .graph import run_records_df

        return run_records_df(self)

    def cells_df(self) -> pd.DataFrame:
        """Every notebook cell this run executed: execution_count, source, started_at,
        finished_at, status (ok, error, interrupted), oldest first."""
        from .cells import cells_frame

        return cells_frame(self)

    def inputs_df(self) -> pd.DataFrame:
        """Every record this run read (its inputs): table, pk, when read, ``read_version`` (the
        event that produced the version read), ``current_version`` and ``changed_since``
        (changed or deleted by another run since)."""
        from .graph import run_inputs_df

        return run_inputs_df(self)

    def lineage(self, depth: int = 3, *, group_above: int | None = 25) -> nx.DiGraph:
        """The run's lineage graph: transform, user, inputs (and their runs), outputs. More than
        ``group_above`` records of one table it read are one node (None: one per record)."""
        from .graph import run_lineage

        return run_lineage(self, depth, group_above=group_above)

    def view_lineage(
        self, depth: int = 3, *, max_nodes: int = 60, group_above: int | None = 12
    ) -> Any:
        """A picture of :meth:`lineage` (``_repr_svg_``; ``.save(path)``): at most ``max_nodes``
        nodes; more than ``group_above`` records of one table alike are one node."""
        from ..render.picture import LineagePicture
        from .labels import readable

        return LineagePicture(
            self.lineage(depth, group_above=group_above),
            title=f"Lineage of {self.label}",
            max_nodes=max_nodes,
            group_above=group_above,
            relabel=readable,
        )

    def _repr_html_(self) -> str:
        from .cards import run_html

        return run_html(self)


class RecordEvent(LineageModel):
    """One insert, update or delete of a tracked record, written by the database's triggers in
    the same transaction (see :mod:`lineage_nb.lineage.capture`).

    ``changes`` is None for an insert (the row holds the values), ``{field: [old, new]}`` of the
    changed fields for an update, and the full old row as ``{field: [old, None]}`` for a delete.
    ``pk`` is the key's text (a JSON array for composite keys). ``hash``/``prev_hash`` are set
    only on events from before schema revision 0002 (a per-run chain); newer events are covered by seals.
    """

    __tablename__ = "lineage_record_event"
    __table_args__ = (
        Index("ix_lineage_record_event_record", "table", "pk", "id"),
        Index("ix_lineage_record_event_run_id", "run_id", "id"),  # a run's events, newest last
    )

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("lineage_run.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("lineage_user.id"))
    table: Mapped[str] = mapped_column(String(255))
    pk: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(10))
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cell: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    hash: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str | None] = mapped_column(String(64))

    run: Mapped[Run | None] = relationship(lazy="raise")
    user: Mapped[User] = relationship(lazy="raise")


class Seal(LineageModel):
    """A seal over the events after the previous seal, up to ``last_event_id``: their count and
    a hash chained to the previous seal's (see :mod:`lineage_nb.lineage.verify`).

    ``format`` 2: ``root`` is the Merkle tree hash of the events, so one event's inclusion has a
    short proof; 1: seals written before revision 0009, one running hash and no root.
    ``unchained``: how many of its events lineage_nb wrote before schema revision 0002 with no hash chain
    (sealed only at an upgrade), reported by ``verify`` rather than counted as protected.
    """

    __tablename__ = "lineage_seal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prev_id: Mapped[int] = mapped_column(Integer, unique=True)
    last_event_id: Mapped[int] = mapped_column(BigIntegerPK)
    count: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    format: Mapped[int] = mapped_column(Integer, default=2, server_default="1")
    root: Mapped[str | None] = mapped_column(String(64))
    unchained: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class RunInput(LineageModel):
    """One read of one table by a run: the records read and which events the read could see.

    Reads with nothing written between them share a row. ``pk`` is the key's text when one record
    was read, ``keys`` the packed key set when several were (:mod:`lineage_nb.lineage._keyset`),
    ``count`` how many. ``watermark`` is the newest event id committed when the read began (with
    ``snapshot``, on PostgreSQL, the transactions then in progress, whose events it did not see):
    the version a record was read at is its newest event the read could see. Rows from before schema
    revision 0006 have no watermark; their version is the record's newest event at or before ``at``.
    """

    __tablename__ = "lineage_run_input"
    __table_args__ = (
        Index("ix_lineage_run_input_record", "table", "pk"),
        Index("ix_lineage_run_input_run_id", "run_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("lineage_run.id"))
    table: Mapped[str] = mapped_column(String(255))
    pk: Mapped[str | None] = mapped_column(Text)
    keys: Mapped[bytes | None] = mapped_column(LargeBinary)
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    watermark: Mapped[int | None] = mapped_column(BigIntegerPK)
    snapshot: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CellSource(LineageModel):
    """The text of an executed cell, stored once per distinct text (keyed by its SHA-256)."""

    __tablename__ = "lineage_cell_source"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class Cell(LineageModel):
    """One executed notebook cell of a run: the exact source that ran, when, and how it ended.

    A record event's ``cell`` is the execution count of the cell that wrote it.
    """

    __tablename__ = "lineage_cell"
    __table_args__ = (UniqueConstraint("run_id", "execution_count"),)

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("lineage_run.id"))
    execution_count: Mapped[int] = mapped_column(Integer)
    source_hash: Mapped[str] = mapped_column(ForeignKey("lineage_cell_source.hash"))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20))
