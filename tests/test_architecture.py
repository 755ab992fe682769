"""The apps' dependencies go one way: groups uses rooms, rooms never imports groups, and no
module of ours is part of an import cycle through another app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Lower layers first: each may import those before it, never those after it.
APPS = ("rooms", "groups")


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (inside functions too), as absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from . import services` imports the module rooms.services, not only the package.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def sources(app: str) -> list[Path]:
    return sorted((PROJECT_DIR / app).rglob("*.py"))


def test_the_sources_are_found() -> None:
    """The walk sees the apps' modules (an empty walk would make every other test pass)."""
    assert len(sources("rooms")) > 20 and len(sources("groups")) > 5
    assert "rooms.services" in imports_of(PROJECT_DIR / "groups" / "services.py")


@pytest.mark.parametrize("app", APPS)
def test_an_app_imports_no_app_above_it(app: str) -> None:
    """rooms imports nothing of groups, even inside a function; groups may import rooms."""
    above = APPS[APPS.index(app) + 1 :]
    offending = [
        f"{path.relative_to(PROJECT_DIR)} imports {imported}"
        for path in sources(app)
        for imported in imports_of(path)
        if imported.split(".")[0] in above
    ]
    assert offending == []


def test_groups_imports_no_private_name_of_rooms() -> None:
    """groups uses rooms' public modules and names only (no `from rooms.views import _x`)."""
    offending = []
    for path in sources("groups"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rooms"):
                offending += [
                    f"{path.relative_to(PROJECT_DIR)}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_")
                ]
    assert offending == []


def test_no_import_cycle_between_the_apps_and_the_project() -> None:
    """No chain of imports leads from one of the apps' modules back to itself through the
    other app or the project package (lunchsite)."""
    ours = {module_name(path): path for app in (*APPS, "lunchsite") for path in sources(app)}
    graph = {
        name: {imported for imported in imports_of(path) if imported in ours and imported != name}
        for name, path in ours.items()
    }
    cycles = [
        component
        for component in _strongly_connected(graph)
        if len(component) > 1 and len({name.split(".")[0] for name in component}) > 1
    ]
    assert cycles == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the graph's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components
