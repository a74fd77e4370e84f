"""The import graph keeps the layers of docs/architecture.md: imports point down, adapters do not
import each other, no package cycle, and no Vigil module is imported by name at run time."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "vigil"
BASE, CORE, ADAPTERS, ORCHESTRATION, COMPOSITION, ENTRY = range(6)
# docs/architecture.md, "Layers": a package may import its own layer (adapters excepted) and the ones below.
LAYERS = {
    BASE: ("__init__", "errors", "config", "contracts", "events", "promql", "jsonsafe", "procfs", "tokens",
           "selfmetrics", "prometheus", "timeindex", "statefile", "durations"),
    CORE: ("features", "detectors", "evaluation", "drift"),
    ADAPTERS: ("ingest", "datasets", "registry", "alerting", "chatops", "demo"),
    ORCHESTRATION: ("training", "detection", "validation", "stack", "backup", "upgrade"),
    COMPOSITION: ("wiring",),
    ENTRY: ("server", "cli"),
}  # fmt: skip
LAYER_OF = {package: layer for layer, packages in LAYERS.items() for package in packages}


def _package(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _edges() -> dict[tuple[str, str], set[str]]:
    """(importing package, imported package) -> the files; imports inside functions count too."""
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        here = _package(path)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: within the same package by construction
                    continue
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if parts[0] == "vigil" and len(parts) > 1 and parts[1] != here:
                    edges[(here, parts[1])].add(str(path.relative_to(PACKAGE)))
    return edges


def test_every_package_has_a_layer() -> None:
    packages = {_package(p) for p in PACKAGE.rglob("*.py")}
    assert packages <= set(LAYER_OF), f"add to LAYERS (and docs/architecture.md): {sorted(packages - set(LAYER_OF))}"


def test_imports_point_down_and_adapters_stay_apart() -> None:
    wrong = []
    for (src, dst), files in sorted(_edges().items()):
        upward = LAYER_OF[dst] > LAYER_OF[src]
        sideways = LAYER_OF[src] == LAYER_OF[dst] == ADAPTERS
        if upward or sideways:
            wrong.append(f"{src} ({LAYER_OF[src]}) imports {dst} ({LAYER_OF[dst]}) in {sorted(files)}")
    assert not wrong, "\n".join(wrong)


def test_no_package_cycle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in _edges():
        graph[src].add(dst)
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_vigil_module_is_imported_by_name_at_run_time() -> None:
    dynamic = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Attribute) and node.func.attr in ("import_module", "__import__"))
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            ):
                dynamic.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not dynamic, f"import what you use; importlib hides the dependency from this graph: {dynamic}"
