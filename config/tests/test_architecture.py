"""The house's structure, read from the code's own imports (production modules: not tests,
migrations or benchmarks).

- Imports run one way: the base library (``flowplatform``) imports no app; ``outputs`` and
  ``realtime`` import only the base; ``executions`` (with its engine) imports those three;
  the project's wiring (``config``) sits on top. No two files import each other, directly
  or around a circle.
- Imports sit at the top of a module; one inside a function has a comment above it saying
  why (an ``AppConfig.ready``, gunicorn's master process, an optional driver).
- Modules stay about 400 lines long.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("flowplatform", "outputs", "realtime", "executions", "config")
MAY_IMPORT = {
    "flowplatform": set(),
    "outputs": {"flowplatform"},
    "realtime": {"flowplatform"},
    "executions": {"flowplatform", "outputs", "realtime"},
    "config": {"flowplatform", "outputs", "realtime", "executions"},
}
MAX_LINES = 420


def production_modules() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "tests" in parts or "migrations" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = production_modules()


def imported(node: ast.AST) -> list[str]:
    """The project modules an import statement names (a ``from`` import's names may be
    modules too)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    else:
        return []
    return [name for name in names if name in MODULES]


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        graph[name] = {dep for node in ast.walk(tree) for dep in imported(node)} - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_two_files_import_each_other_around_a_circle():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_between_apps_run_one_way():
    wrong = sorted(
        f"{module} imports {dep}"
        for module, deps in import_graph().items()
        for dep in deps
        if dep.split(".")[0] != module.split(".")[0]
        and dep.split(".")[0] not in MAY_IMPORT[module.split(".")[0]]
    )
    assert wrong == []


def explained(lines: list[str], lineno: int) -> bool:
    """Whether the import on ``lineno`` carries a comment on its line, or follows one (over
    the imports just above it)."""
    if "#" in lines[lineno - 1]:
        return True
    for line in reversed(lines[: lineno - 1]):
        text = line.strip()
        if text.startswith(("from ", "import ")):
            continue
        return text.startswith("#")
    return False


def test_imports_inside_functions_say_why():
    unexplained = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                unexplained += [
                    f"{name}:{inner.lineno}"
                    for inner in ast.walk(node)
                    if isinstance(inner, ast.Import | ast.ImportFrom)
                    and not explained(lines, inner.lineno)
                ]
    assert unexplained == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_about_400_lines(name):
    assert len(MODULES[name].read_text().splitlines()) <= MAX_LINES
