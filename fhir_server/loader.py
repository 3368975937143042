"""Load transaction Bundles from files, into a data dir directly or over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import requests

from fhir_server import fastjson
from fhir_server.errors import BadRequest


def bundle_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".json")
    elif path.is_file():
        files = [path]
    else:
        raise BadRequest(f"{path} is neither a file nor a directory.")
    if not files:
        raise BadRequest(f"No .json files in {path}.")
    return files


def read_bundle(path: Path) -> dict:
    try:
        bundle = fastjson.parse(path.read_bytes())
    except (OSError, ValueError) as error:
        raise BadRequest(f"{path.name}: not readable JSON ({str(error)[:120]}).") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest(f"{path.name}: not a FHIR Bundle.")
    return bundle


def load_local(store, files: list[Path], base_url: str) -> Iterator[tuple[Path, int]]:
    """Process each Bundle with the node's store; yields (file, entries)."""
    from fhir_server.rest.bundles import process_bundle

    for path in files:
        bundle = read_bundle(path)
        process_bundle(store, bundle, base_url)
        yield path, len(bundle.get("entry") or [])


def load_http(url: str, files: list[Path], headers: dict | None = None):
    session = requests.Session()
    for path in files:
        response = session.post(
            url.rstrip("/"),
            data=path.read_bytes(),
            headers={"Content-Type": "application/fhir+json", **(headers or {})},
            timeout=600,
        )
        if response.status_code >= 400:
            detail = _diagnostics(response)
            raise BadRequest(f"{path.name}: HTTP {response.status_code}: {detail}")
        yield path, len(response.json().get("entry") or [])


def _diagnostics(response) -> str:
    try:
        issues = response.json().get("issue", [])
        return "; ".join(i.get("diagnostics", i.get("code", "")) for i in issues)[:300]
    except ValueError:
        return response.text[:300]
