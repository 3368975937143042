"""The SMART core (``fhir_server/smart``) is framework-free; its Flask side
(``fhir_server/api/smart``) depends on it, never the other way, and no modules of
either import each other in a circle (issue #14)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import fhir_server

PACKAGE_DIR = Path(fhir_server.__file__).resolve().parent
CORE = "fhir_server.smart"
FLASK_SIDE = "fhir_server.api.smart"
FORBIDDEN_IN_CORE = ("flask", "werkzeug", "fhir_server.api", "authlib.integrations")


def _modules(package: str) -> dict[str, Path]:
    folder = PACKAGE_DIR.parent.joinpath(*package.split("."))
    found = {}
    for path in sorted(folder.glob("*.py")):
        name = package if path.stem == "__init__" else f"{package}.{path.stem}"
        found[name] = path
    return found


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (functions too).
    ``from pkg import name`` names the submodule ``pkg.name`` when it is one."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                names.add(sub if sub in known else node.module)
    return names


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _inside_any(name: str) -> bool:
    return any(_inside(name, prefix) for prefix in FORBIDDEN_IN_CORE)


def test_core_imports_no_web_framework_nor_the_http_package():
    core = _modules(CORE)
    assert f"{CORE}.views" not in core and f"{CORE}.authorize_views" not in core
    offending = {
        module: sorted(n for n in _imports(path, set(core)) if _inside_any(n))
        for module, path in core.items()
    }
    assert {m: names for m, names in offending.items() if names} == {}


def test_importing_the_core_loads_no_web_framework():
    names = sorted(_modules(CORE))
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"prefixes = {FORBIDDEN_IN_CORE!r}\n"
        "print(sorted(m for m in sys.modules\n"
        "             if any(m == p or m.startswith(p + '.') for p in prefixes)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_no_import_cycles_among_the_smart_modules():
    modules = {**_modules(CORE), **_modules(FLASK_SIDE)}
    known = set(modules)
    graph = {
        module: {n for n in _imports(path, known) if n in known and n != module}
        for module, path in modules.items()
    }
    cycles = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
    core_to_flask = {m: sorted(t for t in graph[m] if _inside(t, FLASK_SIDE)) for m in graph}
    assert {m: t for m, t in core_to_flask.items() if t and _inside(m, CORE)} == {}
