"""The package's import graph: every import (module level or inside a function) points down the layers of
docs/architecture.md, and no modules import each other in a circle.

Layers, bottom first: ``utils``; ``io``; ``networks``, ``losses``, ``metrics``, ``transforms``; ``data``;
``engines``, ``handlers``; ``inference``; ``deploy``. A package may import its own modules and any package of a
lower layer; packages of one layer import nothing of each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hkafusion_monai"

#: layer of each subpackage (or top-level module), bottom = 0
LAYERS: dict[str, int] = {
    "utils": 0,
    "io": 1,
    "networks": 2,
    "losses": 2,
    "metrics": 2,
    "transforms": 2,
    "data": 3,
    "reports": 3,
    "engines": 4,
    "handlers": 4,
    "inference": 5,
    "deploy": 6,
    "_package": 7,  # hkafusion_monai/__init__.py: the lazy ``load_fuser``
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str:
    """The longest module of ours that ``name`` names (``a.b.c`` -> ``a.b`` when ``c`` is an attribute)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str) -> set[str]:
    """The modules of ours that ``module`` imports, anywhere in its code (``TYPE_CHECKING`` blocks included)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` the module mod
            names = [f"{stem}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "hkafusion_monai":
                target = _resolve(name)
                if target and target != module:
                    found.add(target)
    return found


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "_package"
    assert top in LAYERS, f"{module}: not in a layer of docs/architecture.md; add its package to LAYERS"
    return top, LAYERS[top]


GRAPH = {module: imports_of(module) for module in MODULES}


def test_the_graph_is_read() -> None:
    # a parser that saw nothing would pass every check below
    assert "hkafusion_monai.utils.errors" in GRAPH["hkafusion_monai.transforms.volume"]
    assert "hkafusion_monai.io.dicom" in GRAPH["hkafusion_monai.transforms.volume"]
    assert "hkafusion_monai.transforms.contract" in GRAPH["hkafusion_monai.inference.fuser"]


def wrong_imports(module: str, graph: dict[str, set[str]]) -> list[str]:
    """The imports of ``module`` that go to another package of its own layer or of a higher one."""
    package, layer = layer_of(module)
    wrong = []
    for target in sorted(graph[module]):
        target_package, target_layer = layer_of(target)
        if target_package != package and target_layer >= layer:
            wrong.append(f"{target} ({target_package}, layer {target_layer})")
    return wrong


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down_the_layers(module: str) -> None:
    wrong = wrong_imports(module, GRAPH)
    assert not wrong, f"{module} ({layer_of(module)}) imports upward or sideways: {', '.join(wrong)}"


def test_utils_imports_nothing_of_ours_outside_utils() -> None:
    for module, targets in GRAPH.items():
        if module.startswith("hkafusion_monai.utils"):
            assert all(t.startswith("hkafusion_monai.utils") for t in targets), (module, targets)


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            # a package's __init__ importing its own modules is how packages export; a module importing
            # its own package's __init__ back would close a circle, and is counted
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_a_planted_upward_import_is_caught() -> None:
    # the rule itself: a metric importing a transform (sideways), a transform importing a handler (upward)
    graph = {k: set(v) for k, v in GRAPH.items()}
    graph["hkafusion_monai.metrics.functional"].add("hkafusion_monai.transforms.contract")
    graph["hkafusion_monai.transforms.volume"].add("hkafusion_monai.handlers.run_record")
    assert wrong_imports("hkafusion_monai.metrics.functional", graph) == [
        "hkafusion_monai.transforms.contract (transforms, layer 2)"
    ]
    assert wrong_imports("hkafusion_monai.transforms.volume", graph) == [
        "hkafusion_monai.handlers.run_record (handlers, layer 4)"
    ]


def _imported_names(script: Path) -> list[tuple[str, str, int]]:
    """``(module, name, line)`` of every ``from hkafusion_monai... import name`` in a script, at any depth."""
    found = []
    for node in ast.walk(ast.parse(script.read_text(), filename=str(script))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("hkafusion_monai"):
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
    return found


SCRIPTS = sorted((PACKAGE.parent / "benchmarks").glob("*.py")) + sorted((PACKAGE.parent / "tools").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_import_names_that_exist(script: Path) -> None:
    """benchmarks/ and tools/ run outside the test suite, so an export moved to another module
    would break them silently: every name they import from the package, also inside functions, must exist."""
    import importlib.util

    missing = []
    for module, name, line in _imported_names(script):
        found = hasattr(importlib.import_module(module), name) or importlib.util.find_spec(f"{module}.{name}")
        if not found:  # neither a name of the module nor one of its submodules
            missing.append(f"{script.name}:{line}: {module}.{name}")
    assert not missing, missing
