"""The package's layers import one way: a module never imports one above it, not even inside a
function (imports under ``if TYPE_CHECKING:`` do not run and do not count).

Layers, lowest first: errors and the pure renderers (``render``) → db → orm → lineage (and its
migrations) → connect → views/model (``ln.Model`` with its view methods)/export/security → the
command table shared by the CLI and ``%lineage`` (``commands``) → ipython/widgets → the package's
``__init__`` (the public API) → the applications of it: the CLI and the demo. ``KNOWN_UPWARD``
lists the upward imports that are still there, as debt: a new one fails this test, and so does
one that was removed without being struck from the list (so the list only shrinks). Import cycles
are checked the same way (``KNOWN_CYCLES``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import lineage_nb

PACKAGE = Path(lineage_nb.__file__).parent

LAYERS: list[tuple[str, ...]] = [
    ("lineage_nb.errors", "lineage_nb._version", "lineage_nb.render"),
    ("lineage_nb.db",),
    ("lineage_nb.orm",),
    ("lineage_nb.lineage", "lineage_nb.migrations"),
    ("lineage_nb.connect",),
    ("lineage_nb.views", "lineage_nb.model", "lineage_nb.export", "lineage_nb.security"),
    ("lineage_nb.commands",),  # the command table shared by the CLI and %lineage
    ("lineage_nb.ipython", "lineage_nb.widgets"),
    ("lineage_nb",),  # the public API: the package's __init__ (only this exact name)
    # applications of the public API
    ("lineage_nb.cli", "lineage_nb.demo", "lineage_nb.__main__"),
]

#: Upward imports still to be removed (issue 19), each with where it should go.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def layer_of(module: str) -> int:
    """The index of ``module``'s layer in :data:`LAYERS`."""
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or (p != "lineage_nb" and module.startswith(p + ".")) for p in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                skipped.update(id(n) for n in ast.walk(statement))
    return skipped


def imported_modules(path: Path) -> Iterator[str]:
    """Every lineage_nb module ``path`` imports at run time, at any depth of its code."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("lineage_nb"):
                continue
            if node.module is None:  # from . import x: x is a module or a name of the package
                yield from (f"{target}.{alias.name}" for alias in node.names)
            else:
                yield target
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("lineage_nb"))


def _existing(module: str) -> str:
    """``module``, or its package when the name is an attribute imported from a package."""
    parts = module.split(".")
    while parts:
        candidate = PACKAGE.parent.joinpath(*parts)
        if candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists():
            return ".".join(parts)
        parts.pop()
    raise AssertionError(module)


def upward_imports() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        for target in map(_existing, imported_modules(path)):
            if layer_of(target) > layer_of(source):
                found.add((source, target))
    return found


def test_layers_import_one_way() -> None:
    """No module imports a higher layer, beyond the listed debt."""
    new = upward_imports() - KNOWN_UPWARD
    assert new == set(), f"upward imports: {sorted(new)}"


def test_known_upward_imports_are_still_there() -> None:
    """A debt paid is struck from KNOWN_UPWARD, so the list only shrinks."""
    gone = KNOWN_UPWARD - upward_imports()
    assert gone == set(), f"no longer upward, remove from KNOWN_UPWARD: {sorted(gone)}"


def test_every_module_is_in_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path))


def test_the_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The check is real: an import inside a function counts, one under TYPE_CHECKING not."""
    probe = PACKAGE / "db.py"
    inside = set(imported_modules(probe))
    assert "lineage_nb.errors" in inside
    sample = tmp_path / "lineage_nb" / "orm" / "x.py"
    sample.parent.mkdir(parents=True)
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..widgets import browse\n"
        "def f():\n    from ..views.frames import model_frame\n",
        encoding="utf-8",
    )
    relative = list(imported_modules_at(sample, tmp_path / "lineage_nb"))
    assert relative == ["lineage_nb.views.frames"]


def imported_modules_at(path: Path, package: Path) -> list[str]:
    """:func:`imported_modules` for a file of a package rooted elsewhere (the self-test)."""
    global PACKAGE
    saved, PACKAGE = PACKAGE, package
    try:
        return list(imported_modules(path))
    finally:
        PACKAGE = saved


def import_graph() -> dict[str, set[str]]:
    """Module → the lineage_nb modules it imports at run time (at any depth of its code)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        graph[source] = {t for t in map(_existing, imported_modules(path)) if t != source}
    return graph


#: Import cycles still to be broken, as debt (the list only shrinks): the lineage tables' own
#: methods (``Run.records_df``, ``Run.view_lineage``, ``User._repr_html_``, ``Run.df()``'s frame,
#: ...) call the lineage queries that read those tables; they import them inside the methods.
KNOWN_CYCLES: list[list[str]] = [
    [
        "lineage_nb.lineage.cards",
        "lineage_nb.lineage.cells",
        "lineage_nb.lineage.framed",
        "lineage_nb.lineage.graph",
        "lineage_nb.lineage.history",
        "lineage_nb.lineage.model_frames",
        "lineage_nb.lineage.reads",
        "lineage_nb.lineage.schema",
        "lineage_nb.lineage.stamping",
        "lineage_nb.lineage.users",
    ],
]


def import_cycles() -> list[list[str]]:
    """The groups of modules that import each other (directly or not), functions included."""
    import networkx as nx

    return sorted(
        sorted(component)
        for component in nx.strongly_connected_components(nx.DiGraph(import_graph()))
        if len(component) > 1
    )


def test_no_import_cycles() -> None:
    """No module imports one that (directly or not) imports it back, beyond the listed debt:
    a new cycle, or a listed one that grew, fails."""
    assert import_cycles() == KNOWN_CYCLES
