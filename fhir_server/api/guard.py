"""Resource-server enforcement for the HTTP routes: one place, Flask-thin.

Every ``/fhir`` route except ``metadata``, ``.well-known`` and the authorization
server's own ``/fhir/auth`` endpoints is authenticated by the SMART hook
(:mod:`fhir_server.smart.flask_hook`: 401 with ``WWW-Authenticate``), which
leaves the :class:`~fhir_server.smart.access.AccessContext` on ``g.access``.
The routes then call these functions, which delegate to the Flask-free
:class:`~fhir_server.resources.access_policy.AccessPolicy` (scopes -> 403,
patient compartment confinement -> answers like a missing resource, granular
scopes, and the consent hook ``node.consent`` documented there).

Interactions: ``c`` create (POST), ``r`` read / vread / instance history /
``$verify`` / ``$provenance`` / ``$everything`` (on Patient), ``u`` update (PUT,
conditional PUT), ``d`` delete, ``s`` search / type and system history.
``$anchor`` needs a ``system/*`` scope granting ``c`` (operators and backend
services: it commits every patient's pending versions to the chain).
"""

from __future__ import annotations

from flask import current_app, g

from anchoring.provenance import version_key_of
from fhir_server.errors import FHIRError, Gone
from fhir_server.operations.verify import _copies
from fhir_server.resources import ids
from fhir_server.resources.access_policy import AccessPolicy
from fhir_server.resources.searching import SearchPage
from fhir_server.resources.types import check_type


def policy() -> AccessPolicy:
    """The request's policy (None access when ``PHRX_AUTH`` is off: unrestricted)."""
    found = g.get("phrx_policy")
    if found is None:
        node = current_app.extensions["phrx.node"]
        found = AccessPolicy(g.get("access"), node.store, getattr(node, "consent", None))
        g.phrx_policy = found
    return found


def search(res_type: str, query: list[tuple[str, str]], strict: bool = False) -> SearchPage:
    """A search under the token: 403 on scope, confined results, screened includes."""
    return policy().search(res_type, query, strict=strict)


def read(res_type: str, res_id: str) -> dict:
    return policy().read(res_type, res_id)


def vread(res_type: str, res_id: str, version_id: int) -> dict:
    return policy().vread(res_type, res_id, version_id)


def write(interaction: str, res_type: str) -> AccessPolicy:
    """Scope check of a write before its body is read; the returned policy goes to
    ``store.unit_of_work(policy=...)`` so the Writer checks what is written."""
    current = policy()
    current.require(interaction, res_type)
    return current


def history(res_type: str | None = None, res_id: str | None = None) -> dict:
    """Keyword arguments confining ``store.history`` (403 when not permitted)."""
    return policy().history_scope(res_type, res_id)


def everything(patient_id: str):
    """Check ``$everything`` on ``patient_id``; returns the per-resource filter."""
    current = policy()
    current.everything_target(patient_id)
    return current.visible


def verify_stored(res_type: str, res_id: str, version_id: int | None = None) -> None:
    """``$verify`` / ``$provenance`` need read access to the resource (version);
    a deletion the token may see is left to the operation to report."""
    check_type(res_type)
    ids.check_id(res_id)
    policy().verify_target(res_type, res_id, version_id)


def verify_copies(body: dict) -> None:
    """``POST $verify``: a copy checked against the node's journal (it carries no
    Provenance) names a stored version, which must be readable (else 404 / 403)."""
    current = policy()
    if current.access is None:
        return
    try:
        pairs = _copies(body)
    except FHIRError:  # malformed bodies are reported by verify_external itself
        return
    for resource, provenance in pairs:
        key = version_key_of(resource) if provenance is None else None
        if key is None:
            continue
        try:
            current.vread(*key)
        except Gone:  # a deletion marker of a visible resource: nothing to hide
            continue


def anchor() -> None:
    policy().anchor()
