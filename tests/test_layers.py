"""Imports run one way (issue 14; STYLE.md "One direction of flow"), and no private name
crosses a module boundary. The equivalent of an import-linter contract, in plain Python.

Layers, lowest first; a module may import only from its own layer or lower ones:

    shared    errors, periods, version, resources, outputs, results, catalog, mechanisms, source_urls
    design    design.py (the design file model)
    data      data/ (sources, validation, derived outcomes, generators)
    methods   methods/, inference/ (estimators never see a report)
    assess    evidence, pipeline (orchestration only), record (what results.json records), summary, examples
    report    report/
    features  diagnose/, synthesis/ (use the run and the report)
    cli       cli.py, evalkit/__init__.py
"""

from __future__ import annotations

import ast

from tests.conftest import ROOT

LAYERS = [
    ["errors", "periods", "version", "resources", "outputs", "results", "catalog", "mechanisms", "source_urls"],
    ["design"],
    ["data"],
    ["methods", "inference"],
    ["evidence", "pipeline", "record", "summary", "examples"],
    ["report"],
    ["diagnose", "synthesis"],
    ["cli", "__init__"],
]
RANK = {name: level for level, names in enumerate(LAYERS) for name in names}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports():
    package = ROOT / "evalkit"
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        here = module.split(".") if is_package else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = here[:len(here) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
                if target.split(".")[0] == "evalkit":
                    yield module, target, [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "evalkit":
                        yield module, alias.name, []


def test_every_module_is_in_a_layer():
    tops = {_top(module) for module, _, _ in _imports()} | {_top(t) for _, t, _ in _imports()}
    assert tops <= set(RANK), tops - set(RANK)


def test_imports_never_go_up_a_layer():
    upward = []
    for module, target, names in _imports():
        source = RANK[_top(module) if module != "evalkit" else "__init__"]
        targets = [f"evalkit.{n}" for n in names] if target == "evalkit" else [target]
        for item in targets:
            top = _top(item) if _top(item) in RANK else "__init__"
            if RANK[top] > source:
                upward.append(f"{module} imports {item}")
    assert not upward, upward


def test_no_private_name_crosses_a_module_boundary():
    crossing = []
    for module, target, names in _imports():
        for name in names:
            if name.startswith("_") and not name.startswith("__") and target != module:
                crossing.append(f"{module} imports {target}.{name}")
    assert not crossing, crossing
