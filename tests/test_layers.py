"""Dependencies point one way: edges (adapters, CLI, demos) -> runtime (service) -> core.

Read from the source with ``ast`` (every import, also inside functions and under
TYPE_CHECKING), so a shortcut that would bring back a cycle fails here rather than in review."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "node"
# The edges, by module name prefix: how people and local systems reach the node, and the one
# module that wires the adapters to it.
ADAPTERS = "node.adapters"
EDGES = ("node.adapters", "node.cli", "node.compose", "node.demo")
MAY_IMPORT_ADAPTERS = ("node.adapters", "node.cli", "node.compose")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    """``node.demo`` covers ``node.demo_network``; ``node.cli`` covers ``node.cli.peers``."""
    return any(name == p or name.startswith((p + ".", p + "_")) for p in prefixes)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute; ``from node import cli`` counts as node.cli."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for stmt in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(stmt, ast.Import):
            found.update(alias.name for alias in stmt.names)
        elif isinstance(stmt, ast.ImportFrom):
            base = stmt.module or ""
            if stmt.level:
                anchor = package.split(".")[: len(package.split(".")) - stmt.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in stmt.names)
    return found


def modules() -> dict[str, set[str]]:
    return {module_name(p): imported(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_runtime_and_the_core_import_no_edge():
    offences = {
        name: sorted(i for i in imports if within(i, EDGES))
        for name, imports in modules().items()
        if not within(name, EDGES)
    }
    assert {n: i for n, i in offences.items() if i} == {}


def test_only_the_composition_root_and_the_cli_import_the_adapters():
    offences = {
        name: sorted(i for i in imports if within(i, (ADAPTERS,)))
        for name, imports in modules().items()
        if not within(name, MAY_IMPORT_ADAPTERS)
    }
    assert {n: i for n, i in offences.items() if i} == {}


def test_the_rules_see_the_imports_they_forbid():
    """The checks above would pass on a parser that finds nothing: show that it finds these."""
    found = modules()
    assert "node.service" in found and "node.adapters.api" in found["node.compose"]
    assert "node.service" in found["node.compose"]
    assert not within("node.service", EDGES) and within("node.demo_network", EDGES)
    assert within("node.cli", EDGES) and not within("node.config", EDGES)
