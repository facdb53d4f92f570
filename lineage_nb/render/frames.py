"""Pure frame building: typed pandas DataFrames and label columns from plain rows and SQL types.

Nothing here touches a database: the layers above run the query and hand the rows over. Integer
and boolean columns become ``int64``/``bool``, or ``Int64``/``boolean`` when the column is
nullable; timezone-aware timestamps become ``datetime64[..., UTC]``; enums become categories.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Column, String, type_coerce, types

__all__ = ["as_text", "fast_column", "run_label", "typed_frame", "with_lineage_labels"]


def as_text(values: pd.Series) -> pd.Series:
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("Int64").astype("string")
    return values.astype("string")


def _convert(series: pd.Series, column_type: Any, nullable: bool) -> pd.Series:
    impl = getattr(column_type, "impl_instance", column_type)
    missing = nullable or bool(series.isna().any())
    if isinstance(impl, types.Boolean):
        return series.astype("boolean") if missing else series.astype(bool)
    if isinstance(impl, types.Integer):
        return series.astype("Int64") if missing else series.astype("int64")
    if isinstance(impl, types.Float) or (isinstance(impl, types.Numeric) and not impl.asdecimal):
        return series.astype("float64")
    if isinstance(impl, types.DateTime):
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            return pd.to_datetime(series, utc=bool(impl.timezone), format="ISO8601")
        return pd.to_datetime(series, utc=bool(impl.timezone))
    if isinstance(impl, types.Enum):
        values = series.map(lambda v: v.value if isinstance(v, enum.Enum) else v)
        return values.astype("category")
    if isinstance(impl, (types.String, types.Text)):
        return series.astype("string")
    return series


def _nullable(column: Any) -> bool:
    element = getattr(column, "element", column)
    return bool(element.nullable) if isinstance(element, Column) else True


def typed_frame(
    names: Sequence[str], rows: Sequence[Sequence[Any]], columns: Sequence[Any]
) -> pd.DataFrame:
    """A DataFrame of ``rows`` whose dtypes follow the SQL ``columns`` (types and nullability).

    Examples:
        >>> from sqlalchemy import Column, Integer, String
        >>> cols = [Column("id", Integer, nullable=False), Column("n", Integer), Column("s", String)]
        >>> frame = typed_frame(["id", "n", "s"], [(1, 2, "a"), (2, None, "b"), (3, 4, None)], cols)
        >>> [str(t) for t in frame.dtypes]
        ['int64', 'Int64', 'string']
    """
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=list(names))
    for name, column in zip(names, columns, strict=True):
        frame[name] = _convert(frame[name], column.type, _nullable(column))
    return frame


def run_label(run_id: pd.Series, key: pd.Series, version: pd.Series) -> pd.Series:
    """``run 12 · analysis.ipynb v3`` for each run id, key and version."""
    return "run " + as_text(run_id) + " · " + key.astype("string") + " v" + version.astype("string")


def fast_column(column: Any) -> Any:
    """Timestamps travel as text on SQLite (parsed by pandas in one go), not one by one."""
    impl = getattr(column.type, "impl_instance", column.type)
    return type_coerce(column, String) if isinstance(impl, types.DateTime) else column


def with_lineage_labels(frame: pd.DataFrame, class_names: Mapping[str, str]) -> pd.DataFrame:
    """Add a ``record`` label after ``pk`` and a ``run`` label after ``run_id`` where possible.

    ``class_names`` maps table names to model class names (``sample`` → ``Sample``). Returns a
    new frame; ``frame`` is not changed.

    Examples:
        >>> import pandas as pd
        >>> f = pd.DataFrame({"run_id": pd.array([12, None, 3], "Int64"),
        ...                   "transform_key": ["a.ipynb", None, "b.py"],
        ...                   "transform_version": ["3", None, "1"]})
        >>> with_lineage_labels(f, {})["run"].tolist()
        ['run 12 · a.ipynb v3', <NA>, 'run 3 · b.py v1']
    """
    frame = frame.copy()
    if {"table", "pk"} <= set(frame.columns) and "record" not in frame.columns:
        classes = frame["table"].map(lambda t: class_names.get(t, t)).astype("string")
        frame.insert(
            list(frame.columns).index("pk") + 1,
            "record",
            classes + " " + frame["pk"].astype("string"),
        )
    wanted = {"run_id", "transform_key", "transform_version"}
    if wanted <= set(frame.columns) and "run" not in frame.columns:
        labels = run_label(frame["run_id"], frame["transform_key"], frame["transform_version"])
        frame.insert(
            list(frame.columns).index("run_id") + 1,
            "run",
            labels.astype("string").mask(frame["run_id"].isna()),
        )
    return frame
