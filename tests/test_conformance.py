"""CDS Hooks 2.0.1 conformance of the service (shared/reference/cds-hooks.md checklist)."""
from __future__ import annotations

import json
import re
import uuid

import pytest

from cds_service.sandbox.builders import PatientBuilder
from cds_service.sandbox.vignettes import to_patient
from conftest import assessment_cards, load_vignettes

HOOK = "/cds-services/remission-status"


def recist_patient(pid="conf-1") -> PatientBuilder:
    v = next(x for x in load_vignettes() if x["id"] == "RECIST-05")
    p = to_patient(v)
    p.patient_id = pid
    return p


def walk(obj, path=""):
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from walk(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk(v, f"{path}[{i}]")


def assert_no_nulls_or_empties(body):
    for path, v in walk(body):
        if path == ".cards" and v == []:
            continue
        assert v is not None, f"null at {path}"
        assert v not in ("", [], {}), f"empty at {path}"


# --- discovery --------------------------------------------------------------------------------------
def test_discovery_lists_patient_view_with_narrow_prefetch(client):
    body = client.get("/cds-services").get_json()
    svc = next(s for s in body["services"] if s["id"] == "remission-status")
    assert svc["hook"] == "patient-view" and svc["description"] and svc["title"]
    pre = svc["prefetch"]
    assert pre["patient"] == "Patient/{{context.patientId}}"
    assert "21889-1" in pre["observations"] and "date=ge" in pre["observations"]
    for template in pre.values():
        # CDS Hooks 2.0 query subset: no chaining, _include, _has or modifiers other than :in
        assert not re.search(r"_include|_has|:(?!in\b)[a-z]+=|\.[a-z]+=", template.split("?", 1)[-1])
        assert re.fullmatch(r"[A-Za-z]+(/\{\{context\.patientId\}\}|\?.+)", template)
    assert_no_nulls_or_empties(body)


# --- hook call ---------------------------------------------------------------------------------------
def test_card_shape(client):
    body = client.post(HOOK, json=recist_patient().hook_request()).get_json()
    assert_no_nulls_or_empties(body)
    assert body["cards"]
    for card in body["cards"]:
        uuid.UUID(card["uuid"])
        assert len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"] and card["source"]["url"].startswith("https://")
        assert card["detail"].strip()
    ext = assessment_cards(body)[0]
    for key in ("criteria", "category", "assessmentDate", "confirmed"):
        assert key in ext
    for key in ("baseline_sum_mm", "nadir_sum_mm", "target_sum_mm", "pct_change_from_baseline", "pct_change_from_nadir"):
        assert key in ext["values"]


def test_progression_after_response_is_a_warning_card(client):
    body = client.post(HOOK, json=recist_patient().hook_request()).get_json()
    card = next(c for c in body["cards"] if "extension" in c)
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("PROGRESSION after partial response: RECIST 1.1: progressive disease (PD)")
    assert "+25 % from nadir" in card["summary"]
    assert "40 mm" in card["detail"]


def test_no_cancer_gives_empty_cards(client):
    p = PatientBuilder("no-cancer")
    p.condition(icd10="E11.9", text="Type 2 diabetes mellitus")
    assert client.post(HOOK, json=p.hook_request()).get_json() == {"cards": []}


def test_null_prefetch_means_no_data_and_is_not_refetched(client):
    p = PatientBuilder("null-pre")
    p.condition(icd10="C34.90", text="Lung cancer")
    req = p.hook_request()
    req["prefetch"]["observations"] = None
    req["prefetch"]["reports"] = None
    body = client.post(HOOK, json=req).get_json()
    assert body["cards"], "an insufficient-data card is expected"
    ext = body["cards"][0]["extension"]["org.remission-cds.assessment"]
    assert ext["category"] == "insufficient data" and ext["missing"]


def test_operation_outcome_in_prefetch_is_handled(client):
    req = recist_patient().hook_request()
    req["prefetch"]["reports"] = {"resourceType": "OperationOutcome",
                                  "issue": [{"severity": "error", "code": "timeout"}]}
    resp = client.post(HOOK, json=req)
    assert resp.status_code == 200
    assert any("incomplete" in c["summary"] for c in resp.get_json()["cards"])


def test_missing_required_prefetch_without_server_is_412(client):
    req = recist_patient().hook_request()
    del req["prefetch"]["observations"]
    resp = client.post(HOOK, json=req)
    assert resp.status_code == 412
    out = resp.get_json()
    assert out["resourceType"] == "OperationOutcome" and "prefetch.observations" in out["issue"][0]["expression"]


def test_server_not_on_allow_list_is_412_and_gets_no_token(client):
    req = recist_patient().hook_request(fhir_server="https://evil.example.org/fhir", token="secret-token-123")
    del req["prefetch"]["conditions"]
    resp = client.post(HOOK, json=req)
    assert resp.status_code == 412
    assert "secret-token-123" not in resp.get_data(as_text=True)
    assert "allow-list" in resp.get_json()["issue"][0]["diagnostics"]


# --- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("body,field", [
    ({"hookInstance": "x", "context": {"patientId": "p"}}, "hook"),
    ({"hook": "patient-view", "context": {"patientId": "p"}}, "hookInstance"),
    ({"hook": "patient-view", "hookInstance": "x"}, "context"),
    ({"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p"},
      "fhirAuthorization": {"access_token": "t", "token_type": "Bearer", "expires_in": 1, "scope": "s",
                            "subject": "c"}}, ""),
    ({"hook": "patient-view", "hookInstance": "x", "context": {}}, "context.patientId"),
    ({"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "p"}}, "hook"),
    ({"hook": 5, "hookInstance": "x", "context": {"patientId": "p"}}, "hook"),
])
def test_schema_errors_are_400_with_the_field(client, body, field):
    resp = client.post(HOOK, json=body)
    assert resp.status_code == 400
    out = resp.get_json()
    assert out["resourceType"] == "OperationOutcome"
    text = json.dumps(out)
    assert field in text
    if field == "":
        assert "fhirServer is required" in text


def test_malformed_json_is_400(client):
    resp = client.post(HOOK, data=b'{"hook": ', content_type="application/json")
    assert resp.status_code == 400 and "not valid JSON" in resp.get_json()["issue"][0]["diagnostics"]


def test_non_object_body_is_400(client):
    assert client.post(HOOK, json=[1, 2]).status_code == 400


def test_unknown_service_is_404(client):
    resp = client.post("/cds-services/nope", json={"hook": "patient-view"})
    assert resp.status_code == 404 and resp.get_json()["resourceType"] == "OperationOutcome"


def test_wrong_method_is_405(client):
    resp = client.get(HOOK)
    assert resp.status_code == 405 and resp.get_json()["resourceType"] == "OperationOutcome"
    assert client.delete("/cds-services").status_code == 405


def test_body_of_16_mb_is_413(client):
    resp = client.post(HOOK, data=b" " * (16 * 1024 * 1024), content_type="application/json")
    assert resp.status_code == 413 and resp.get_json()["resourceType"] == "OperationOutcome"


def test_no_stack_trace_on_internal_error(app, monkeypatch):
    import cds_service.app as appmod

    def boom(*a, **k):
        raise RuntimeError("secret internals /path/file.py line 3")

    monkeypatch.setattr(appmod, "assess_record", boom)
    resp = app.test_client().post(HOOK, json=recist_patient().hook_request())
    assert resp.status_code == 500
    text = resp.get_data(as_text=True)
    assert "Traceback" not in text and "secret internals" not in text


# --- feedback --------------------------------------------------------------------------------------
def _fb(card="c-1", outcome="overridden"):
    item = {"card": card, "outcome": outcome, "outcomeTimestamp": "2026-11-22T10:05:31Z"}
    if outcome == "accepted":
        item["acceptedSuggestions"] = [{"id": "s-1"}]
    else:
        item["overrideReason"] = {"reason": {"code": "not-relevant", "system": "http://example.org"}}
    return {"feedback": [item]}


def test_feedback_is_idempotent_and_survives_restart(app, settings_dict):
    c = app.test_client()
    r1 = c.post("/cds-services/remission-status/feedback", json=_fb())
    r2 = c.post("/cds-services/remission-status/feedback", json=_fb())
    assert r1.status_code == r2.status_code == 200
    assert r1.get_json()["new"] == 1 and r2.get_json()["new"] == 0
    c.post("/cds-services/remission-status/feedback", json=_fb(outcome="accepted"))
    from cds_service import create_app

    again = create_app(settings_dict)
    assert again.extensions["remission_feedback"].count() == 2


@pytest.mark.parametrize("body", [
    {}, {"feedback": []}, {"feedback": [{"card": "c", "outcome": "maybe", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]},
    {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]},
])
def test_bad_feedback_is_400(client, body):
    resp = client.post("/cds-services/remission-status/feedback", json=body)
    assert resp.status_code == 400 and resp.get_json()["resourceType"] == "OperationOutcome"


def test_long_searches_are_split_by_code_and_keep_every_code():
    from cds_service.fhir_client import LONG_URL, split_long_search

    codes = [f"http://loinc.org|{10000 + i}-{i % 10}" for i in range(400)]
    query = "Observation?patient=p1&code=" + ",".join(codes) + "&date=ge2024-01-01&_count=1000"
    parts = split_long_search(query)
    assert len(parts) > 1 and all(len(p) <= LONG_URL for p in parts)
    got = [c for p in parts for c in p.split("code=", 1)[1].split("&", 1)[0].split(",")]
    assert got == codes
    assert all("patient=p1" in p and "date=ge2024-01-01" in p for p in parts)
    assert split_long_search("Observation?patient=p1&code=a|1") == ["Observation?patient=p1&code=a|1"]


def _outcome_entry():
    return {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "too-costly"}]}}


def test_search_warning_entries_beside_resources_are_ignored(client):
    plain = recist_patient().hook_request()
    warned = recist_patient().hook_request()
    for key in ("observations", "reports"):
        entries = warned["prefetch"][key]["entry"]
        warned["prefetch"][key]["entry"] = [_outcome_entry(), *entries[:2], _outcome_entry(), *entries[2:]]
    a = client.post(HOOK, json=plain).get_json()["cards"]
    b = client.post(HOOK, json=warned).get_json()["cards"]
    assert [c["summary"] for c in a] == [c["summary"] for c in b]
    assert not any("incomplete" in c["summary"] for c in b)


def test_a_bundle_of_only_outcomes_is_unavailable_data(client):
    req = recist_patient().hook_request()
    req["prefetch"]["reports"] = {"resourceType": "Bundle", "type": "searchset", "entry": [_outcome_entry()]}
    resp = client.post(HOOK, json=req)
    assert resp.status_code == 200
    assert any("incomplete" in c["summary"] for c in resp.get_json()["cards"])


def test_resolution_knows_every_template_key():
    from datetime import date

    from cds_service.config import load_settings
    from cds_service.prefetch import TEMPLATE_KEYS, templates

    assert TEMPLATE_KEYS == tuple(templates(load_settings({}), date(2026, 1, 1)))
