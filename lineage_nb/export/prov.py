"""W3C PROV documents (the ``prov`` package) from a run's or a record's lineage graph.

Records are ``prov:Entity`` s, runs ``prov:Activity`` s (with start and end times), users
``prov:Agent`` s (``prov:Person``) and transforms ``prov:Plan`` entities. A run
``wasAssociatedWith`` its user (with the transform as plan) and ``used`` its inputs; each record
it wrote ``wasGeneratedBy`` it, ``wasAttributedTo`` the user and ``wasDerivedFrom`` each input
of that run. Serialize with ``doc.serialize(format="json")`` (PROV-JSON), ``doc.get_provn()``
(PROV-N) or :func:`write_prov`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import networkx as nx
from prov.constants import PROV, PROV_LABEL, PROV_TYPE
from prov.model import ProvDocument
from sqlalchemy import inspect, select

from ..errors import ConfigurationError
from ..lineage.graph import record_lineage, run_lineage
from ..lineage.schema import Run
from ..orm.session_scope import run_sync

__all__ = ["NAMESPACE_PREFIX", "NAMESPACE_URI", "prov_format", "to_prov", "write_prov"]

NAMESPACE_PREFIX = "ln"
NAMESPACE_URI = "urn:lineage_nb:"
_FORMATS = {".json": "json", ".provn": "provn"}


def _safe(text: str) -> str:
    """A PROV-N-friendly local name: letters, digits, ``_``, ``-`` and ``.`` only."""
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in text)


def _ident(node: tuple[Any, ...], runs: dict[int, Run]) -> str:
    kind = node[0]
    if kind == "record":
        return f"{NAMESPACE_PREFIX}:record.{_safe(str(node[1]))}.{_safe(str(node[2]))}"
    if kind == "run":
        run = runs.get(int(node[1]))
        return f"{NAMESPACE_PREFIX}:run.{run.uid if run is not None else node[1]}"
    return f"{NAMESPACE_PREFIX}:{kind}.{node[1]}"


def _load_runs(graph: nx.DiGraph) -> dict[int, Run]:
    ids = sorted(int(n[1]) for n in graph if n[0] == "run")
    if not ids:
        return {}
    statement = select(Run).where(Run.id.in_(ids))
    found = run_sync(lambda s: list(s.execute(statement).unique().scalars()))
    return {run.id: run for run in found}


def _add_graph(doc: ProvDocument, graph: nx.DiGraph) -> None:
    runs = _load_runs(graph)
    ident = {node: _ident(node, runs) for node in graph}
    for node, data in graph.nodes(data=True):
        label = str(data.get("label", ident[node])).replace("\n", " ")
        kind = node[0]
        if kind == "record":
            record: dict[Any, Any] = {
                PROV_LABEL: label,
                "ln:table": str(node[1]),
                "ln:pk": str(node[2]),
            }
            doc.entity(ident[node], record)
        elif kind == "transform":
            doc.entity(ident[node], {PROV_TYPE: PROV["Plan"], PROV_LABEL: label})
        elif kind == "user":
            doc.agent(ident[node], {PROV_TYPE: PROV["Person"], PROV_LABEL: label})
        elif kind == "run":
            run = runs.get(int(node[1]))
            attributes: dict[Any, Any] = {PROV_LABEL: label}
            if run is not None:
                attributes.update({"ln:status": run.status, "ln:run_number": run.id})
            doc.activity(
                ident[node],
                run.started_at if run is not None else None,
                run.finished_at if run is not None else None,
                attributes,
            )
    for run_id, run in runs.items():
        node = ("run", run_id)
        user = ("user", run.created_by_id)
        plan = ("transform", run.transform_id)
        if user in ident:
            doc.wasAssociatedWith(ident[node], ident[user], ident.get(plan))
        inputs = [src for src, _dst in graph.in_edges(node) if src[0] == "record"]
        outputs = [dst for _src, dst in graph.out_edges(node) if dst[0] == "record"]
        for record in inputs:
            doc.used(ident[node], ident[record])
        for record in outputs:
            doc.wasGeneratedBy(ident[record], ident[node])
            if user in ident:
                doc.wasAttributedTo(ident[record], ident[user])
            for source in inputs:
                if source != record:
                    doc.wasDerivedFrom(ident[record], ident[source], ident[node])


def _graph_of(obj: Any, depth: int) -> nx.DiGraph:
    if isinstance(obj, Run):
        return run_lineage(obj, depth, group_above=None)
    state = inspect(obj, raiseerr=False)
    if (
        state is not None
        and getattr(state, "mapper", None) is not None
        and not isinstance(obj, type)
    ):
        return record_lineage(obj, depth, group_above=None)
    raise ConfigurationError(
        f"Cannot build PROV for {type(obj).__name__}: expected an ln.Run or a mapped record.",
        value=obj,
        hint="Pass a run (ln.runs()[0]) or a record (Sample.get(1)).",
    )


def to_prov(run_or_record: Any | Iterable[Any], *, depth: int = 3) -> ProvDocument:
    """A PROV document of the lineage of a run or record (or of several).

    Args:
        run_or_record: an ``ln.Run``, an ``ln.Model`` record, or an iterable of them (one
            document, shared nodes merged).
        depth: how many levels upstream to follow (as in ``record.lineage(depth)``).

    Returns:
        A ``prov.model.ProvDocument`` with namespace ``ln`` = ``urn:lineage_nb:``.

    Raises:
        ConfigurationError: the object is neither a run nor a tracked record.
    """
    doc = ProvDocument()
    doc.add_namespace(NAMESPACE_PREFIX, NAMESPACE_URI)
    items = (
        list(run_or_record) if isinstance(run_or_record, (list, tuple, set)) else [run_or_record]
    )
    graph = nx.DiGraph()
    for item in items:
        graph = nx.compose(graph, _graph_of(item, depth))
    _add_graph(doc, graph)
    return doc.unified()


def prov_format(path: str | Path, format: str | None = None) -> str:
    """The ``prov`` serializer name for ``path`` (by suffix) unless ``format`` is given."""
    if format is not None:
        return {"prov-json": "json", "prov-n": "provn"}.get(format, format)
    return _FORMATS.get(Path(path).suffix.lower(), "json")


def write_prov(doc: ProvDocument, path: str | Path, *, format: str | None = None) -> Path:
    """Write ``doc`` as PROV-JSON (``.json``) or PROV-N (``.provn``).

    Args:
        doc: the document (from :func:`to_prov`).
        path: the file to write.
        format: ``json`` or ``provn`` (other ``prov`` serializers such as ``xml`` and ``rdf``
            need ``prov``'s extras); default from the suffix, else JSON.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    fmt = prov_format(path, format)
    if fmt == "provn":
        path.write_text(doc.get_provn() + "\n", encoding="utf-8")
    else:
        doc.serialize(str(path), format=fmt)
    return path
