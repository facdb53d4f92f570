"""A tqdm progress bar on a terminal, silence elsewhere (pipes, files, CI logs, notebooks)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress"]


def progress(total: int | None, desc: str, *, enabled: bool | None = None, unit: str = "it") -> Any:
    """A tqdm bar writing to stderr, shown only when ``enabled`` (default: stderr is a TTY).

    Args:
        total: number of steps, if known.
        desc: the label in front of the bar.
        enabled: force the bar on (``True``) or off (``False``); ``None`` asks ``isatty()``.
        unit: the unit shown after the counts.

    Returns:
        A ``tqdm`` object; use ``.update(n)`` and ``.close()`` (or ``with``).
    """
    from tqdm import tqdm

    if enabled is None:
        stream = sys.stderr
        enabled = bool(getattr(stream, "isatty", lambda: False)())
    return tqdm(
        total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, leave=False
    )
