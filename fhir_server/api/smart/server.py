"""The node's authorization server bound to Flask requests and responses."""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer

from fhir_server.smart.server import SmartAuthorizationServer


class FlaskSmartAuthorizationServer(SmartAuthorizationServer, FlaskAuthorizationServer):
    """:class:`SmartAuthorizationServer` (first: its ``query_client`` and ``save_token``
    win) with authlib's Flask request, response and signal handling."""
