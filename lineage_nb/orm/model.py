"""``ln.Model``: a SQLAlchemy 2 declarative base with an ormar/Django-style active-record API.

Each method is written once as ``_do_x(session)`` and run by ``x()`` on a sync session or by its
``ax()`` twin through ``AsyncSession.run_sync`` on an async driver.

Examples:
    >>> import lineage_nb as ln
    >>> from sqlalchemy import Integer, String
    >>> from sqlalchemy.orm import mapped_column
    >>> class Note(ln.Model):
    ...     __tablename__ = "doctest_note"
    ...     id = mapped_column(Integer, primary_key=True)
    ...     text = mapped_column(String(20), nullable=False)
    >>> _ = ln.connect("sqlite://")
    >>> note = Note(text="hello").save()
    >>> Note.get(note.id).text
    'hello'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from inspect import get_annotations
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import event, exists, inspect, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapper,
    Session,
    make_transient,
    make_transient_to_detached,
)
from sqlalchemy.orm.attributes import flag_modified, instance_state, set_committed_value
from typing_extensions import Self

from ..errors import (
    IntegrityError,
    ModelPersistenceError,
    NotFound,
    UsageError,
    ValidationError,
    short_repr,
)
from . import _detached, frame_rows, loading, signals, validation
from .column_types import aware_datetime_columns
from .model_cache import per_model
from .query import Query
from .session_scope import run_async, run_sync, session_database

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ActiveRecord", "Model"]


def _attribute_keys(model: type) -> frozenset[str]:
    """Names of ``model``'s mapped attributes (worked out once per model, used per instance)."""
    return per_model(model, "attribute_keys", lambda: frozenset(inspect(model).attrs.keys()))


def _no_default_keys(model: type) -> list[str]:
    """Keys of ``model``'s non-key columns without a default (worked out once per model)."""

    def compute() -> list[str]:
        mapper: Mapper[Any] = inspect(model)
        return [
            attr.key
            for attr in mapper.column_attrs
            if not attr.columns[0].primary_key
            and attr.columns[0].default is None
            and attr.columns[0].server_default is None
        ]

    return per_model(model, "no_default_keys", compute)


class ActiveRecord:
    """The active-record methods shared by user models and lineage_nb's own tables."""

    #: lineage_nb's own tables set this; their writes are not tracked as record events.
    __lineage_internal__: ClassVar[bool] = False

    def __init__(self, **kwargs: Any) -> None:
        known = _attribute_keys(type(self))
        for key, value in kwargs.items():
            if key not in known and key not in inspect(type(self)).attrs:  # e.g. a later backref
                raise _unknown_field(type(self), key, value)
            setattr(self, key, value)

    def __repr__(self) -> str:
        state = inspect(self)
        shown = [
            f"{attr.key}={short_repr(state.dict[attr.key], 30)}"
            for attr in list(state.mapper.column_attrs)[:6]
            if attr.key in state.dict
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- identity -----------------------------------------------------------------------------
    @property
    def pk(self) -> Any:
        """The primary key value (a tuple for composite keys), or None when not set."""
        values = inspect(type(self)).primary_key_from_instance(self)
        if any(v is None for v in values):
            return None
        return values[0] if len(values) == 1 else tuple(values)

    @pk.setter
    def pk(self, value: Any) -> None:
        """Set the primary key column(s): a value, or a tuple for a composite key."""
        mapper = inspect(type(self))
        keys = [mapper.get_property_by_column(c).key for c in mapper.primary_key]
        values = value if len(keys) > 1 else (value,)
        if not isinstance(values, tuple) or len(values) != len(keys):
            raise ValidationError(
                {
                    "pk": [
                        (
                            f"{type(self).__name__} has a composite key ({', '.join(keys)}): give a "
                            f"tuple of {len(keys)} values."
                        )
                    ]
                },
                model=type(self).__name__,
                field="pk",
                value=value,
            )
        for key, item in zip(keys, values, strict=True):
            setattr(self, key, item)

    def __eq__(self, other: object) -> bool:
        """Two instances of one stored row are equal (as in Django); unsaved ones only to themselves."""
        if self is other:
            return True
        if not isinstance(other, ActiveRecord):
            return NotImplemented
        mine, theirs = inspect(self).key, inspect(other).key
        if mine is None or theirs is None:
            return False
        same_table = inspect(type(self)).base_mapper is inspect(type(other)).base_mapper
        return same_table and mine[1] == theirs[1]

    def __hash__(self) -> int:
        """The stored row's identity; an unsaved record has none yet and is unhashable (Django)."""
        key = inspect(self).key
        if key is None:
            raise TypeError(
                f"An unsaved {type(self).__name__} is unhashable: its identity is its primary key, "
                "which it gets when saved. Save it first, or keep it in a list."
            )
        return hash((inspect(type(self)).base_mapper.class_, key[1]))

    def _pk_or_raise(self, action: str) -> Any:
        pk = self._identity()
        if pk is None:
            raise ModelPersistenceError(
                f"{type(self).__name__}.{action}() needs a primary key and this record has none.",
                model=type(self).__name__,
                hint="save() it first, or set its primary key.",
            )
        return pk

    def _identity(self) -> Any:
        state = inspect(self)
        if state.key is not None:
            return state.key[1]
        values = state.mapper.primary_key_from_instance(self)
        return None if any(v is None for v in values) else tuple(values)

    @property
    def _stored(self) -> bool:
        state = inspect(self)
        return state.key is not None and not state.deleted and not state.was_deleted

    def _column_keys(self) -> list[str]:
        return [attr.key for attr in inspect(type(self)).column_attrs]

    def _check_known(self, names: Iterable[str]) -> None:
        mapper = inspect(type(self))
        for name in names:
            if name not in mapper.attrs:
                raise _unknown_field(type(self), name, getattr(self, name, None))

    def _attach(self, session: Session) -> None:
        """Put this instance in ``session``; a transient one with a pk is treated as stored."""
        if inspect(self).session_id == session.hash_key:
            return
        if inspect(self).key is None and self._identity() is not None and self._row_exists(session):
            make_transient_to_detached(self)
        loading.attach(session, self)

    # -- validation ---------------------------------------------------------------------------
    def clean(self) -> None:
        """Hook for model-wide checks after :meth:`clean_fields`; raise ``ValidationError``."""

    def clean_fields(self, exclude: Iterable[str] | None = None) -> None:
        """Check each field's value against its column type, length and nullability."""
        validation.clean_fields(self, exclude, dialect=_dialect())

    def validate_unique(self, exclude: Iterable[str] | None = None) -> None:
        """Ask the database whether unique values are already taken by another row."""
        run_sync(lambda s: validation.validate_unique(self, s, exclude))

    def validate_constraints(self, exclude: Iterable[str] | None = None) -> None:
        """Evaluate CHECK constraints and foreign keys in the database against this record."""
        run_sync(lambda s: validation.validate_constraints(self, s, exclude))

    def full_clean(
        self,
        exclude: Iterable[str] | None = None,
        validate_unique: bool = True,
        validate_constraints: bool = True,
    ) -> None:
        """clean_fields, clean, validate_unique, validate_constraints; one error with all fields."""
        errors: dict[str, list[str]] = {}
        checks: list[Callable[[], None]] = [
            lambda: self.clean_fields(exclude),
            self.clean,
        ]
        if validate_unique:
            checks.append(lambda: self.validate_unique(exclude))
        if validate_constraints:
            checks.append(lambda: self.validate_constraints(exclude))
        for check in checks:
            try:
                check()
            except ValidationError as err:
                for field, messages in err.error_dict.items():
                    errors.setdefault(field, []).extend(messages)
        if errors:
            raise ValidationError(errors, model=type(self).__name__)

    def get_deferred_fields(self) -> set[str]:
        """Column attributes of a stored record that were not loaded (none for a new record)."""
        state = inspect(self)
        if state.key is None:
            return set()
        return set(self._column_keys()) & set(state.unloaded)

    def serializable_value(self, field_name: str) -> Any:
        """The field's value; for a relationship, the related record's primary key."""
        mapper = inspect(type(self))
        if field_name in mapper.relationships:
            rel = mapper.relationships[field_name]
            if rel.uselist:
                raise ValidationError(
                    {field_name: ["relates to many records: it has no single serializable value."]},
                    model=type(self).__name__,
                    field=field_name,
                    value=field_name,
                )
            # Django: the key column's value (parent_id), without loading the related record
            values = instance_state(self).dict
            keys = [mapper.get_property_by_column(c).key for c in rel.local_columns]
            related = values.get(field_name)
            if related is not None and any(values.get(k) is None for k in keys):
                return related.pk  # an unsaved assignment not flushed yet
            found = [values.get(k) for k in keys]
            return found[0] if len(found) == 1 else tuple(found)
        return getattr(self, field_name)

    # -- writes -------------------------------------------------------------------------------
    def save(
        self,
        *,
        force_insert: bool = False,
        force_update: bool = False,
        update_fields: Iterable[str] | None = None,
    ) -> Self:
        """Insert if not stored yet, else update (only ``update_fields`` when given).

        Unsaved related records this record points to (``sample.project = Project(...)``) are
        inserted first, in the same transaction: unlike Django, which refuses to save a child
        of an unsaved parent. A stored record whose row was deleted elsewhere is not silently
        re-inserted (Django does that): ``save()`` raises NotFound, with or without changes.

        Raises:
            ValidationError: a field is bad (nothing written).
            IntegrityError: ``force_insert`` of a stored key, or the database refused the row.
            NotFound: ``force_update`` (or an update) of a row that does not exist; call
                ``save(force_insert=True)`` to store it again.
            UsageError: ``force_insert`` and ``force_update`` both true.
        """
        fields = None if update_fields is None else list(update_fields)
        if fields == []:  # Django: an empty update_fields skips the save (and its signals)
            return self
        return run_sync(lambda s: self._do_save(s, force_insert, force_update, fields), [self])

    async def asave(
        self,
        *,
        force_insert: bool = False,
        force_update: bool = False,
        update_fields: Iterable[str] | None = None,
    ) -> Self:
        """Async twin of :meth:`save`."""
        fields = None if update_fields is None else list(update_fields)
        if fields == []:
            return self
        return await run_async(
            lambda s: self._do_save(s, force_insert, force_update, fields), [self]
        )

    def _do_save(
        self,
        session: Session,
        force_insert: bool,
        force_update: bool,
        update_fields: list[str] | None,
    ) -> Self:
        cls = type(self)
        if force_insert and force_update:
            raise UsageError("save(): force_insert and force_update cannot both be true.")
        columns = None if update_fields is None else self._update_columns(update_fields)
        exclude = None if columns is None else set(self._column_keys()) - set(columns)
        validation.clean_fields(self, exclude, dialect=session_database(session).dialect)
        signals.pre_save.send(cls, instance=self, update_fields=update_fields)
        inserting = not self._stored
        if not inserting and columns is None and not force_update and self._key_changed():
            self._become_new()  # Django and ormar: a new key is a new row; the old row stays
            inserting = True
        if force_insert and not inserting:
            if self._row_exists(session):
                raise IntegrityError(
                    f"{cls.__name__} with primary key {self.pk!r} is already stored; "
                    "force_insert=True refuses to overwrite it.",
                    model=cls.__name__,
                    field="pk",
                    value=self.pk,
                    hint="Drop force_insert to update it, or give a new primary key.",
                )
            make_transient(self)
            inserting = True
        if inserting and (force_update or update_fields is not None):
            if self._identity() is None or not self._row_exists(session):
                raise NotFound(
                    f"{cls.__name__} with primary key {self.pk!r} is not stored; "
                    "save(force_update=True / update_fields=...) can only update.",
                    model=cls.__name__,
                    value=self.pk,
                    hint="Call save() without them to insert.",
                )
            inserting = False
        if inserting:
            self._fill_unset()
            loading.attach(session, self)
            session.flush()
            unloaded = set(self._column_keys()) & set(inspect(self).unloaded)
            if unloaded:  # server-side defaults: read them now, later the record is detached
                session.refresh(self, attribute_names=sorted(unloaded))
            for rel in inspect(cls).relationships:  # a row just inserted has no related rows yet
                if rel.uselist and rel.key in inspect(self).unloaded:
                    set_committed_value(self, rel.key, [])
        else:
            self._attach(session)
            changed = session.is_modified(self, include_collections=False)
            self._write_fields(session, columns, force=columns is not None)
            # a write of changes finds a missing row itself (0 rows matched); without changes
            # nothing is sent, so ask: an unchanged save() must not pretend the row is stored
            if (force_update or not changed) and not self._row_exists(session):
                raise NotFound(
                    f"{cls.__name__} with primary key {self.pk!r} no longer exists in the "
                    "database: it was deleted since it was read. Nothing was written.",
                    model=cls.__name__,
                    value=self.pk,
                    hint="To store it again with its key and values, call save(force_insert=True).",
                )
        signals.post_save.send(cls, instance=self, created=inserting, update_fields=update_fields)
        return self

    def _key_changed(self) -> bool:
        state = inspect(self)
        return any(
            state.attrs[state.mapper.get_property_by_column(c).key].history.deleted
            for c in state.mapper.primary_key
        )

    def _become_new(self) -> None:
        """Make this stored record a new one with its current values, lineage stamps cleared."""
        make_transient(self)
        values = instance_state(self).dict
        for attr in inspect(type(self)).column_attrs:
            if attr.columns[0].info.get("lineage_nb_auto"):
                values.pop(attr.key, None)

    def _update_columns(self, fields: list[str]) -> list[str]:
        """Column keys of ``update_fields``: a many-to-one relation stands for its key columns."""
        self._check_known(fields)
        mapper = inspect(type(self))
        columns: list[str] = []
        for name in fields:
            if name not in mapper.relationships:
                columns.append(name)
                continue
            rel = mapper.relationships[name]
            if rel.uselist or rel.viewonly:
                raise ValidationError(
                    {
                        name: [
                            (
                                "is not a column of this table (a relation to many records or a "
                                "view-only one): it cannot be in update_fields."
                            )
                        ]
                    },
                    model=type(self).__name__,
                    field=name,
                    value=name,
                    hint="Save the related records themselves (or call save_related()).",
                )
            columns.extend(mapper.get_property_by_column(c).key for c in rel.local_columns)
        return columns

    def _write_fields(self, session: Session, fields: list[str] | None, force: bool) -> None:
        """Flush this stored instance, writing only ``fields`` (others stay pending in memory)."""
        state = inspect(self)
        held: dict[str, Any] = {}
        if fields is not None:
            for key in self._column_keys():
                history = state.attrs[key].history
                if key not in fields and history.has_changes():
                    held[key] = state.dict.get(key)
                    set_committed_value(self, key, history.deleted[0] if history.deleted else None)
            if force:
                primary = {
                    state.mapper.get_property_by_column(c).key for c in state.mapper.primary_key
                }
                for key in fields:
                    unchanged = not state.attrs[key].history.has_changes()
                    if key in state.dict and key not in primary and unchanged:
                        flag_modified(self, key)
        session.flush()
        if held:
            session.expunge(self)  # so commit's autoflush does not write the held-back changes
            for key, value in held.items():
                setattr(self, key, value)

    def _fill_unset(self) -> None:
        """Set never-assigned columns without any default to None (as SQL would store them)."""
        values = instance_state(self).dict
        for key in _no_default_keys(type(self)):
            if key not in values:
                values[key] = None

    def _row_exists(self, session: Session) -> bool:
        mapper = inspect(type(self))
        pk = self._identity()
        if pk is None:
            return False
        condition = [col == val for col, val in zip(mapper.primary_key, pk, strict=True)]
        return bool(session.execute(select(exists().where(*condition))).scalar())

    def update(self, _columns: Iterable[str] | None = None, **kwargs: Any) -> Self:
        """Set ``kwargs`` and write ``_columns`` (default: every changed column; ``[]``: every
        column, as in ormar) to the database.

        Unlike ormar and Django's ``QuerySet.update()``, which report 0 rows and go on, an update
        of a row that does not exist (any more) raises NotFound: nothing is written.

        Raises:
            ModelPersistenceError: the record has no primary key.
            ValidationError: an unknown field name or a bad value.
            NotFound: no row with this primary key.
        """
        columns = None if _columns is None else list(_columns)
        return run_sync(lambda s: self._do_update(s, columns, kwargs), [self])

    async def aupdate(self, _columns: Iterable[str] | None = None, **kwargs: Any) -> Self:
        """Async twin of :meth:`update`."""
        columns = None if _columns is None else list(_columns)
        return await run_async(lambda s: self._do_update(s, columns, kwargs), [self])

    def _do_update(
        self, session: Session, columns: list[str] | None, values: dict[str, Any]
    ) -> Self:
        cls = type(self)
        self._pk_or_raise("update")
        if columns == []:  # ormar: an empty _columns writes every column
            primary = {c.key for c in inspect(cls).primary_key}
            columns = [k for k in self._column_keys() if k not in primary]
        self._check_known(list(values) + (columns or []))
        was_stored = inspect(self).key is not None
        for key, value in values.items():
            setattr(self, key, value)
        fields = columns if columns is not None else (None if was_stored else self._column_keys())
        if columns is not None:
            fields = list(dict.fromkeys(columns + list(values)))
        exclude = None if fields is None else set(self._column_keys()) - set(fields)
        validation.clean_fields(self, exclude, dialect=session_database(session).dialect)
        signals.pre_update.send(cls, instance=self, columns=fields)
        if not was_stored and not self._row_exists(session):
            raise NotFound(
                f"{cls.__name__} with primary key {self.pk!r} does not exist; nothing to update.",
                model=cls.__name__,
                value=self.pk,
                hint="Use save() to insert it.",
            )
        self._attach(session)
        self._write_fields(session, fields, force=columns is not None or not was_stored)
        signals.post_update.send(cls, instance=self, columns=fields)
        return self

    def upsert(self, **kwargs: Any) -> Self:
        """``update(**kwargs)`` when the primary key is filled, else ``save()`` (kwargs ignored)."""
        return self.update(**kwargs) if self._identity() is not None else self.save()

    async def aupsert(self, **kwargs: Any) -> Self:
        """Async twin of :meth:`upsert`."""
        if self._identity() is not None:
            return await self.aupdate(**kwargs)
        return await self.asave()

    def delete(self, *, keep_parents: bool = False) -> int:
        """Delete the row; returns rows deleted. The object stays usable and can be saved again.

        ``keep_parents`` keeps the parent table rows of a joined-inheritance model.

        Raises:
            ModelPersistenceError: the record has no primary key.
            NotFound: no row with this primary key.
        """
        return run_sync(lambda s: self._do_delete(s, keep_parents), [self])

    async def adelete(self, *, keep_parents: bool = False) -> int:
        """Async twin of :meth:`delete`."""
        return await run_async(lambda s: self._do_delete(s, keep_parents), [self])

    def _do_delete(self, session: Session, keep_parents: bool) -> int:
        cls = type(self)
        pk = self._pk_or_raise("delete")
        if not self._row_exists(session):
            raise NotFound(
                f"{cls.__name__} with primary key {self.pk!r} does not exist; nothing deleted.",
                model=cls.__name__,
                value=self.pk,
            )
        signals.pre_delete.send(cls, instance=self)
        if self in session:
            session.expunge(self)
        try:
            loading.delete_rows(session, self, pk, keep_parents)
        except sa_exc.IntegrityError as error:
            raise IntegrityError(
                f"{cls.__name__} {self.pk!r} is still referenced by other rows; nothing was deleted.",
                model=cls.__name__,
                value=self.pk,
                hint="Delete or re-point the referencing records first.",
            ) from error
        signals.post_delete.send(cls, instance=self)
        make_transient(self)
        return 1

    # -- reads --------------------------------------------------------------------------------
    def load(self) -> Self:
        """Refresh this record's columns from the database (unsaved changes are dropped).

        Raises:
            NotFound: no row with this primary key.
        """
        return run_sync(lambda s: self._do_refresh(s, None), [self])

    async def aload(self) -> Self:
        """Async twin of :meth:`load`."""
        return await run_async(lambda s: self._do_refresh(s, None), [self])

    def refresh_from_db(self, fields: Iterable[str] | None = None) -> None:
        """Reload ``fields`` (default: all columns) from the database, as in Django."""
        keys = None if fields is None else list(fields)
        run_sync(lambda s: self._do_refresh(s, keys), [self])

    async def arefresh_from_db(self, fields: Iterable[str] | None = None) -> None:
        """Async twin of :meth:`refresh_from_db`."""
        keys = None if fields is None else list(fields)
        await run_async(lambda s: self._do_refresh(s, keys), [self])

    def _do_refresh(self, session: Session, fields: list[str] | None) -> Self:
        pk = self._pk_or_raise("load")
        keys = self._column_keys() if fields is None else fields
        self._check_known(keys)
        if not keys:  # Django: refresh_from_db(fields=[]) reloads nothing
            return self
        row = session.execute(loading.select_by_pk(type(self), pk, keys)).one_or_none()
        if row is None:
            raise NotFound(
                f"{type(self).__name__} with primary key {self.pk!r} does not exist.",
                model=type(self).__name__,
                value=self.pk,
            )
        if inspect(self).key is None:
            make_transient_to_detached(self)
        for key, value in zip(keys, row, strict=True):
            set_committed_value(self, key, value)
        loading.follow_reloaded_keys(session, self, keys)
        signals.records_read.send(type(session), session=session, records=[self])
        return self

    def load_all(
        self,
        follow: bool = False,
        exclude: Iterable[str] | str | None = None,
        order_by: Iterable[str] | str | None = None,
    ) -> Self:
        """Refresh this record and its related records with eager loading.

        ``follow=True`` walks relations of relations, visiting each model once per path.
        The statement count depends on the depth, never on the number of rows.
        """
        return run_sync(lambda s: loading.load_all(s, self, follow, exclude, order_by), [self])

    async def aload_all(
        self,
        follow: bool = False,
        exclude: Iterable[str] | str | None = None,
        order_by: Iterable[str] | str | None = None,
    ) -> Self:
        """Async twin of :meth:`load_all`."""
        return await run_async(
            lambda s: loading.load_all(s, self, follow, exclude, order_by), [self]
        )

    def save_related(
        self,
        follow: bool = False,
        save_all: bool = False,
        exclude: Iterable[str] | str | None = None,
    ) -> int:
        """Save unsaved (or, with ``save_all``, all) loaded related records; returns the count."""
        return run_sync(lambda s: loading.save_related(s, self, follow, save_all, exclude), [self])

    async def asave_related(
        self,
        follow: bool = False,
        save_all: bool = False,
        exclude: Iterable[str] | str | None = None,
    ) -> int:
        """Async twin of :meth:`save_related`."""
        return await run_async(
            lambda s: loading.save_related(s, self, follow, save_all, exclude), [self]
        )

    # -- class-level --------------------------------------------------------------------------
    @classmethod
    def get(cls, pk: Any) -> Self:
        """The record with primary key ``pk``.

        Raises:
            NotFound: there is none.
        """
        return run_sync(lambda s: loading.get(s, cls, pk))

    @classmethod
    async def aget(cls, pk: Any) -> Self:
        """Async twin of :meth:`get`."""
        return await run_async(lambda s: loading.get(s, cls, pk))

    @classmethod
    def filter(cls, *where: Any, **equals: Any) -> Query[Self]:
        """A lazy :class:`Query` of records matching SQLAlchemy conditions and ``field=value``."""
        return Query(cls).filter(*where, **equals)

    @classmethod
    def objects(cls) -> Query[Self]:
        """A :class:`Query` of every record (Django's ``Model.objects.all()``)."""
        return Query(cls)

    @classmethod
    def df(cls, **kwargs: Any) -> pd.DataFrame:
        """A pandas DataFrame of every record, built from one query."""
        return Query(cls).df(**kwargs)

    @classmethod
    def bulk_create(cls, records: Iterable[Any] | pd.DataFrame) -> list[Any]:
        """Insert many records (instances, dicts or a pandas DataFrame) in one transaction.

        Instances and dicts come back with their primary keys filled in (instances become
        stored). A DataFrame's columns are fields; it is validated column by column (an error
        names the column and the first bad row), missing values are stored as NULL, and the
        new primary keys are returned in row order (the frame itself is not changed).

        Raises:
            ValidationError: a bad field, column or row (nothing written).
            IntegrityError: the database refused a row (nothing written).
        """
        if frame_rows.is_frame(records):
            frame = records
            return run_sync(lambda s: loading.bulk_create_frame(s, cls, frame))
        items = list(records)
        return run_sync(lambda s: loading.bulk_create(s, cls, items), items)

    @classmethod
    async def abulk_create(cls, records: Iterable[Any] | pd.DataFrame) -> list[Any]:
        """Async twin of :meth:`bulk_create`."""
        if frame_rows.is_frame(records):
            frame = records
            return await run_async(lambda s: loading.bulk_create_frame(s, cls, frame))
        items = list(records)
        return await run_async(lambda s: loading.bulk_create(s, cls, items), items)


def _unknown_field(model: type, name: str, value: Any) -> ValidationError:
    mapper: Mapper[Any] = inspect(model)
    known = sorted(mapper.attrs.keys())
    return ValidationError(
        {
            name: [
                f"unknown field (got value {short_repr(value)}). Known fields: {', '.join(known)}."
            ]
        },
        model=model.__name__,
        value=value,
    )


def _dialect() -> str:
    from ..db import ambient_session, get_database

    outer = ambient_session()
    if outer is not None:
        bind = outer.get_bind()
        return str(bind.dialect.name)
    return get_database().dialect


#: A mixin lists in this attribute the attribute names it defines and owns (e.g. ``TracksRun``:
#: ``run_id``, ``created_by_id``...); a model that defines one of them itself is refused.
OWNED_NAMES = "_lineage_nb_owned_names"


def _refuse_owned_names(cls: type) -> None:
    """Raise before mapping when ``cls`` redefines a name one of its mixins owns.

    Mapping would otherwise let the model's own column silently replace the mixin's (a user's
    ``run_id`` is not a lineage stamp, and the run it would show is not the writing run).
    """
    own = set(cls.__dict__) | set(get_annotations(cls))
    for base in cls.__mro__[1:]:
        clash = sorted(own & set(base.__dict__.get(OWNED_NAMES, ())))
        if clash:
            raise UsageError(
                f"{cls.__name__} defines {', '.join(clash)}, which {base.__name__} already "
                "defines and fills in.",
                model=cls.__name__,
                field=clash[0],
                value=clash[0],
                hint=f"Rename the field, or drop {base.__name__} from {cls.__name__}'s bases.",
            )


class Model(ActiveRecord, DeclarativeBase):
    """Base class of user tables: SQLAlchemy 2 declarative mapping plus the active-record API.

    Add ``ln.TracksRun`` (and ``ln.TracksUpdates``) to stamp runs and users on the rows.
    On SQLite a single integer key is ``AUTOINCREMENT``: a deleted record's key is never given to
    a new one, so a new record never inherits an old one's history. ``DateTime(timezone=True)``
    columns store UTC and read back aware on every backend (see :mod:`.column_types`).
    """

    __abstract__ = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        _refuse_owned_names(cls)
        super().__init_subclass__(**kwargs)
        table = cls.__dict__.get("__table__")
        if table is not None:
            table.dialect_kwargs["sqlite_autoincrement"] = True
            aware_datetime_columns(table)


event.listen(Model, "mapper_configured", _detached.load_on_access, propagate=True)
