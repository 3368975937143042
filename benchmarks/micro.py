"""Micro-benchmarks of three hot paths: prints figures, asserts nothing (issue #14 moved
them here from the unit tests, which check only what these functions compute).

    .venv/bin/python benchmarks/micro.py [--leaves 10000] [--runs 200] [--repeat 5]
    phrx bench micro [...]

* Merkle tree and every inclusion proof for ``--leaves`` leaves (one anchoring batch);
* the required-bindings check of one Synthea Observation, µs per call;
* ``index_rows`` (search index rows, blind-indexed) of a Synthea Observation and Patient,
  and of the Observation with the CachingBlind the writer uses, µs per call.

Each figure is the best of ``--repeat`` timed rounds (the least disturbed by the machine).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# A Synthea vital sign, as ingested (Synthea R4 bundles, ../shared/data/synthea-r4).
OBSERVATION = {
    "resourceType": "Observation",
    "id": "af5597a6-304d-4c8f-b596-60d17d445714",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                    "display": "vital-signs",
                }
            ]
        }
    ],
    "code": {
        "coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "Body Height"}],
        "text": "Body Height",
    },
    "subject": {"reference": "urn:uuid:018f428e-34f6-4707-8009-5ad742f901e7"},
    "encounter": {"reference": "urn:uuid:a87b575f-a10e-4079-9e9e-e378729e422d"},
    "effectiveDateTime": "2011-10-14T23:37:54+00:00",
    "issued": "2011-10-14T23:37:54.543+00:00",
    "valueQuantity": {
        "value": 176.5,
        "unit": "cm",
        "system": "http://unitsofmeasure.org",
        "code": "cm",
    },
}

PATIENT = {
    "resourceType": "Patient",
    "id": "pat-1",
    "identifier": [
        {
            "system": "https://github.com/synthetichealth/synthea",
            "value": "b3a8d3c2-5f4d-4e0f-9b7a-1c2d3e4f5a6b",
        },
        {
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}
                ],
                "text": "Social Security Number",
            },
            "system": "http://hl7.org/fhir/sid/us-ssn",
            "value": "999-12-3456",
        },
    ],
    "name": [{"use": "official", "family": "Zyxwvutsr", "given": ["Anna"], "prefix": ["Mrs."]}],
    "telecom": [{"system": "phone", "value": "555-123-4567", "use": "home"}],
    "gender": "female",
    "birthDate": "1970-05-12",
    "address": [
        {
            "line": ["123 Main Street"],
            "city": "Boston",
            "state": "MA",
            "postalCode": "02101",
            "country": "US",
        }
    ],
    "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]}}],
}

# (key, label, unit) of every figure, in the order printed.
FIGURES = (
    ("merkle_ms", "Merkle tree + all proofs, {leaves:,} leaves", "ms"),
    ("bindings_us", "required-bindings check, per Observation", "µs"),
    ("index_observation_us", "index_rows, per Observation", "µs"),
    ("index_patient_us", "index_rows, per Patient", "µs"),
    ("index_observation_cached_us", "index_rows, per Observation with CachingBlind", "µs"),
)


def best_per_call(call: Callable[[], object], runs: int, repeat: int) -> float:
    """Seconds per call: the best of ``repeat`` rounds of ``runs`` calls, after a warm-up."""
    call()
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(runs):
            call()
        rounds.append((time.perf_counter() - start) / runs)
    return min(rounds)


def merkle_tree_and_proofs(leaves: list[bytes]) -> None:
    from anchoring.merkle import MerkleTree
    from anchoring.proof import verify_inclusion

    tree = MerkleTree(leaves)
    proofs = tree.proofs()
    if not verify_inclusion(leaves[-1], proofs[-1], tree.root):  # a figure of a wrong tree
        raise AssertionError("the last leaf's proof does not verify")


def run(leaves: int = 10_000, runs: int = 200, repeat: int = 5) -> dict[str, float]:
    """The figures, keyed as in FIGURES (ms for the tree, µs per call for the others)."""
    from fhir_server.search.indexer import CachingBlind, index_rows
    from validators.bindings import check_required_bindings
    from vault.blind import BlindIndex

    hashes = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(leaves)]
    blind = BlindIndex(b"k" * 32)
    cached = CachingBlind(blind)
    per_call = {
        "merkle_ms": (lambda: merkle_tree_and_proofs(hashes), 1, 1e3),
        "bindings_us": (lambda: check_required_bindings(OBSERVATION), runs, 1e6),
        "index_observation_us": (lambda: index_rows(OBSERVATION, blind), runs, 1e6),
        "index_patient_us": (lambda: index_rows(PATIENT, blind), max(1, runs // 4), 1e6),
        "index_observation_cached_us": (lambda: index_rows(OBSERVATION, cached), runs, 1e6),
    }
    return {
        key: best_per_call(call, calls, repeat) * scale
        for key, (call, calls, scale) in per_call.items()
    }


def report(figures: dict[str, float], leaves: int) -> str:
    lines = []
    for key, label, unit in FIGURES:
        lines.append(f"{label.format(leaves=leaves):<50} {figures[key]:>9.1f} {unit}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=10_000, help="Merkle tree size")
    parser.add_argument("--runs", type=int, default=200, help="calls per timed round")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds; the best counts")
    args = parser.parse_args(argv)
    if min(args.leaves, args.runs, args.repeat) < 1:
        parser.error("--leaves, --runs and --repeat must be at least 1")
    print(report(run(args.leaves, args.runs, args.repeat), args.leaves), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
