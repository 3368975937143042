"""Refresh-token replay (issue #14, finding 1).

OAuth 2.0 Security BCP (RFC 9700 section 4.14.2): with rotation, a refresh token
that was already used and is presented again means two parties hold it; the
server cannot tell which is the attacker, so it revokes every token of that
grant ("family"): the successor refresh tokens and the access tokens issued
from them. The replayed request itself gets ``invalid_grant``.
"""

from __future__ import annotations

from sqlalchemy import update

from fhir_server.smart.tables import tokens

SCOPE = "launch/patient patient/*.rs offline_access"


def _refresh(flow, refresh_token, **extra):
    data = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": "app-public",
        **extra,
    }
    return flow.client.post("/fhir/auth/token", data=data)


def _read(flow, access_token):
    return flow.client.get("/fhir/Patient/p1", headers={"Authorization": f"Bearer {access_token}"})


def _introspect(flow, token):
    r = flow.client.post("/fhir/auth/introspect", data={"token": token, "client_id": "app-public"})
    assert r.status_code == 200, r.text
    return r.json["active"]


def _refreshed(flow, refresh_token):
    r = _refresh(flow, refresh_token)
    assert r.status_code == 200, r.text
    return r.json


def test_replayed_refresh_token_revokes_successor_and_access_tokens(flow):
    first = flow.full(scope=SCOPE)
    r1, a1 = first["refresh_token"], first["access_token"]
    second = _refreshed(flow, r1)
    r2, a2 = second["refresh_token"], second["access_token"]
    assert r2 != r1
    assert _read(flow, a2).status_code == 200  # the successor works before the replay

    replay = _refresh(flow, r1)
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"

    after = _refresh(flow, r2)
    assert after.status_code == 400 and after.json["error"] == "invalid_grant"
    assert _read(flow, a2).status_code == 401
    assert _read(flow, a1).status_code == 401
    assert not _introspect(flow, r2) and not _introspect(flow, a2)


def test_replay_revokes_every_generation(flow):
    """The family spans every rotation, not only the direct successor."""
    first = flow.full(scope=SCOPE)
    second = _refreshed(flow, first["refresh_token"])
    third = _refreshed(flow, second["refresh_token"])
    assert _read(flow, third["access_token"]).status_code == 200

    replay = _refresh(flow, first["refresh_token"])  # the oldest one
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    assert _read(flow, third["access_token"]).status_code == 401
    assert _refresh(flow, third["refresh_token"]).json["error"] == "invalid_grant"


def test_replay_of_the_middle_generation_also_revokes(flow):
    first = flow.full(scope=SCOPE)
    second = _refreshed(flow, first["refresh_token"])
    third = _refreshed(flow, second["refresh_token"])
    assert _refresh(flow, second["refresh_token"]).json["error"] == "invalid_grant"
    assert _read(flow, third["access_token"]).status_code == 401
    assert _refresh(flow, third["refresh_token"]).status_code == 400


def test_other_grants_survive_a_replay(flow):
    """Only the replayed token's family is revoked, not the user's other grants."""
    mine = flow.full(scope=SCOPE)
    other = flow.full(scope=SCOPE)
    _refreshed(flow, mine["refresh_token"])
    assert _refresh(flow, mine["refresh_token"]).status_code == 400
    assert _read(flow, other["access_token"]).status_code == 200
    assert _refresh(flow, other["refresh_token"]).status_code == 200


def test_code_replay_revokes_refreshed_tokens_too(flow):
    """RFC 6749 4.1.2: a replayed code revokes the tokens issued from it, and the
    tokens refreshed from those were issued from it as well."""
    code, verifier = flow.code(scope=SCOPE)
    first = flow.token(code, verifier)
    assert first.status_code == 200, first.text
    second = _refreshed(flow, first.json["refresh_token"])
    assert _read(flow, second["access_token"]).status_code == 200
    again = flow.token(code, verifier)
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"
    assert _read(flow, second["access_token"]).status_code == 401
    assert _refresh(flow, second["refresh_token"]).status_code == 400


def test_concurrent_use_yields_one_successor(flow, smart, monkeypatch):
    """Two requests that both read the refresh token as unused (a race): only one
    rotation may succeed; the other is a replay and revokes the family."""
    first = flow.full(scope=SCOPE)
    r1 = first["refresh_token"]
    stale = smart.tokens.by_refresh(r1)  # as read by a request that lost the race
    winner = _refreshed(flow, r1)
    monkeypatch.setattr(smart.tokens, "by_refresh", lambda _token: stale)
    loser = _refresh(flow, r1)
    assert loser.status_code == 400 and loser.json["error"] == "invalid_grant"
    assert "access_token" not in loser.json
    monkeypatch.undo()
    assert _read(flow, winner["access_token"]).status_code == 401
    assert _refresh(flow, winner["refresh_token"]).status_code == 400


def test_failed_refresh_does_not_burn_the_token(flow, smart_node):
    """A refresh refused before rotation (wider scope, wrong client) is no replay."""
    first = flow.full(scope=SCOPE)
    r1 = first["refresh_token"]
    assert _refresh(flow, r1, scope="patient/*.cruds").json["error"] == "invalid_scope"
    other = _refresh(flow, r1, client_id="app-conf", client_secret=smart_node.test_secret)
    assert other.status_code == 400
    assert _read(flow, first["access_token"]).status_code == 200
    assert _refresh(flow, r1).status_code == 200


def test_family_of_a_token_recorded_without_one(flow, smart):
    """Rows recorded before grant families existed (refreshed tokens without a code
    digest) still form a family: the first refreshed token's jti."""
    first = flow.full(scope=SCOPE)
    second = _refreshed(flow, first["refresh_token"])
    record = smart.tokens.by_refresh(second["refresh_token"])
    with smart.tokens.engine.begin() as conn:  # as an older version stored it
        conn.execute(update(tokens).where(tokens.c.jti == record.jti).values(code_hash=None))
    third = _refreshed(flow, second["refresh_token"])
    fourth = _refreshed(flow, third["refresh_token"])
    assert _refresh(flow, second["refresh_token"]).json["error"] == "invalid_grant"
    assert _read(flow, fourth["access_token"]).status_code == 401
    assert _refresh(flow, fourth["refresh_token"]).status_code == 400


def test_replay_and_race_on_sqlite_and_postgresql(any_flow, monkeypatch):
    test_replayed_refresh_token_revokes_successor_and_access_tokens(any_flow)
    test_concurrent_use_yields_one_successor(any_flow, any_flow.smart, monkeypatch)


def test_rotation_and_family_revocation_are_audited(flow, smart, smart_node):
    """Each token revoked (by rotation, then by the replay) gets its token-revoke
    AuditEvent, as a revocation through RFC 7009 does."""
    from fhir_server.search.runner import run_search

    def revoked_jtis():
        found = run_search(smart_node.store, "AuditEvent", [("_count", "1000")]).matches
        return sorted(
            e["entity"][0]["what"]["identifier"]["value"]
            for e in found
            if e["subtype"][0]["code"] == "token-revoke"
        )

    first = flow.full(scope=SCOPE)
    jti1 = smart.tokens.by_refresh(first["refresh_token"]).jti
    second = _refreshed(flow, first["refresh_token"])
    jti2 = smart.tokens.by_refresh(second["refresh_token"]).jti
    assert revoked_jtis() == [jti1]
    assert _refresh(flow, first["refresh_token"]).status_code == 400
    assert revoked_jtis() == sorted([jti1, jti2])
