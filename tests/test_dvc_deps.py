"""Every project file a stage's code imports is one of the stage's DVC deps (a file or a folder
above it): otherwise editing it leaves the stage "up to date" and DVC serves results the code no
longer produces. The imports are read from the source (every `import`, also inside functions),
plus the modules the task registry names for a stage's model (imported by name at run time)."""

from pathlib import Path

import pytest
import yaml

from pipeline.tasks import TASKS
from tests.conftest import PROJECT_ROOT
from tests.imports import imported_modules, module_file

# every stage loads params.yaml, which validates it against every task's settings classes and runs
# the tasks' value checks
EVERY_STAGE = [reference.partition(":")[0] for task in TASKS.values()
               for reference in (task.settings, *(check for _, check in task.checks))]
# The registry's references each stage resolves: a per-model stage those of its model, the
# augment stage those of every task (its section's preview and view of the data).
HOOKS = {"train": ("train",), "evaluate": ("evaluate",), "export": ("export", "bundled"),
         "augment": ("preview", "sees_patches")}


def hooks(stage: str, item: str | None) -> list[str]:
    tasks = [TASKS[item]] if item else list(TASKS.values())
    references = [getattr(task, hook) for task in tasks for hook in HOOKS.get(stage, ())]
    return [reference.partition(":")[0] for reference in references if reference]


def closure(start: list[Path], modules: list[str]) -> set[Path]:
    """Project files that running ``start`` (and importing ``modules``) loads: each import with the
    packages above it (their __init__.py run first)."""
    seen, todo = set(), list(start)
    for name in modules:
        parts = name.split(".")
        todo += [f for f in (module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1)) if f]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_modules(path):
            parts = name.split(".")
            todo += [f for f in (module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1)) if f]
    return seen


def filled(text: str, item: str | None) -> str:
    return text.replace("${item}", item) if item else text


def stage_cases() -> list[tuple[str, str, list[str], list[str]]]:
    """(stage name, script, deps, registry modules) for every stage of dvc.yaml and every task."""
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    cases = []
    for name, stage in stages.items():
        items = list(TASKS) if "foreach" in stage else [None]
        body = stage.get("do", stage)
        for item in items:
            script = filled(body["cmd"], item).split()[1]
            deps = [filled(d, item) for d in body.get("deps", [])]
            registry = hooks(name, item) + EVERY_STAGE
            cases.append((f"{name}@{item}" if item else name, script, deps, registry))
    return cases


@pytest.mark.parametrize("stage, script, deps, registry", stage_cases(), ids=[c[0] for c in stage_cases()])
def test_a_stages_deps_cover_every_project_file_its_code_imports(stage, script, deps, registry):
    loaded = closure([PROJECT_ROOT / script], registry)
    covered = [PROJECT_ROOT / d for d in deps]
    missing = sorted(str(f.relative_to(PROJECT_ROOT)) for f in loaded
                     if not any(f == d or d in f.parents for d in covered))
    assert not missing, f"dvc.yaml: stage {stage} imports these files, which are not among its deps: {missing}"
