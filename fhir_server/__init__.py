"""PHRX FHIR R4 node.

This package is the HTTP adapter; importing it does not import Flask, so the
Flask-free cores (vault, anchoring, consent, mhb_import) may use its
Flask-free modules such as :mod:`fhir_server.errors`.
"""


def create_app(config=None):
    """Build the Flask application (see :func:`fhir_server.app.create_app`)."""
    from fhir_server.app import create_app as _create_app

    return _create_app(config)
