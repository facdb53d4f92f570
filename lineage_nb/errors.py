"""Exceptions raised by lineage_nb.

Every error derives from :class:`LineageError` and from the closest built-in exception, so
``except ValueError`` and ``except ln.errors.LineageError`` both work. Errors keep what they
are about (``model``, ``field``, ``value``, ``hint``) as attributes and pickle cleanly.

The tree (built-in bases in parentheses)::

    LineageError                          every error lineage_nb raises
    ├── UsageError (ValueError)           the call cannot work as written (conflicting or
    │                                     unknown options, an argument of the wrong kind, a
    │                                     sync call in an async block): fix the calling code
    ├── ValidationError (ValueError)      a value is not acceptable (a field's, a filter's, a
    │                                     point in time, an anchor); nothing was written
    ├── NotFound (LookupError)            the record does not exist (or no longer exists)
    ├── MultipleFound (LookupError)       a query meant to match one record matched several
    ├── IntegrityError                    the database refused a write: unique, foreign key,
    │                                     NULL, check
    ├── ModelPersistenceError             the operation needs a stored record (a primary key)
    ├── PermissionDenied                  the database refused it for the login role
    │                                     (PostgreSQL SQLSTATE 42501: a team database's rules)
    ├── ConfigurationError (RuntimeError) not set up for this: no database connected, bad URL,
    │   │                                 closed database, missing optional package
    │   └── NoRunError                    the operation needs an open run and none is open
    └── OperationalError (RuntimeError)   the database could not carry it out: connection
                                          lost, locked, disk full, read-only

Besides errors there is one warning, :class:`LineageWarning` (a ``UserWarning``): lineage_nb
did something on the user's behalf they should know of (finished or aborted a run, ignored an
argument the database decides); ``warnings.filterwarnings`` picks it by class.

Examples:
    >>> err = ValidationError({"name": ["412 characters, at most 100 allowed"]}, model="Sample")
    >>> err.field, isinstance(err, ValueError)
    ('name', True)
    >>> isinstance(UsageError("save(): force_insert and force_update cannot both be true."),
    ...            ValueError)
    True
    >>> issubclass(NoRunError, ConfigurationError)
    True
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "IntegrityError",
    "LineageError",
    "LineageWarning",
    "ModelPersistenceError",
    "MultipleFound",
    "NoRunError",
    "NotFound",
    "OperationalError",
    "PermissionDenied",
    "UsageError",
    "ValidationError",
]

NON_FIELD_ERRORS = "__all__"


def short_repr(value: Any, limit: int = 40) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters with an ellipsis, for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LineageError(Exception):
    """Base class of every error lineage_nb raises.

    Args:
        message: the human sentence; it says what went wrong and what to do.
        model: name of the model class concerned, if any.
        field: name of the field concerned, if any.
        value: the offending value, if any.
        hint: what the user can do about it.
    """

    def __init__(
        self,
        message: str = "",
        *,
        model: str | None = None,
        field: str | None = None,
        value: Any = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.model = model
        self.field = field
        self.value = value
        self.hint = hint
        super().__init__(self._full_message())

    def _full_message(self) -> str:
        if self.hint and self.hint not in self.message:
            return f"{self.message} {self.hint}".strip()
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[LineageError], state: dict[str, Any]) -> LineageError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, err._full_message())
    return err


class ValidationError(LineageError, ValueError):
    """One or more field values are not acceptable; nothing was written.

    ``error_dict`` maps each bad field name to a list of messages. ``field`` and ``value`` name the
    first bad field and its value.
    """

    def __init__(
        self,
        errors: dict[str, list[str]] | str,
        *,
        model: str | None = None,
        field: str | None = None,
        value: Any = None,
        hint: str | None = None,
    ) -> None:
        if isinstance(errors, str):
            errors = {field or NON_FIELD_ERRORS: [errors]}
        self.error_dict: dict[str, list[str]] = {k: list(v) for k, v in errors.items()}
        first = next(iter(self.error_dict), None)
        field = field if field is not None else first
        prefix = f"{model}." if model else ""
        parts = [
            f"{prefix}{name}: {'; '.join(msgs)}" if name != NON_FIELD_ERRORS else "; ".join(msgs)
            for name, msgs in self.error_dict.items()
        ]
        super().__init__(" | ".join(parts), model=model, field=field, value=value, hint=hint)

    @property
    def messages(self) -> list[str]:
        """All messages, flattened."""
        return [m for msgs in self.error_dict.values() for m in msgs]


class NotFound(LineageError, LookupError):
    """The requested record does not exist (or no longer exists) in the database."""


class MultipleFound(LineageError, LookupError):
    """A query that should match one record matched several."""


class IntegrityError(LineageError):
    """The database refused a write: duplicate key, missing foreign key row, NULL, check."""


class ModelPersistenceError(LineageError):
    """The operation needs a stored record (a primary key) and the instance has none."""


class UsageError(LineageError, ValueError):
    """The call cannot work as written; nothing was done.

    Conflicting or unknown options (``save(force_insert=True, force_update=True)``, an unknown
    PROV format, a misspelt isolation level), an argument of the wrong kind (exporting an object
    that has no DataFrame view), or an API used where it cannot run (a sync method inside
    ``async with ln.atomic()``). The fix is in the calling code. It is a ``ValueError``, so code
    that caught the bare ``ValueError`` lineage_nb raised before keeps working.
    """


class PermissionDenied(LineageError):
    """The database refused the statement for the login role; nothing was written.

    PostgreSQL's SQLSTATE 42501 (insufficient privilege): a member of a team database writing
    as someone else, editing the event log, or reaching a table the role may not use. It is not
    a ``PermissionError``: that is an ``OSError``, and ``except OSError`` around file work
    should not catch a database's refusal.
    """


class ConfigurationError(LineageError, RuntimeError):
    """lineage_nb is not set up for this: no database connected, bad URL, closed database,
    a missing optional package, a file it was pointed at that cannot be read."""


class NoRunError(ConfigurationError):
    """An operation needs a run (``ln.track()``, ``%load_ext lineage_nb``) and none is open.

    A :class:`ConfigurationError` (and so a ``RuntimeError``) because that is what "no run is
    open" raised before this class was used for it: ``except ConfigurationError`` still works.
    """


class OperationalError(LineageError, RuntimeError):
    """The database could not carry out a write: connection lost, locked, disk full, read-only.

    Nothing of the transaction that raised it was written. ``attempts`` is how many times the
    unit of work was tried (retries happen only where the backend asks for them).
    """

    def __init__(self, message: str = "", *, attempts: int = 1, **about: Any) -> None:
        """``about``: ``model``, ``field``, ``value`` and ``hint``, as for :class:`LineageError`."""
        self.attempts = attempts
        super().__init__(message, **about)


class LineageWarning(UserWarning):
    """Something lineage_nb did on the user's behalf that they should know about."""
