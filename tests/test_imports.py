"""The project's import graph, read from the source with `ast`: no import cycle among
module-level imports, and every import of a project module names one that exists.

Edges go to the module an import names: `import a.b` and `from a import b` (b a submodule) to
a.b, `from a import name` (name defined in a) to a. A package's __init__ importing its
submodules is no cycle by itself; it is one when such a submodule imports the package back at
module level. Imports inside functions are lazy and count only for the existence check; imports
under `if TYPE_CHECKING:` never run and do not count.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("noisyjax", "sweeps")  # the graph's modules
IMPORTERS = PACKAGES + ("tests", "benchmarks")  # whose imports of them must resolve


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files(roots: tuple[str, ...]) -> dict[str, Path]:
    return {
        module_name(p): p
        for root in roots
        for p in sorted((ROOT / root).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


MODULES = source_files(PACKAGES)


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of MODULES, or what the import names when there is none
    name: str | None  # `from target import name` where name is no submodule
    line: int
    module_level: bool


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def base_of(importer: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def project(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def imports_of(importer: str, path: Path) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and is_type_checking(child.test):
                for stmt in child.orelse:
                    visit_stmt(stmt, module_level)
                continue
            visit_stmt(child, module_level)

    def visit_stmt(node: ast.AST, module_level: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if project(alias.name):
                    found.append(Import(importer, alias.name, None, node.lineno, module_level))
        elif isinstance(node, ast.ImportFrom):
            base = base_of(importer, path, node)
            if not project(base):
                return
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:
                    found.append(Import(importer, sub, None, node.lineno, module_level))
                else:
                    name = None if alias.name == "*" else alias.name
                    found.append(Import(importer, base, name, node.lineno, module_level))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            visit(node, False)
        else:  # class bodies, if/try/with blocks: run when their scope does
            visit(node, module_level)

    visit(ast.parse(path.read_text(), str(path)), True)
    return found


def defined_names(path: Path) -> set[str] | None:
    """The names a module defines at module level (None: it has a module __getattr__)."""
    names: set[str] = set()
    todo = list(ast.parse(path.read_text()).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        targets = {
            ast.Assign: lambda n: n.targets,
            ast.AnnAssign: lambda n: [n.target],
            ast.AugAssign: lambda n: [n.target],
            ast.For: lambda n: [n.target],
            ast.With: lambda n: [i.optional_vars for i in n.items if i.optional_vars],
        }.get(type(node), lambda n: [])(node)
        for target in targets:
            names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        todo.extend(n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt))
    return names


def graph() -> dict[str, set[str]]:
    """Module-level imports among the project's modules."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for imp in imports_of(module, path):
            if imp.module_level and imp.target in MODULES and imp.target != module:
                edges[module].add(imp.target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path that ends where it starts) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return [cycle_in(sorted(c)[0], c, edges) for c in components]


def cycle_in(start: str, component: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest path from `start` back to itself inside its component (breadth first)."""
    parent: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(edges[v] & component):
                if w == start:
                    path = [v]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return path[::-1] + [start]
                if w not in parent:
                    parent[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def show(cycle: list[str]) -> str:
    return " -> ".join(cycle)


def test_the_graph_finds_a_planted_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert cycles(edges) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_through_sweeps():
    found = [c for c in cycles(graph()) if any(m.startswith("sweeps") for m in c)]
    assert not found, "module-level import cycles: " + "; ".join(map(show, found))


def test_no_import_cycle_in_noisyjax():
    found = [c for c in cycles(graph()) if all(m.startswith("noisyjax") for m in c)]
    assert not found, "module-level import cycles: " + "; ".join(map(show, found))


# Modules that moved keep their old import path (noisyjax/_moved.py); project code uses the
# new one, and only the test of the old paths imports them.
MOVED = set(importlib.import_module("noisyjax._moved").MOVED)
OLD_PATHS_TEST = "test_architecture.py"


def stale_imports(files: dict[str, Path]) -> list[str]:
    """Imports of project modules, module-level and lazy alike, that name nothing."""
    missing = []
    names = {m: defined_names(p) for m, p in MODULES.items()}
    for module, path in files.items():
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
        for imp in imports_of(module, path):
            where = f"{shown}:{imp.line}"
            if imp.target in MOVED and path.name == OLD_PATHS_TEST:
                continue  # the old paths' own test imports them on purpose
            if imp.target not in MODULES:
                missing.append(f"{where}: no module {imp.target}")
            elif imp.name and names[imp.target] is not None and imp.name not in names[imp.target]:
                missing.append(f"{where}: {imp.target} has no {imp.name}")
    return missing


def test_stale_imports_are_found(tmp_path):
    path = tmp_path / "stale.py"
    path.write_text(
        "from sweeps.presets import PRESETS, nothing\n"
        "def f():\n"
        "    from sweeps import no_such_module\n"
        "    import noisyjax.no_such_module\n"
    )
    assert stale_imports({"stale": path}) == [
        "stale.py:1: sweeps.presets has no nothing",
        "stale.py:3: sweeps has no no_such_module",
        "stale.py:4: no module noisyjax.no_such_module",
    ]


def test_every_project_import_exists():
    """A stale lazy import fails only when its function runs: checked here for every one."""
    missing = stale_imports(source_files(IMPORTERS))
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("sweeps.presets.")))
def test_preset_modules_never_import_the_registry(module):
    """Preset modules import the figure helpers and each other, never `sweeps.presets`; the
    figure helpers import nothing of sweeps."""
    targets = {i.target for i in imports_of(module, MODULES[module]) if i.module_level}
    assert "sweeps.presets" not in targets
    if module == "sweeps.presets.figures":
        assert not [t for t in targets if t.startswith("sweeps")], targets
