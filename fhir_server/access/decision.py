"""The gate's vocabulary: what a caller does, and what it is told.

* :class:`Interaction`: the one action vocabulary of the gate -- the FHIR R4 RESTful
  interactions (``TypeRestfulInteraction`` / ``SystemRestfulInteraction`` codes) plus
  ``operation``. SMART scopes and the consent engine speak their own words; the
  translation to them happens here, once (:attr:`Interaction.smart`,
  :attr:`Interaction.writes`).
* :class:`Decision`: the one decision type, the consent engine's (``permit``, the
  reasons, obligations, break-glass). A consent hook returns one for every question.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from consent.engine import Decision

__all__ = ["Decision", "Grant", "Interaction"]


class Interaction(StrEnum):
    READ = "read"
    VREAD = "vread"
    SEARCH_TYPE = "search-type"
    SEARCH_SYSTEM = "search-system"
    HISTORY_INSTANCE = "history-instance"
    HISTORY_TYPE = "history-type"
    HISTORY_SYSTEM = "history-system"
    CREATE = "create"
    UPDATE = "update"
    PATCH = "patch"
    DELETE = "delete"
    OPERATION = "operation"

    @property
    def smart(self) -> str:
        """The SMART scope permission (``c r u d s``) this interaction needs."""
        return _SMART[self]

    @property
    def writes(self) -> bool:
        """Does it change data (consent decides it as a write)?"""
        return self in (
            Interaction.CREATE,
            Interaction.UPDATE,
            Interaction.PATCH,
            Interaction.DELETE,
        )


@dataclass(frozen=True)
class Grant:
    """What one permitted interaction on one type may touch."""

    interaction: Interaction
    res_type: str
    compartment: str | None = None  # patient id the interaction stays inside
    constraints: tuple = ()  # granular alternatives of (param, value) pairs


_SMART = {
    Interaction.READ: "r",
    Interaction.VREAD: "r",
    Interaction.HISTORY_INSTANCE: "r",
    Interaction.OPERATION: "r",
    Interaction.SEARCH_TYPE: "s",
    Interaction.SEARCH_SYSTEM: "s",
    Interaction.HISTORY_TYPE: "s",
    Interaction.HISTORY_SYSTEM: "s",
    Interaction.CREATE: "c",
    Interaction.UPDATE: "u",
    Interaction.PATCH: "u",
    Interaction.DELETE: "d",
}
