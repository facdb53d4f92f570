"""W3C PROV documents (the ``prov`` package) from a run's or a record's lineage graph.

Records are ``prov:Entity`` s, runs ``prov:Activity`` s (with start and end times), users
``prov:Agent`` s (``prov:Person``) and transforms ``prov:Plan`` entities. A run
``wasAssociatedWith`` its user (with the transform as plan) and ``used`` its inputs; each record
it wrote ``wasGeneratedBy`` it, ``wasAttributedTo`` the user and ``wasDerivedFrom`` each input
of that run. Each statement appears once (a record written by two runs of one user is attributed
to that user once), so the PROV-JSON is valid against the PROV-JSON schema.

:func:`write_prov` writes the format the file's suffix names (:data:`PROV_SUFFIXES`): PROV-JSON,
PROV-JSON-LD, PROV-N, PROV-XML (needs ``prov[xml]``) or PROV-O as TriG or Turtle (needs
``prov[rdf]``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
from prov.constants import PROV, PROV_LABEL, PROV_TYPE
from prov.model import ProvDocument
from sqlalchemy import inspect, select

from ..errors import ConfigurationError, UsageError
from ..lineage.graph import record_lineage, run_lineage
from ..lineage.schema import Run
from ..orm.session_scope import run_sync

__all__ = [
    "NAMESPACE_PREFIX",
    "NAMESPACE_URI",
    "PROV_FORMATS",
    "PROV_SUFFIXES",
    "prov_format",
    "to_prov",
    "write_prov",
]

NAMESPACE_PREFIX = "ln"
NAMESPACE_URI = "urn:lineage_nb:"


@dataclass(frozen=True)
class _Format:
    serializer: str  # the ``prov`` serializer
    title: str
    options: tuple[tuple[str, str], ...] = ()  # its keyword arguments
    extra: str | None = None  # the ``prov`` extra it needs, if any


#: Every format :func:`write_prov` writes, by name (``format=``, ``--prov-format``).
PROV_FORMATS: dict[str, _Format] = {
    "json": _Format("json", "PROV-JSON"),
    "jsonld": _Format("jsonld", "PROV-JSON-LD"),
    "provn": _Format("provn", "PROV-N"),
    "xml": _Format("xml", "PROV-XML", extra="xml"),
    "rdf": _Format("rdf", "PROV-O (TriG)", (("rdf_format", "trig"),), extra="rdf"),
    "turtle": _Format("rdf", "PROV-O (Turtle)", (("rdf_format", "turtle"),), extra="rdf"),
}
#: The format each file suffix names.
PROV_SUFFIXES = {
    ".json": "json",
    ".jsonld": "jsonld",
    ".provn": "provn",
    ".xml": "xml",
    ".trig": "rdf",
    ".ttl": "turtle",
}
_ALIASES = {
    "prov-json": "json",
    "prov-n": "provn",
    "prov-xml": "xml",
    "trig": "rdf",
    "ttl": "turtle",
}


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


class _Statements:
    """Adds each relation to ``doc`` once: ``prov`` keeps repeats, and PROV-JSON then holds a
    list where the schema allows one statement."""

    def __init__(self, doc: ProvDocument) -> None:
        self.doc = doc
        self.seen: set[tuple[str | None, ...]] = set()

    def add(self, kind: str, *terms: str | None) -> None:
        if (kind, *terms) not in self.seen:
            self.seen.add((kind, *terms))
            getattr(self.doc, kind)(*terms)


def _add_graph(doc: ProvDocument, graph: nx.DiGraph) -> None:
    runs = _load_runs(graph)
    ident = {node: _ident(node, runs) for node in graph}
    statements = _Statements(doc)
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
            statements.add("wasAssociatedWith", ident[node], ident[user], ident.get(plan))
        inputs = [src for src, _dst in graph.in_edges(node) if src[0] == "record"]
        outputs = [dst for _src, dst in graph.out_edges(node) if dst[0] == "record"]
        for record in inputs:
            statements.add("used", ident[node], ident[record])
        for record in outputs:
            statements.add("wasGeneratedBy", ident[record], ident[node])
            if user in ident:
                statements.add("wasAttributedTo", ident[record], ident[user])
            for source in inputs:
                if source != record:
                    statements.add("wasDerivedFrom", ident[record], ident[source], ident[node])


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
    raise UsageError(
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
        UsageError: the object is neither a run nor a tracked record.
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


def _format_names() -> str:
    return ", ".join(PROV_FORMATS)


def _suffix_names() -> str:
    return ", ".join(f"{suffix} ({name})" for suffix, name in PROV_SUFFIXES.items())


def prov_format(path: str | Path, format: str | None = None) -> str:
    """The name (a key of :data:`PROV_FORMATS`) of the format :func:`write_prov` writes ``path``
    in: ``format`` when given, else the one the suffix names (no suffix: PROV-JSON).

    Raises:
        UsageError: ``format`` or the suffix names no PROV format.
        ConfigurationError: the format needs a ``prov`` extra that is not installed (the
            message names the suffix or format and what to install).
    """
    suffix = Path(path).suffix.lower()
    if format is not None:
        name = _ALIASES.get(format.lower(), format.lower())
        if name not in PROV_FORMATS:
            raise UsageError(
                f"Unknown PROV format {format!r}.",
                value=format,
                hint=f"Use one of: {_format_names()}.",
            )
        asked = f"format {name!r}"
    elif not suffix:
        name, asked = "json", "format 'json'"
    elif suffix in PROV_SUFFIXES:
        name, asked = PROV_SUFFIXES[suffix], f"suffix {suffix}"
    else:
        raise UsageError(
            f"Cannot tell the PROV format of {str(path)!r} from its suffix {suffix}.",
            value=str(path),
            hint=f"Use one of the suffixes {_suffix_names()}, or name the format "
            "(format=, --prov-format).",
        )
    chosen = PROV_FORMATS[name]
    if chosen.extra is not None and not _available(chosen.serializer):
        needs = {"xml": "lxml", "rdf": "rdflib"}[chosen.extra]
        raise ConfigurationError(
            f"Writing {chosen.title} ({asked}) needs {needs}, which is not installed.",
            value=str(path),
            hint=f"pip install 'prov[{chosen.extra}]' (or use .json or .provn).",
        )
    return name


def _available(serializer: str) -> bool:
    from prov import serializers

    try:
        serializers.get(serializer)
    except (serializers.DoNotExist, ImportError):
        return False
    return True


def write_prov(doc: ProvDocument, path: str | Path, *, format: str | None = None) -> Path:
    """Write ``doc`` in the format ``path``'s suffix names, or ``format``.

    Args:
        doc: the document (from :func:`to_prov`).
        path: the file to write: ``.json`` PROV-JSON, ``.jsonld`` PROV-JSON-LD, ``.provn``
            PROV-N, ``.xml`` PROV-XML, ``.trig`` or ``.ttl`` PROV-O in TriG or Turtle; no
            suffix: PROV-JSON.
        format: a name of :data:`PROV_FORMATS` (``json``, ``jsonld``, ``provn``, ``xml``,
            ``rdf``, ``turtle``); it wins over the suffix.

    Returns:
        ``path`` as a ``Path``. Nothing is written when the document cannot be serialized.

    Raises:
        UsageError, ConfigurationError: as :func:`prov_format`.
    """
    path = Path(path)
    chosen = PROV_FORMATS[prov_format(path, format)]
    buffer = io.StringIO()  # serialized whole first: a failure leaves no half-written file
    doc.serialize(buffer, format=chosen.serializer, **dict(chosen.options))
    text = buffer.getvalue()
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path
