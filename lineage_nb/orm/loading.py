"""Reading and writing graphs of records: get, load_all, save_related, bulk_create.

``load_all`` eager-loads relations (``joinedload`` for many-to-one, ``selectinload`` for the first
level of collections, ``subqueryload`` deeper) so the number of statements follows the depth of
the walk, never the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Integer, Select, Table, and_, delete, func, insert, inspect, select
from sqlalchemy.orm import (
    Mapper,
    RelationshipProperty,
    Session,
    joinedload,
    make_transient_to_detached,
    selectinload,
    subqueryload,
)
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.strategy_options import _AbstractLoad

from ..errors import NotFound, ValidationError
from . import frame_rows, signals, validation
from .keys import pk_values
from .session_scope import session_database

__all__ = [
    "attach",
    "bulk_create",
    "bulk_create_frame",
    "delete_rows",
    "detached",
    "follow_reloaded_keys",
    "get",
    "load_all",
    "save_related",
    "select_by_pk",
]

T = TypeVar("T")


def select_by_pk(model: type, pk: Any, keys: Sequence[str]) -> Select[Any]:
    """``SELECT <keys> FROM model WHERE pk = :pk`` with bound values."""
    mapper: Mapper[Any] = inspect(model)
    condition = and_(
        *(col == val for col, val in zip(mapper.primary_key, pk_values(model, pk), strict=True))
    )
    return select(*(getattr(model, k) for k in keys)).where(condition)


def get(session: Session, model: type[T], pk: Any) -> T:
    """The record with primary key ``pk``; raises :class:`NotFound`."""
    values = pk_values(model, pk)
    record = None
    if None not in values:  # no stored row has a NULL key
        record = session.get(model, values[0] if len(values) == 1 else values)
    if record is None:
        raise NotFound(
            f"{model.__name__} with primary key {pk!r} does not exist.",
            model=model.__name__,
            value=pk,
            hint="Check the key, or use filter() to search.",
        )
    signals.records_read.send(type(session), session=session, records=[record])
    return record


def _paths(spec: Iterable[str] | str | None) -> set[str]:
    if spec is None:
        return set()
    items = [spec] if isinstance(spec, str) else list(spec)
    return {item.strip() for item in items}


def _loader_options(
    mapper: Mapper[Any],
    follow: bool,
    exclude: set[str],
    parent: _AbstractLoad | None = None,
    prefix: str = "",
    visited: frozenset[type] = frozenset(),
    depth: int = 1,
) -> Iterator[_AbstractLoad]:
    """Eager-load options for every relationship; recurse with ``follow`` once per model on a path."""
    visited = visited | {mapper.class_}
    for rel in mapper.relationships:
        path = f"{prefix}{rel.key}"
        if path in exclude or rel.key in exclude:
            continue
        attr = getattr(mapper.class_, rel.key)
        strategy: Callable[..., _AbstractLoad]
        if not rel.uselist:
            strategy = joinedload
        elif depth == 1:
            strategy = selectinload
        else:
            strategy = subqueryload
        option = strategy(attr) if parent is None else getattr(parent, strategy.__name__)(attr)
        yield option
        target = rel.mapper.class_
        internal = getattr(target, "__lineage_internal__", False)
        if follow and not internal and target not in visited:
            yield from _loader_options(
                rel.mapper, follow, exclude, option, f"{path}__", visited, depth + 1
            )


def _related(record: Any, rel: RelationshipProperty[Any]) -> list[Any]:
    """Loaded related records of one relationship, without triggering a lazy load."""
    value = inspect(record).dict.get(rel.key)
    if value is None:
        return []
    return list(value) if rel.uselist else [value]


def _walk(
    record: Any,
    follow: bool,
    exclude: set[str],
    prefix: str = "",
    visited: frozenset[type] = frozenset(),
) -> Iterator[tuple[str, RelationshipProperty[Any], Any]]:
    """Yield ``(path, relationship, related)`` over loaded relations, with ``load_all``'s rules."""
    mapper = inspect(type(record))
    visited = visited | {mapper.class_}
    for rel in mapper.relationships:
        path = f"{prefix}{rel.key}"
        if path in exclude or rel.key in exclude:
            continue
        for related in _related(record, rel):
            yield path, rel, related
            target = type(related)
            if (
                follow
                and not getattr(target, "__lineage_internal__", False)
                and target not in visited
            ):
                yield from _walk(related, follow, exclude, f"{path}__", visited)


def _sort(record: Any, order_by: list[str]) -> None:
    """Sort loaded collections in memory by ``relation__field`` (``-`` prefix: descending)."""
    for spec in order_by:
        descending = spec.startswith("-")
        *relation, field = spec.lstrip("-").split("__")
        if not relation:
            continue
        for holder in _parents(record, relation):
            collection = inspect(holder).dict.get(relation[-1])
            if isinstance(collection, list):
                collection.sort(
                    key=lambda r: (getattr(r, field) is None, getattr(r, field)),
                    reverse=descending,
                )


def _parents(record: Any, relation: list[str]) -> list[Any]:
    holders = [record]
    for name in relation[:-1]:
        holders = [r for h in holders for r in _related(h, inspect(type(h)).relationships[name])]
    return holders


def load_all(
    session: Session,
    record: T,
    follow: bool,
    exclude: Iterable[str] | str | None,
    order_by: Iterable[str] | str | None,
) -> T:
    """Refresh ``record`` and eager-load its related records into it."""
    model = type(record)
    mapper = inspect(model)
    state = inspect(record)
    pk = state.key[1] if state.key is not None else None
    if pk is None:
        values = mapper.primary_key_from_instance(record)
        if any(v is None for v in values):
            from ..errors import ModelPersistenceError

            raise ModelPersistenceError(
                f"{model.__name__}.load_all() needs a primary key and this record has none.",
                model=model.__name__,
                hint="save() it first, or set its primary key.",
            )
        pk = tuple(values)
        make_transient_to_detached(record)
    skip = _paths(exclude)
    options = list(_loader_options(mapper, follow, skip))
    attach(session, record)
    condition = and_(*(col == val for col, val in zip(mapper.primary_key, pk, strict=True)))
    statement = select(model).where(condition).options(*options)
    session.expire(record)  # refresh it; other rows of the graph must not overwrite it again
    with session.no_autoflush:
        found = session.execute(statement).unique()
        if found.scalar_one_or_none() is None:
            raise NotFound(
                f"{model.__name__} with primary key {pk!r} does not exist.",
                model=model.__name__,
                value=pk,
            )
    ordering = sorted(_paths(order_by), key=lambda s: s.count("__"))
    _sort(record, ordering)
    loaded = [record] + [related for _, _, related in _walk(record, follow, skip)]
    signals.records_read.send(type(session), session=session, records=loaded)
    return record


def save_related(
    session: Session, record: Any, follow: bool, save_all: bool, exclude: Iterable[str] | str | None
) -> int:
    """Upsert loaded related records that are unsaved or changed (all with ``save_all``)."""
    skip = _paths(exclude)
    seen: set[int] = {id(record)}
    count = _save_links(session, record, skip)
    for _path, _rel, related in list(_walk(record, follow, skip)):
        if id(related) in seen or getattr(type(related), "__lineage_internal__", False):
            continue
        seen.add(id(related))
        state = inspect(related)
        changed = any(state.attrs[a.key].history.has_changes() for a in state.mapper.column_attrs)
        if save_all or state.key is None or changed:
            related._do_save(session, False, False, None)
            count += 1
    return count


def _save_links(session: Session, record: Any, skip: set[str]) -> int:
    """Write ``record``'s pending many-to-many links; how many were added."""
    state = inspect(record)
    added = 0
    for rel in state.mapper.relationships:
        if rel.secondary is None or rel.viewonly or rel.key in skip or rel.key not in state.dict:
            continue
        added += len(state.attrs[rel.key].history.added)
    if added or any(
        state.attrs[rel.key].history.deleted
        for rel in state.mapper.relationships
        if rel.secondary is not None and rel.key in state.dict
    ):
        attach(session, record)
        session.flush()
    return added


def _batch_size(session: Session, columns: int) -> int:
    limit = 32_000 if session_database(session).dialect == "sqlite" else 60_000
    return max(1, min(5_000, limit // max(1, columns)))


def bulk_create(session: Session, model: type, records: list[Any]) -> list[Any]:
    """Insert ``records`` (instances or dicts) in parameter-limited batches; fill in their keys."""
    if not records:
        return []
    mapper: Mapper[Any] = inspect(model)
    dialect = session_database(session).dialect
    keys = [attr.key for attr in mapper.column_attrs]
    pk_keys = [mapper.get_property_by_column(c).key for c in mapper.primary_key]
    many_to_one = _many_to_one_keys(mapper)
    known = frozenset(keys)
    rows: list[dict[str, Any]] = []
    for index, item in enumerate(records):
        if isinstance(item, dict):  # validated as plain values: no model instance is built
            unknown = item.keys() - known
            if unknown:
                name = sorted(unknown)[0]
                raise ValidationError(
                    {name: [f"unknown field in record #{index}. Known fields: {', '.join(keys)}."]},
                    model=model.__name__,
                    value=item[name],
                )
            validation.clean_values(model, item, dialect=dialect, hint=f"(record #{index})")
            rows.append({k: v for k, v in item.items() if v is not None or k not in pk_keys})
        elif isinstance(item, model):
            validation.clean_fields(item, dialect=dialect)
            rows.append(_row_of(item, keys, many_to_one, pk_keys))
        else:
            raise ValidationError(
                {
                    "records": [
                        (
                            f"record #{index} is a {type(item).__name__}, expected "
                            f"{model.__name__} or dict."
                        )
                    ]
                },
                model=model.__name__,
                value=item,
            )
    _insert_rows(session, model, rows)
    for item, row in zip(records, rows, strict=True):
        if isinstance(item, dict):
            item.update({k: row[k] for k in pk_keys})
        else:
            item._fill_unset()
            instance_state(item).dict.update(row)
            make_transient_to_detached(item)
    return records


def _insert_rows(session: Session, model: type, rows: list[dict[str, Any]]) -> None:
    """Insert row dicts of ``model`` in parameter-limited batches; their keys are filled in."""
    mapper: Mapper[Any] = inspect(model)
    dialect = session_database(session).dialect
    pk_keys = [mapper.get_property_by_column(c).key for c in mapper.primary_key]
    signals.bulk_insert.send(type(session), session=session, model=model, rows=rows)
    pk_columns = [getattr(model, k) for k in pk_keys]
    by_shape: dict[tuple[str, ...], list[int]] = {}
    for index, row in enumerate(rows):
        by_shape.setdefault(tuple(row), []).append(index)
    table = cast(Table, mapper.local_table)
    columns = {attr.key: attr.columns[0].name for attr in mapper.column_attrs}
    rowid_keys = _sqlite_rowid_key(mapper, dialect)
    for shape, indexes in by_shape.items():
        size = _batch_size(session, len(shape))
        for start in range(0, len(indexes), size):
            chunk = indexes[start : start + size]
            params = [{columns[k]: rows[i][k] for k in shape} for i in chunk]
            new_keys: list[tuple[Any, ...]]
            if rowid_keys is not None and rowid_keys not in shape:
                new_keys = list(_insert_sqlite_rowids(session, table, params))
            else:
                returning = insert(table).returning(
                    *(c.expression for c in pk_columns), sort_by_parameter_order=True
                )
                new_keys = [tuple(r) for r in session.execute(returning, params).all()]
            for i, pk in zip(chunk, new_keys, strict=True):
                for key, value in zip(pk_keys, pk, strict=True):
                    rows[i][key] = value
    signals.bulk_inserted.send(type(session), session=session, model=model, rows=rows)


def bulk_create_frame(session: Session, model: type, frame: Any) -> list[Any]:
    """Insert the rows of a pandas DataFrame (columns = fields), chunk by chunk.

    Each chunk is validated column by column (:mod:`.frame_rows`) before it is sent; the
    caller's transaction makes the whole frame one write. Returns the new primary keys in row
    order (a tuple per row for a composite key).
    """
    mapper: Mapper[Any] = inspect(model)
    pk_keys = [mapper.get_property_by_column(c).key for c in mapper.primary_key]
    db = session_database(session)
    refused = frozenset(  # lineage stamps come from the run, unless lineage is off
        attr.key
        for attr in mapper.column_attrs
        if db.lineage and attr.columns[0].info.get("lineage_nb_auto")
    )
    dialect = db.dialect
    keys: list[Any] = []
    for rows in frame_rows.frame_chunks(model, frame, dialect=dialect, refused=refused):
        for row in rows:  # a missing key is generated, as for dicts
            for key in pk_keys:
                if key in row and row[key] is None:
                    del row[key]
        _insert_rows(session, model, rows)
        if len(pk_keys) == 1:
            keys.extend(row[pk_keys[0]] for row in rows)
        else:
            keys.extend(tuple(row[k] for k in pk_keys) for row in rows)
    return keys


def follow_reloaded_keys(session: Session, record: Any, keys: Sequence[str]) -> None:
    """Make each many-to-one relation of ``record`` agree with its just reloaded foreign key.

    A loaded related record whose key no longer matches, or a pending relation change, is
    replaced by the record the key now points at (``session.get``: no query when it is in the
    session already) — else the next flush would write the stale relation back.
    """
    state = instance_state(record)
    mapper = state.mapper
    reloaded = set(keys)
    for rel_key, pairs in _many_to_one_keys(mapper):
        if not reloaded & {local for local, _remote in pairs}:
            continue
        if rel_key not in state.dict and rel_key not in state.committed_state:
            continue  # never loaded: nothing stale to write back
        wanted = [state.dict.get(local) for local, _remote in pairs]
        related = state.dict.get(rel_key)
        rel = mapper.relationships[rel_key]
        if rel_key not in state.committed_state and related is not None:
            related_mapper = inspect(type(related))
            current = [
                getattr(related, related_mapper.get_property_by_column(remote).key)
                for _local, remote in pairs
            ]
            if current == wanted:
                continue
        if any(v is None for v in wanted):
            target = None
        else:
            remote_keys = [rel.mapper.get_property_by_column(remote).key for _l, remote in pairs]
            target = session.get(rel.mapper.class_, dict(zip(remote_keys, wanted, strict=True)))
        state.committed_state.pop(rel_key, None)
        set_committed_value(record, rel_key, target)


def _sqlite_rowid_key(mapper: Mapper[Any], dialect: str) -> str | None:
    """The attribute of a SQLite table's single integer primary key (its rowid), if it has one."""
    if dialect != "sqlite" or len(mapper.primary_key) != 1:
        return None
    column = mapper.primary_key[0]
    if not isinstance(column.type, Integer):
        return None
    return mapper.get_property_by_column(column).key


def _insert_sqlite_rowids(
    session: Session, table: Table, params: list[dict[str, Any]]
) -> list[tuple[int]]:
    """executemany the rows and derive their keys from ``last_insert_rowid()``.

    Inside our write transaction SQLite gives the rows consecutive rowids, so this avoids the
    row-at-a-time ``INSERT ... RETURNING`` SQLAlchemy needs on SQLite to keep parameter order.
    """
    session.execute(insert(table), params)
    last = int(session.execute(select(func.last_insert_rowid())).scalar_one())
    return [(key,) for key in range(last - len(params) + 1, last + 1)]


_ManyToOne = list[tuple[str, list[tuple[str, Any]]]]


def _many_to_one_keys(mapper: Mapper[Any]) -> _ManyToOne:
    """``(relationship key, [(local column key, remote column), ...])`` of each many-to-one."""
    return [
        (
            rel.key,
            [
                (mapper.get_property_by_column(local).key, remote)
                for local, remote in rel.local_remote_pairs
            ],
        )
        for rel in mapper.relationships
        if not rel.uselist
    ]


def _row_of(
    instance: Any, keys: list[str], many_to_one: _ManyToOne, pk_keys: list[str]
) -> dict[str, Any]:
    """Column values of an instance for a Core insert; FKs filled from related stored records."""
    values = instance_state(instance).dict
    row = {k: values[k] for k in keys if k in values and not (k in pk_keys and values[k] is None)}
    for rel_key, pairs in many_to_one:
        related = values.get(rel_key)
        if related is None:
            continue
        related_mapper = inspect(type(related))
        for local_key, remote in pairs:
            row[local_key] = getattr(related, related_mapper.get_property_by_column(remote).key)
    return row


def attach(session: Session, record: Any) -> None:
    """Add ``record`` to ``session`` without cascading into its loaded graph.

    ``Session.add`` would cascade through every loaded relation (a whole ``load_all`` graph,
    possibly holding other copies of the same rows). Here only unsaved many-to-one parents are
    added (so they are inserted first); stored parents just fill in the foreign key.
    """
    state = inspect(record)
    if state.session_id == session.hash_key:
        return
    mapper = state.mapper
    pending = getattr(state, "_pending_mutations", None)  # backref appends to unloaded lists
    for rel in mapper.relationships:
        if rel.uselist and pending and rel.key in pending:
            del pending[rel.key]
        if rel.key not in state.dict or rel.viewonly:
            continue
        related = state.dict[rel.key]
        if rel.uselist and rel.secondary is not None:
            # many-to-many: the links are this record's to write; the linked records join the
            # session (unsaved ones are inserted first) so the flush can write the link rows
            history = state.attrs[rel.key].history
            for linked in [*history.added, *history.unchanged, *history.deleted]:
                if inspect(linked).session_id != session.hash_key:
                    attach(session, linked)
            continue
        if rel.uselist:  # children are written by their own save (ormar's save_related)
            if state.attrs[rel.key].history.has_changes():
                set_committed_value(record, rel.key, list(related))
            continue
        if related is None:
            continue
        if inspect(related).key is None:
            attach(session, related)
            continue
        related_mapper = inspect(type(related))
        for local, remote in rel.local_remote_pairs:
            key = mapper.get_property_by_column(local).key
            value = getattr(related, related_mapper.get_property_by_column(remote).key)
            if state.dict.get(key) != value:
                setattr(record, key, value)
        set_committed_value(record, rel.key, related)
    if state.key is not None:
        loaded = session.identity_map.get(state.key)
        if loaded is not None and loaded is not record:  # another copy of this row: ours wins
            session.flush()
            session.expunge(loaded)
    session._save_or_update_impl(state)  # private API: add without cascade (see docstring)


def delete_rows(session: Session, record: Any, pk: Any, keep_parents: bool) -> None:
    """Delete ``record``'s row(s) with bound ``DELETE`` statements (no ORM cascades).

    The database's foreign keys decide what may be deleted. With joined-table inheritance the
    subclass rows go first; ``keep_parents`` keeps the parent tables' rows.
    """
    mapper: Mapper[Any] = inspect(type(record))
    tables = [cast(Table, mapper.local_table)] if keep_parents else list(reversed(mapper.tables))
    for table in tables:
        columns = list(table.primary_key.columns)
        condition = and_(*(col == val for col, val in zip(columns, pk, strict=True)))
        session.execute(delete(table).where(condition))
    signals.records_deleted.send(type(session), session=session, records=[record])


def detached(model: type, row: Mapping[str, Any]) -> Any:
    """A detached ``model`` record holding ``row``'s column values (by column name), in no
    session: a copy of a row as it stood at some point (``Model.as_of``), not the live record."""
    mapper: Mapper[Any] = inspect(model)
    record = mapper.class_manager.new_instance()
    for attribute in mapper.column_attrs:
        set_committed_value(record, attribute.key, row[attribute.columns[0].name])
    for relationship in mapper.relationships:
        if relationship.uselist:
            set_committed_value(record, relationship.key, [])
    make_transient_to_detached(record)
    return record
