"""$summary: which IPS 2.0.0 profile each entry of the document meets.

An entry declares in ``meta.profile`` only a profile it meets (IPS 2.0.0, the R4
``vitalsigns`` profile for vital signs). Where IPS says *populate if known* for an
element it requires (a Patient's birth date, an Observation's effective time or
performer, a Procedure's performed time, a MedicationStatement's effective time, a
DiagnosticReport's effective time) and the record does not know it, the element carries
the ``data-absent-reason`` extension (``unknown``): the IPS way to say so, never an
invented value. Where the subject matter itself is missing (a Condition, allergy or
procedure without a code) or the content cannot meet the profile (a laboratory result
without the ``observation-category`` system, a vital sign in units outside the R4 set),
the entry declares the base R4 StructureDefinition of its type instead, which the IPS
Bundle and Composition allow (their slices are open). Flask-free.
"""

from __future__ import annotations

IPS = "http://hl7.org/fhir/uv/ips/StructureDefinition/"
CORE = "http://hl7.org/fhir/StructureDefinition/"
BUNDLE = IPS + "Bundle-uv-ips"
COMPOSITION = IPS + "Composition-uv-ips"
LAB = IPS + "Observation-results-laboratory-pathology-uv-ips"
RADIOLOGY = IPS + "Observation-results-radiology-uv-ips"
VITALS = CORE + "vitalsigns"
DAR = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"
# R4 ucum-vitals-common (required for the units of vitalsigns components)
VITAL_UNITS = frozenset(
    {"%", "cm", "[in_i]", "kg", "g", "[lb_av]", "Cel", "[degF]", "mm[Hg]", "/min", "kg/m2", "m2"}
)
# the IPS profile of each type whose profile needs nothing a valid R4 resource may lack
PLAIN = {
    "Immunization": IPS + "Immunization-uv-ips",
    "PractitionerRole": IPS + "PractitionerRole-uv-ips",
    "Device": IPS + "Device-observer-uv-ips",
}
# the IPS profile of each type that needs one element: (element, profile)
NEEDS = {
    "Condition": ("code", IPS + "Condition-uv-ips"),
    "AllergyIntolerance": ("code", IPS + "AllergyIntolerance-uv-ips"),
    "Procedure": ("code", IPS + "Procedure-uv-ips"),
    "Medication": ("code", IPS + "Medication-uv-ips"),
    "Practitioner": ("name", IPS + "Practitioner-uv-ips"),
    "Organization": ("name", IPS + "Organization-uv-ips"),
    "Specimen": ("type", IPS + "Specimen-uv-ips"),
    "MedicationRequest": ("subject", IPS + "MedicationRequest-uv-ips"),
    "MedicationStatement": ("subject", IPS + "MedicationStatement-uv-ips"),
    "DiagnosticReport": ("subject", IPS + "DiagnosticReport-uv-ips"),
}
# element[x] IPS requires (populate if known) -> the choice carrying data-absent-reason
WHEN = {
    "Observation": "effective",
    "Procedure": "performed",
    "MedicationStatement": "effective",
    "DiagnosticReport": "effective",
}
# the types an IPS result's performer may name (CareTeam and RelatedPerson are never included)
PERFORMERS = ("Practitioner", "PractitionerRole", "Organization", "Patient")


def absent(code: str = "unknown") -> dict:
    return {"extension": [{"url": DAR, "valueCode": code}]}


def no_performer() -> dict:
    """A performer the record does not name: unknown (with a display for readers)."""
    return {**absent(), "display": "Performer not recorded"}


def support_meets(resource: dict) -> bool:
    """Does a supporting resource (practitioner, organization ...) meet its IPS profile?
    Those that do not are left out, and the references to them dropped."""
    need = NEEDS.get(resource.get("resourceType"))
    return need is None or bool(resource.get(need[0]))


def profile_of(resource: dict) -> str:
    """The profile ``resource`` (a pruned copy: its references name entries) meets,
    having filled the *populate if known* elements it lacks (in place)."""
    kind = resource["resourceType"]
    if kind == "Patient":
        return _patient(resource)
    if kind == "Observation":
        return _observation(resource)
    if kind in WHEN:
        _when(resource)
    if kind in PLAIN:
        return PLAIN[kind]
    need = NEEDS.get(kind)
    if need is not None and resource.get(need[0]) and _contained_medication_coded(resource):
        return need[1]
    return CORE + kind


def _contained_medication_coded(resource: dict) -> bool:
    """A medication named as a contained resource must be an IPS Medication (a code)."""
    ref = (resource.get("medicationReference") or {}).get("reference") or ""
    if not ref.startswith("#"):
        return True
    found = [c for c in resource.get("contained") or [] if c.get("id") == ref[1:]]
    return bool(found) and bool(found[0].get("code"))


def _patient(patient: dict) -> str:
    """IPS: a name (SHALL) and the birth date (if known)."""
    names = patient.get("name") or []
    if not any(n.get("family") or n.get("given") or n.get("text") for n in names):
        patient["name"] = [{"_text": absent()}]
    if not patient.get("birthDate") and "_birthDate" not in patient:
        patient["_birthDate"] = absent()
    return IPS + "Patient-uv-ips"


def _when(resource: dict) -> None:
    element = WHEN[resource["resourceType"]]
    choices = [f"{element}{k}" for k in ("DateTime", "Period", "Instant", "Timing", "String")]
    if not any(c in resource or f"_{c}" in resource for c in choices):
        resource[f"_{element}DateTime"] = absent()


def _categories(resource: dict) -> set[str]:
    return {
        c.get("code")
        for concept in resource.get("category") or []
        for c in concept.get("coding") or []
        if c.get("system") == CATEGORY
    }


def _observation(obs: dict) -> str:
    categories = _categories(obs)
    if not obs.get("performer"):
        obs["performer"] = [no_performer()]  # the record names no performer: unknown
    if "vital-signs" in categories:
        return VITALS if _vital_sign(obs) else CORE + "Observation"
    kind = "laboratory" if "laboratory" in categories else None
    kind = kind or ("imaging" if "imaging" in categories else None)
    if kind is None or not _result(obs, kind):
        return CORE + "Observation"
    _when(obs)
    return LAB if kind == "laboratory" else RADIOLOGY


def _result(obs: dict, kind: str) -> bool:
    """Can this laboratory / imaging result meet its IPS profile (with data-absent-reason
    where IPS asks for it)? Its performers must name practitioners, organizations or the
    patient; its value (or members, components, absent reason) must be there."""
    if not (obs.get("subject") or {}).get("reference"):
        return False
    if "effectiveInstant" in obs or "effectiveTiming" in obs:
        return False
    when = obs.get("effectiveDateTime")
    if kind == "imaging" and isinstance(when, str) and len(when) < 8:
        return False  # ips-1: at least a day
    for performer in obs.get("performer") or []:
        ref = performer.get("reference")
        if ref and ref.split("/", 1)[0] not in PERFORMERS:
            return False
    has_value = any(k.startswith("value") for k in obs) or "dataAbsentReason" in obs
    if not (has_value or obs.get("hasMember") or obs.get("component")):
        return False  # ips-2
    if kind == "imaging" and obs.get("hasMember") and obs.get("component"):
        return False
    return all(_component_value(c) for c in obs.get("component") or [])  # ips-3


def _component_value(component: dict) -> bool:
    return any(k.startswith("value") for k in component) or "dataAbsentReason" in component


def _vital_sign(obs: dict) -> bool:
    """R4 ``vitalsigns``: a subject, a code, an effective time to the day at least, a
    value (or members, components, absent reason), component units from UCUM's vitals."""
    if not (obs.get("subject") and obs.get("code")):
        return False
    when = obs.get("effectiveDateTime")
    if not (isinstance(when, str) and len(when) >= 8) and "effectivePeriod" not in obs:
        return False
    has_value = any(k.startswith("value") for k in obs) or "dataAbsentReason" in obs
    if not (has_value or obs.get("component") or obs.get("hasMember")):
        return False  # vs-2
    for component in obs.get("component") or []:
        if not _component_value(component):
            return False  # vs-3
        quantity = component.get("valueQuantity")
        if quantity and (quantity.get("system") != UCUM or quantity.get("code") not in VITAL_UNITS):
            return False
    return True


def settle(profiles: dict, members: dict) -> None:
    """Laboratory, imaging and vital-sign members (``hasMember``, ``derivedFrom``) must
    meet the profile of the Observation that groups them: one that names a member that
    does not is put back to the base profile, until nothing changes."""
    rules = {
        LAB: (("hasMember",), (LAB,)),
        RADIOLOGY: (("hasMember",), (RADIOLOGY,)),
        VITALS: (("hasMember", "derivedFrom"), (VITALS,)),
    }
    changed = True
    while changed:
        changed = False
        for key, profile in profiles.items():
            if profile not in rules:
                continue
            elements, allowed = rules[profile]
            resource = members[key]
            for element in elements:
                for ref in resource.get(element) or []:
                    target = tuple((ref.get("reference") or "").split("/", 1))
                    if target[0] == "Observation" and profiles.get(target) not in allowed:
                        profiles[key] = CORE + "Observation"
                        changed = True
