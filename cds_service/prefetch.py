"""Prefetch templates (generated from the criteria registry) and their resolution for one hook call.

Each declared key is, in the request: absent (fetch it from fhirServer), null (the client ran the query and
found nothing), a Bundle or resource (use it; follow paging if fhirServer is given), or an OperationOutcome
(the client could not run it: an issue, not a crash).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from cds_service.config import Settings
from cds_service.fhir_client import FetchError, FhirServer, check_server_allowed, next_link
from fhir_mappings.pipeline import observation_codes
from fhir_mappings.rawjson import LazyBundle, type_of

REPORT_CATEGORIES = (
    "http://loinc.org|LP29684-5",                                   # Radiology (US Core note category)
    "http://loinc.org|LP7839-6",                                    # Pathology
    "http://terminology.hl7.org/CodeSystem/v2-0074|RAD",
    "http://terminology.hl7.org/CodeSystem/v2-0074|PAT",
    "http://terminology.hl7.org/CodeSystem/v2-0074|SP",
    "http://terminology.hl7.org/CodeSystem/v2-0074|LAB",
)
REQUIRED_KEYS = ("conditions", "observations")
NO_SERVER = "no fhirServer in the request"


def _lab_codes(schedules: dict[str, Any], extra: dict[str, dict[str, list[str]]]) -> tuple[str, ...]:
    """Codes of the surveillance "lab" items (CEA, Tg, PSA...): Observations the surveillance card reads as done."""
    out: dict[str, None] = {}
    for key, ct in (schedules.get("cancer_types") or {}).items():
        for item in ct.get("items") or ():
            if item.get("kind") == "lab":
                out.update(dict.fromkeys(item.get("codes") or ()))
                out.update(dict.fromkeys((extra.get(key) or {}).get(item.get("id"), ())))
    return tuple(out)


@lru_cache(maxsize=1)
def _default_lab_codes() -> tuple[str, ...]:
    from rules.surveillance import load_default_schedules

    return _lab_codes(load_default_schedules(), {})


def templates(settings: Settings, today: date) -> dict[str, str]:
    """Prefetch templates for the assessment service (CDS Hooks 2.0 query subset only)."""
    since = (today - timedelta(days=settings.lookback_days)).isoformat()
    local = {name: tuple(code for code, _ in codes) for name, codes in settings.local_codes().items()}
    surveillance_labs = _default_lab_codes()
    if settings.surveillance or settings.surveillance_done_codes:
        from rules.surveillance import load_default_schedules

        surveillance_labs = _lab_codes(settings.surveillance_schedules() or load_default_schedules(),
                                       settings.surveillance_done_codes)
    obs_codes = ",".join(dict.fromkeys([*observation_codes(local), *surveillance_labs]))
    pid = "{{context.patientId}}"
    return {
        "patient": f"Patient/{pid}",
        "conditions": f"Condition?patient={pid}",
        "observations": f"Observation?patient={pid}&code={obs_codes}&date=ge{since}&_count=1000",
        "reports": f"DiagnosticReport?patient={pid}&category={','.join(REPORT_CATEGORIES)}&date=ge{since}&_count=200",
        "lesions": f"BodyStructure?patient={pid}",
        "medications": f"MedicationRequest?patient={pid}&_count=200",
        "medicationStatements": f"MedicationStatement?patient={pid}&_count=200",
        "medicationAdministrations": f"MedicationAdministration?patient={pid}&_count=200",
        "procedures": f"Procedure?patient={pid}&date=ge{since}&_count=200",
        "encounters": f"Encounter?patient={pid}&date=ge{since}&_count=200",
    }


# the prefetch key that carries each resource type (one key per type; derived from the templates)
KEY_FOR_TYPE: dict[str, str] = {
    "Patient": "patient", "Condition": "conditions", "Observation": "observations", "DiagnosticReport": "reports",
    "BodyStructure": "lesions", "MedicationRequest": "medications", "MedicationStatement": "medicationStatements",
    "MedicationAdministration": "medicationAdministrations", "Procedure": "procedures", "Encounter": "encounters",
}


_TOKEN = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
USER_TOKENS = {"userPractitionerId": "Practitioner", "userPractitionerRoleId": "PractitionerRole",
               "userPatientId": "Patient", "userRelatedPersonId": "RelatedPerson"}


def resolve_template(template: str, context: dict[str, Any]) -> str | None:
    """Fill {{context.x}} (root-level primitives) and the four user tokens; None if a token has no value."""
    missing = False

    def sub(m: re.Match) -> str:
        nonlocal missing
        token = m.group(1)
        if token.startswith("context."):
            v = context.get(token[len("context."):])
            if isinstance(v, (str, int)) and not isinstance(v, bool):
                return str(v)
        elif token in USER_TOKENS:
            user = context.get("userId")
            if isinstance(user, str) and user.startswith(USER_TOKENS[token] + "/"):
                return user.split("/", 1)[1]
        missing = True
        return ""

    out = _TOKEN.sub(sub, template)
    return None if missing else out


@dataclass
class Resolved:
    resources: list[dict[str, Any]] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)   # key -> why (safe text)
    fetched: list[str] = field(default_factory=list)


def _entries(value: Any) -> tuple[list[Any], bool]:
    """Resources in a prefetch value (dicts, or RawResources of the hook's lazy decoder, fhir_mappings/rawjson.py);
    second item True when the value is (or holds) an OperationOutcome only."""
    if type(value) is LazyBundle:
        out = value.resources
    elif not isinstance(value, dict):
        return [], False
    elif value.get("resourceType") == "OperationOutcome":
        return [], True
    elif value.get("resourceType") == "Bundle":
        # one comprehension over every entry (thousands per call)
        out = [r for e in value.get("entry") or () if isinstance(e, dict) and isinstance(r := e.get("resource"), dict)]
    else:
        return [value], False
    # OperationOutcome entries (search warnings) are rare: PatientRecord skips them; here they matter only when the
    # Bundle holds nothing else
    if out and type_of(out[0]) == "OperationOutcome":
        kept = [r for r in out if type_of(r) != "OperationOutcome"]
        return kept, not kept
    return out, False


def _of_patient(resources: list[dict], patient_id: Any) -> list[dict]:
    """Drop resources whose subject/patient is another patient.

    A FHIR server may ignore a search parameter it does not support (sekmet-fhir 0.1.1 has none for
    BodyStructure, so ``BodyStructure?patient=X`` returns every patient's); one patient's card must never read
    another patient's data.
    """
    if not isinstance(patient_id, str) or not patient_id:
        return resources
    out = []
    for r in resources:
        ref = r.get("subject") or r.get("patient")
        ref = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(ref, str) and "Patient/" in ref and ref.split("/_history/")[0].rsplit("/", 1)[-1] != patient_id:
            continue
        out.append(r)
    return out


# the keys templates() declares, in its order (a test checks they agree): resolving a fully prefetched call
# needs only the keys, not the query strings, which are built only when one must be fetched
TEMPLATE_KEYS = ("patient", "conditions", "observations", "reports", "lesions", "medications",
                 "medicationStatements", "medicationAdministrations", "procedures", "encounters")


def resolve(request: dict[str, Any], settings: Settings, today: date) -> Resolved:
    tmpl: dict[str, str] | None = None
    prefetch = request.get("prefetch") or {}
    context = request.get("context") or {}
    res = Resolved()
    server: FhirServer | None = None
    server_problem: str | None = None
    base = request.get("fhirServer")
    auth = request.get("fhirAuthorization")
    if isinstance(base, str) and base:
        token = auth.get("access_token") if isinstance(auth, dict) else None
        try:
            check_server_allowed(base, settings.fhir)
            if not token and not settings.fhir.allow_unauthenticated:
                raise FetchError("no access token was sent and unauthenticated FHIR access is off")
            server = FhirServer(base, token, settings.fhir, time.monotonic() + settings.hook_deadline_s)
        except FetchError as exc:
            server_problem = str(exc)
    else:
        server_problem = NO_SERVER

    for key in TEMPLATE_KEYS:
        if key in prefetch:
            value = prefetch[key]
            if value is None:
                continue  # the client ran the query and found nothing
            entries, outcome = _entries(value)
            if outcome:
                res.unavailable[key] = "the EHR reported an error for this prefetch (OperationOutcome)"
                continue
            res.resources.extend(entries)
            if isinstance(value, (dict, LazyBundle)) and value.get("resourceType") == "Bundle" and server is not None:
                try:
                    nxt = next_link(value)
                    if nxt:
                        res.resources.extend(_of_patient(server.fetch(nxt), context.get("patientId")))
                except FetchError as exc:
                    res.unavailable[key] = f"later pages could not be fetched: {exc}"
            continue
        if server is None:
            res.unavailable[key] = f"not prefetched, and {server_problem}"
            continue
        if tmpl is None:
            tmpl = templates(settings, today)
        query = resolve_template(tmpl[key], context)
        if query is None:
            res.unavailable[key] = "the prefetch template could not be filled from the context"
            continue
        try:
            res.resources.extend(_of_patient(server.fetch_search(query), context.get("patientId")))
            res.fetched.append(key)
        except FetchError as exc:
            res.unavailable[key] = str(exc)
    return res
