"""``ln.export``: take lineage out of the notebook in formats other tools read.

CSV and Parquet for every DataFrame view, OpenLineage ``RunEvent`` s (openlineage-python) and
W3C PROV documents (``prov``: PROV-JSON, PROV-JSON-LD, PROV-N; PROV-XML and PROV-O with
``prov``'s ``xml`` and ``rdf`` extras). Needs the ``export`` extra:
``pip install 'lineage_nb[export]'``.
"""

from __future__ import annotations

from .files import dtypes_path as dtypes_path
from .files import frame_of as frame_of
from .files import read_csv as read_csv
from .files import to_csv as to_csv
from .files import to_parquet as to_parquet
from .openlineage import emit as emit
from .openlineage import openlineage_events as openlineage_events
from .openlineage import to_json as to_json
from .openlineage import write_events as write_events
from .prov import prov_format as prov_format
from .prov import to_prov as to_prov
from .prov import write_prov as write_prov

__all__ = [
    "dtypes_path",
    "emit",
    "frame_of",
    "openlineage_events",
    "prov_format",
    "read_csv",
    "to_csv",
    "to_json",
    "to_parquet",
    "to_prov",
    "write_events",
    "write_prov",
]
