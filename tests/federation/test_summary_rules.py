"""What a reading node accepts of the home node's IPS entries: an entry may omit what
its anchored version holds and carry the IPS's data-absent-reason markers where the
record lacks a required element -- never add or change anything else."""

from __future__ import annotations

from federation.summary_check import DATA_ABSENT, content, omits_only

ANCHORED = {
    "resourceType": "Observation",
    "id": "o1",
    "meta": {"versionId": "1"},
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}], "text": "HbA1c"},
    "subject": {"reference": "Patient/p"},
    "encounter": {"reference": "Encounter/e"},
    "valueQuantity": {"value": 7.1, "unit": "%"},
}
ABSENT = {"extension": [{"url": DATA_ABSENT, "valueCode": "unknown"}], "display": "not recorded"}


def accepted(entry: dict) -> bool:
    return omits_only(content(entry, ANCHORED), content(ANCHORED))


def test_the_same_entry_with_other_meta_and_narrative_is_accepted():
    entry = {
        **ANCHORED,
        "meta": {"profile": ["x"]},
        "text": {"status": "generated", "div": "<div/>"},
    }
    assert accepted(entry)


def test_an_entry_that_omits_a_reference_is_accepted():
    entry = {k: v for k, v in ANCHORED.items() if k != "encounter"}
    assert accepted(entry)


def test_data_absent_markers_for_missing_required_elements_are_accepted():
    assert accepted({**ANCHORED, "performer": [ABSENT]})
    assert accepted({**ANCHORED, "_effectiveDateTime": {"extension": ABSENT["extension"]}})


def test_a_changed_value_is_refused():
    assert not accepted({**ANCHORED, "valueQuantity": {"value": 6.1, "unit": "%"}})
    assert not accepted({**ANCHORED, "status": "amended"})


def test_an_added_element_or_list_item_is_refused():
    assert not accepted({**ANCHORED, "performer": [{"reference": "Practitioner/x"}]})
    coding = [*ANCHORED["code"]["coding"], {"system": "http://loinc.org", "code": "X"}]
    assert not accepted({**ANCHORED, "code": {**ANCHORED["code"], "coding": coding}})


def test_a_marker_cannot_hide_a_change_to_an_element_the_record_has():
    # the record has a value: a "data absent" in its place is a change, not a marker
    assert not accepted({**ANCHORED, "valueQuantity": ABSENT})
    assert not accepted({**ANCHORED, "_status": {"extension": ABSENT["extension"]}, "status": "x"})
    # a marker carrying anything beside its extension and display is no marker
    assert not accepted({**ANCHORED, "performer": [{**ABSENT, "reference": "Practitioner/x"}]})
