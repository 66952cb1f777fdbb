"""The package's layers run one way, and no two modules import each other.

Every ``import`` of ``src/smpc_gym`` is parsed (module-level and function-local alike) and
checked against the layer order

    envs, secure, storage  <  federated  <  agents  <  studies, training

with the top-level modules classified explicitly (:data:`TOP_LEVEL`). A module may import
its own layer or a lower one, never a higher one; and the module import graph has no
cycle. The checker is tested on a synthetic tree first, so a broken checker fails too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "smpc_gym"

#: Subpackage → layer rank (higher may import lower, never the reverse).
LAYERS: dict[str, int] = {
    "envs": 0,
    "secure": 0,
    "storage": 0,
    "federated": 1,
    "agents": 2,
    "studies": 3,
    "training": 3,
}
#: Modules directly under ``smpc_gym/``, classified by hand.
TOP_LEVEL: dict[str, int] = {
    "smpc_gym": 0,  # __init__: registers the envs (reads envs.registry), nothing heavy
    "smpc_gym.greedy_mouse_v0": 0,  # PettingZoo-style env entry modules
    "smpc_gym.supply_chain_v0": 0,
    "smpc_gym.__main__": 4,  # ``python -m smpc_gym``: the CLI, above training
}
#: Import edges that break the rules today and are being removed; each names why.
#: An entry that no longer occurs fails the test, so the list only shrinks.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_name(root: Path, path: Path) -> str:
    """Dotted module name of ``path`` in the package rooted at ``root``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_from(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the package's modules it imports (every ``import`` statement anywhere in
    the file, including inside functions; ``from p import m`` counts as ``p.m`` when
    ``m`` is a module, else as ``p``)."""
    pkg = root.name
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (
                    _resolve_from(mod, is_package, node.level, node.module)
                    if node.level
                    else node.module or ""
                )
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            else:
                continue
            for t in targets:
                # the longest module of the package that the name denotes
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and (t == pkg or t.startswith(pkg + ".")) and t != mod:
                    edges.add(t)
        graph[mod] = edges
    return graph


def layer_of(module: str, layers: Mapping[str, int], top: Mapping[str, int]) -> int:
    """The layer rank of ``module``; KeyError for a module no rule classifies."""
    if module in top:
        return top[module]
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in layers:
        return layers[parts[1]]
    raise KeyError(f"{module} is in no layer: add it to LAYERS or TOP_LEVEL")


def upward_imports(
    graph: Mapping[str, Iterable[str]], layers: Mapping[str, int], top: Mapping[str, int]
) -> list[tuple[str, str]]:
    """``(importer, imported)`` pairs where the imported module is in a higher layer."""
    return sorted(
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if layer_of(b, layers, top) > layer_of(a, layers, top)
    )


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def without(graph: Mapping[str, Iterable[str]], edges: Iterable[tuple[str, str]]) -> dict:
    """``graph`` minus ``edges``."""
    drop = set(edges)
    return {a: {b for b in bs if (a, b) not in drop} for a, bs in graph.items()}


# -- the checker itself, on a synthetic tree ------------------------------------------


def _tree(root: Path, files: Mapping[str, str]) -> Path:
    pkg = root / "pkg"
    for rel, text in files.items():
        p = pkg / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return pkg


def test_checker_finds_upward_function_local_and_cyclic_imports(tmp_path: Path) -> None:
    pkg = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "low/__init__.py": "",
            "low/a.py": "def f():\n    from pkg.high import b  # upward, inside a function\n",
            "low/c.py": "from . import d\n",
            "low/d.py": "import pkg.low.c\n",
            "high/__init__.py": "",
            "high/b.py": "from ..low.a import f\nimport os\n",
        },
    )
    layers = {"low": 0, "high": 1}
    top = {"pkg": 0}
    graph = import_graph(pkg)
    assert graph["pkg.low.a"] == {"pkg.high.b"}
    assert graph["pkg.high.b"] == {"pkg.low.a"}  # relative import resolved; os ignored
    assert graph["pkg.low.c"] == {"pkg.low.d"}  # ``from . import d`` is the module d
    assert upward_imports(graph, layers, top) == [("pkg.low.a", "pkg.high.b")]
    assert cycles(graph) == [["pkg.high.b", "pkg.low.a"], ["pkg.low.c", "pkg.low.d"]]
    clean = without(graph, [("pkg.low.a", "pkg.high.b"), ("pkg.low.d", "pkg.low.c")])
    assert upward_imports(clean, layers, top) == [] and cycles(clean) == []
    with pytest.raises(KeyError, match="pkg.mystery"):
        layer_of("pkg.mystery", layers, top)


# -- the real package -------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(SRC)


def test_every_module_is_in_a_layer(graph: dict[str, set[str]]) -> None:
    assert "smpc_gym.envs.registry" in graph and "smpc_gym.studies.pate" in graph
    for module in graph:
        layer_of(module, LAYERS, TOP_LEVEL)


def test_no_upward_import(graph: dict[str, set[str]]) -> None:
    found = upward_imports(graph, LAYERS, TOP_LEVEL)
    stale = [e for e in KNOWN_EXCEPTIONS if e not in found]
    assert not stale, f"known exceptions no longer occur, remove them: {stale}"
    bad = [e for e in found if e not in KNOWN_EXCEPTIONS]
    assert not bad, "imports from a higher layer:\n" + "\n".join(f"{a} -> {b}" for a, b in bad)


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    found = cycles(without(graph, KNOWN_EXCEPTIONS))
    assert not found, "modules importing each other:\n" + "\n".join(map(" <-> ".join, found))
