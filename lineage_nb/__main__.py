"""``python -m lineage_nb``: the ``lineage-nb`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
