"""CSV and Parquet files from any DataFrame view: a model, a query, a run, a record's history.

Nested values (``dict``/``list``, e.g. ``RecordEvent.changes``) are written as JSON text and
enums as their values, so every column has one plain type. ``to_csv`` also writes a small
``<file>.dtypes.json`` beside the CSV so :func:`read_csv` restores the pandas dtypes exactly
(Parquet keeps them by itself). Timezone-aware timestamps are written with their offset
(``2024-05-01 12:00:00+00:00``) and read back aware, in the column's zone (UTC for lineage_nb's).

Examples:
    >>> import pandas as pd, tempfile, pathlib
    >>> frame = pd.DataFrame({"id": [1, 2, 3], "changes": [{"a": [None, 1]}, None, {"b": [1, 2]}]})
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "events.csv"
    >>> _ = to_csv(frame, path)
    >>> read_csv(path)["changes"].tolist()
    ['{"a": [null, 1]}', nan, '{"b": [1, 2]}']
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigurationError, UsageError
from ..lineage.reads import untracked_reads
from ._progress import progress

__all__ = ["dtypes_path", "frame_of", "read_csv", "to_csv", "to_parquet"]

#: Rows written per chunk (and per Parquet row group); the progress bar advances per chunk.
CHUNK_ROWS = 50_000


def frame_of(obj: Any) -> pd.DataFrame:
    """The DataFrame view of ``obj``.

    Args:
        obj: a ``pd.DataFrame``; a model class or ``Query`` (``.df()``); an ``ln.Run`` (its
            ``records_df()``, every event it wrote); a tracked record (its ``history_df()``).

    Returns:
        The DataFrame (the object itself when it already is one).

    Raises:
        UsageError: ``obj`` has no DataFrame view.
    """
    if isinstance(obj, pd.DataFrame):
        return obj
    from ..lineage.schema import Run

    if isinstance(obj, Run):
        return obj.records_df()
    if isinstance(obj, type) or (hasattr(obj, "df") and not hasattr(obj, "history_df")):
        df = getattr(obj, "df", None)
        if callable(df):
            with untracked_reads():  # exporting records is not using them: not the run's inputs
                return df()  # type: ignore[no-any-return]
    history_df = getattr(obj, "history_df", None)
    if callable(history_df):
        return history_df()  # type: ignore[no-any-return]
    raise UsageError(
        f"Cannot export {type(obj).__name__} {obj!r:.60}: it has no DataFrame view.",
        value=obj,
        hint="Pass a DataFrame, a model class, a query (Model.filter(...)), a run or a record.",
    )


def _plain(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        from ..lineage.stamping import json_safe

        return json.dumps(json_safe(value), sort_keys=True)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _flatten(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose columns hold no dicts, lists or enums: such columns become text (JSON for
    nested values, the value for enums), with pandas' string dtype."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if column.dtype != object:
            continue
        nested = column.map(lambda v: isinstance(v, (dict, list, tuple, enum.Enum)))
        if nested.any():
            plain = column.map(_plain, na_action="ignore")
            out[name] = plain.astype("str").where(plain.notna(), None)
    return out


def dtypes_path(path: str | Path) -> Path:
    """Where :func:`to_csv` keeps the dtypes of ``path`` (``data.csv`` → ``data.csv.dtypes.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".dtypes.json")


def _chunks(frame: pd.DataFrame, desc: str, show: bool | None) -> Any:
    total = max(1, -(-len(frame) // CHUNK_ROWS))
    with progress(len(frame), desc, enabled=show, unit="rows") as bar:
        for index in range(total):
            chunk = frame.iloc[index * CHUNK_ROWS : (index + 1) * CHUNK_ROWS]
            yield index, chunk
            bar.update(len(chunk))


def to_csv(obj: Any, path: str | Path, *, progress: bool | None = None) -> Path:
    """Write the DataFrame view of ``obj`` to a CSV file (UTF-8, header, no index).

    Args:
        obj: anything :func:`frame_of` accepts.
        path: the CSV file to write (overwritten).
        progress: show a progress bar; default only when stderr is a terminal.

    Returns:
        ``path`` as a ``Path``. ``<path>.dtypes.json`` records the column dtypes.
    """
    frame = _flatten(frame_of(obj))
    path = Path(path)
    for index, chunk in _chunks(frame, f"CSV {path.name}", progress):
        chunk.to_csv(path, mode="w" if index == 0 else "a", header=index == 0, index=False)
    dtypes = {str(name): str(dtype) for name, dtype in frame.dtypes.items()}
    dtypes_path(path).write_text(json.dumps(dtypes, indent=1), encoding="utf-8")
    return path


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV written by :func:`to_csv` back with the dtypes it had.

    Args:
        path: the CSV file; its ``.dtypes.json`` is used when present.

    Returns:
        The DataFrame (plain ``pd.read_csv`` when no dtypes file exists).
    """
    sidecar = dtypes_path(path)
    if not sidecar.exists():
        return pd.read_csv(path)
    dtypes: dict[str, str] = json.loads(sidecar.read_text(encoding="utf-8"))
    dates = {name: dtype for name, dtype in dtypes.items() if dtype.startswith("datetime64")}
    plain: dict[str, Any] = {
        name: ("str" if dtype == "str" else dtype)
        for name, dtype in dtypes.items()
        if name not in dates
    }
    frame = pd.read_csv(path, dtype=plain, keep_default_na=True)
    for name, dtype in dates.items():
        frame[name] = _timestamps(frame[name], pd.api.types.pandas_dtype(dtype))
    for name, dtype in dtypes.items():
        if dtype == "object":
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def _timestamps(text: pd.Series, dtype: Any) -> pd.Series:
    """Timestamps of ``dtype`` from their CSV text: an aware column's text carries its offset
    (``+00:00`` for UTC), read as the instant it names and shown in the column's zone."""
    tz = getattr(dtype, "tz", None)
    if tz is None:
        return pd.to_datetime(text, format="ISO8601").astype(dtype)
    moments = pd.to_datetime(text, utc=True, format="ISO8601").dt.tz_convert(tz)
    return moments.astype(dtype)


def to_parquet(obj: Any, path: str | Path, *, progress: bool | None = None) -> Path:
    """Write the DataFrame view of ``obj`` to a Parquet file with pyarrow (dtypes preserved).

    The arguments are those of :func:`to_csv`, ``path`` being the Parquet file to write.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ConfigurationError: pyarrow is not installed.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is in the export extra
        raise ConfigurationError(
            "Parquet export needs pyarrow.", hint="pip install 'lineage_nb[export]'"
        ) from exc
    frame = _flatten(frame_of(obj))
    path = Path(path)
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    with pq.ParquetWriter(path, schema) as writer:
        for _index, chunk in _chunks(frame, f"Parquet {path.name}", progress):
            table = pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
            writer.write_table(table)
    return path
