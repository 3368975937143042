"""Each ``$operation``: one Flask-free core with its OperationDefinition, one route
module, and no SQL of its own (issue #14)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fhir_server.operations import registry
from fhir_server.operations.definition import CANONICAL_BASE

ROOT = Path(__file__).resolve().parents[3]
# SQLAlchemy on the store's tables, or driver SQL: the store's queries do that
TABLE_SQL = re.compile(r"\bselect\(|\.c\.|conn\.execute|exec_driver_sql|\bsidx_\w+\.")


def test_every_core_has_one_route_module():
    from fhir_server.api.operations import ROUTES, blueprints

    assert sorted(m.CORE.__name__ for m in ROUTES) == sorted(c.__name__ for c in registry.CORES)
    for module in ROUTES:
        core_name = module.CORE.__name__.rsplit(".", 1)[1]
        assert module.__name__.rsplit(".", 1)[1] == core_name
    names = [bp.name for bp in blueprints()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("core", registry.CORES, ids=lambda c: c.__name__.rsplit(".", 1)[1])
def test_core_declares_its_definition(core):
    definition = core.DEFINITION
    assert definition["code"] == core.NAME
    assert definition["url"] == f"{CANONICAL_BASE}/OperationDefinition/{definition['id']}"
    assert definition["status"] == "active" and definition["kind"] == "operation"
    assert definition["system"] or definition["type"] or definition["instance"]
    if not definition["system"]:
        assert definition["resource"], "a type or instance operation names its types"


def test_definitions_validate_with_the_r4b_models():
    from fhir.resources.R4B.operationdefinition import OperationDefinition

    from fhir_server.validation import validate_resource

    for definition in registry.definitions():
        OperationDefinition.model_validate(definition)
        validate_resource(definition)


def test_definitions_are_copies():
    first = registry.definition("verify")
    first["parameter"].clear()
    assert registry.definition("verify")["parameter"]
    assert registry.definition("nothing") is None


def test_capability_entries_name_each_definition_once():
    entries = registry.capability_entries()
    urls = [e["definition"] for e in entries]
    assert len(urls) == len(set(urls)) == len(registry.CORES)
    assert all(u.startswith(f"{CANONICAL_BASE}/OperationDefinition/") for u in urls)


@pytest.mark.parametrize("folder", ["fhir_server/operations", "fhir_server/api"])
def test_operations_and_routes_hold_no_table_sql(folder):
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if TABLE_SQL.search(line) and not line.lstrip().startswith("#")
    ]
    assert not found, "\n".join(found)


def test_cores_import_no_flask():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import fhir_server.operations.registry, fhir_server.storage.queries\n"
        "assert 'flask' not in sys.modules and 'werkzeug' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
