"""Records and tables for the commands: find, read and show them as text a terminal can print.

Works on any database: MODEL resolves to an ``ln.Model`` subclass when the user's models are
imported (``--models``, or a notebook's own), else to a table found by reflection. Text from the
database is escaped (:func:`printable`): a stored value cannot drive the terminal.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from ..db import Database
from ..errors import UsageError
from ..lineage.schema import LineageModel
from ..orm.keys import pk_from_text
from ..orm.model import Model
from ..orm.registry import class_by_name, class_by_table

#: The declarative bases whose classes commands name: the user's models and lineage's own tables
#: (``show Run 3``, ``export --model Run``).
MODEL_BASES = (Model, LineageModel)

__all__ = [
    "changes_text",
    "first_line",
    "history_frame",
    "import_models",
    "printable",
    "read_row",
    "record_object",
    "resolve_table",
    "table_text",
    "view_table",
]

#: Terminal control characters: C0 (tab, newline and carriage return included), DEL and C1.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (the driver's own error for SQLAlchemy errors)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\x{ord(char):02x}"


def printable(value: Any, *, newlines: bool = False) -> str:
    """``str(value)`` with every terminal control character written as a visible escape.

    ESC, BEL, carriage return, tab, the other C0 controls, DEL and the C1 controls become
    ``\\x1b``, ``\\x07``, ``\\r``, ``\\t``, ... so text from the database cannot move the
    cursor, recolour or retitle the terminal, or forge a line. ``newlines=True`` keeps ``\\n``
    (for text the command itself laid out in lines).

    Examples:
        >>> printable("red\\x1b[31m\\rX\\n")
        'red\\\\x1b[31m\\\\rX\\\\n'
        >>> printable("a\\nb", newlines=True)
        'a\\nb'
    """
    text = str(value)
    if newlines:
        return "\n".join(_CONTROL.sub(_escape, line) for line in text.split("\n"))
    return _CONTROL.sub(_escape, text)


def table_text(frame: Any) -> str:
    """A readable text table: datetimes to the second, no index, control characters escaped."""
    import pandas as pd

    shown = frame.copy()
    for name in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[name]):
            shown[name] = shown[name].dt.strftime("%Y-%m-%d %H:%M:%S").fillna("")
        elif not pd.api.types.is_numeric_dtype(shown[name]):
            shown[name] = shown[name].map(
                lambda v: printable(v) if isinstance(v, str) else v, na_action="ignore"
            )
    shown.columns = [printable(name) for name in shown.columns]
    return str(shown.to_string(index=False, na_rep=""))


def changes_text(changes: Any) -> str:
    """An event's ``changes`` as ``field: old → new`` parts joined by ``; `` (else empty)."""
    if not isinstance(changes, dict):
        return ""
    return "; ".join(f"{field}: {old!r} → {new!r}" for field, (old, new) in changes.items())


def import_models(spec: str | None) -> None:
    """Import the user's models from a module name or a ``.py`` file, if given.

    Raises:
        UsageError: the module cannot be imported (the first line of why).
    """
    if not spec:
        return
    import importlib
    import importlib.util

    path = Path(spec)
    try:
        if path.suffix == ".py":
            loaded = sys.modules.get(path.stem)
            if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == (
                path.resolve()
            ):
                return  # already imported (e.g. by the notebook or test session)
            sys.path.insert(0, str(path.resolve().parent))
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"cannot load {spec}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[path.stem] = module
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except Exception as exc:
        raise UsageError(f"cannot import models from {spec!r}: {first_line(exc)}") from exc


def resolve_table(db: Database, name: str) -> str:
    """The table of ``name``: an ``ln.Model`` class name or table name, else a table in ``db``.

    Raises:
        UsageError: no imported model and no table of ``db`` has that name (ignoring case).
    """
    from sqlalchemy import inspect

    cls = class_by_name(name, *MODEL_BASES)
    if cls is not None:
        return str(inspect(cls).local_table.name)
    wanted = name.lower()
    tables = inspect(db.engine).get_table_names()
    for table in tables:
        if table.lower() == wanted:
            return table
    user_tables = ", ".join(t for t in sorted(tables) if not t.startswith(("lineage_", "alembic")))
    raise UsageError(f"no model or table named {name!r} (tables: {user_tables or 'none'})")


def _mapped_table(name: str) -> Any:
    """The table ``name`` as lineage_nb's schema or an imported ``ln.Model`` declares it."""
    for metadata in (LineageModel.metadata, Model.metadata):
        if name in metadata.tables:
            return metadata.tables[name]
    return None


def view_table(db: Database, name: str) -> Any:
    """Table ``name`` reflected from ``db``, its timestamps typed as lineage_nb writes them.

    Reflection cannot see that a SQLite ``DATETIME`` column holds UTC: it would read lineage_nb's
    aware timestamps back naive (PostgreSQL's ``timestamptz`` says so itself). A column gets
    its model's type when lineage_nb's schema or an imported model declares it, and a lineage
    stamp column (default ``lineage_nb_now()``, always UTC) gets ``UTCDateTime`` otherwise.
    """
    from sqlalchemy import DateTime, MetaData, Table

    from ..orm.column_types import UTCDateTime

    table = Table(name, MetaData(), autoload_with=db.engine)
    mapped = _mapped_table(name)
    for column in table.columns:
        if not isinstance(column.type, DateTime):
            continue
        declared = mapped.columns.get(column.name) if mapped is not None else None
        if declared is not None and isinstance(declared.type, (DateTime, UTCDateTime)):
            column.type = declared.type
        elif db.engine.dialect.name == "sqlite":
            default = getattr(column.server_default, "arg", None)
            if "lineage_nb_now(" in str(getattr(default, "text", default) or ""):
                column.type = UTCDateTime()
    return table


def read_row(db: Database, table_name: str, pk: str) -> dict[str, Any] | None:
    """The row of ``table_name`` with primary key ``pk`` (text; composite keys joined by ``,``).

    Raises:
        UsageError: ``pk`` does not fit the table's primary key.
    """
    from sqlalchemy import select

    table = view_table(db, table_name)
    statement = select(table)
    for column, value in zip(table.primary_key.columns, pk_from_text(table, pk), strict=True):
        statement = statement.where(column == value)
    with db.engine.connect() as connection:
        row = connection.execute(statement).mappings().first()
    return dict(row) if row is not None else None


def history_frame(table_name: str, pk: str) -> Any:
    """Every event of record (``table_name``, ``pk``), oldest first, with transform and user."""
    from sqlalchemy import select

    from ..lineage.frames import statement_frame
    from ..lineage.schema import RecordEvent, Run, Transform, User

    statement = (
        select(
            RecordEvent.id.label("event"),
            RecordEvent.at,
            RecordEvent.action,
            RecordEvent.run_id.label("run"),
            Transform.key.label("transform"),
            Transform.version,
            RecordEvent.cell,
            User.handle.label("user"),
            RecordEvent.changes,
        )
        .outerjoin(Run, Run.id == RecordEvent.run_id)
        .outerjoin(Transform, Transform.id == Run.transform_id)
        .join(User, User.id == RecordEvent.user_id)
        .where(RecordEvent.table == table_name, RecordEvent.pk == pk)
        .order_by(RecordEvent.id)
    )
    return statement_frame(statement)


def _one_key(values: tuple[Any, ...]) -> Any:
    return values[0] if len(values) == 1 else values


def record_object(db: Database, name: str, pk: str) -> Any:
    """A mapped object for (``name``, ``pk``): the user's model if imported, else automap.

    Raises:
        UsageError: no such table, or ``pk`` does not fit its key, or (automap) no such record.
        lineage_nb.errors.NotFound: the imported model has no record with that key.
    """
    from sqlalchemy.ext.automap import automap_base
    from sqlalchemy.orm import Session

    table = resolve_table(db, name)
    model: Any = class_by_table(table, *MODEL_BASES)
    if model is not None:
        return model.get(_one_key(pk_from_text(model, pk)))
    base = automap_base()
    base.prepare(autoload_with=db.engine, reflection_options={"only": [table]})
    cls = getattr(base.classes, table)
    with Session(db.engine) as session:
        found = session.get(cls, _one_key(pk_from_text(cls.__table__, pk)))
    if found is None:
        raise UsageError(f"no {table} record with primary key {pk}")
    return found
