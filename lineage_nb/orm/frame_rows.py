"""A pandas DataFrame as rows for ``bulk_create``: validated column by column, chunked.

Each frame column is a model field. A column is checked once as a whole (missing values where
the field is required, an integer column's range, integral floats for an integer field — pandas
turns an integer column with gaps into floats; for a float field the values its check may refuse,
such as ±inf on SQLite; nanoseconds in a datetime column) and, where the dtype cannot vouch for
the values (text, objects), value by value with the field's own check; an error names the column, the first
bad row (its position and index label) and the value. Missing values (``NaN``, ``NaT``, ``None``,
``pd.NA``) are stored as NULL, as ``DataFrame.to_sql`` does.

Rows come out in chunks of plain Python values so memory stays flat however long the frame is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, types
from sqlalchemy.orm import Mapper

from ..errors import ValidationError, short_repr
from . import validation

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CHUNK_ROWS", "frame_chunks", "is_frame"]

#: Rows converted and inserted at a time.
CHUNK_ROWS = 10_000


def is_frame(records: Any) -> bool:
    """Whether ``records`` is a pandas DataFrame (without importing pandas when it is not)."""
    module = type(records).__module__
    if not module.startswith("pandas"):
        return False
    import pandas as pd

    return isinstance(records, pd.DataFrame)


def _field_keys(model: type, frame: pd.DataFrame, refused: frozenset[str]) -> list[str]:
    """The frame's columns as field keys; unknown, duplicate or lineage-owned columns refused."""
    mapper: Mapper[Any] = inspect(model)
    known = [attr.key for attr in mapper.column_attrs]
    names = [str(c) for c in frame.columns]
    for position, name in enumerate(names):
        problem = None
        if name in names[:position]:
            problem = (
                "appears twice in the DataFrame's columns.",
                "Drop or rename one of the two columns.",
            )
        elif name in refused:
            problem = (
                (
                    "is filled in by lineage_nb when the row is written; it cannot come from the "
                    "DataFrame."
                ),
                f"Drop it first: frame.drop(columns=[{name!r}]).",
            )
        elif name not in known:
            problem = (
                f"is not a field of {model.__name__}. Known fields: {', '.join(known)}.",
                "Rename the column to a field name, or drop it.",
            )
        if problem is not None:
            message, hint = problem
            raise ValidationError(
                {name: [message]}, model=model.__name__, field=name, value=name, hint=hint
            )
    return names


def _bad(
    model: type, key: str, chunk: pd.DataFrame, start: int, position: int, value: Any, message: str
) -> ValidationError:
    """The error about row ``position`` of ``chunk`` (row ``start + position`` of the frame)."""
    label = chunk.index[position]
    return ValidationError(
        {key: [f"row {start + position} (index {short_repr(label)}): {message}"]},
        model=model.__name__,
        field=key,
        value=value,
        hint="Fix that row (only the first bad one is named); nothing was written.",
    )


def _python_values(series: pd.Series[Any], missing: Any) -> list[Any]:
    """Plain Python values of ``series`` (numpy scalars and Timestamps converted), None if missing."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        converted = series.dt.to_pydatetime()
        return [None if m else v for m, v in zip(missing, converted, strict=True)]
    if not missing.any() and series.dtype.kind in "iufb":
        return series.tolist()
    return [None if m else v for m, v in zip(missing, series.astype(object).tolist(), strict=True)]


def _float_suspects(series: pd.Series[Any], missing: Any, single: bool) -> Any:
    """Positions of a numeric column's values a Float field's check may refuse: ±inf, integers
    a float does not hold exactly, and (``single``) values a 4-byte REAL would change."""
    import numpy as np

    present = np.flatnonzero(~missing)
    kind = series.dtype.kind
    numbers = series.iloc[present].to_numpy(
        dtype={"f": np.float64, "i": np.int64, "u": np.uint64}[kind]
    )
    limit = validation.FLOAT_EXACT_INT
    if kind == "f":
        suspect = np.isinf(numbers)
    elif kind == "i":
        suspect = (numbers > limit) | (numbers < -limit)
    else:
        suspect = numbers > limit
    if single:
        doubles = numbers.astype(np.float64)
        with np.errstate(over="ignore"):
            suspect |= doubles.astype(np.float32).astype(np.float64) != doubles
    return present[suspect]


def _column_values(
    model: type, spec: validation.FieldSpec, chunk: pd.DataFrame, start: int, dialect: str
) -> list[Any]:
    """The checked Python values of one column of a chunk; ``start`` is the chunk's first row."""
    import pandas as pd

    series = chunk[spec.key]
    missing = series.isna().to_numpy()
    if spec.required and missing.any():
        raise _bad(
            model,
            spec.key,
            chunk,
            start,
            int(missing.argmax()),
            None,
            "this field cannot be null (the value is missing). Give it a value.",
        )
    if spec.check is not None and series.dtype.kind == "M":
        # to_pydatetime() would drop nanoseconds silently: check the first Timestamp with some
        with_nanoseconds = ~missing & (series.dt.nanosecond.fillna(0) != 0).to_numpy()
        if with_nanoseconds.any():
            position = int(with_nanoseconds.argmax())
            value = series.iloc[position]
            message = spec.check(value)
            if message is not None:
                raise _bad(model, spec.key, chunk, start, position, value, message)
    impl: Any = getattr(spec.column.type, "impl_instance", spec.column.type)
    integer_field = isinstance(impl, types.Integer) and not isinstance(impl, types.Boolean)
    if integer_field and pd.api.types.is_float_dtype(series.dtype):
        # an integer column with gaps arrives as floats: whole numbers are integers again
        fractional = ~missing & (series.fillna(0) % 1 != 0).to_numpy()
        if fractional.any():
            position = int(fractional.argmax())
            value = series.iloc[position]
            raise _bad(
                model,
                spec.key,
                chunk,
                start,
                position,
                value,
                f"expected an integer, got {short_repr(value)}.",
            )
        series = series.astype("Int64")
    values = _python_values(series, missing)
    if spec.check is None:
        return values
    kind = series.dtype.kind
    if isinstance(impl, types.Boolean) and kind == "b":
        return values  # the dtype vouches for every value
    if isinstance(impl, types.Float) and kind in "fiu":
        # the dtype vouches for the type; the check runs on the few values it may refuse
        single = validation.float_is_single(impl, dialect)
        for position in _float_suspects(series, missing, single).tolist():
            message = spec.check(values[position])
            if message is not None:
                raise _bad(model, spec.key, chunk, start, position, values[position], message)
        return values
    if integer_field and kind in "iu":  # only the range can be wrong: min and max decide it
        present = series[~missing]
        if present.empty or all(spec.check(int(v)) is None for v in (present.min(), present.max())):
            return values
    check = spec.check
    for position, value in enumerate(values):
        if value is not None:
            message = check(value)
            if message is not None:
                raise _bad(model, spec.key, chunk, start, position, value, message)
    return values


def frame_chunks(
    model: type, frame: pd.DataFrame, *, dialect: str, refused: frozenset[str]
) -> Iterator[list[dict[str, Any]]]:
    """Row dicts of ``frame`` for ``model``, ``CHUNK_ROWS`` at a time, each chunk validated.

    A required field missing from the frame's columns is an error before any row is read.
    """
    keys = _field_keys(model, frame, refused)
    specs = {s.key: s for s in validation.field_specs(model, dialect)}
    absent = [s.key for s in specs.values() if s.required and s.key not in keys]
    if absent:
        raise ValidationError(
            {k: ["is required and the DataFrame has no such column."] for k in absent},
            model=model.__name__,
            field=absent[0],
            value=None,
            hint=f"Add the column{'s' if len(absent) > 1 else ''} {', '.join(absent)}.",
        )
    for start in range(0, len(frame), CHUNK_ROWS):
        chunk = frame.iloc[start : start + CHUNK_ROWS]
        columns = [_column_values(model, specs[k], chunk, start, dialect) for k in keys]
        yield [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
