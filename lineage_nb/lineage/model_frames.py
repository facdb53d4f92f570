"""Rich pandas views: one query each, sensible dtypes, foreign keys shown with their label.

Every frame is built from the rows of a single ``SELECT`` (no ORM objects, no per-row queries).
Integer and boolean columns become ``int64``/``bool``, or ``Int64``/``boolean`` when the column is
nullable; timezone-aware timestamps become ``datetime64[..., UTC]``; enums become categories. Each
many-to-one foreign key ``project_id`` gets a ``project`` column right after it holding the related
record's label (its ``name``/``label``/``title``/``handle``/``key`` column, ``run 12 · nb.ipynb v3``
for runs), fetched with an outer join in the same query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Select, inspect
from sqlalchemy.orm import Mapper, Session, aliased

from ..orm.session_scope import run_sync
from ..render.frames import as_text, fast_column, run_label, typed_frame
from . import reads
from .labels import label_column_of

__all__ = ["label_columns", "model_frame"]


Compose = Callable[[pd.Series, list[pd.Series]], pd.Series]


@dataclass
class _LabelColumn:
    """A label column ``name`` derived from foreign key ``key`` and extra selected columns."""

    name: str
    key: str
    compose: Compose
    extra: list[Any] = field(default_factory=list)
    joins: list[tuple[Any, Any]] = field(default_factory=list)


# -- labels of related records -------------------------------------------------------------------
def _class_label(name: str) -> Compose:
    def compose(fk: pd.Series, extra: list[pd.Series]) -> pd.Series:
        text = (name + " ") + as_text(fk)
        return text if not extra else extra[0].astype("string").fillna(text)

    return compose


def _run_compose(fk: pd.Series, extra: list[pd.Series]) -> pd.Series:
    key, version = extra
    return run_label(fk, key, version)


def _transform_compose(fk: pd.Series, extra: list[pd.Series]) -> pd.Series:
    key, version = (e.astype("string") for e in extra)
    return key + " v" + version


def _label_for(name: str, fk: Any, related: type) -> _LabelColumn:
    from .schema import Run, Transform, User  # the schema's tables build frames with this

    if related is User:
        user = aliased(User)
        return _LabelColumn(
            name, fk.key, _class_label("User"), [user.handle], [(user, user.id == fk)]
        )
    if related is Run:
        run, transform = aliased(Run), aliased(Transform)
        return _LabelColumn(
            name,
            fk.key,
            _run_compose,
            [transform.key, transform.version],
            [(run, run.id == fk), (transform, transform.id == run.transform_id)],
        )
    if related is Transform:
        transform = aliased(Transform)
        return _LabelColumn(
            name,
            fk.key,
            _transform_compose,
            [transform.key, transform.version],
            [(transform, transform.id == fk)],
        )
    label = label_column_of(related)
    if label is None:
        return _LabelColumn(name, fk.key, _class_label(related.__name__))
    target: Any = aliased(related)
    pk: str = str(inspect(related).primary_key[0].key)
    return _LabelColumn(
        name,
        fk.key,
        _class_label(related.__name__),
        [getattr(target, label)],
        [(target, getattr(target, pk) == fk)],
    )


def label_columns(model: type) -> list[_LabelColumn]:
    """The label column added after each many-to-one foreign key of ``model``."""
    mapper: Mapper[Any] = inspect(model)
    found: list[_LabelColumn] = []
    for rel in mapper.relationships:
        if rel.direction.name != "MANYTOONE" or len(rel.local_columns) != 1:
            continue
        (local,) = rel.local_columns
        attrs = [a for a in mapper.column_attrs if local in a.columns]
        if attrs and len(inspect(rel.mapper.class_).primary_key) == 1:
            found.append(_label_for(rel.key, getattr(model, attrs[0].key), rel.mapper.class_))
    return found


def _apply_labels(frame: pd.DataFrame, labels: list[_LabelColumn]) -> pd.DataFrame:
    for i, label in enumerate(labels):
        extra_names = [f"_label_{i}_{j}" for j in range(len(label.extra))]
        fk = frame[label.key]
        values = label.compose(fk, [frame[n] for n in extra_names]).astype("string")
        values = values.mask(fk.isna())
        frame = frame.drop(columns=extra_names)
        if label.name not in frame.columns:
            frame.insert(list(frame.columns).index(label.key) + 1, label.name, values)
    return frame


def _model_statement(
    model: type, statement: Select[Any], adapt: Callable[[Any], Any]
) -> tuple[Select[Any], list[Any], list[_LabelColumn]]:
    mapper: Mapper[Any] = inspect(model)
    base = [a.columns[0] for a in mapper.column_attrs]
    columns = [
        adapt(fast_column(c)).label(a.key) for a, c in zip(mapper.column_attrs, base, strict=True)
    ]
    labels = label_columns(model)
    selected = statement.with_only_columns(*columns)
    for i, label in enumerate(labels):
        for target, onclause in label.joins:
            selected = selected.outerjoin(target, adapt(onclause))
        selected = selected.add_columns(
            *(c.label(f"_label_{i}_{j}") for j, c in enumerate(label.extra))
        )
    return selected, base, labels


def model_frame(
    model: type, statement: Select[Any], *, adapt: Callable[[Any], Any] | None = None
) -> pd.DataFrame:
    """The rows of a ``select(model)`` statement as a typed DataFrame with FK label columns.

    Inside a run, the records in the frame are the run's inputs (see
    :mod:`lineage_nb.lineage.reads`), unless the statement is marked as not a read.

    Args:
        model: the mapped class.
        statement: ``select(model)`` with any filters, order, limit and offset.
        adapt: adapts the model's columns to the statement's source (``Model.as_of``).

    Returns:
        One row per record, one column per mapped column, plus a label column after each
        many-to-one foreign key; built from one query.
    """
    selected, base, labels = _model_statement(model, statement, adapt or (lambda c: c))
    mapper: Mapper[Any] = inspect(model)
    keys = [str(a.key) for a in mapper.column_attrs]
    key_names = {mapper.get_property_by_column(c).key for c in mapper.primary_key}
    key_positions = [i for i, name in enumerate(keys) if name in key_names]
    is_read = reads.NOT_A_READ not in statement.get_execution_options()

    def build(session: Session) -> pd.DataFrame:
        read = reads.begin_read(session) if is_read else None
        result = session.connection().execute(selected)
        names = list(result.keys())
        rows = result.all()
        if read is not None:
            reads.note_rows(read, model, rows, key_positions)
        extras = [c for label in labels for c in label.extra]
        frame = typed_frame(names, rows, base + extras)
        frame.columns = pd.Index(keys + names[len(keys) :])
        return _apply_labels(frame, labels)

    return run_sync(build)
