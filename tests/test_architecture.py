"""The house as docs/architecture.md draws it, checked on the code's own imports.

* the cores import nothing from ``fhir_server``, ``flask`` or ``werkzeug`` -- not even
  inside a function -- and only the other cores docs/architecture.md allows;
* the Flask-free parts of ``fhir_server`` (the gate, storage, search, rest, the SMART
  core, the operations' cores) import neither ``flask`` nor ``fhir_server.api``;
* no import circle between modules, and no module over 450 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORES = ("anchoring", "consent", "federation", "mhb_import", "validators", "vault")
# core -> the cores it may import (docs/architecture.md, "Packages and arrows")
ALLOWED = {
    "anchoring": set(),
    "consent": {"anchoring"},
    "federation": {"anchoring", "vault"},
    "mhb_import": set(),
    "validators": set(),
    "vault": set(),
}
FLASK_FREE = (
    "fhir_server/access",
    "fhir_server/storage",
    "fhir_server/search",
    "fhir_server/rest",
    "fhir_server/smart",
    "fhir_server/operations",
)
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    found = {}
    for package in (*CORES, "fhir_server"):
        for path in (ROOT / package).rglob("*.py"):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[dotted.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth of the file (functions too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import module`` imports that module; the package itself
            # only when a name that is not a module is taken from it
            modules = [f"{node.module}.{a.name}" for a in node.names]
            modules = [m for m in modules if m in MODULES]
            names += modules
            if len(modules) < len(node.names):
                names.append(node.module)
    return names


def _top(name: str) -> str:
    return name.split(".", 1)[0]


@pytest.mark.parametrize("core", CORES)
def test_a_core_stands_alone(core):
    wrong = []
    for dotted, path in MODULES.items():
        if _top(dotted) != core:
            continue
        for name in _imports(path):
            top = _top(name)
            if top in ("fhir_server", "flask", "werkzeug"):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
            elif top in CORES and top != core and top not in ALLOWED[core]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name} (no arrow {core} -> {top})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("folder", FLASK_FREE)
def test_the_node_cores_are_flask_free(folder):
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / folder).rglob("*.py")
        for name in _imports(path)
        if _top(name) in ("flask", "werkzeug") or name.startswith("fhir_server.api")
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_circle_between_modules():
    graph = {
        dotted: {name for name in _imports(path) if name in MODULES and name != dotted}
        for dotted, path in MODULES.items()
    }
    circles = [c for c in _strongly_connected(graph) if len(c) > 1]
    assert not circles, "\n".join(" <-> ".join(sorted(c)) for c in circles)


def test_no_module_over_450_lines():
    long = [
        f"{path.relative_to(ROOT)}: {n}"
        for path in MODULES.values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, "\n".join(long)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the graph has a few hundred nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start, edges_of_start in graph.items():
        if start in index:
            continue
        work = [(start, iter(sorted(edges_of_start)))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    found.append(component)
    return found
