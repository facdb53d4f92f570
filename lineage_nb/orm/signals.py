"""Model signals, with blinker's conventions (as in ormar and Django).

Connect per model class; receivers are called as ``receiver(sender, instance=..., **kwargs)`` inside
the write's transaction, so a receiver that raises aborts the write.

Examples:
    >>> from lineage_nb import signals
    >>> @signals.pre_save.connect_via(object)
    ... def log(sender, instance, **kwargs):
    ...     pass
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from blinker import ANY, NamedSignal, Namespace

from ..errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])


class ModelSignal(NamedSignal):
    """A blinker signal whose receivers are checked when connected and held strongly.

    A receiver must be callable and take the sender positionally plus ``**kwargs`` (the keywords
    grow over time); a bad one is refused at ``connect`` instead of failing at the first write.
    Receivers are kept alive by default (``weak=False``): a lambda or local function connected
    for a model is not dropped silently when it goes out of scope.
    """

    def connect(self, receiver: F, sender: Any = ANY, weak: bool = False) -> F:
        _check_receiver(self.name, receiver)
        return super().connect(receiver, sender=sender, weak=weak)


def _check_receiver(signal: str | None, receiver: Any) -> None:
    if not callable(receiver):
        raise UsageError(
            f"Cannot connect {type(receiver).__name__} {receiver!r} to {signal}: it is not "
            "callable.",
            value=repr(receiver),
            hint="Connect a function taking (sender, **kwargs).",
        )
    try:
        parameters = inspect.signature(receiver).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        name = getattr(receiver, "__qualname__", repr(receiver))
        raise UsageError(
            f"Receiver {name} of {signal} takes no **kwargs: it is called as "
            "receiver(sender, instance=..., **kwargs).",
            value=name,
            hint=f"Define it as def {getattr(receiver, '__name__', 'receiver')}(sender, **kwargs).",
        )


__all__ = [
    "ModelSignal",
    "post_delete",
    "post_save",
    "post_update",
    "pre_delete",
    "pre_save",
    "pre_update",
]

pre_save = ModelSignal("pre_save", doc="Before a record is inserted or updated by save().")
post_save = ModelSignal("post_save", doc="After save() wrote the record, before commit.")
pre_update = ModelSignal("pre_update", doc="Before update() writes the record.")
post_update = ModelSignal("post_update", doc="After update() wrote the record, before commit.")
pre_delete = ModelSignal("pre_delete", doc="Before delete() removes the record.")
post_delete = ModelSignal("post_delete", doc="After delete() removed the record, before commit.")

_internal = Namespace()
# The internal seam: the sender is the session's class (``type(session)``), so a layer above
# connects to one database's sessions (``sender=db.session_class``) and can disconnect again.
#: Internal: ``session``, ``records=[...]`` after get/load/load_all read records.
records_read = _internal.signal("records_read")
#: Internal: ``session``, ``model``, ``rows`` (dicts) before bulk_create inserts them.
bulk_insert = _internal.signal("bulk_insert")
#: Internal: ``session``, ``model``, ``rows`` (with primary keys) after bulk_create inserted.
bulk_inserted = _internal.signal("bulk_inserted")
#: Internal: ``session``, ``records=[...]`` after delete() removed their rows.
records_deleted = _internal.signal("records_deleted")
