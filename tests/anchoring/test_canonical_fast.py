"""The fast canonical path must produce exactly the RFC 8785 bytes of the reference library."""

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from anchoring.canonical import _fast_jcs, canonical_bytes

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=600, deadline=None)
@given(json_values)
def test_fast_path_matches_rfc8785_or_declines(value):
    fast = _fast_jcs(value)
    try:
        reference = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        assert fast is None
        return
    assert fast is None or fast == reference


def test_fast_path_handles_fhir_decimals_and_unicode():
    resource = {
        "resourceType": "Observation",
        "valueQuantity": {"value": 158.5, "unit": "cm"},
        "note": [{"text": '頭痛 \u2028 \x1f "q"'}],
        "z": 1.0,
        "a": 1e-7,
    }
    assert _fast_jcs({"v": 1e-7}) is None  # exponent form: left to the reference library
    assert canonical_bytes(resource) == rfc8785.dumps(resource)


def test_big_integers_are_canonicalised_as_doubles():
    # A FHIR decimal beyond 2**53 is a JSON number JCS reads as a double.
    resource = {"resourceType": "Observation", "valueDecimal": 12345678901234567890}
    assert canonical_bytes(resource) == rfc8785.dumps(
        {"resourceType": "Observation", "valueDecimal": 1.2345678901234567e19}
    )


def test_integral_float_serialises_as_integer():
    assert _fast_jcs({"x": 2.0}) == b'{"x":2}'
