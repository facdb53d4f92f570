"""Build pandas DataFrames from SQL results with dtypes taken from the column types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import types

__all__ = ["frame_from_rows"]


def _convert(series: pd.Series, column_type: Any) -> pd.Series:
    impl = getattr(column_type, "impl_instance", column_type)
    if isinstance(impl, types.Boolean):
        return series.astype("boolean") if series.isna().any() else series.astype(bool)
    if isinstance(impl, types.Integer):
        return series.astype("Int64") if series.isna().any() else series.astype("int64")
    if isinstance(impl, types.Float):
        return series.astype("float64")
    if isinstance(impl, types.DateTime):
        return pd.to_datetime(series, utc=bool(impl.timezone))
    return series


def frame_from_rows(
    names: Sequence[str], rows: Sequence[Sequence[Any]], column_types: Sequence[Any]
) -> pd.DataFrame:
    """A DataFrame with ``names`` as columns; integers stay integers (``Int64`` when nullable),
    timezone-aware datetimes become ``datetime64[ns, UTC]``.

    Examples:
        >>> from sqlalchemy import Integer, String
        >>> frame = frame_from_rows(["id", "name"], [(1, "a"), (2, None), (3, "c")],
        ...                         [Integer(), String()])
        >>> str(frame["id"].dtype)
        'int64'
    """
    frame = pd.DataFrame.from_records([tuple(row) for row in rows], columns=list(names))
    if len(frame) == 0:
        return frame
    for name, column_type in zip(names, column_types, strict=True):
        frame[name] = _convert(frame[name], column_type)
    return frame
