"""PHRX anchoring: Merkle proofs for FHIR resource versions, roots anchored on a PoA chain.

Flask-free and database-free by design; see docs/anchoring.md for the specification.
"""
