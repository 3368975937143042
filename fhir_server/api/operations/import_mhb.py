"""``POST /fhir/Patient/{id}/$import-mhb``: import a My Health Bank export.

Core: :mod:`fhir_server.operations.import_mhb`. The body is either

* the export file as the raw body (any content type; the parser sniffs JSON,
  XML or zip), file name in ``?filename=``, zip password in the
  ``X-MHB-Password`` header (or ``?password=``, which ends up in access logs), or
* ``multipart/form-data`` with a file part ``file`` and an optional ``password``
  field.

Access, all through the request's policy (:mod:`fhir_server.api.guard`): before the
body is read, :func:`guard.patient_operation` (scopes, confinement to the token's
patient, the patient's consent to write); then the core asks the same policy for
create and update on every type the export produces, and the Writer checks every
resource it writes like any REST write.

Answers 200 with a ``Parameters`` summary (docs/mhb-mapping.md, "Import"), or an
OperationOutcome: 400 malformed / hostile / wrong password, 403 scopes, consent or
another patient's token, 404 unknown patient, 413 too large, 415 not an MHB export,
422 impossible MHB structure. Nothing is stored unless the whole import succeeds.
"""

from __future__ import annotations

from dataclasses import replace

from flask import current_app, request

from fhir_server import ids
from fhir_server.access.decision import Interaction
from fhir_server.api import guard
from fhir_server.api.http import fhir_response
from fhir_server.api.operations.base import blueprint, node
from fhir_server.errors import BadRequest, PayloadTooLarge
from fhir_server.operations import import_mhb as core
from mhb_import import ParseLimits

bp = blueprint("import_mhb")
CORE = core
PASSWORD_HEADER = "X-MHB-Password"  # noqa: S105 - a header name, not a secret


@bp.post("/Patient/<patient_id>/$import-mhb")
def import_mhb_route(patient_id: str):
    ids.check_id(patient_id, "patient id")
    # 403 before the body is read: scopes, confinement, the patient's consent to write
    policy = guard.patient_operation(patient_id, Interaction.CREATE, "Provenance")
    limit = min(current_app.config["PHRX_MAX_BODY_BYTES"], ParseLimits().max_bytes)
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The upload exceeds the limit of {limit} bytes.")
    data, filename, password = _upload()
    outcome = core.run(
        node(),
        patient_id,
        data,
        password=password,
        filename=filename,
        policy=policy,
        limits=replace(ParseLimits(), max_bytes=limit),
    )
    # audited as one create in the patient's record (the Provenance names every write)
    policy.audit.wrote("create", outcome.provenance or f"Patient/{patient_id}", {patient_id})
    return fhir_response(outcome.to_parameters())


def _upload() -> tuple[bytes, str | None, str | None]:
    """(file bytes, file name, password) from a raw or a multipart body."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequest("The multipart body needs a file part named 'file'.")
        password = request.form.get("password") or None
        return upload.read(), upload.filename or None, password
    data = request.get_data(cache=False, parse_form_data=False)
    password = request.headers.get(PASSWORD_HEADER) or request.args.get("password") or None
    return data, request.args.get("filename") or None, password
