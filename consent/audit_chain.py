"""Hash-chained AuditEvents: deleting or altering one event is detectable.

Each appended event carries, in one extension, its sequence number and the
SHA-256 of the previous event (RFC 8785 canonical JSON without ``meta`` and
``text``, as :mod:`anchoring.canonical` hashes resources). A verifier recomputes
the chain: a gap in the sequence is a deletion, a hash that no longer matches
the next event's ``previous`` is an alteration, and a chain that ends before the
recorded head (last hash and sequence, which the node anchors or keeps apart) is
a truncation. Flask-free and storage-agnostic.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

from anchoring.canonical import canonical_bytes

CHAIN_EXT = "https://phrx.example.org/fhir/StructureDefinition/audit-chain"
GENESIS = "0" * 64


@dataclass(frozen=True)
class Head:
    sequence: int  # sequence number of the last event (0: empty chain)
    digest: str  # hex SHA-256 of the last event (GENESIS: empty chain)


@dataclass
class ChainReport:
    ok: bool
    problems: list[str] = field(default_factory=list)
    checked: int = 0


def event_digest(event: dict) -> str:
    return hashlib.sha256(canonical_bytes(event)).hexdigest()


def link_of(event: dict) -> tuple[int, str] | None:
    """(sequence, previous digest) stored in ``event``, or None when it is not chained."""
    for ext in event.get("extension") or []:
        if ext.get("url") == CHAIN_EXT:
            parts = {e.get("url"): e for e in ext.get("extension") or []}
            try:
                return int(parts["sequence"]["valueInteger"]), parts["previous"]["valueString"]
            except (KeyError, TypeError, ValueError):
                return None
    return None


class AuditChain:
    """Appends events to one chain (e.g. per node); ``head`` is what to anchor."""

    def __init__(self, head: Head | None = None) -> None:
        self._head = head or Head(0, GENESIS)
        self._lock = threading.Lock()

    @property
    def head(self) -> Head:
        return self._head

    def append(self, event: dict) -> dict:
        """A copy of ``event`` linked to the previous one; the head moves to it."""
        return self.link(event)[0]

    def link(self, event: dict) -> tuple[dict, bytes]:
        """Like :meth:`append`, also returning the canonical bytes the digest was taken
        of (the anchoring leaf hashes the same bytes: computed once per event)."""
        with self._lock:
            sequence = self._head.sequence + 1
            link = {
                "url": CHAIN_EXT,
                "extension": [
                    {"url": "sequence", "valueInteger": sequence},
                    {"url": "previous", "valueString": self._head.digest},
                ],
            }
            others = [e for e in event.get("extension") or [] if e.get("url") != CHAIN_EXT]
            chained = {**event, "extension": [*others, link]}
            canonical = canonical_bytes(chained)
            self._head = Head(sequence, hashlib.sha256(canonical).hexdigest())
            return chained, canonical


def verify_chain(events: list[dict], head: Head | None = None) -> ChainReport:
    """Check ``events`` (any order) form one unbroken chain, ending at ``head`` if given."""
    report = ChainReport(True)
    linked = []
    for event in events:
        link = link_of(event)
        if link is None:
            report.problems.append(f"AuditEvent/{event.get('id')} carries no chain link")
        else:
            linked.append((link[0], link[1], event))
    linked.sort(key=lambda item: item[0])
    expected_sequence, expected_previous = 1, GENESIS
    for sequence, previous, event in linked:
        name = f"event #{sequence} (AuditEvent/{event.get('id')})"
        if sequence < expected_sequence:
            report.problems.append(f"{name} appears twice in the chain")
            continue
        if sequence > expected_sequence:
            missing = ", ".join(f"#{n}" for n in range(expected_sequence, sequence))
            report.problems.append(f"deleted: event {missing} is missing before {name}")
        elif previous != expected_previous:
            report.problems.append(
                f"altered: event #{sequence - 1} no longer matches the hash {name} recorded"
            )
        expected_sequence, expected_previous = sequence + 1, event_digest(event)
        report.checked += 1
    if head is not None:
        last = expected_sequence - 1
        if last < head.sequence:
            report.problems.append(
                f"truncated: the chain ends at #{last}, the head is #{head.sequence}"
            )
        elif last == head.sequence and expected_previous != head.digest:
            report.problems.append(f"altered: event #{last} no longer matches the head")
    report.ok = not report.problems
    return report
