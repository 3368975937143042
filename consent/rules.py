"""Rules for the patient-privacy Consents this engine acts on (issue #14).

A Consent the consent engine would act on must be specific enough to be safe:

* it names at least one actor (a provision's ``actor``), except a pure break-glass
  policy (every permitting provision limited to purpose ETREAT / BTG), which by
  design applies to any treating clinician;
* its root provision has a period with an ``end`` (no open-ended sharing);
* every ``purpose`` is a known v3 PurposeOfUse code of ``v3-ActReason``.

Consents of other scopes (advance directives, research, treatment) are not access
policies for PHRX and are left alone. A broken rule raises
:class:`ConsentRuleViolation`, this core's own error; the node answers it with 422
Unprocessable Entity (a valid R4 resource that breaks a rule of this server).
"""

from __future__ import annotations

from consent.codes import (
    ACT_REASON,
    BREAK_GLASS_PURPOSES,
    CONSENT_SCOPE,
    PATIENT_PRIVACY,
    PURPOSES,
    has_code,
)
from consent.provisions import time_range


class ConsentRuleViolation(Exception):
    """A patient-privacy Consent breaks one of the rules above: ``message`` says which,
    ``expression`` (FHIRPath) names the element."""

    def __init__(self, message: str, *, expression: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression


def check_consent(resource: dict) -> None:
    """Raise :class:`ConsentRuleViolation` when a patient-privacy Consent breaks a rule."""
    if resource.get("resourceType") != "Consent":
        return
    if not has_code(resource.get("scope"), CONSENT_SCOPE, PATIENT_PRIVACY):
        return
    root = resource.get("provision")
    if not isinstance(root, dict):
        raise ConsentRuleViolation(
            "A patient-privacy Consent needs a provision (who may do what, until when).",
            expression=("Consent.provision",),
        )
    provisions = list(_walk(root, "Consent.provision"))
    _check_purposes(provisions)
    _check_actor(provisions)
    _check_period(root)


def _walk(provision: dict, path: str):
    yield path, provision
    for index, child in enumerate(provision.get("provision") or []):
        if isinstance(child, dict):
            yield from _walk(child, f"{path}.provision[{index}]")


def _check_purposes(provisions) -> None:
    for path, provision in provisions:
        for index, coding in enumerate(provision.get("purpose") or []):
            system, code = coding.get("system"), coding.get("code")
            if system != ACT_REASON or code not in PURPOSES:
                raise ConsentRuleViolation(
                    f"Unknown purpose of use {system or '(no system)'}|{code}: use a v3 "
                    f"PurposeOfUse code of {ACT_REASON} (e.g. TREAT, ETREAT, BTG).",
                    expression=(f"{path}.purpose[{index}]",),
                )


def _check_actor(provisions) -> None:
    if any(p.get("actor") for _, p in provisions):
        return
    permits = [p for _, p in provisions if (p.get("type") or "permit") == "permit"]
    break_glass_only = bool(permits) and all(
        _purpose_codes(p) and _purpose_codes(p) <= BREAK_GLASS_PURPOSES for p in permits
    )
    if not break_glass_only:
        raise ConsentRuleViolation(
            "A patient-privacy Consent must name at least one actor "
            "(provision.actor.reference: a Reference or an Identifier of the practitioner).",
            expression=("Consent.provision.actor",),
        )


def _purpose_codes(provision: dict) -> set[str]:
    return {c.get("code") for c in provision.get("purpose") or [] if isinstance(c, dict)}


def _check_period(root: dict) -> None:
    period = root.get("period") or {}
    if not period.get("end"):
        raise ConsentRuleViolation(
            "A patient-privacy Consent must end: give provision.period.end.",
            expression=("Consent.provision.period.end",),
        )
    window = time_range(period)
    if window is None or window[1] <= window[0]:
        raise ConsentRuleViolation(
            "provision.period.end must not be before provision.period.start.",
            expression=("Consent.provision.period",),
        )
