"""The architecture the README shows: imports only go down the layer list, with no circle.

Every ``import funnelrun...`` in the package (module level or inside a function) is read with ``ast``;
a module may import its own layer or a lower one. ``training`` and ``evaluation`` are peers over
build, models and data: training may use evaluation's estimators (the test step's importance
sampling), evaluation never imports training. Nothing imports the pipelines or the CLI."""
from __future__ import annotations

import ast
from pathlib import Path

import funnelrun

PACKAGE = Path(funnelrun.__file__).parent

#: lowest first; a module's layer is the first entry its dotted name starts with
LAYERS = [
    ["funnelrun.errors", "funnelrun.run_files", "funnelrun.run_lock", "funnelrun.validation", "funnelrun.options",
     "funnelrun.console"],
    ["funnelrun.transforms", "funnelrun.surjections", "funnelrun.distributions"],
    ["funnelrun.models", "funnelrun.data"],
    ["funnelrun.config", "funnelrun.checkpoint", "funnelrun.overrides"],
    ["funnelrun.builder"],
    ["funnelrun.evaluation"],
    ["funnelrun.training"],
    ["funnelrun.api"],
    ["funnelrun.pipelines"],
    ["funnelrun.cli", "funnelrun.usage"],
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    for index, layer in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in layer):
            return index
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py; add it")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "funnelrun" or n.startswith("funnelrun.")}


MODULES = {
    _module_name(p): _imports(p)
    for p in PACKAGE.rglob("*.py")
    if "conf" not in p.relative_to(PACKAGE).parts
}


def test_imports_only_go_down_the_layers():
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in MODULES.items()
        if module != "funnelrun"  # the package's lazy public API (funnelrun/__init__.py) re-exports api
        for target in targets
        if target != "funnelrun" and _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_evaluation_never_imports_training():
    back = [f"{m} imports {t}" for m, ts in MODULES.items() if m.startswith("funnelrun.evaluation")
            for t in ts if t.startswith("funnelrun.training")]
    assert not back, "\n".join(back)


def test_no_import_cycle_between_modules():
    graph = {m: {t for t in ts if t in MODULES and t != m} for m, ts in MODULES.items() if m != "funnelrun"}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in graph.get(module, ()):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, module, target]))
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def test_the_layer_table_catches_an_upward_import():
    """The check itself can fail: a model importing the training module is upward."""
    assert _layer("funnelrun.training.module") > _layer("funnelrun.models.flow")
    assert _layer("funnelrun.pipelines.train") > _layer("funnelrun.evaluation.sample")
