"""Business rules beyond R4 structure, dispatched by resource type (422 on failure)."""

from __future__ import annotations

from collections.abc import Callable

from validators.consent_rules import check_consent

RULES: dict[str, tuple[Callable[[dict], None], ...]] = {
    "Consent": (check_consent,),
}


def check_business_rules(resource: dict) -> None:
    """Run this server's rules for ``resource``'s type; raises ``BusinessRule``."""
    for rule in RULES.get(resource.get("resourceType"), ()):
        rule(resource)
