"""Facts about a mapped class worked out once and kept on the class (hot paths read them per row)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["per_model"]

T = TypeVar("T")
_MISSING: Any = object()


def per_model(model: type, name: str, compute: Callable[[], T]) -> T:
    """``compute()`` for ``model`` on first use, then the kept value.

    Kept in the class's own ``__dict__`` (as ``_ln_<name>``), so a subclass computes its own.
    """
    key = "_ln_" + name
    found = model.__dict__.get(key, _MISSING)
    if found is _MISSING:
        found = compute()
        type.__setattr__(model, key, found)
    return found  # type: ignore[no-any-return]
