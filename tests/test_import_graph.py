"""No import cycles among the package's modules, counting the imports written inside functions.

Every ``import``/``from ... import`` of a ``recbole_hnlm`` module, at module level or in any function body,
is an edge from the importing module to the imported one (``from recbole_hnlm.x import y`` points at the
submodule ``x.y`` when there is one, else at ``x``). An edge goes to the module the statement names, not to
the packages above it: their ``__init__`` files hold re-exports, and a cycle through them alone is harmless.
"""

from __future__ import annotations

import ast
from pathlib import Path

import recbole_hnlm

PACKAGE = "recbole_hnlm"
ROOT = Path(recbole_hnlm.__file__).resolve().parent


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that ``module`` imports anywhere in its file."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node, path.name == "__init__.py")
            submodules = {f"{source}.{alias.name}" for alias in node.names}
            found = submodules & known
            targets.update(found)
            if found != submodules:
                targets.add(source)
    return {target for target in targets if target in known and target != module}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {module: imported_modules(module, path, known) for module, path in files.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "recbole_hnlm.plugin" in graph["recbole_hnlm"]  # imported inside bootstrap()
    assert "recbole_hnlm.models" in graph["recbole_hnlm.config"]  # imported inside install()
    assert len(graph) > 50


def test_no_import_cycles():
    cycles = strongly_connected(import_graph())
    report = "\n".join(f"cycle among {len(c)} modules: {', '.join(c)}" for c in cycles)
    assert not cycles, f"import cycles among recbole_hnlm modules:\n{report}"
