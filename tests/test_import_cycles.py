"""The import graph of the project's own modules (harness/, backends/, tasks/): no cycle, and no module
reaching up to a layer above its own (LAYERS).

Imports inside functions count too: a lazy import hides a cycle from the interpreter, not from a
reader, and one hoisted to module level later turns it into a half-initialised module. Imports under
`if TYPE_CHECKING:` never run, so they do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "backends", "tasks")


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = REPO) -> dict[str, Path]:
    return {module_name(path, root): path for package in PACKAGES for path in sorted((root / package).rglob("*.py"))}


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, at any depth, except those under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif not _type_checking_only(node):
            stack.extend(ast.iter_child_nodes(node))


def _nearest_module(dotted: str, known: dict[str, Path]) -> str | None:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `name` imports: `from pkg import sub` is an import of the module pkg.sub
    where one exists, else of pkg itself."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        found.update(m for m in (_nearest_module(t, known) for t in targets) if m and m != name)
    return found


def import_graph(root: Path = REPO) -> nx.DiGraph:
    known = project_modules(root)
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for name, path in known.items():
        graph.add_edges_from((name, target) for target in imported_modules(name, path, known))
    return graph


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    """One line per group of modules that import each other, directly or through others."""
    return sorted(sorted(group) for group in nx.strongly_connected_components(graph) if len(group) > 1)


def test_the_project_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(group) for group in found)


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    """The check itself: a lazy import inside a function closes a cycle; a TYPE_CHECKING one does not."""
    pkg = tmp_path / "backends"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from backends.b import X\n")
    (pkg / "b.py").write_text("X = 1\n\ndef f():\n    from backends import a\n    return a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from backends import d\n")
    (pkg / "d.py").write_text("from . import c\n")
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["backends.a", "backends.b"]]
    assert graph.has_edge("backends.d", "backends.c")  # the relative import is resolved


# Lowest first. A module may import from its own layer and the layers below it, never from one above:
# the layers are what a newcomer reads off the tree (README, "Layout").
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("harness", "harness.model", "harness.hookspecs", "harness.store", "harness.measure")),
    ("contracts", ("harness.api", "harness.executor", "harness.exits", "harness.results")),
    ("built-in plugins", ("backends", "tasks")),
    ("plugin manager", ("harness.plugins",)),
    ("a cell's process", ("harness.cell",)),
    ("executors", ("harness.execute",)),
    ("a run", ("harness.run",)),
    ("reports", ("harness.report",)),
    ("compare", ("harness.compare",)),
    ("history", ("harness.history",)),
    ("command line", ("harness.cli", "harness.__main__")),
    ("conformance suite", ("harness.conformance",)),
)


def layer_of(module: str) -> int:
    """The index in LAYERS of the longest prefix that names `module` or a package above it."""
    best, rank = "", None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, index
    if rank is None:
        raise LookupError(f"{module} is in no layer: add it to LAYERS")
    return rank


def upward_imports(graph: nx.DiGraph) -> list[str]:
    return sorted(f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
                  for a, b in graph.edges if layer_of(b) > layer_of(a))


def test_every_module_sits_in_a_layer_and_imports_only_its_own_or_lower_ones():
    graph = import_graph()
    for module in graph.nodes:
        layer_of(module)
    assert upward_imports(graph) == []


def test_an_import_reaching_up_a_layer_is_found():
    """The check itself: the record schema importing a report, a backend importing the worker."""
    graph = import_graph()
    graph.add_edge("harness.store.record", "harness.report.render")
    graph.add_edge("backends.torch_train", "harness.cell.worker")
    assert upward_imports(graph) == [
        "backends.torch_train (built-in plugins) imports harness.cell.worker (a cell's process)",
        "harness.store.record (foundation) imports harness.report.render (reports)"]
