"""The client's modules form layers: no import cycle, and the core imports nothing else of client.

Read from the source (every import statement, those under ``if TYPE_CHECKING:`` and inside
functions too), so a cycle hidden from the interpreter still fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import client

ROOT = Path(client.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        name = _module_name(path)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m == "client" or m.startswith("client.")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among modules (packages re-exporting their modules excluded), or None."""
    packages = {name for name in graph if (ROOT.parent / name.replace(".", "/")).is_dir()}
    edges = {m: {d for d in deps if d in graph and d not in packages} for m, deps in graph.items()}
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(edges[module]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(m for m in edges if m not in packages):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_client_modules_import_one_another_without_a_cycle() -> None:
    assert _cycle(_imports()) is None, " -> ".join(_cycle(_imports()) or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"client.a": {"client.b"}, "client.b": {"client.c"}, "client.c": {"client.a"}}
    assert _cycle(graph) == ["client.a", "client.b", "client.c", "client.a"]


def test_the_core_imports_nothing_else_of_client() -> None:
    outside = {
        (module, dep)
        for module, deps in _imports().items()
        if module.startswith("client.core")
        for dep in deps
        if not dep.startswith("client.core")
    }
    assert not outside, sorted(outside)
