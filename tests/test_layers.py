"""The layers of docs/architecture.md stay true: imports point down only, and never in a circle.

Every module's imports are read from its source (module level and inside functions;
imports under ``if TYPE_CHECKING:`` are left out, since they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "memscope"

# rank of each part, bottom first; a module may import its own part and any lower rank
LAYERS: list[tuple[str, int]] = [
    ("memscope._base", 0),
    ("memscope.collectors", 1),
    ("memscope.guard", 1),
    ("memscope._registry", 2),
    ("memscope._snapshot", 2),
    ("memscope._diff", 2),
    ("memscope._findings", 2),
    ("memscope._report", 2),
    ("memscope.monitor", 3),
    ("memscope.testing", 3),
    ("memscope.why", 3),
    ("memscope", 4),  # the facade: re-exports, lazily
    ("memscope.cli", 5),
    ("memscope.web", 5),
    ("memscope.integrations", 5),
    ("memscope.pytest_plugin", 5),
    ("memscope.__main__", 5),
]
# parts of the same rank that must not lean on each other
APART = {frozenset({"memscope.collectors", "memscope.guard"})}


def part_of(module: str) -> tuple[str, int]:
    """The longest LAYERS prefix of ``module``."""
    best = max(
        (name for name, _ in LAYERS if module == name or module.startswith(name + ".")),
        key=len,
    )
    return best, dict(LAYERS)[best]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """memscope modules that ``module`` imports when it runs (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(base: str) -> str | None:
        while base and base not in known:
            base = base.rpartition(".")[0]
        return base or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "memscope":
                    target = resolve(alias.name)
                    if target:
                        found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{node.module}" if node.module else pkg
            else:
                base = node.module or ""
            if base.split(".")[0] == "memscope":
                for alias in node.names:
                    # "from . import x" names a submodule when there is one
                    target = resolve(f"{base}.{alias.name}")
                    if target:
                        found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def test_the_layers_cover_every_module() -> None:
    for module in all_modules():
        assert part_of(module)[0], module


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        part, rank = part_of(module)
        for target in targets:
            tpart, trank = part_of(target)
            if tpart == part:
                continue
            if trank > rank or (trank == rank and frozenset({part, tpart}) in APART):
                bad.append(f"{module} (layer {rank}) imports {target} (layer {trank})")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, each once (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return found


def test_imports_point_down_only() -> None:
    assert upward_imports(import_graph()) == []


def test_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_guard_and_collectors_stand_only_on_the_bottom_layer() -> None:
    graph = import_graph()
    for module, targets in graph.items():
        part, _ = part_of(module)
        if part in ("memscope.guard", "memscope.collectors", "memscope._base"):
            allowed = ("memscope._base", part)
            strays = [t for t in targets if part_of(t)[0] not in allowed]
            assert strays == [], f"{module} imports {strays}"


# the checker itself must catch what it is there to catch
@pytest.mark.parametrize(
    ("graph", "expect"),
    [
        ({"memscope._base.units": {"memscope.collectors.census"}}, True),
        ({"memscope.guard.cache": {"memscope.collectors.tracked"}}, True),
        ({"memscope.collectors.census": {"memscope._snapshot"}}, True),
        ({"memscope.collectors.census": {"memscope._base.units"}}, False),
        ({"memscope.cli.report": {"memscope._snapshot", "memscope"}}, False),
        ({"memscope.monitor": {"memscope"}}, True),
    ],
)
def test_the_checker_sees_upward_imports(graph: dict[str, set[str]], expect: bool) -> None:
    assert bool(upward_imports(graph)) is expect


def test_the_checker_sees_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_reader_sees_function_level_imports_and_skips_type_checking(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from memscope._snapshot import Snapshot\n"
        "def f():\n"
        "    from ..collectors import census\n"
        "    import memscope._diff\n"
    )
    path = tmp_path / "x.py"
    path.write_text(source)
    known = {
        "memscope",
        "memscope._diff",
        "memscope._snapshot",
        "memscope.collectors",
        "memscope.collectors.census",
        "memscope.guard",
        "memscope.guard.x",
    }
    assert imports_of("memscope.guard.x", path, known) == {
        "memscope.collectors.census",
        "memscope._diff",
    }
