"""Builder core: deterministic ids, the resource registry and shared resources."""

from __future__ import annotations

import hmac
from collections import Counter
from datetime import datetime
from typing import Any

from .. import codes as C
from ..parser import MhbExport


class BuilderBase:
    """Builder state shared by the section mixins: ids, registry, shared resources."""

    def __init__(self, export: MhbExport, patient_id: str, ns: bytes, imported_at: datetime):
        self.x = export
        self.pid = patient_id
        self.ns = ns
        self.imported_at = imported_at
        self.resources: dict[tuple[str, str], dict] = {}
        self.skipped: list[dict] = []
        self.occ: Counter = Counter()
        self.encounters: dict[tuple[str, str], str] = {}
        self.patient = {"reference": f"Patient/{patient_id}"}

    # ---- ids and registry
    def rid(self, section: str, *parts: str) -> str:
        msg = "\x1f".join([self.pid, section, *parts]).encode("utf-8")
        # one-shot hmac.digest (OpenSSL) is ~3x cheaper than building an HMAC object
        return "mhb-" + hmac.digest(self.ns, msg, "sha256").hex()[:40]

    def row_key(self, section: str, *parts: str | None) -> tuple[str, ...]:
        base = tuple(p or "" for p in parts)
        self.occ[(section, base)] += 1
        n = self.occ[(section, base)]
        return base if n == 1 else (*base, f"#{n}")

    def add(self, res: dict) -> dict:
        key = (res["resourceType"], res["id"])
        self.resources.setdefault(key, res)
        return {"reference": f"{key[0]}/{key[1]}"}

    def skip(self, section: str, index: int, reason: str) -> None:
        self.skipped.append({"section": section, "row": index, "reason": reason})

    # ---- shared resources
    def org(self, code: str | None, name: str | None, phone=None, address=None) -> dict | None:
        if not code and not name:
            return None
        key = ("code", code) if code else ("name", name or "")
        oid = self.rid("Organization", *key)
        existing = self.resources.get(("Organization", oid))
        if existing is None:
            res: dict[str, Any] = {"resourceType": "Organization", "id": oid, "active": True}
            if code:
                res["identifier"] = [{"system": C.ORG_IDENTIFIER, "value": code}]
            if name:
                res["name"] = name
            existing = res
            self.add(res)
        if phone and "telecom" not in existing:
            existing["telecom"] = [{"system": "phone", "value": phone}]
        if address and "address" not in existing:
            existing["address"] = [{"text": address, "country": "TW"}]
        if name and "name" not in existing:
            existing["name"] = name
        return {"reference": f"Organization/{oid}"}

    def nhia(self) -> dict:
        oid = self.rid("Organization", "nhia")
        return self.add(
            {
                "resourceType": "Organization",
                "id": oid,
                "active": True,
                "name": "衛生福利部中央健康保險署",
                "alias": ["National Health Insurance Administration"],
            }
        )

    def coverage(self) -> dict:
        return self.add(
            {
                "resourceType": "Coverage",
                "id": self.rid("Coverage", "nhi"),
                "status": "active",
                "type": {
                    "coding": [
                        {
                            "system": C.V3_ACTCODE,
                            "code": "PUBLICPOL",
                            "display": "public healthcare",
                        }
                    ],
                    "text": "全民健康保險 (National Health Insurance)",
                },
                "beneficiary": self.patient,
                "payor": [self.nhia()],
            }
        )
