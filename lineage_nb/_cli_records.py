"""Records and tables for the ``lineage-nb`` command: find, read, show and export them.

Works from a shell on any database: MODEL resolves to an ``ln.Model`` subclass when the user's
models are imported (``--models``), else to a table found by reflection.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from . import errors
from .db import Database

__all__ = [
    "UsageError",
    "changes_text",
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


class UsageError(errors.UsageError):
    """Bad arguments or an unreachable database: exit code 2, one line on stderr.

    The command line's own (it also covers a database it cannot reach); like every
    :class:`lineage_nb.errors.UsageError` that reaches ``main()``, it ends with exit code 2.
    """


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
    (for text the CLI itself laid out in lines).

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


def import_models(spec: str | None) -> None:
    """Import the user's models from a module name or a ``.py`` file, if given."""
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
    """The table of ``name``: an ``ln.Model`` class name or table name, else a table in ``db``."""
    from sqlalchemy import inspect

    from .orm.model import Model

    wanted = name.lower()
    for mapper in Model.registry.mappers:
        cls = mapper.class_
        table = getattr(cls, "__tablename__", None)
        if table and wanted in (cls.__name__.lower(), str(table).lower()):
            return str(table)
    tables = inspect(db.engine).get_table_names()
    for table in tables:
        if table.lower() == wanted:
            return table
    user_tables = ", ".join(t for t in sorted(tables) if not t.startswith(("lineage_", "alembic")))
    raise UsageError(f"no model or table named {name!r} (tables: {user_tables or 'none'})")


def _pk_values(table: Any, pk: str) -> list[tuple[Any, Any]]:
    columns = list(table.primary_key.columns)
    parts = pk.split(",") if len(columns) > 1 else [pk]
    if not columns or len(parts) != len(columns):
        raise UsageError(
            f"table {table.name!r} has {len(columns)} primary key column(s); got {pk!r}"
        )
    values = []
    for column, text in zip(columns, parts, strict=True):
        try:
            python_type = column.type.python_type
            value: Any = python_type(text) if python_type in (int, float) else text
        except (NotImplementedError, ValueError) as exc:
            if isinstance(exc, ValueError):
                raise UsageError(f"{table.name}.{column.name}: {text!r} is not valid") from exc
            value = text
        values.append((column, value))
    return values


def _mapped_table(name: str) -> Any:
    """The table ``name`` as lineage_nb's schema or an imported ``ln.Model`` declares it."""
    from .lineage.schema import LineageModel
    from .orm.model import Model

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

    from .orm.column_types import UTCDateTime

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
    """The row of ``table_name`` with primary key ``pk`` (text; composite keys joined by ``,``)."""
    from sqlalchemy import select

    table = view_table(db, table_name)
    statement = select(table)
    for column, value in _pk_values(table, pk):
        statement = statement.where(column == value)
    with db.engine.connect() as connection:
        row = connection.execute(statement).mappings().first()
    return dict(row) if row is not None else None


def history_frame(table_name: str, pk: str) -> Any:
    """Every event of record (``table_name``, ``pk``), oldest first, with transform and user."""
    from sqlalchemy import select

    from .lineage.frames import statement_frame
    from .lineage.schema import RecordEvent, Run, Transform, User

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


def changes_text(changes: Any) -> str:
    if not isinstance(changes, dict):
        return ""
    return "; ".join(f"{field}: {old!r} → {new!r}" for field, (old, new) in changes.items())


def record_object(db: Database, name: str, pk: str) -> Any:
    """A mapped object for (``name``, ``pk``): the user's model if imported, else automap."""
    from sqlalchemy.ext.automap import automap_base
    from sqlalchemy.orm import Session

    from .orm.model import Model

    table = resolve_table(db, name)
    for mapper in Model.registry.mappers:
        if getattr(mapper.class_, "__tablename__", None) == table:
            values = [value for _c, value in _pk_values(mapper.local_table, pk)]
            return mapper.class_.get(values[0] if len(values) == 1 else tuple(values))
    base = automap_base()
    base.prepare(autoload_with=db.engine, reflection_options={"only": [table]})
    cls = getattr(base.classes, table)
    values = [value for _c, value in _pk_values(cls.__table__, pk)]
    with Session(db.engine) as session:
        found = session.get(cls, values[0] if len(values) == 1 else tuple(values))
    if found is None:
        raise UsageError(f"no {table} record with primary key {pk}")
    return found
