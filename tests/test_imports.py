"""The package's import graph has no cycles and no upward imports.

The graph is read from the source with ``ast``: every ``import`` and
``from ... import`` of the package's own modules counts, at module level or
inside a function (lazy imports), relative or absolute. Cycles are checked
twice: between modules, and between the package's top-level parts (a
subpackage such as ``oracles`` or a module such as ``pdbprep``), so that two
parts that lean on each other through different modules are caught too.
"""

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest

import openmm_actionmin

PACKAGE = "openmm_actionmin"
ROOT = Path(openmm_actionmin.__file__).resolve().parent

#: Parts of the package that must not import the layers above them.
LOWER = ("systems", "oracles", "models", "fileio", "geometry", "errors")
#: Layers above them.
UPPER = ("search", "benchmarks", "cli", "api")
#: Leaf modules: no imports from the package at all.
LEAVES = ("fileio", "geometry", "errors")


def module_files(root: Path, package: str) -> Dict[str, Path]:
    """Module name -> source file, for every module of the package under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _targets(node: ast.AST, module: str, is_package: bool, package: str, modules: Set[str]) -> List[str]:
    """Package modules named by one import statement (the deepest existing module of each name)."""
    names: List[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level == 0:
            base = node.module or ""
        else:
            here = module.split(".") if is_package else module.split(".")[:-1]
            here = here[: len(here) - (node.level - 1)]
            base = ".".join(here + ([node.module] if node.module else []))
        names = [f"{base}.{a.name}" for a in node.names]
    found = []
    for name in names:
        if name != package and not name.startswith(package + "."):
            continue
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in modules:
            found.append(name)
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> Dict[str, Set[str]]:
    """Module -> package modules it imports (module level and inside functions)."""
    files = module_files(root, package)
    modules = set(files)
    graph: Dict[str, Set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps.update(_targets(node, module, is_package, package, modules))
        deps.discard(module)
        graph[module] = deps
    return graph


def part_graph(graph: Dict[str, Set[str]], package: str = PACKAGE) -> Dict[str, Set[str]]:
    """The graph between top-level parts of the package (``oracles``, ``pdbprep``, ...)."""

    def part(module: str) -> str:
        return ".".join(module.split(".")[:2])

    out: Dict[str, Set[str]] = {}
    for module, deps in graph.items():
        a = part(module)
        out.setdefault(a, set()).update(part(d) for d in deps if part(d) != a)
    return out


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One cycle of ``graph`` as a list of nodes (first node repeated at the end), or ``None``."""
    state: Dict[str, int] = {}  # 1: on the stack, 2: done
    stack: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def _short(nodes: List[str]) -> str:
    return " -> ".join(n[len(PACKAGE) + 1 :] or PACKAGE for n in nodes)


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_graph_sees_every_module(graph):
    assert f"{PACKAGE}.search.basin_hopping" in graph and f"{PACKAGE}.oracles" in graph
    # a function-level relative import counts (Result.save exports through structures)
    assert f"{PACKAGE}.structures" in graph[f"{PACKAGE}.result"]


def test_no_import_cycles_between_modules(graph):
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {_short(cycle)}"


def test_no_import_cycles_between_parts(graph):
    cycle = find_cycle(part_graph(graph))
    assert cycle is None, f"import cycle between parts of the package: {_short(cycle)}"


def test_lower_layers_do_not_import_upper_ones(graph):
    def part(module: str) -> str:
        return module.split(".")[1] if "." in module else ""

    bad = sorted(f"{m} imports {d}" for m, deps in graph.items() if part(m) in LOWER for d in deps if part(d) in UPPER)
    assert not bad, "upward imports:\n" + "\n".join(bad)
    leaves = {f"{PACKAGE}.{leaf}" for leaf in LEAVES}
    assert leaves <= set(graph)
    assert {leaf: graph[leaf] for leaf in leaves} == {leaf: set() for leaf in leaves}


def test_cycle_finder_catches_lazy_and_part_cycles(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "low.py").write_text("from ..c import y\n")
    (pkg / "sub" / "high.py").write_text("def g():\n    import pkg.c\n")
    (pkg / "c.py").write_text("from .sub import high\n")
    g = import_graph(pkg, "pkg")
    assert g["pkg.b"] == {"pkg.a"} and g["pkg.sub.high"] == {"pkg.c"} and g["pkg.c"] == {"pkg.sub.high"}
    assert find_cycle(g) in (["pkg.a", "pkg.b", "pkg.a"], ["pkg.b", "pkg.a", "pkg.b"])
    del g["pkg.b"]
    assert find_cycle(g) == ["pkg.c", "pkg.sub.high", "pkg.c"]
    # no module cycle, but the parts c and sub lean on each other (c -> sub.high, sub.low -> c)
    del g["pkg.sub.high"]
    g["pkg.c"] = {"pkg.sub.high"}
    assert find_cycle(g) is None
    assert find_cycle(part_graph(g, "pkg")) == ["pkg.c", "pkg.sub", "pkg.c"]
