"""The clients these tests drive are the pinned ones: an exact version in pyproject.toml
(Python) or package.json (npm), and that version installed."""

from __future__ import annotations

import json
import tomllib
from importlib.metadata import PackageNotFoundError, version

import pytest

from tests.clients.app_site import NODE_MODULES, REPO

PYTHON_CLIENTS = ["fhirclient", "fhirpy"]
NPM_CLIENTS = ["fhirclient", "fhir-kit-client", "puppeteer-core"]


def _python_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["optional-dependencies"]["dev"]:
        name, sep, pinned = requirement.partition("==")
        if sep:
            pins[name.strip().lower()] = pinned.strip()
    return pins


@pytest.mark.parametrize("name", PYTHON_CLIENTS)
def test_python_client_is_pinned_and_installed_at_the_pin(name):
    pins = _python_pins()
    assert name in pins, f"{name} is not pinned (==) in pyproject.toml"
    try:
        installed = version(name)
    except PackageNotFoundError:
        pytest.skip(f"{name} is not installed")
    assert installed == pins[name]


@pytest.mark.parametrize("name", NPM_CLIENTS)
def test_npm_client_is_pinned_and_installed_at_the_pin(name):
    wanted = json.loads((REPO / "package.json").read_text())["devDependencies"][name]
    assert wanted[0].isdigit(), f"{name}: {wanted!r} is a range, not a pin"
    installed = NODE_MODULES / name / "package.json"
    if not installed.is_file():
        pytest.skip(f"npm package {name} absent (npm ci)")
    assert json.loads(installed.read_text())["version"] == wanted
