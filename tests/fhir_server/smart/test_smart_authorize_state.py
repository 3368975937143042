"""An authorization request without ``state`` is refused (issue #14, finding 2).

SMART App Launch 2.2 (app-launch.html#request-authorization) makes ``state``
required. The client and its redirect_uri are valid, so RFC 6749 section
4.1.2.1 applies: the error goes back to the client's redirect_uri as
``error=invalid_request`` (never a code). An invalid redirect_uri is still
never followed: the user gets an error page.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import pytest


def _send(flow, params, method):
    if method == "GET":
        return flow.client.get("/fhir/auth/authorize", query_string=params)
    return flow.client.post(
        "/fhir/auth/authorize",
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
    )


@pytest.mark.parametrize("signed_in", [False, True])
@pytest.mark.parametrize("state", [None, ""])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_missing_state_redirects_with_invalid_request(flow, helpers, method, state, signed_in):
    if signed_in:
        assert flow.login("alice").status_code == 200  # signed in (no next page)
    params, _ = flow.authorize_params(state=state)
    r = _send(flow, params, method)
    assert r.status_code == 302, r.text
    location = r.headers["Location"]
    assert location.startswith(helpers.REDIRECT + "?"), location
    q = helpers.query_of(location)
    assert q["error"] == "invalid_request"
    assert "state" in q.get("error_description", "")
    assert "code" not in q


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_missing_state_with_bad_redirect_is_not_followed(flow, method):
    params, _ = flow.authorize_params(state=None, redirect_uri="https://evil.example/cb")
    r = _send(flow, params, method)
    assert r.status_code == 400
    assert "Location" not in r.headers


def test_approval_post_without_state_gives_no_code(flow, helpers):
    """The approval form re-posts the request's parameters; one stripped of
    ``state`` gets an error, never a code."""
    params, _ = flow.authorize_params()
    assert flow.login("alice").status_code == 200
    page = flow.client.get("/fhir/auth/authorize", query_string=params)
    assert page.status_code == 200, page.text
    form = helpers.parse_form(page.text)
    data = [
        (i["name"], i.get("value", ""))
        for i in form.inputs
        if i.get("type") == "hidden" and i["name"] != "state"
    ]
    data += [("approved_scope", s) for s in params["scope"].split()]
    data.append(("decision", "approve"))
    r = flow.client.post(
        "/fhir/auth/authorize",
        data=urlencode(data),
        content_type="application/x-www-form-urlencoded",
    )
    assert r.status_code == 302
    q = helpers.query_of(r.headers["Location"])
    assert q["error"] == "invalid_request" and "code" not in q
    assert urlsplit(r.headers["Location"]).netloc == "app.example"


def test_with_state_still_works(flow):
    code, verifier = flow.code()
    assert flow.token(code, verifier).status_code == 200
