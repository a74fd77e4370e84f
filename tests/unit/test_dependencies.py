"""pyproject.toml declares exactly what the code imports: every third-party import in src/vigil is a
declared dependency, and every declared dependency is imported (the `bench` extra by benchmarks/)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.conftest import REPO_ROOT


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _canonical(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0])


# Namespace packages whose distribution the top-level name cannot tell.
NAMESPACED = {"google.protobuf": "protobuf"}


def _imports(folder: Path) -> dict[frozenset[str], set[str]]:
    """Third-party imports under ``folder`` (top-level and function-level): the distributions that can
    provide each (mlflow comes from mlflow or mlflow-skinny) -> the files importing it."""
    owners = packages_distributions()
    found: dict[frozenset[str], set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in ("vigil", "tests"):
                    continue
                spaced = next((d for ns, d in NAMESPACED.items() if module == ns or module.startswith(ns + ".")), None)
                dists = frozenset(_canonical(d) for d in ([spaced] if spaced else owners.get(top, [top])))
                found.setdefault(dists, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def _project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def test_every_import_in_the_package_is_declared() -> None:
    declared = {_requirement_name(s) for s in _project()["dependencies"]}
    undeclared = {"/".join(sorted(d)): sorted(files) for d, files in _imports(REPO_ROOT / "src" / "vigil").items()
                  if not d & declared}  # fmt: skip
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"


def test_every_declared_dependency_is_imported() -> None:
    project = _project()
    used = set().union(*_imports(REPO_ROOT / "src" / "vigil"))
    unused = {_requirement_name(s) for s in project["dependencies"]} - used
    assert not unused, f"declared in [project] dependencies but imported nowhere in src/vigil: {sorted(unused)}"
    bench_used = set().union(*_imports(REPO_ROOT / "benchmarks"))
    unused_bench = {_requirement_name(s) for s in project["optional-dependencies"]["bench"]} - bench_used
    assert not unused_bench, f"the bench extra declares what benchmarks/ never imports: {sorted(unused_bench)}"
