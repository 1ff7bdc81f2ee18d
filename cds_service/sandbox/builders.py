"""Deterministic builders of FHIR R4 resources in the representations documented in docs/fhir-inputs.md.

Used by the vignette converter, the sandbox patient library and the tests, so that every fixture speaks the
same FHIR the mappers read.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Iterable

from fhir_mappings import codes
from fhir_mappings.record import ICD10CM, LOCAL, LOINC, SNOMED, UCUM

Json = dict[str, Any]

CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
REPORT_CATEGORY = {"radiology": (LOINC, "LP29684-5", "Radiology"), "pathology": (LOINC, "LP7839-6", "Pathology"),
                   "laboratory": ("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")}


def _num(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def coding(key_or_system: str, code: str | None = None, display: str | None = None) -> Json:
    if code is None:
        system, code = key_or_system.split("|", 1)
    else:
        system = key_or_system
    c: Json = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def concept(key_or_system: str, code: str | None = None, display: str | None = None, text: str | None = None) -> Json:
    cc: Json = {"coding": [coding(key_or_system, code, display)]}
    if text:
        cc["text"] = text
    return cc


def qty(value: Any, unit: str) -> Json:
    return {"value": _num(value), "unit": unit, "system": UCUM, "code": unit}


class PatientBuilder:
    """Collects the resources of one synthetic patient."""

    def __init__(self, patient_id: str, *, name: str = "Test", birth_date: str = "1960-01-01", gender: str = "female"):
        self.patient_id = patient_id
        self.card_criteria: str | None = None  # which card answers (vignettes whose prefix spans criteria)
        # criteria options the case itself asks for (e.g. a vignette stating its pCR definition): a site sets
        # these in its configuration (criteria_options), so the vignette runner answers with them set
        self.criteria_options: dict[str, object] = {}
        self._n = 0
        self.resources: list[Json] = [{
            "resourceType": "Patient", "id": patient_id, "gender": gender, "birthDate": birth_date,
            "name": [{"family": name, "given": ["Synthetic"]}],
            "meta": {"tag": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST",
                              "display": "test health data"}]},
        }]

    # --- helpers -----------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{self.patient_id}-{prefix}-{self._n}"

    @property
    def subject(self) -> Json:
        return {"reference": f"Patient/{self.patient_id}"}

    def add(self, res: Json) -> Json:
        self.resources.append(res)
        return res

    # --- resources ---------------------------------------------------------------------------
    def condition(self, *, icd10: str | None = None, snomed: str | None = None, text: str,
                  onset: str | None = None, clinical_status: str = "active") -> Json:
        codings_ = []
        if icd10:
            codings_.append(coding(ICD10CM, icd10, text))
        if snomed:
            codings_.append(coding(SNOMED, snomed, text))
        res = {
            "resourceType": "Condition", "id": self._id("cond"), "subject": self.subject,
            "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical_status),
            "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"),
            "category": [concept("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item")],
            "code": {"coding": codings_, "text": text} if codings_ else {"text": text},
        }
        if onset:
            res["onsetDateTime"] = onset
        return self.add(res)

    def lesion(self, lesion_id: str, site: str, *, nodal: bool = False) -> Json:
        location = concept(SNOMED, "59441001", "Structure of lymph node", site) if nodal else {"text": site}
        return self.add({
            "resourceType": "BodyStructure", "id": self._id("lesion"), "patient": self.subject,
            "identifier": [{"use": "usual", "type": {"text": "BodyStructure"}, "value": lesion_id}],
            "location": location,
        })

    def tumor_size(self, lesion: Json, when: str, *, longest_mm: Any = None, short_axis_mm: Any = None,
                   unit: str = "mm", role: str | None = None, too_small: bool = False,
                   not_assessed: bool = False) -> Json:
        comps = []
        if too_small:
            comps.append({"code": concept(codes.LONGEST_DIMENSION), "valueCodeableConcept": concept(codes.TOO_SMALL)})
        elif not_assessed:
            comps.append({"code": concept(codes.LONGEST_DIMENSION),
                          "dataAbsentReason": concept("http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                                      "not-performed")})
        elif longest_mm is not None:
            comps.append({"code": concept(codes.LONGEST_DIMENSION), "valueQuantity": qty(longest_mm, unit)})
        if short_axis_mm is not None:
            comps.append({"code": concept(codes.SHORT_AXIS), "valueQuantity": qty(short_axis_mm, unit)})
        if role:
            comps.append({"code": concept(codes.LESION_ROLE), "valueCodeableConcept": concept(LOCAL, role)})
        return self.add({
            "resourceType": "Observation", "id": self._id("size"), "status": "final", "subject": self.subject,
            "category": [concept(CATEGORY_SYSTEM, "imaging")],
            "code": concept(codes.TUMOR_SIZE, display="Size Tumor"),
            "effectiveDateTime": when, "focus": [{"reference": f"BodyStructure/{lesion['id']}"}],
            "component": comps,
        })

    def observation(self, code_key: str, when: str, *, display: str | None = None, value: Any = None,
                    unit: str | None = None, value_code: str | tuple[str, str] | None = None,
                    value_bool: bool | None = None, value_string: str | None = None, category: str = "laboratory",
                    components: Iterable[Json] = (), method: Json | None = None, note: str | None = None,
                    extra: Json | None = None) -> Json:
        res: Json = {
            "resourceType": "Observation", "id": self._id("obs"), "status": "final", "subject": self.subject,
            "category": [concept(CATEGORY_SYSTEM, category)],
            "code": concept(code_key, display=display), "effectiveDateTime": when,
        }
        if value is not None:
            res["valueQuantity"] = qty(value, unit) if unit else {"value": _num(value)}
        elif value_code is not None:
            if isinstance(value_code, tuple):
                res["valueCodeableConcept"] = concept(value_code[0], value_code[1])
            else:
                res["valueCodeableConcept"] = concept(LOCAL, value_code)
        elif value_bool is not None:
            res["valueBoolean"] = value_bool
        elif value_string is not None:
            res["valueString"] = value_string
        comps = list(components)
        if comps:
            res["component"] = comps
        if method:
            res["method"] = method
        if note:
            res["note"] = [{"text": note}]
        if extra:
            res.update(extra)
        return self.add(res)

    def report(self, when: str, *, category: str = "radiology", code: tuple[str, str, str] | None = None,
               results: Iterable[Json] = (), conclusion: str | None = None, text: str | None = None) -> Json:
        sys_, c, disp = REPORT_CATEGORY[category]
        res: Json = {
            "resourceType": "DiagnosticReport", "id": self._id("report"), "status": "final", "subject": self.subject,
            "category": [concept(sys_, c, disp)],
            "code": concept(*(code or (LOINC, "18748-4", "Diagnostic imaging study"))),
            "effectiveDateTime": when, "issued": f"{when}T12:00:00Z",
        }
        refs = [{"reference": f"Observation/{r['id']}"} for r in results]
        if refs:
            res["result"] = refs
        if conclusion:
            res["conclusion"] = conclusion
        if text:
            import base64

            res["presentedForm"] = [{"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode()}]
        return self.add(res)

    def medication(self, when: str, text: str, *, rxnorm: str | None = None, status: str = "active") -> Json:
        med = {"coding": [coding("http://www.nlm.nih.gov/research/umls/rxnorm", rxnorm, text)], "text": text} \
            if rxnorm else {"text": text}
        return self.add({
            "resourceType": "MedicationRequest", "id": self._id("med"), "status": status, "intent": "order",
            "subject": self.subject, "medicationCodeableConcept": med, "authoredOn": when,
        })

    def procedure(self, when: str, code_key: str, display: str) -> Json:
        return self.add({
            "resourceType": "Procedure", "id": self._id("proc"), "status": "completed", "subject": self.subject,
            "code": concept(code_key, display=display), "performedDateTime": when,
        })

    # --- outputs -----------------------------------------------------------------------------
    def transaction_bundle(self) -> Json:
        return {
            "resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}",
                       "resource": r,
                       "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in self.resources],
        }

    def prefetch(self) -> Json:
        """The prefetch a conformant EHR would send for the remission-status service's templates."""
        def searchset(rtypes: tuple[str, ...]) -> Json:
            entries = [{"resource": r, "search": {"mode": "match"}} for r in self.resources
                       if r["resourceType"] in rtypes]
            return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}

        return {
            "patient": next(r for r in self.resources if r["resourceType"] == "Patient"),
            "conditions": searchset(("Condition",)),
            "observations": searchset(("Observation",)),
            "reports": searchset(("DiagnosticReport",)),
            "lesions": searchset(("BodyStructure",)),
            "medications": searchset(("MedicationRequest",)),
            "medicationStatements": searchset(("MedicationStatement",)),
            "medicationAdministrations": searchset(("MedicationAdministration",)),
            "procedures": searchset(("Procedure",)),
            "encounters": searchset(("Encounter",)),
        }

    def hook_request(self, *, hook: str = "patient-view", with_prefetch: bool = True, fhir_server: str | None = None,
                     token: str | None = None, hook_instance: str | None = None) -> Json:
        import uuid

        req: Json = {
            "hook": hook,
            "hookInstance": hook_instance or str(uuid.uuid5(uuid.NAMESPACE_URL, f"remission-cds/{self.patient_id}")),
            "context": {"userId": "Practitioner/example", "patientId": self.patient_id},
        }
        if with_prefetch:
            req["prefetch"] = self.prefetch()
        if fhir_server:
            req["fhirServer"] = fhir_server
            if token:
                req["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                            "scope": "patient/*.read", "subject": "remission-cds",
                                            "patient": self.patient_id}
        return req
