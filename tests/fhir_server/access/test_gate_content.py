"""AccessPolicy.check_content: a content that passed is not checked again (a
transaction checks every entry before writing, the Writer as it writes), and
nothing else rides on that."""

from __future__ import annotations

import pytest

from fhir_server.access.decision import Interaction
from fhir_server.access.gate import AccessPolicy
from fhir_server.errors import Forbidden
from fhir_server.smart.access import AccessContext
from fhir_server.smart.scopes import parse_resource_scope


class CountingAccess(AccessContext):
    """A real patient-scoped AccessContext that counts its scope decisions."""

    def require(self, interaction, res_type, query=None):
        self.context["decisions"] = self.context.get("decisions", 0) + 1
        return super().require(interaction, res_type, query)


def patient_policy(patient_id: str = "p1") -> tuple[AccessPolicy, CountingAccess]:
    access = CountingAccess(
        client_id="app",
        user=f"Patient/{patient_id}",
        patient=patient_id,
        scopes=(parse_resource_scope("patient/*.cu"),),
        scope="patient/*.cu",
        subject="someone",
        jti="j",
        expires_at=2**40,
    )
    return AccessPolicy(access, store=None), access


def observation(patient_id: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def test_a_content_that_passed_is_not_decided_again():
    policy, access = patient_policy()
    content = observation("p1")
    policy.check_content(Interaction.CREATE, content)
    policy.check_content(Interaction.CREATE, content)
    assert access.context["decisions"] == 1
    policy.check_content(Interaction.UPDATE, content)  # another interaction: decided on its own
    assert access.context["decisions"] == 2


def test_an_equal_but_other_content_is_decided_and_refused_outside_the_compartment():
    policy, access = patient_policy()
    policy.check_content(Interaction.CREATE, observation("p1"))
    policy.check_content(Interaction.CREATE, observation("p1"))  # equal, not the same dict
    assert access.context["decisions"] == 2
    outside = observation("p2")
    with pytest.raises(Forbidden):
        policy.check_content(Interaction.CREATE, outside)
    with pytest.raises(Forbidden):  # a refusal is never remembered as a pass
        policy.check_content(Interaction.CREATE, outside)
