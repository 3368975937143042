"""The anchoring Provenance as an R4 resource: what the HL7 validator checks of it
(tests/conformance) kept here without Java: a verifier named by its chain account."""

from __future__ import annotations

from anchoring.journal_reads import ANCHORED, VersionAnchor
from anchoring.proof import InclusionProof
from anchoring.provenance import CHAIN_ACCOUNT_SYSTEM, claim_from_provenance, provenance_for
from fhir_server.validation import validate_resource

AUTHORITY = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"


def _anchor() -> VersionAnchor:
    return VersionAnchor(
        res_type="Patient",
        res_id="p1",
        version_id=1,
        leaf=bytes(32),
        batch_id="b" * 32,
        leaf_index=0,
        state=ANCHORED,
        root=bytes([1]) * 32,
        leaf_count=1,
        proof=InclusionProof(leaf_index=0, tree_size=1, path=()),
        tx_hash=bytes([2]) * 32,
        block_number=3,
        block_time=1_700_000_000,
        chain_id=31337,
        contract="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        authority_registry="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
        authority=AUTHORITY,
        country="TW",
    )


def test_the_verifier_is_named_by_its_chain_account_not_as_a_uri():
    provenance = provenance_for(_anchor())
    validate_resource(provenance)
    identifier = provenance["agent"][0]["who"]["identifier"]
    # urn:ietf:rfc:3986 would require the value to be a URI; an EIP-55 address is none
    assert identifier == {"system": CHAIN_ACCOUNT_SYSTEM, "value": AUTHORITY}
    assert claim_from_provenance(provenance).authority == AUTHORITY
