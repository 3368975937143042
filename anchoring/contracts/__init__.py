"""Solidity sources, their build script and the committed compiler artifacts."""
