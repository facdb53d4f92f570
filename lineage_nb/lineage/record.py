"""Lineage methods of user records: history, lineage, time travel and staleness."""

from __future__ import annotations

from collections.abc import Callable
from types import MethodType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import select

from ..orm.query import Query
from . import graph, history, reads

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

    from .schema import RecordEvent
    from .verify import Proof

__all__ = ["TrackedRecord"]

R = TypeVar("R")


class _ClassOrRecord(Generic[R]):
    """A method that is one thing on the class and another on a record (``as_of``)."""

    def __init__(self, on_class: Callable[..., Any], on_record: Callable[..., Any]) -> None:
        self.on_class, self.on_record = on_class, on_record
        self.__doc__ = on_class.__doc__

    def __get__(self, record: Any, owner: type) -> Callable[..., Any]:
        if record is None:
            return MethodType(self.on_class, owner)
        return MethodType(self.on_record, record)


def _class_as_of(cls: type, when: Any) -> Query[Any]:
    """``Model.as_of(when)``: a :class:`Query` of the table as it stood at ``when``;
    ``record.as_of(when)``: that record then (None if it did not exist), a detached copy.

    ``when`` is a ``datetime`` (the committed state at that instant; a naive datetime is taken
    as UTC) or a ``Run`` (the table as that run saw it: the records it read at the versions it
    read, the others as they stood when it started). Deleted records come back as they were.
    Before the first event it is the table as it is without any recorded change undone: empty
    when every row was written through lineage_nb. Filters, ordering and every terminal method
    (``all``, ``first``, ``one``, ``count``, ``df``) work; the records are copies, not live.

    Raises:
        ValidationError: ``when`` is neither a datetime nor a Run of this database.
    """
    source = history.as_of_query(cls, when)
    statement = select(source).execution_options(**{reads.NOT_A_READ: None})
    return Query(cls, statement, source=source)


def _record_as_of(record: Any, when: Any) -> Any:
    return history.record_as_of(record, when)


class TrackedRecord:
    """Mixin of ``ln.Model``: ask a record where it came from."""

    def history(self) -> list[RecordEvent]:
        """Every insert/update/delete event of this record, oldest first."""
        return graph.history(self)

    def history_df(self) -> pd.DataFrame:
        """:meth:`history` as a DataFrame, with transform key/version and user handle."""
        return graph.history_df(self)

    def lineage(self, depth: int = 3, *, group_above: int | None = graph.GROUP_ABOVE) -> nx.DiGraph:
        """A networkx graph: this record ← runs that wrote it ← transforms, users, inputs, ...

        More than ``group_above`` records of one table read by one run are one node carrying
        their ``count`` (None: one node per record)."""
        return graph.record_lineage(self, depth, group_above=group_above)

    as_of: _ClassOrRecord[Any] = _ClassOrRecord(_class_as_of, _record_as_of)

    def code(self) -> str | None:
        """The source of the notebook cell (or the script) that last wrote this record: the
        exact code that ran; None when written outside a run or not recorded."""
        from .cells import code_of

        return code_of(self)

    def is_stale(self) -> bool:
        """Whether the run that last wrote this record read an input that has changed (by
        another run) or been deleted since it read it."""
        return history.is_stale(self)

    def proof(self, event_id: int | None = None) -> Proof:
        """That this record's newest event (or its event ``event_id``) is in the sealed log: the
        event's content, the Merkle audit path to its seal's root and the seal's hash; check it
        with ``.verify()`` or ``lineage_nb.lineage.verify.check_proof`` (no database needed).
        Seals the log first when the event is not sealed yet.

        Raises:
            NotFound: the record has no events, or the event is in a seal from before Merkle
                seals (it has no inclusion proof; ``ln.verify()`` still checks it).
            ValidationError: ``event_id`` is not an event of this record.
            OperationalError: the event is not sealed and the log cannot be sealed now.
        """
        from .verify import record_proof

        return record_proof(self, event_id)

    def stale_inputs(self) -> pd.DataFrame:
        """The inputs that make this record stale: table, pk, read_version, current_version and
        what changed."""
        return history.stale_inputs(self)
