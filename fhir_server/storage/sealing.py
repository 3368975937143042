"""Seal and open resource versions: JSON bytes under AES-256-GCM via :mod:`vault`.

The AAD binds type, id, version and key scope, so a row copied onto another
resource or version fails authentication and is reported as an integrity
failure rather than served.
"""

from __future__ import annotations

import json

from fhir_server import fastjson
from fhir_server.errors import Gone, IntegrityFailure
from vault.envelope import open_sealed, record_aad, seal
from vault.errors import IntegrityError, KeyDestroyed
from vault.keyring import NODE_SCOPE, KeyRing


def dumps(resource: dict) -> bytes:
    return fastjson.dumps(resource)


class RecordSealer:
    def __init__(self, keyring: KeyRing):
        self.keyring = keyring

    @staticmethod
    def scope_for(patient_id: str | None) -> str:
        return KeyRing.patient_scope(patient_id) if patient_id else NODE_SCOPE

    def ensure_key(self, scope: str) -> None:
        """Create the scope's data key now, outside any write transaction."""
        self.keyring.data_key(scope, create=True)

    def seal(self, res_type: str, res_id: str, version_id: int, scope: str, body: bytes) -> bytes:
        # Keys are created by ensure_key() before the write transaction opens:
        # creating one inside it would need a second writer on SQLite.
        try:
            key = self.keyring.data_key(scope, create=False)
        except KeyDestroyed:
            raise Gone(
                f"No data key for {scope.split(':', 1)[0]} scope: erased or not prepared."
            ) from None
        return seal(key, body, record_aad(res_type, res_id, version_id, scope))

    def open(self, res_type: str, res_id: str, version_id: int, scope: str, blob: bytes) -> dict:
        where = f"{res_type}/{res_id}/_history/{version_id}"
        try:
            key = self.keyring.data_key(scope, create=False)
            plain = open_sealed(key, blob, record_aad(res_type, res_id, version_id, scope))
        except KeyDestroyed:
            raise Gone(f"{where} was erased: its data key no longer exists.") from None
        except IntegrityError:
            raise IntegrityFailure(
                f"Integrity failure: the stored copy of {where} failed authentication "
                "(altered or swapped in the database); it is not served."
            ) from None
        resource = json.loads(plain)
        if resource.get("resourceType") != res_type or resource.get("id") != res_id:
            raise IntegrityFailure(f"Integrity failure: {where} holds another resource.")
        return resource
