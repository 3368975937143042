"""The resource-server library: scopes, AccessContext.require, the Flask hook."""

from __future__ import annotations

import pytest

from fhir_server.errors import Forbidden, Unauthorized
from fhir_server.smart import scopes
from fhir_server.smart.access import AccessContext


def _ctx(scope, patient="p1", user="Patient/p1"):
    parsed = tuple(p for p in map(scopes.parse_resource_scope, scope.split()) if p)
    return AccessContext("app", user, patient, parsed, scope, "alice", "j", 0)


def test_v1_maps_to_v2():
    assert scopes.parse_resource_scope("patient/*.read").v2() == "patient/*.rs"
    assert scopes.parse_resource_scope("user/Observation.write").v2() == "user/Observation.cud"
    assert scopes.parse_resource_scope("system/*.*").v2() == "system/*.cruds"


@pytest.mark.parametrize(
    "bad",
    [
        "patient/*.sr",
        "patient/*.x",
        "patient/*.rr",
        "doctor/*.rs",
        "patient/*.read?category=a",
        "patient/obs.rs",
    ],
)
def test_invalid_scopes(bad):
    assert scopes.parse_resource_scope(bad) is None


def test_covers_and_narrows():
    assert scopes.narrows("patient/*.rs", "patient/Observation.r")
    assert scopes.narrows("patient/*.rs", "patient/Observation.rs?category=laboratory")
    assert not scopes.narrows("patient/Observation.rs?category=laboratory", "patient/*.rs")
    assert not scopes.narrows("patient/*.rs", "patient/*.cruds")
    assert not scopes.narrows("patient/*.rs", "user/*.rs")
    assert scopes.allowed("patient/*.rs system/*.rs bogus openid", "patient/*.cruds openid") == [
        "patient/*.rs",
        "openid",
    ]


def test_require_patient_scopes():
    ctx = _ctx("patient/*.rs")
    assert ctx.compartment_patient == "p1"
    permit = ctx.require("r", "Observation")
    assert permit.compartment == "p1" and permit.constraints == ()
    with pytest.raises(Forbidden):
        ctx.require("c", "Observation")
    with pytest.raises(Forbidden):
        ctx.require("d", "Patient")


def test_require_granular():
    ctx = _ctx("patient/Observation.rs?category=laboratory")
    ok = ctx.require("s", "Observation", [("category", "laboratory"), ("code", "x")])
    assert ok.constraints == ()
    with pytest.raises(Forbidden):
        ctx.require("s", "Observation", [("code", "x")])
    with pytest.raises(Forbidden):
        ctx.require("s", "Condition", [("category", "laboratory")])
    read = ctx.require("r", "Observation")  # caller must check the resource matches
    assert read.constraints == ((("category", "laboratory"),),)


def test_require_user_and_system():
    ctx = _ctx("user/*.cruds", patient=None, user="Practitioner/d1")
    assert ctx.compartment_patient is None and ctx.user_patient is None
    assert ctx.require("u", "Encounter").compartment is None
    sysctx = _ctx("system/Patient.rs", patient=None, user=None)
    assert sysctx.require("s", "Patient").compartment is None
    with pytest.raises(Forbidden):
        sysctx.require("s", "Observation")


def test_patient_scope_without_patient_permits_nothing():
    with pytest.raises(Forbidden):
        _ctx("patient/*.rs", patient=None).require("r", "Patient")


def test_forbidden_renders_403(smart_client, flow):
    token = flow.full(scope="launch/patient patient/Observation.rs")
    r = smart_client.get("/fhir/metadata")
    assert r.status_code == 200
    from flask import g

    with smart_client.application.test_request_context(
        "/fhir/Patient/p1", headers={"Authorization": f"Bearer {token['access_token']}"}
    ):
        from fhir_server.api.smart.bearer_hook import authenticate_request

        authenticate_request()
        assert g.access.patient == "p1"
        with pytest.raises(Forbidden) as info:
            g.access.require("r", "Patient")
        assert info.value.status == 403


def test_verifier_errors():
    from fhir_server.smart.access import _unauthorized

    error = _unauthorized("x")
    assert isinstance(error, Unauthorized)
    assert error.headers["WWW-Authenticate"] == 'Bearer realm="phrx", error="invalid_token"'


def test_hook_disabled(smart_node):
    from fhir_server.app import create_app

    client = create_app({"NODE": smart_node, "PHRX_AUTH": False}).test_client()
    assert client.get("/fhir/Patient/p1").status_code == 200
