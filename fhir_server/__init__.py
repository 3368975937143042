"""PHRX FHIR R4 node.

Importing the package does not import Flask. The cores (vault, anchoring, consent,
validators, mhb_import, federation) never import it; see docs/architecture.md.
"""


def create_app(config=None):
    """Build the Flask application (see :func:`fhir_server.app.create_app`)."""
    from fhir_server.app import create_app as _create_app

    return _create_app(config)
