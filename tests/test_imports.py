"""The package's import graph: every module imports alone, no cycles, and nothing imports upward."""

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "routiq_admin"


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name, path):
    """Return the package's modules that `name` imports anywhere in its source (inside functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            # `from pkg import mod` imports the submodule; `from mod import name` the module.
            targets = [f"{source}.{alias.name}" for alias in node.names]
            targets = [t if t in MODULES else source for t in targets]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


def import_graph():
    return {name: imports_of(name, path) for name, path in MODULES.items()}


def find_cycle(graph):
    """Return one import cycle as a list of modules, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        trail.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return trail[trail.index(target) :] + [target]
            if target not in state:
                cycle = visit(target, trail)
                if cycle:
                    return cycle
        state[node] = "done"
        trail.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def within(name, package):
    return name == package or name.startswith(package + ".")


def import_alone(module):
    """Import `module` in a fresh interpreter; return its error output, or None."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    return None if result.returncode == 0 else result.stderr[-2000:]


def test_each_module_imports_alone():
    # A fresh interpreter per module: a cycle hidden by whichever module the suite imported first shows here.
    # `__main__` modules run their program when imported; the graph tests still read them.
    modules = [name for name in MODULES if not name.endswith(".__main__")]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        errors = dict(zip(modules, pool.map(import_alone, modules), strict=True))
    assert {module: error for module, error in errors.items() if error} == {}


def test_the_graph_reader_sees_relative_and_lazy_imports():
    graph = import_graph()
    assert "routiq_admin.sync.plan" in graph["routiq_admin.sync.runs"]
    assert "routiq_admin.web" in graph["routiq_admin"]  # imported inside create_app


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_find_cycle_reports_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_the_run_vocabulary_is_a_leaf():
    assert import_graph()["routiq_admin.sync.plan"] == set()


def test_the_engine_does_not_import_the_layers_above_it():
    above = {f"routiq_admin.sync.{name}" for name in ("runs", "status", "tick", "schedule", "connection")}
    assert import_graph()["routiq_admin.sync.engine"] & above == set()


@pytest.mark.parametrize("layer", ["routiq_admin.web", "routiq_admin.api"])
def test_only_the_app_factory_imports_the_web_and_api_layers(layer):
    importers = {
        name
        for name, targets in import_graph().items()
        if not within(name, layer) and name != "routiq_admin" and any(within(t, layer) for t in targets)
    }
    assert importers == set()


def test_models_read_only_the_vocabulary_of_sync():
    graph = import_graph()
    targets = set().union(*(graph[name] for name in graph if within(name, "routiq_admin.models")))
    sync = {t for t in targets if within(t, "routiq_admin.sync")}
    assert sync == {"routiq_admin.sync.plan"}
