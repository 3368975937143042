"""``import_mhb.run`` internals that keep an import fast without changing what it
stores: only new or changed resources are validated and prepared, the Provenance's
targets are checked without the model, and the cyclic GC is paused and restored."""

from __future__ import annotations

import gc
import hashlib
import hmac
from contextlib import contextmanager

import pytest

import mhb_import
from fhir_server.errors import BadRequest, InvalidResource
from fhir_server.operations import import_mhb, import_mhb_write
from mhb_import.gcpause import gc_paused
from mhb_import.synthetic import dumps_json, scenario_export


@pytest.fixture
def patient_node(node):
    patient = {"resourceType": "Patient", "id": "p1"}
    with node.store.unit_of_work(prepare=[patient]) as writer:
        writer.update("Patient", "p1", patient)
    return node


@pytest.fixture
def spy(monkeypatch, patient_node):
    """Records what run() validates and what it asks the store to prepare."""
    seen = {"validated": [], "prepared": []}
    real_validate = import_mhb_write.validate_resource
    real_unit = patient_node.store.unit_of_work

    def validate(resource, **kw):
        seen["validated"].append(resource["resourceType"])
        return real_validate(resource, **kw)

    @contextmanager
    def unit_of_work(prepare=(), **kw):
        seen["prepared"].append([r["resourceType"] for r in prepare])
        with real_unit(prepare=prepare, **kw) as writer:
            yield writer

    monkeypatch.setattr(import_mhb_write, "validate_resource", validate)
    monkeypatch.setattr(patient_node.store, "unit_of_work", unit_of_work)
    return seen


def test_reimport_validates_and_prepares_nothing(patient_node, spy):
    data = dumps_json(scenario_export())
    first = import_mhb.run(patient_node, "p1", data)
    written = first.totals()["created"]  # clinical resources + the Provenance
    assert len(spy["validated"]) == written
    assert spy["validated"].count("Provenance") == 1
    assert len(spy["prepared"][0]) == written
    spy["validated"].clear()
    again = import_mhb.run(patient_node, "p1", data)
    assert again.totals()["unchanged"] == written - 1
    assert again.provenance is None
    assert spy["validated"] == []
    assert spy["prepared"][1] == []


def test_changed_row_validates_only_what_changed(patient_node, spy):
    doc = scenario_export()
    import_mhb.run(patient_node, "p1", dumps_json(doc))
    doc["myhealthbank"]["bdata"]["r1"][0]["r1.12"] = "999"  # co-payment: the claim only
    spy["validated"].clear()
    outcome = import_mhb.run(patient_node, "p1", dumps_json(doc))
    assert outcome.totals()["updated"] == 1
    assert outcome.counts["ExplanationOfBenefit"]["updated"] == 1
    assert sorted(spy["validated"]) == ["ExplanationOfBenefit", "Provenance"]
    assert sorted(spy["prepared"][1]) == ["ExplanationOfBenefit", "Provenance"]
    assert outcome.provenance is not None


def _provenance(targets):
    return {
        "resourceType": "Provenance",
        "id": "prov-1",
        "target": targets,
        "recorded": "2026-01-01T00:00:00+00:00",
        "agent": [{"who": {"reference": "Patient/p1"}}],
    }


def test_provenance_with_plain_targets_is_valid():
    validated: set = set()
    targets = [{"reference": f"Observation/mhb-{n}"} for n in range(1000)]
    import_mhb_write.validate_provenance(_provenance(targets), validated)
    assert validated == {("Provenance", "prov-1")}


@pytest.mark.parametrize(
    "odd",
    [
        {"reference": ["Observation/x"]},  # not a string
        {"reference": "Observation/x", "bogus": 1},  # unknown element
        {"reference": "Observation/x", "display": 7},  # wrong type
    ],
)
def test_provenance_with_any_other_target_is_validated_in_full(odd):
    targets = [{"reference": "Observation/a"}, odd]
    with pytest.raises(InvalidResource):
        import_mhb_write.validate_provenance(_provenance(targets), set())


def test_provenance_with_a_valid_unusual_target_passes_full_validation():
    targets = [{"reference": "Observation/a"}, {"reference": "Observation/b", "display": "b"}]
    validated: set = set()
    import_mhb_write.validate_provenance(_provenance(targets), validated)
    assert validated == {("Provenance", "prov-1")}


def test_gc_pause_is_counted_and_restores_the_previous_state():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer user still needs it paused
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # was off before: stays off
    finally:
        gc.enable()


def test_import_restores_the_gc_after_an_error(patient_node):
    assert gc.isenabled()
    with pytest.raises(BadRequest):
        import_mhb.run(patient_node, "p1", b"{ truncated")
    assert gc.isenabled()
    import_mhb.run(patient_node, "p1", dumps_json(scenario_export()))
    assert gc.isenabled()


def test_ids_keep_their_documented_formula():
    # stored resources are addressed by these ids: a faster HMAC call must not move them
    ns = b"test-namespace-0123456789abcdef"
    export = mhb_import.parse_export(dumps_json(scenario_export()))
    bundle = mhb_import.to_bundle(export, patient_id="p1", id_namespace=ns).bundle
    msg = "\x1f".join(["p1", "Coverage", "nhi"]).encode()
    expected = "mhb-" + hmac.new(ns, msg, hashlib.sha256).hexdigest()[:40]
    assert f"Coverage/{expected}" in {e["request"]["url"] for e in bundle["entry"]}
