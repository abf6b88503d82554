"""No module outside a task's package and the registry names a task: `predict`, export, int8, the
bundle check and the augment stage look a task's behaviour up in pipeline/tasks.py. A task name as
a string elsewhere (``if bundle.task == "detector"``) is a branch the next task would have to edit."""

import ast
from pathlib import Path

from pipeline.tasks import TASKS
from tests.conftest import PROJECT_ROOT

# the package each task lives in (where its train, evaluate, export and bundled references point)
PACKAGES = {reference.split(":")[0].rsplit(".", 1)[0] for task in TASKS.values()
            for reference in (task.train, task.evaluate, task.export, task.bundled)}
# "multilabel" is also a kind of data (a manifest's `task`, what Task.data lists): the data layer
# names that kind, not the model
DATA_KINDS = {kind for task in TASKS.values() for kind in task.data}


def docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def task_names_in(path: Path, root: Path = PROJECT_ROOT) -> list[str]:
    """``file:line name`` of each string constant (docstrings aside) that is a task's name."""
    module = ".".join(path.relative_to(root).with_suffix("").parts)
    in_data_layer = module.startswith("pipeline.data.")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = docstrings(tree)
    return [f"{path.relative_to(root)}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in TASKS and id(node) not in skip
            and not (in_data_layer and node.value in DATA_KINDS)]


def outside_tasks() -> list[Path]:
    files = sorted((PROJECT_ROOT / "pipeline").rglob("*.py")) + sorted((PROJECT_ROOT / "stages").glob("*.py"))
    modules = {f: ".".join(f.relative_to(PROJECT_ROOT).with_suffix("").parts) for f in files}
    return [f for f, m in modules.items()
            if m != "pipeline.tasks" and not any(m == p or m.startswith(p + ".") for p in PACKAGES)]


def test_no_module_outside_a_tasks_package_and_the_registry_names_a_task():
    assert len(outside_tasks()) > 50  # the scan reads the project (not an empty list)
    found = [hit for path in outside_tasks() for hit in task_names_in(path)]
    assert not found, f"task names outside their packages and pipeline/tasks.py: {found}"


def test_the_scan_finds_a_task_name_branch(tmp_path):
    probe = tmp_path / "pipeline" / "io" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text('def kind(bundle):\n    """Names "detector" in a docstring: allowed."""\n'
                     '    return bundle.task == "detector"\n')
    assert task_names_in(probe, tmp_path) == ["pipeline/io/probe.py:3 'detector'"]
