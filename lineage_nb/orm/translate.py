"""Turn SQLAlchemy and driver errors into lineage_nb errors that name the model, field and value."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect
from sqlalchemy.orm import exc as orm_exc

from ..errors import (
    ConfigurationError,
    IntegrityError,
    LineageError,
    NotFound,
    OperationalError,
    PermissionDenied,
    short_repr,
)

__all__ = ["is_disconnect", "is_retryable", "translate"]

_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: ([\w.,\s]+)")
_SQLITE_NOT_NULL = re.compile(r"NOT NULL constraint failed: ([\w.]+)")
_PG_KEY = re.compile(r"Key \(([^)]*)\)=\((.*)\)")
_PG_NOT_NULL = re.compile(r'null value in column "(\w+)"')


def _field_of(instances: Sequence[Any], column: str) -> tuple[str | None, str | None, Any]:
    """Find (model name, attribute key, value) for a column name among the written instances."""
    for obj in instances:
        mapper = inspect(type(obj), raiseerr=False)
        if mapper is None:
            continue
        for attr in mapper.column_attrs:
            if attr.columns[0].name == column:
                return type(obj).__name__, attr.key, inspect(obj).dict.get(attr.key)
    return (type(instances[0]).__name__ if instances else None), column, None


def _foreign_key_culprit(instances: Sequence[Any]) -> tuple[str | None, str | None, Any]:
    """SQLite does not say which foreign key failed: report the first one set on the record."""
    for obj in instances:
        mapper = inspect(type(obj), raiseerr=False)
        if mapper is None:
            continue
        for attr in mapper.column_attrs:
            column = attr.columns[0]
            value = inspect(obj).dict.get(attr.key)
            if column.foreign_keys and value is not None:
                return type(obj).__name__, attr.key, value
    return None, None, None


def translate(error: BaseException, instances: Sequence[Any] = ()) -> LineageError:
    """Our error for a SQLAlchemy/driver error raised while writing ``instances``."""
    message = str(getattr(error, "orig", None) or error)
    if isinstance(error, sa_exc.IntegrityError):
        return _integrity(message, instances)
    if isinstance(error, orm_exc.StaleDataError) or "0 were matched" in message:
        model = type(instances[0]).__name__ if instances else "record"
        return NotFound(
            f"{model} row no longer exists in the database: it was deleted since it was read "
            f"({message.splitlines()[0]}). Nothing was written.",
            model=model,
            hint="To store it again with its key and values, call save(force_insert=True).",
        )
    if (operational := _operational(error, message)) is not None:
        return operational
    if getattr(getattr(error, "orig", None), "sqlstate", None) == "42501":  # PG: not allowed
        refused = type(instances[0]).__name__ if instances else None
        return PermissionDenied(
            f"The database refused this for your login role: {message.splitlines()[0]}",
            model=refused,
            hint="Nothing was written. Lineage is insert-only and authorship comes from the "
            "login (lineage-nb setup-postgres); ask the administrator if you need more.",
        )
    if isinstance(error, sa_exc.ResourceClosedError) or any(
        marker in message.lower() for marker in _CLOSED
    ):
        return ConfigurationError(
            f"The database connection is closed ({message.splitlines()[0]}).",
            hint="Call ln.connect() again.",
        )
    return LineageError(message.splitlines()[0] if message else type(error).__name__)


_DISCONNECT = (
    "server closed the connection",
    "terminating connection",
    "connection refused",
    "could not connect",
    "consuming input failed",
    "the connection is lost",
    "connection is bad",
)
#: What drivers say when the connection object itself was closed (not any text with "closed").
_CLOSED = (
    "cannot operate on a closed database",
    "the connection is closed",
    "connection is closed",
    "this connection is closed",
)
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
_NOTHING_WRITTEN = "The transaction was rolled back: nothing of it was written."


def is_retryable(error: BaseException) -> bool:
    """True when the backend asks to run the transaction again (SQLite busy, PG serialization)."""
    if not isinstance(error, sa_exc.DBAPIError) or error.connection_invalidated:
        return False
    orig = error.orig
    if getattr(orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
        return True
    text = str(orig).lower()
    return "database is locked" in text or "database table is locked" in text


def is_disconnect(error: BaseException) -> bool:
    """True when the error says the connection to the server was lost."""
    lowered = str(getattr(error, "orig", None) or error).lower()
    return any(marker in lowered for marker in _DISCONNECT)


def _operational(error: BaseException, message: str) -> OperationalError | None:
    """Our error for a lost connection, a full disk, a read-only or corrupt database file."""
    lowered = message.lower()
    first = message.splitlines()[0] if message else type(error).__name__
    invalidated = isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated
    if invalidated or is_disconnect(error):
        return OperationalError(
            f"Lost the connection to the database ({first}). {_NOTHING_WRITTEN}",
            hint="Run the call again: the next one reconnects once the server is back.",
        )
    if "disk is full" in lowered or "no space left on device" in lowered or "disk full" in lowered:
        return OperationalError(
            f"The disk holding the database is full ({first}). {_NOTHING_WRITTEN}",
            hint="Free disk space (or move the database to a larger disk) and run it again.",
        )
    if "readonly database" in lowered or "read-only" in lowered:
        return OperationalError(
            f"The database is read-only ({first}). {_NOTHING_WRITTEN}",
            hint="Check the file's (and its directory's) permissions, or connect to a writable "
            "copy.",
        )
    # SQLite's own words only: "malformed" alone is also in e.g. "malformed JSON" (a value).
    if "file is not a database" in lowered or "database disk image is malformed" in lowered:
        return OperationalError(
            f"The database file is corrupt or not a SQLite database ({first}). {_NOTHING_WRITTEN}",
            hint="Restore it from a backup, or connect to another file.",
        )
    if is_retryable(error):
        return OperationalError(
            f"The database was busy with other writers ({first}). {_NOTHING_WRITTEN}",
            hint="Run it again; keep write transactions (ln.atomic() blocks) short.",
        )
    return None


#: What each refused write says; ``{value}`` is the value's short repr, ``{first}`` the database's
#: first line.
_REFUSED = {
    "unique": "{model}.{field}: {value} is already taken (unique). Choose another value or update "
    "the existing record.",
    "foreign key": "{model}.{field}: no related row for {value} (foreign key). Save the related "
    "record first or use an existing id.",
    "not null": "{model}.{field}: cannot be null. Give it a value.",
    "referenced": "{model} {value} is still referenced by other rows ({first}). Delete or re-point "
    "those first.",
}


def _refused(
    kind: str, found: tuple[str | None, str | None, Any], first: str = ""
) -> IntegrityError:
    """The error for a write refused as ``kind`` (a key of :data:`_REFUSED`) about ``found``:
    (model, field, value); a NULL field's error carries no value."""
    model, field, value = found
    message = _REFUSED[kind].format(model=model, field=field, value=short_repr(value), first=first)
    if kind == "not null":
        return IntegrityError(message, model=model, field=field)
    return IntegrityError(message, model=model, field=field, value=value)


def _integrity(message: str, instances: Sequence[Any]) -> IntegrityError:
    first = message.splitlines()[0]
    if match := _SQLITE_UNIQUE.search(message):
        column = match.group(1).split(",")[0].strip().split(".")[-1]
        return _refused("unique", _field_of(instances, column))
    if match := _SQLITE_NOT_NULL.search(message):
        return _refused("not null", _field_of(instances, match.group(1).split(".")[-1]))
    if "FOREIGN KEY constraint failed" in message:
        return _refused("foreign key", _foreign_key_culprit(instances))
    if match := _PG_KEY.search(message):
        column = match.group(1).split(",")[0].strip()
        model, field, value = _field_of(instances, column)
        shown = (model, field, value if value is not None else match.group(2))
        if "is not present in table" in message:
            return _refused("foreign key", shown)
        if "is still referenced" in message:
            return _refused("referenced", shown, first)
        return _refused("unique", shown)
    if match := _PG_NOT_NULL.search(message):
        return _refused("not null", _field_of(instances, match.group(1)))
    model = type(instances[0]).__name__ if instances else None
    return IntegrityError(f"{model or 'The database'} refused the write: {first}", model=model)
