"""Tamper evidence: seals over the event log, inclusion proofs, checked by ``lineage-nb verify``.

Events are written by database triggers, so hashing happens in bulk, not per row: :func:`seal`
covers every event written since the last seal (in id order) and stores a
:class:`~lineage_nb.lineage.schema.Seal`. A seal's ``root`` is the RFC 9162 Merkle tree hash of
its events (leaf ``SHA-256(0x00 || content)``, node ``SHA-256(0x01 || left || right)``, where an
event's content is its canonical JSON text, computed by the database: see :func:`contents_sql`)
and its ``hash`` chains it to the previous seal (:func:`seal_hash` of the previous hash, the
root, the count and the last event id). ``finish()`` seals. :func:`verify` recomputes every seal
from the events: an edited, deleted, inserted or reordered event in a sealed range breaks the
seal that covers it. Because each seal is a Merkle root, one event's inclusion is shown by a
proof of O(log n) hashes (``record.proof()``, :func:`prove`), which :func:`check_proof` checks
without the database.

Seals written before schema revision 0009 (``format`` 1) hash their events into one running
SHA-256 of a JSON rendering made in Python; they are still checked that way, and have no
inclusion proofs. Events from before schema revision 0002 also carry a per-run hash chain
(``hash``/``prev_hash``); those chains are still checked as they were written.

What :func:`verify` does not report as broken (see :func:`status`): events written since the last
seal (not sealed yet), events written by lineage_nb before schema revision 0002 with no hash chain that
were sealed only when the database was upgraded (*unchained*: nothing shows what happened to them
before), and events written outside a run (raw SQL or another program while no run was open: the
triggers record them with no run; they are part of the log like any other).

Seals live in the same database as the events, so someone able to rewrite both could recompute
every seal. :func:`anchor` gives the current head of the log (seal id, events covered, hash, time)
to keep *outside* the database (a file, a git commit, a message); ``verify(anchor=head)`` then
proves the log still extends that head unchanged: the seal chain recomputed from the events must
reach the anchored hash at the anchored seal, so an edit, insertion, deletion or reordering of
events up to the anchor is caught even after every seal was recomputed.

Examples:
    >>> import lineage_nb as ln
    >>> from lineage_nb.lineage.verify import verify
    >>> verify(ln.connect("sqlite://"))
    []
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ..db import Database, get_database
from ..errors import NotFound, OperationalError, ValidationError
from .schema import RecordEvent, Run, Seal
from .types import utcnow

__all__ = [
    "FORMAT_MERKLE",
    "FORMAT_RUNNING",
    "BrokenLink",
    "LogStatus",
    "Proof",
    "anchor",
    "check_proof",
    "contents_sql",
    "describe",
    "event_hash",
    "log_head",
    "merkle_root",
    "prove",
    "seal",
    "seal_at_upgrade",
    "seal_hash",
    "status",
    "unsealed_count",
    "verify",
]

_EVENTS: Table = RecordEvent.__table__  # type: ignore[assignment]
_SEALS: Table = Seal.__table__  # type: ignore[assignment]
_BATCH = 5_000
_STREAM = 1 << 15  # events fetched per round trip when hashing
_SUBTREE = 1 << 15  # leaves hashed into one perfect subtree before only its root is kept
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
_sha256 = hashlib.sha256

#: A seal hashed as one running SHA-256 over Python-rendered events (before revision 0009).
FORMAT_RUNNING = 1
#: A seal whose ``root`` is the Merkle tree hash of its events, chained by :func:`seal_hash`.
FORMAT_MERKLE = 2
#: The version before which events carry neither a hash chain nor a seal of their time.
UNCHAINED_BEFORE = "0002"


@dataclass(frozen=True)
class BrokenLink:
    """A place where the log does not hold.

    Attributes:
        table: the table of the record the event is about ("" for a seal).
        pk: that record's key text ("" for a seal).
        run_id: the run whose old chain is broken (None for a seal).
        event_id: the offending event (None: a whole range or run).
        message: what is wrong.
    """

    table: str
    pk: str
    run_id: int | None
    event_id: int | None
    message: str

    def __str__(self) -> str:
        where = f"run {self.run_id}" if self.run_id is not None else "log"
        if self.event_id is None:
            return f"{where}: {self.message}"
        return f"{where}: event {self.event_id} ({self.table} pk={self.pk}): {self.message}"


# -- format 1: one running hash over events rendered in Python (seals before revision 0009) ------


def _timestamp(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
    return str(value)


def _content(row: Any) -> bytes:
    """The canonical bytes of one event as a format-1 seal hashed it (every column but the old
    chain's)."""
    return _encode(
        [
            row.id,
            row.run_id,
            row.user_id,
            row.table,
            row.pk,
            row.action,
            row.changes,
            row.cell,
            _timestamp(row.at),
        ]
    ).encode("utf-8", "surrogatepass")


def _chain_hash(prev_hash: str | None, tail: str) -> str:
    text_ = "[" + _encode(prev_hash) + tail
    return hashlib.sha256(text_.encode("utf-8", "surrogatepass")).hexdigest()


def event_hash(row: dict[str, Any], prev_hash: str | None) -> str:
    """The per-run chain hash of an event written before schema revision 0002 (as it was computed then)."""
    content = [
        row.get("run_id"),
        row.get("user_id"),
        row.get("table"),
        row.get("pk"),
        row.get("action"),
        row.get("changes"),
        row.get("cell"),
        _timestamp(row.get("at")),
    ]
    return _chain_hash(prev_hash, "," + _encode(content)[1:])


def _events(connection: Connection, after: int, upto: int | None = None) -> Iterator[Any]:
    statement = select(_EVENTS).where(_EVENTS.c.id > after).order_by(_EVENTS.c.id)
    if upto is not None:
        statement = statement.where(_EVENTS.c.id <= upto)
    yield from connection.execute(statement, execution_options={"yield_per": _BATCH})


def _digest(previous: str, rows: Iterable[Any]) -> tuple[str, int, int]:
    """``(hash, count, last id)`` of ``rows`` chained to ``previous`` (format 1)."""
    running = hashlib.sha256(previous.encode())
    count, last = 0, 0
    for row in rows:
        running.update(_content(row))
        running.update(b"\n")
        count, last = count + 1, row.id
    return running.hexdigest(), count, last


# -- format 2: Merkle roots over canonical event text made by the database -------------------


def contents_sql(dialect: str) -> str:
    """``SELECT content`` of the events in ``(:after, :upto]`` in id order, as DBAPI SQL.

    The content is a JSON array of every column but the old chain's, starting with the id,
    rendered by the database from the stored values (Python only hashes it): the JSON of
    ``changes`` as stored (SQLite: as a JSON string of its text), the time as stored on SQLite
    and as UTC on PostgreSQL (not the session's time zone). It is the preimage of the event's
    Merkle leaf, so a stored value changed in any way changes the leaf.
    Parameters use the driver's named style (``:name`` for sqlite3, ``%(name)s`` for psycopg).
    """
    if dialect == "postgresql":
        return (
            'SELECT pg_catalog.json_build_array(e.id, e.run_id, e.user_id, e."table", '
            "e.pk, e.action, e.changes, e.cell, e.at AT TIME ZONE 'UTC')::text "
            "FROM lineage_record_event AS e WHERE e.id > %(after)s AND e.id <= %(upto)s "
            "ORDER BY e.id"
        )
    return (
        'SELECT json_array(e.id, e.run_id, e.user_id, e."table", e.pk, e.action, '
        "e.changes, e.cell, e.at) FROM lineage_record_event AS e "
        "WHERE e.id > :after AND e.id <= :upto ORDER BY e.id"
    )


_NO_END = 2**63 - 1


def _event_id(content: str) -> int:
    """The event id a content starts with (``[id, ...``)."""
    return int(content[1 : content.index(",")])


def _contents(connection: Connection, after: int, upto: int | None = None) -> Iterator[list[str]]:
    """Batches of the contents of the events in ``(after, upto]``, in id order.

    Read with the driver's cursor (a server-side one on PostgreSQL), so a million events are
    streamed in bounded memory without a result object per row.

    Raises:
        ValidationError: SQLite: an event holds a value its JSON cannot render (a BLOB, or
            text that is not UTF-8, written into the event table by raw SQL).
        OperationalError: the database failed to send the events.
    """
    dialect = connection.dialect.name
    raw: Any = connection.connection.dbapi_connection
    driver_error: Any = connection.dialect.loaded_dbapi.Error
    params = {"after": after, "upto": _NO_END if upto is None else upto}
    cursor = raw.cursor(name="lineage_nb_verify") if dialect == "postgresql" else raw.cursor()
    try:
        if dialect == "postgresql":
            cursor.itersize = _STREAM
        cursor.execute(contents_sql(dialect), params)
        while rows := cursor.fetchmany(_STREAM):
            yield [row[0] for row in rows]
    except driver_error as error:
        reason = str(error)
        if dialect == "sqlite" and ("JSON cannot hold BLOB" in reason or "decode" in reason):
            raise ValidationError(
                {
                    "event": [
                        f"an event after event {after} cannot be rendered to hash it: {reason}"
                    ]
                },
                field="event",
                value=after,
            ) from error
        raise OperationalError(f"Reading the event log failed: {reason}", value=after) from error
    finally:
        cursor.close()


def _leaves(contents: Sequence[str]) -> list[bytes]:
    sha = _sha256
    return [sha(b"\x00" + content.encode()).digest() for content in contents]


def _level_up(level: Sequence[bytes]) -> list[bytes]:
    """One level of the tree: pairs hashed, an odd last node carried up unchanged (RFC 9162)."""
    sha = _sha256
    pairs = zip(level[::2], level[1::2], strict=False)  # an odd last node has no pair
    above = [sha(b"\x01" + left + right).digest() for left, right in pairs]
    if len(level) % 2:
        above.append(level[-1])
    return above


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 9162 Merkle tree hash of ``leaves`` (leaf hashes, in order); SHA-256 of nothing
    for no leaves."""
    if not leaves:
        return _sha256(b"").digest()
    level = list(leaves)
    while len(level) > 1:
        level = _level_up(level)
    return level[0]


def _audit_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The RFC 9162 inclusion path of leaf ``index``: the sibling at each level, bottom up."""
    path, level = [], list(leaves)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level, index = _level_up(level), index // 2
    return path


class _Tree:
    """The Merkle tree hash of leaves added in order, in memory bounded by one subtree.

    Full subtrees of ``_SUBTREE`` leaves are hashed as they fill and only their roots kept (equal
    sizes merged), which gives the same root as :func:`merkle_root` over all the leaves: RFC 9162
    splits a tree at the largest power of two below its size.
    """

    def __init__(self) -> None:
        self.count = 0
        self._pending: list[bytes] = []
        self._stack: list[tuple[int, bytes]] = []

    def extend(self, leaves: list[bytes]) -> None:
        self.count += len(leaves)
        pending = self._pending
        pending.extend(leaves)
        while len(pending) >= _SUBTREE:
            self._push(_SUBTREE, merkle_root(pending[:_SUBTREE]))
            del pending[:_SUBTREE]

    def _push(self, size: int, node: bytes) -> None:
        stack = self._stack
        while stack and stack[-1][0] == size:
            node = _sha256(b"\x01" + stack.pop()[1] + node).digest()
            size *= 2
        stack.append((size, node))

    def root(self) -> bytes:
        node = merkle_root(self._pending) if self._pending or not self._stack else None
        for _size, left in reversed(self._stack):
            node = left if node is None else _sha256(b"\x01" + left + node).digest()
        assert node is not None
        return node


def seal_hash(prev_hash: str, root: str, count: int, last_event_id: int) -> str:
    """A format-2 seal's hash: SHA-256 of the previous seal's hash ("" for the first), the Merkle
    root of its events (hex), how many there are and the last one's id, one per line."""
    material = f"lineage_nb seal {FORMAT_MERKLE}\n{prev_hash}\n{root}\n{count}\n{last_event_id}"
    return _sha256(material.encode()).hexdigest()


# -- sealing ------------------------------------------------------------------------------------


def _last_seal(connection: Connection) -> Any:
    """The newest seal's id, last event and hash (None: no seal yet)."""
    columns = _SEALS.c.id, _SEALS.c.last_event_id, _SEALS.c.hash
    return connection.execute(select(*columns).order_by(_SEALS.c.id.desc()).limit(1)).first()


def _seal_on(connection: Connection, unchained: int | None = None) -> int:
    """Seal the events after the last seal on ``connection`` (in its transaction); how many.

    ``unchained``: how many of them were written with no hash chain before schema revision 0002 (given
    only by the upgrade; 0 otherwise).
    """
    last = _last_seal(connection)
    after, previous, prev_id = (
        (last.last_event_id, last.hash, last.id) if last is not None else (0, "", 0)
    )
    tree, last_id = _Tree(), 0
    for contents in _contents(connection, after):
        tree.extend(_leaves(contents))
        last_id = _event_id(contents[-1])
    if tree.count == 0:
        return 0
    root = tree.root().hex()
    connection.execute(
        insert(_SEALS).values(
            prev_id=prev_id,
            last_event_id=last_id,
            count=tree.count,
            hash=seal_hash(previous, root, tree.count, last_id),
            at=utcnow(),
            format=FORMAT_MERKLE,
            root=root,
            unchained=unchained or 0,
        )
    )
    return tree.count


def _lock_events(connection: Connection) -> None:
    """PostgreSQL: wait for transactions writing events to end, and keep new ones out until this
    transaction ends (their events must be in the range it seals, or after it)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("LOCK TABLE lineage_record_event IN SHARE ROW EXCLUSIVE MODE"))


def seal(db: Database | None = None, *, wait_s: float = 2.0) -> int:
    """Seal the events written since the last seal; returns how many it sealed (0: none, or busy).

    On PostgreSQL it waits up to ``wait_s`` for open writing transactions to end (their events
    must be in the range it seals); if they do not, it seals nothing now. On a team database set
    up by ``setup-postgres`` only the owner may lock the event table: members seal nothing.
    """
    db = db or get_database()
    try:
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT set_config('lock_timeout', :ms, true)"),
                    {"ms": f"{int(wait_s * 1000)}ms"},
                )
            _lock_events(connection)
            return _seal_on(connection)
    except SAIntegrityError:  # another process sealed the same range first
        return 0
    except DBAPIError as error:
        reason = str(error.orig).lower()
        if "lock" in reason:  # writers stayed open: seal on a later call
            return 0
        if "permission denied" in reason:  # a member of a team database: its owner seals
            return 0
        raise


def seal_at_upgrade(connection: Connection) -> int:
    """Seal, during the schema upgrade to Merkle seals, the events no seal covers yet; how many.

    Events without a per-run hash that an older lineage_nb wrote before schema revision 0002 are counted
    as *unchained* on the seal that covers them: those in earlier seals (they precede a hashed
    event, so they precede the chain), and, when the log was never sealed, every unhashed event
    sealed now. :func:`status` reports them; they are not broken.
    """
    _lock_events(connection)
    hashed = _EVENTS.c.hash.is_not(None)
    newest_hashed = connection.execute(select(func.max(_EVENTS.c.id)).where(hashed)).scalar()
    seals = connection.execute(
        select(_SEALS.c.id, _SEALS.c.last_event_id).order_by(_SEALS.c.id)
    ).all()
    after = 0
    for seal_id, last_event_id in seals:
        if newest_hashed is not None and after < newest_hashed:
            before_chain = connection.execute(
                select(func.count()).where(
                    _EVENTS.c.id > after,
                    _EVENTS.c.id <= last_event_id,
                    _EVENTS.c.id < newest_hashed,
                    _EVENTS.c.hash.is_(None),
                )
            ).scalar_one()
            if before_chain:
                connection.execute(
                    update(_SEALS).where(_SEALS.c.id == seal_id).values(unchained=before_chain)
                )
        after = last_event_id
    unhashed = select(func.count()).where(_EVENTS.c.id > after, _EVENTS.c.hash.is_(None))
    if seals:  # the log was sealed before: only what precedes a hashed event is surely old
        if newest_hashed is None:
            return _seal_on(connection)
        unhashed = unhashed.where(_EVENTS.c.id < newest_hashed)
    return _seal_on(connection, unchained=connection.execute(unhashed).scalar_one())


# -- the state of the log ----------------------------------------------------------------------


@dataclass(frozen=True)
class LogStatus:
    """What the log holds besides broken links (none of these is a sign of tampering).

    Attributes:
        events: events in the log.
        seals: seals over them.
        unsealed: events written since the last seal (sealed by the next ``finish()``/seal).
        unchained: events written by lineage_nb before schema revision 0002 with no hash chain, sealed
            only when the database was upgraded: nothing shows what happened to them before.
        outside_run: events written while no run was open (raw SQL, another program): the
            triggers recorded them with no run.
    """

    events: int
    seals: int
    unsealed: int
    unchained: int
    outside_run: int


def status(db: Database | None = None) -> LogStatus:
    """Count the log's events, seals, and the events :func:`verify` reports but does not fail."""
    db = db or get_database()
    with db.engine.connect() as connection:
        last = _last_seal(connection)
        after = last.last_event_id if last is not None else 0
        seals, unchained = connection.execute(
            select(func.count(), func.coalesce(func.sum(_SEALS.c.unchained), 0))
        ).one()
        events = connection.execute(select(func.count()).select_from(_EVENTS)).scalar_one()
        unsealed = connection.execute(select(func.count()).where(_EVENTS.c.id > after)).scalar_one()
        outside = connection.execute(
            select(func.count()).where(_EVENTS.c.run_id.is_(None))
        ).scalar_one()
    return LogStatus(
        events=int(events),
        seals=int(seals),
        unsealed=int(unsealed),
        unchained=int(unchained),
        outside_run=int(outside),
    )


def unsealed_count(db: Database | None = None) -> int:
    """How many events were written since the last seal."""
    db = db or get_database()
    with db.engine.connect() as connection:
        last = _last_seal(connection)
        after = last.last_event_id if last is not None else 0
        return int(
            connection.execute(select(func.count()).where(_EVENTS.c.id > after)).scalar_one()
        )


def anchor(db: Database | None = None) -> dict[str, Any]:
    """Seal what is not sealed yet and return the log's head, to keep outside the database.

    Returns:
        ``{"seal": id, "events": events covered, "last_event_id": id, "hash": sha256 hex,
        "at": ISO time (UTC)}``: JSON-ready; pass it to :func:`verify` later. ``seal`` is 0 and
        ``hash`` empty for a log with no events yet.
    """
    db = db or get_database()
    seal(db)
    return log_head(db)


def log_head(db: Database | None = None) -> dict[str, Any]:
    """The log's head as its newest seal stands, sealing nothing (what :func:`anchor` returns
    after sealing): for places that only read, such as an export."""
    db = db or get_database()
    with db.engine.connect() as connection:
        last = _last_seal(connection)
        events = connection.execute(select(func.coalesce(func.sum(_SEALS.c.count), 0))).scalar()
    return {
        "seal": 0 if last is None else int(last.id),
        "events": int(events or 0),
        "last_event_id": 0 if last is None else int(last.last_event_id),
        "hash": "" if last is None else str(last.hash),
        "at": utcnow().isoformat(timespec="seconds"),
    }


def _check_anchor(head: dict[str, Any], heads: dict[int, tuple[str, int]]) -> list[BrokenLink]:
    """Whether the seal chain reaches the anchored hash at the anchored seal (each seal is
    checked against its events separately, so a chain that holds is the events' own)."""
    try:
        seal_id, expected, last_event = (
            int(head["seal"]),
            str(head["hash"]),
            int(head["last_event_id"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValidationError(
            {"anchor": [f"is not an anchor from ln.anchor() ({error!r})."]},
            field="anchor",
            value=head,
        ) from error
    if seal_id == 0:
        return []
    found = heads.get(seal_id)
    if found is None:
        message = f"the anchored seal {seal_id} is gone: the log no longer extends the anchor."
    elif found != (expected, last_event):
        message = (
            f"the log no longer extends the anchor: seal {seal_id} is now {found[0][:12]}… up "
            f"to event {found[1]}, the anchor says {expected[:12]}… up to "
            f"event {last_event}; events up to the anchor were changed, inserted, deleted or "
            "reordered (even if the seals were recomputed)."
        )
    else:
        return []
    return [BrokenLink(table="", pk="", run_id=None, event_id=None, message=message)]


# -- checking the seals ------------------------------------------------------------------------


def _seal_problem(row: Any, after: int, previous: str, root: str | None, count: int) -> str | None:
    """Why seal ``row`` does not hold over the ``count`` events of root ``root`` found in its
    range (None: it holds). ``root`` None: its events could not be read."""
    sealed = row._mapping["count"]
    events = f"(events {after + 1}..{row.last_event_id})"
    if root is None:
        return f"its events cannot be read as they were sealed: an event was changed {events}."
    if count != sealed:
        return f"covers {sealed} events but {count} are there: events were deleted or inserted {events}."
    chained = seal_hash(previous, root, count, row.last_event_id) == row.hash
    if root != row.root and chained:
        return f"its stored root was changed (its events still give its hash) {events}."
    if root != row.root:
        return (
            f"its events do not match its hash: an event was changed after it was sealed {events}."
        )
    if not chained:
        return (
            "its hash does not match its Merkle root and the previous seal's hash: the seal was "
            f"changed {events}."
        )
    return None


def _merkle_seals(
    connection: Connection, rows: Sequence[Any], after: int
) -> Iterator[tuple[str | None, int]]:
    """``(root hex, count)`` of the events in the range of each of ``rows`` (consecutive format-2
    seals, the first starting after event ``after``), in one pass over their events."""
    bounds = [row.last_event_id for row in rows]
    done = 0
    tree = _Tree()
    try:
        for contents in _contents(connection, after, bounds[-1]):
            leaves = _leaves(contents)
            start = 0
            while start < len(contents):
                cut = bisect_right(contents, bounds[done], start, key=_event_id)
                if cut > start:
                    tree.extend(leaves[start:cut])
                if cut == len(contents):
                    break
                yield tree.root().hex(), tree.count  # the next event is past this seal
                done, start, tree = done + 1, cut, _Tree()
    except ValidationError:  # an event the database cannot render: this seal and those after
        for _ in range(done, len(rows)):
            yield None, 0
        return
    for _ in range(done, len(rows)):
        yield tree.root().hex(), tree.count
        tree = _Tree()


def _verify_seals(
    connection: Connection, heads: dict[int, tuple[str, int]] | None = None
) -> list[BrokenLink]:
    """Check each seal against its events; ``heads`` collects each seal's (hash, last event)."""
    broken = []
    previous, after, expected_prev = "", 0, 0
    rows = connection.execute(select(_SEALS).order_by(_SEALS.c.id)).all()
    index = 0
    while index < len(rows):
        row = rows[index]
        if row.format == FORMAT_MERKLE:  # every following Merkle seal in one pass
            end = index
            while end < len(rows) and rows[end].format == FORMAT_MERKLE:
                end += 1
            group = rows[index:end]
            found = list(_merkle_seals(connection, group, after))
        else:
            group = [row]
            digest, count, _last = _digest(previous, _events(connection, after, row.last_event_id))
            found = [(digest, count)]
        for row, (digest_or_root, count) in zip(group, found, strict=True):
            if row.prev_id != expected_prev:
                broken.append(
                    _seal_link(
                        row,
                        f"follows seal {row.prev_id}, not seal "
                        f"{expected_prev}: a seal was deleted or inserted.",
                    )
                )
            if heads is not None:
                heads[row.id] = (row.hash, row.last_event_id)
            if row.format == FORMAT_MERKLE:
                problem = _seal_problem(row, after, previous, digest_or_root, count)
            elif (digest_or_root, count) == (row.hash, row._mapping["count"]):
                problem = None
            else:
                problem = (
                    f"covers {row._mapping['count']} events but {count} are there: events were "
                    f"deleted or inserted (events {after + 1}..{row.last_event_id})."
                    if count != row._mapping["count"]
                    else "its events do not match its hash: an event was changed after it was "
                    f"sealed (events {after + 1}..{row.last_event_id})."
                )
            if problem is not None:
                broken.append(_seal_link(row, problem))
            previous, after, expected_prev = row.hash, row.last_event_id, row.id
        index += len(group)
    return broken


def _seal_link(row: Any, message: str) -> BrokenLink:
    return BrokenLink(
        table="", pk="", run_id=None, event_id=None, message=f"seal {row.id} {message}"
    )


# -- the per-run chains of events from before schema revision 0002 ----------------------------------------


def _check_old(
    row: dict[str, Any], expected_prev: str | None, previous_id: int | None
) -> str | None:
    """Why an old (pre-0002, hashed) event breaks its run's chain (None when the link holds)."""
    if row["prev_hash"] != expected_prev:
        if previous_id is None:
            return (
                "is the run's first event left but points to an earlier one: events before it "
                "were deleted."
            )
        return (
            f"does not point to the run's previous event {previous_id}: an event between them "
            "was deleted or inserted, or that event's hash was changed."
        )
    if event_hash(row, row["prev_hash"]) != row["hash"]:
        return "its content does not match its hash: the event was changed after it was written."
    return None


def _verify_old_chains(connection: Connection) -> list[BrokenLink]:
    found = select(Run.id, Run.chain_head).where(Run.chain_head.is_not(None))
    heads = dict(connection.execute(found).all())  # a Result has .keys(): dict() needs rows
    statement = (
        select(_EVENTS).where(_EVENTS.c.hash.is_not(None)).order_by(_EVENTS.c.run_id, _EVENTS.c.id)
    )
    broken: list[BrokenLink] = []
    runs: dict[int | None, list[dict[str, Any]]] = {}
    result = connection.execute(statement, execution_options={"yield_per": _BATCH})
    for mapping in result.mappings():
        runs.setdefault(mapping["run_id"], []).append(dict(mapping))
    for run_id, rows in runs.items():
        last: dict[str, Any] | None = None
        for row in rows:
            expected = None if run_id is None or last is None else last["hash"]
            previous = None if run_id is None or last is None else last["id"]
            problem = _check_old(row, expected, previous)
            if problem is not None:
                broken.append(_link(row, problem))
                break
            last = row
        else:
            head = heads.pop(run_id, None) if run_id is not None else None
            if run_id is not None and last is not None and head not in (None, last["hash"]):
                broken.append(
                    _link(
                        last,
                        (
                            "is the run's last event left, but the run's chain head is a later event: "
                            "events after it were deleted."
                        ),
                    )
                )
        if run_id is not None:
            heads.pop(run_id, None)
    for run_id in sorted(heads):
        broken.append(
            BrokenLink(
                table="",
                pk="",
                run_id=run_id,
                event_id=None,
                message="has a chain head but no hashed record events: all its events were deleted.",
            )
        )
    return broken


def verify(db: Database | None = None, *, anchor: dict[str, Any] | None = None) -> list[BrokenLink]:
    """Recompute every seal, and the old per-run chains; return what does not hold.

    Args:
        db: the database (default: the one from ``ln.connect()``).
        anchor: a head from :func:`anchor` kept outside the database: the log must still extend
            it unchanged.

    Returns:
        One :class:`BrokenLink` per broken seal, old chain or anchor; an empty list: intact.
        Events not sealed yet, unchained and written outside a run are not broken (see
        :func:`status`).

    Raises:
        ValidationError: ``anchor`` is not a head from :func:`anchor`.
    """
    db = db or get_database()
    heads: dict[int, tuple[str, int]] = {}
    with db.engine.connect() as connection:
        broken = _verify_seals(connection, heads) + _verify_old_chains(connection)
    if anchor is not None:
        broken += _check_anchor(anchor, heads)
    return broken


def _link(row: dict[str, Any], message: str) -> BrokenLink:
    return BrokenLink(
        table=row["table"],
        pk=row["pk"],
        run_id=row["run_id"],
        event_id=row["id"],
        message=message,
    )


def describe(links: Iterable[BrokenLink], unsealed: int | LogStatus = 0) -> str:
    """A report for people: one line per broken seal or chain, or a line saying all holds and
    then, given a :class:`LogStatus`, one line for each kind of event that is not broken but not
    (or not always) protected by a seal."""
    lines = [f"BROKEN {link}" for link in links]
    if lines:
        return "\n".join(lines)
    state = unsealed if isinstance(unsealed, LogStatus) else None
    count = unsealed.unsealed if isinstance(unsealed, LogStatus) else unsealed
    tail = f" ({count} events written since the last seal are not sealed yet)" if count else ""
    lines = ["OK: every seal and event chain is intact." + tail]
    if state is not None:
        sealed = state.events - state.unsealed
        lines.append(f"  {_many(sealed, 'event')} sealed in {_many(state.seals, 'seal')}.")
        if state.unchained:
            lines.append(
                f"  {_many(state.unchained, 'event')} {_be(state.unchained, 'is', 'are')} unchained "
                f"(written before schema revision {UNCHAINED_BEFORE} with no hash chain): sealed when the "
                "database was upgraded; nothing shows whether they changed before that."
            )
        if state.outside_run:
            lines.append(
                f"  {_many(state.outside_run, 'event')} {_be(state.outside_run, 'was', 'were')} "
                "written outside a run (raw SQL or another program while no run was open): the "
                "triggers recorded them with no run; checked like any other event, not tampering."
            )
    return "\n".join(lines)


def _many(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _be(count: int, one: str, more: str) -> str:
    return one if count == 1 else more


# -- inclusion proofs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Proof:
    """That one event is in the log: its content, the Merkle audit path from its leaf to its
    seal's root, and what chains the root into the seal's hash.

    Check it with :meth:`verify` (or :func:`check_proof` on :meth:`as_dict`, e.g. from JSON):
    no database needed. Compare ``seal_hash`` with ``verify(anchor=...)`` or a kept head to tie
    it to a log you trust.

    Attributes:
        event_id: the event proved.
        table, pk: the record it is about.
        content: the event's canonical content (JSON text made by the database; the leaf's
            preimage).
        leaf_hash: ``SHA-256(0x00 || content)``, hex.
        index: the event's position among the seal's events (0-based).
        size: how many events the seal covers.
        path: the audit path, hex hashes from the leaf's sibling up (RFC 9162).
        root: the seal's Merkle root (hex), as stored in the seal.
        seal_id, prev_hash, last_event_id, seal_hash: the seal, its predecessor's hash and its
            last event, and its hash (:func:`seal_hash`).
    """

    event_id: int
    table: str
    pk: str
    content: str
    leaf_hash: str
    index: int
    size: int
    path: tuple[str, ...]
    root: str
    seal_id: int
    prev_hash: str
    last_event_id: int
    seal_hash: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def verify(self) -> bool:
        """Whether the path leads from the content to the root, and the root to the seal hash."""
        return check_proof(self)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``path`` as a list)."""
        data = asdict(self)
        data.pop("extra")
        data["path"] = list(self.path)
        return data


def _path_root(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root an RFC 9162 inclusion path leads to (None: the path does not fit the tree)."""
    if not 0 <= index < size:
        return None
    node, fn, sn = leaf, index, size - 1
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = _sha256(b"\x01" + sibling + node).digest()
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = _sha256(b"\x01" + node + sibling).digest()
        fn, sn = fn >> 1, sn >> 1
    return node if sn == 0 else None


def check_proof(proof: Proof | Mapping[str, Any]) -> bool:
    """Recompute a proof: its content hashes to its leaf and names its event, the audit path
    leads from the leaf to the root, and the root, count, last event and previous seal's hash
    give the seal hash. False for anything that does not hold or is not a proof."""
    data = proof.as_dict() if isinstance(proof, Proof) else proof
    try:
        content = str(data["content"])
        leaf = _sha256(b"\x00" + content.encode()).digest()
        if leaf.hex() != data["leaf_hash"] or json.loads(content)[0] != int(data["event_id"]):
            return False
        size, last_event_id = int(data["size"]), int(data["last_event_id"])
        path = [bytes.fromhex(str(node)) for node in data["path"]]
        found = _path_root(leaf, int(data["index"]), size, path)
        root = str(data["root"])
        if found is None or found.hex() != root:
            return False
        return bool(
            seal_hash(str(data["prev_hash"]), root, size, last_event_id) == data["seal_hash"]
        )
    except (KeyError, TypeError, ValueError, IndexError):
        return False


def prove(event_id: int, db: Database | None = None) -> Proof:
    """The inclusion proof of event ``event_id`` in its seal (sealing the log first when the
    event is not sealed yet).

    Raises:
        NotFound: there is no such event, or it is in a seal written before Merkle seals (format
            1, before revision 0009), which has no inclusion proofs (``verify()`` checks it).
        OperationalError: the event is not sealed and sealing is busy (open writers) or not
            allowed (a member of a team database): try again, or ask the owner to seal.
    """
    db = db or get_database()
    covering = select(_SEALS).where(_SEALS.c.last_event_id >= event_id).order_by(_SEALS.c.id)
    with db.engine.connect() as connection:
        event = connection.execute(
            select(_EVENTS.c.id, _EVENTS.c.table, _EVENTS.c.pk).where(_EVENTS.c.id == event_id)
        ).first()
        if event is None:
            raise NotFound(f"There is no record event {event_id}.", value=event_id)
        found = connection.execute(covering.limit(1)).first()
    if found is None:
        seal(db)
        with db.engine.connect() as connection:
            found = connection.execute(covering.limit(1)).first()
        if found is None:
            raise OperationalError(
                f"Event {event_id} is not sealed yet and the log could not be sealed now.",
                value=event_id,
                hint="Try again when the transactions writing events have ended; on a team "
                "database the owner seals.",
            )
    if found.format != FORMAT_MERKLE:
        raise NotFound(
            f"Event {event_id} is in seal {found.id}, written before Merkle seals: it has no "
            "inclusion proof.",
            value=event_id,
            hint="verify() still checks that seal against its events.",
        )
    with db.engine.connect() as connection:
        before = connection.execute(
            select(_SEALS.c.hash, _SEALS.c.last_event_id)
            .where(_SEALS.c.id < found.id)
            .order_by(_SEALS.c.id.desc())
            .limit(1)
        ).first()
        prev_hash, after = (before.hash, before.last_event_id) if before is not None else ("", 0)
        leaves: list[bytes] = []  # the seal's leaves; only the proved event's content is kept
        index, content = -1, ""
        for batch in _contents(connection, after, found.last_event_id):
            at = bisect_right(batch, event_id, key=_event_id) - 1
            if at >= 0 and _event_id(batch[at]) == event_id:
                index, content = len(leaves) + at, batch[at]
            leaves += _leaves(batch)
    if index < 0:  # deleted since it was looked up
        raise NotFound(f"There is no record event {event_id}.", value=event_id)
    return Proof(
        event_id=event_id,
        table=event.table,
        pk=event.pk,
        content=content,
        leaf_hash=leaves[index].hex(),
        index=index,
        size=len(leaves),
        path=tuple(node.hex() for node in _audit_path(leaves, index)),
        root=str(found.root),
        seal_id=int(found.id),
        prev_hash=str(prev_hash),
        last_event_id=int(found.last_event_id),
        seal_hash=str(found.hash),
    )


def record_proof(record: Any, event_id: int | None = None, db: Database | None = None) -> Proof:
    """:func:`prove` for ``record``'s newest event, or its event ``event_id``.

    Raises:
        NotFound: the record has no events (or see :func:`prove`).
        ValidationError: ``event_id`` is not an event of this record.
    """
    from .stamping import record_key

    db = db or get_database()
    table, pk = record_key(record, db.engine.dialect)
    mine = (_EVENTS.c.table == table) & (_EVENTS.c.pk == pk)
    with db.engine.connect() as connection:
        if event_id is None:
            newest = connection.execute(select(func.max(_EVENTS.c.id)).where(mine)).scalar()
            if newest is None:
                raise NotFound(
                    f"{table} {pk} has no recorded events: there is nothing to prove.",
                    model=type(record).__name__,
                    value=pk,
                )
            event_id = int(newest)
        elif (
            connection.execute(select(_EVENTS.c.id).where(mine, _EVENTS.c.id == event_id)).first()
            is None
        ):
            raise ValidationError(
                {"event_id": [f"{event_id!r} is not an event of {table} {pk}."]},
                model=type(record).__name__,
                field="event_id",
                value=event_id,
            )
    return prove(event_id, db)
