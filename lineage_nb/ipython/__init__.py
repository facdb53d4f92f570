"""The Jupyter layer: ``%load_ext lineage_nb``, the ``%lineage`` magic, notebook identity.

Nothing here is imported by ``import lineage_nb``; IPython is only needed once a kernel loads
the extension.
"""

from __future__ import annotations

from .extension import load_ipython_extension as load_ipython_extension
from .extension import unload_ipython_extension as unload_ipython_extension

__all__ = ["load_ipython_extension", "unload_ipython_extension"]
