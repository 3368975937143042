"""SMART discovery (App Launch 2.2 conformance.html) and the CapabilityStatement
``oauth-uris`` extension (FHIR R4 extension-oauth-uris)."""

from __future__ import annotations

from fhir_server.smart.scopes import NON_RESOURCE_SCOPES

CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-standalone-patient",
    "context-ehr-encounter",
    "sso-openid-connect",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
]
SCOPES_SUPPORTED = [
    *NON_RESOURCE_SCOPES,
    "patient/*.cruds",
    "user/*.cruds",
    "system/*.cruds",
    "patient/*.read",
    "patient/*.write",
    "user/*.read",
    "user/*.write",
    "system/*.read",
    "system/*.write",
]


def endpoints(base: str) -> dict:
    return {
        "authorize": f"{base}/auth/authorize",
        "token": f"{base}/auth/token",
        "introspect": f"{base}/auth/introspect",
        "revoke": f"{base}/auth/revoke",
        "jwks": f"{base}/auth/jwks",
        "login": f"{base}/auth/login",
        "style": f"{base}/auth/smart-style.json",
    }


def smart_configuration(base: str) -> dict:
    urls = endpoints(base)
    return {
        "issuer": base,
        "jwks_uri": urls["jwks"],
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "introspection_endpoint": urls["introspect"],
        "revocation_endpoint": urls["revoke"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "scopes_supported": SCOPES_SUPPORTED,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser"],
        "capabilities": list(CAPABILITIES),
    }


def openid_configuration(base: str) -> dict:
    """OpenID Connect Discovery 1.0: the same server described for generic OIDC
    libraries, which look for it at ``{issuer}/.well-known/openid-configuration``
    (the issuer is the FHIR base, the ``iss`` of every ID token)."""
    config = smart_configuration(base)
    del config["capabilities"]  # SMART's own vocabulary
    config["request_parameter_supported"] = False
    config["claims_parameter_supported"] = False
    return config


def oauth_security(base: str) -> dict:
    """``CapabilityStatement.rest[0].security`` with the oauth-uris extension: only the
    sub-extensions R4's definition has (authorize, token, register, manage); the
    introspection and revocation endpoints are in .well-known/smart-configuration."""
    urls = endpoints(base)
    return {
        "cors": True,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
            }
        ],
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [
                    {"url": "authorize", "valueUri": urls["authorize"]},
                    {"url": "token", "valueUri": urls["token"]},
                ],
            }
        ],
    }
