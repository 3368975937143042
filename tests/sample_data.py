"""The project's own sample data: the Taiwanese traveller of the study (Table 1).

Generated here (not copied from anywhere): a transaction Bundle with the
patient, a Taiwanese clinic, five outpatient encounters with their diagnoses
and medication orders, and a few vital-sign observations.
"""

from __future__ import annotations

import uuid

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
NHI_DRUG = "https://twcore.mohw.gov.tw/ig/twcore/CodeSystem/medication-nhi-tw"
LOINC = "http://loinc.org"

# (date, ICD-10-CM code, diagnosis, NHI drug code, medication)
VISITS = [
    (
        "2017-10-10",
        "E11.9",
        "Type 2 diabetes mellitus",
        "A000001100",
        'Iunaidon Tablets "Yu Sheng"',
    ),
    ("2017-07-16", "G40.909", "Epilepsy", "A000002100", "Neurtrol F.C. Tablets 300 mg"),
    ("2017-05-25", "G46.3", "Brain stem stroke", "A000003100", "Cofarin Tab 1 mg"),
    ("2017-05-20", "G46.3", "Brain stem stroke", "A000003100", "Cofarin Tab 1 mg"),
    (
        "2017-01-20",
        "R80.9",
        "Proteinuria, not otherwise specified",
        "A000004100",
        "Kaluril Tablets 5 mg",
    ),
]


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _post(full_url: str, resource: dict) -> dict:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def scenario_patient_bundle(family: str = "Lin", given: str = "Mei-Hua") -> dict:
    patient_urn, org_urn = _urn(), _urn()
    entries = [
        _post(
            patient_urn,
            {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:phrx:demo:patient", "value": str(uuid.uuid4())}],
                "name": [{"family": family, "given": [given]}],
                "gender": "female",
                "birthDate": "1968-03-02",
                "address": [{"country": "TW", "city": "Taipei"}],
            },
        ),
        _post(
            org_urn,
            {
                "resourceType": "Organization",
                "name": "Demo Clinic Taipei",
                "identifier": [
                    {
                        "system": "https://twcore.mohw.gov.tw/ig/twcore/CodeSystem/organization-identifier-tw",
                        "value": "0101090517",
                    }
                ],
            },
        ),
    ]
    subject = {"reference": patient_urn}
    for date, icd, diagnosis, drug, medication in VISITS:
        encounter_urn = _urn()
        entries.append(
            _post(
                encounter_urn,
                {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "AMB",
                    },
                    "subject": subject,
                    "serviceProvider": {"reference": org_urn},
                    "period": {"start": date, "end": date},
                },
            )
        )
        entries.append(
            _post(
                _urn(),
                {
                    "resourceType": "Condition",
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "code": {"coding": [{"system": ICD10CM, "code": icd, "display": diagnosis}]},
                    "subject": subject,
                    "encounter": {"reference": encounter_urn},
                    "recordedDate": date,
                },
            )
        )
        entries.append(
            _post(
                _urn(),
                {
                    "resourceType": "MedicationRequest",
                    "status": "completed",
                    "intent": "order",
                    "medicationCodeableConcept": {
                        "coding": [{"system": NHI_DRUG, "code": drug, "display": medication}],
                        "text": medication,
                    },
                    "subject": subject,
                    "encounter": {"reference": encounter_urn},
                    "authoredOn": date,
                },
            )
        )
        entries.append(
            _post(
                _urn(),
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                    "code": "vital-signs",
                                }
                            ]
                        }
                    ],
                    "code": {
                        "coding": [{"system": LOINC, "code": "8302-2", "display": "Body height"}]
                    },
                    "subject": subject,
                    "effectiveDateTime": date,
                    "valueQuantity": {
                        "value": 158.5,
                        "unit": "cm",
                        "system": "http://unitsofmeasure.org",
                        "code": "cm",
                    },
                },
            )
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
