"""No import cycles in harness/: the report modules meet in leaf modules (report_format, report_summary,
report_tables), so report and report_html never import each other. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"


def imports_of(source: str, modules: set[str]) -> set[str]:
    """The harness modules a module's source imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "harness":
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("harness.")}
    return found & modules


def graph() -> dict[str, set[str]]:
    paths = {p.stem: p for p in HARNESS.glob("*.py")}
    return {name: imports_of(path.read_text(), set(paths)) - {name} for name, path in paths.items()}


def cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle, as the modules along it; [] when there is none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return []
        for nxt in sorted(edges.get(node, ())):
            found = visit(nxt, path + [node])
            if found:
                return found
        done.add(node)
        return []

    for start in sorted(edges):
        found = visit(start, [])
        if found:
            return found
    return []


def test_harness_has_no_import_cycle():
    assert cycle(graph()) == []


def test_report_modules_meet_in_leaves():
    edges = graph()
    assert edges["report_format"] == set()
    assert "report" not in edges["report_html"] and "report" not in edges["report_terminal"]
    assert "report" not in edges["report_tables"] and "report" not in edges["report_summary"]


def test_the_cycle_finder_finds_the_cycle_this_replaced():
    """report imported report_html inside a function, and report_html imported report."""
    edges = graph()
    edges["report_html"] = edges["report_html"] | {"report"}
    assert cycle(edges) == ["report", "report_html", "report"]
    inner = imports_of("def f():\n    from harness.report_html import render_html\n", {"report_html"})
    assert inner == {"report_html"}
