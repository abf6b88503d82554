"""The project's import graph, read from the source: every `import` of a file, also those inside
functions (tests/test_dvc_deps.py, tests/test_layers.py)."""

import ast
from pathlib import Path

from tests.conftest import PROJECT_ROOT

PACKAGE = "pipeline"


def module_file(name: str) -> Path | None:
    """The project file of module ``name`` (None: not the project's, or not a module)."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = PROJECT_ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """Modules ``path`` imports; ``from a import b`` counts a.b too, as b may be a module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: from the file's package
                package = path.relative_to(PROJECT_ROOT).parent.parts
                module = ".".join(package[:len(package) - node.level + 1] + tuple(filter(None, [module])))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path) -> set[str]:
    """The project modules ``path`` imports (by name), itself and its own packages left out."""
    own = module_name(path)
    found = {module_name(f) for f in map(module_file, imported_modules(path)) if f is not None and f != path}
    return {m for m in found if not own.startswith(m + ".") and m != PACKAGE}
