"""Flask's signed-cookie session, opened lazily."""

from __future__ import annotations

from flask.sessions import SecureCookieSessionInterface


class LazyCookieSessionInterface(SecureCookieSessionInterface):
    """The same signed cookie as Flask's default, without building its signer for a
    request that carries no session cookie -- every FHIR API call, since the cookie
    is scoped to the login pages (``/fhir/auth``). Flask would build an
    itsdangerous serializer on each request only to find nothing to verify."""

    def open_session(self, app, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)
