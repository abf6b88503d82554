"""The library's layers: a module imports only from its own layer or the ones below it, and no
modules import each other in a circle (not even through an import inside a function). A new
module must be placed in a layer here."""

import networkx as nx

from tests.conftest import PROJECT_ROOT
from tests.imports import module_name, project_imports

# lowest first; a name stands for the module and everything under it
LAYERS = {
    "core: settings, registry, files, the torch-free bundle runtime": (
        "pipeline", "pipeline.schema", "pipeline.tasks", "pipeline.boxes", "pipeline.hardware", "pipeline.devices",
        "pipeline.viz", "pipeline.io", "pipeline.predict"),
    "data and configuration": ("pipeline.data", "pipeline.augment", "pipeline.config", "pipeline.cli"),
    "engine: networks, fitting, tracking": (
        "pipeline.models", "pipeline.averaging",
        "pipeline.precision", "pipeline.throughput", "pipeline.transfer", "pipeline.lr_finder",
        "pipeline.epoch_tables", "pipeline.tracking", "pipeline.tracking_offline", "pipeline.training"),
    "tasks": ("pipeline.classify", "pipeline.detect", "pipeline.heatmap", "pipeline.multilabel"),
    "products: export, sweeps, tools": ("pipeline.export", "pipeline.sweep", "pipeline.evaluate_on", "pipeline.ui",
                                        "pipeline.repro"),
}


def layer_of(module: str) -> int | None:
    """The index of the layer whose longest name holds ``module``."""
    matches = [(len(name), index) for index, names in enumerate(LAYERS.values()) for name in names
               if module == name or module.startswith(name + ".")]
    return max(matches)[1] if matches else None


def modules() -> dict[str, set[str]]:
    return {module_name(path): project_imports(path) for path in (PROJECT_ROOT / "pipeline").rglob("*.py")}


def test_every_module_has_a_layer():
    assert not [m for m in modules() if layer_of(m) is None]


def test_no_module_imports_from_a_higher_layer():
    names = list(LAYERS)
    upward = [f"{m} ({names[layer_of(m)]}) imports {t} ({names[layer_of(t)]})"
              for m, imports in modules().items() for t in imports if layer_of(t) > layer_of(m)]
    assert not upward, "\n".join(upward)


def test_no_modules_import_each_other_in_a_circle():
    graph = nx.DiGraph([(m, t) for m, imports in modules().items() for t in imports])
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not circles, circles
