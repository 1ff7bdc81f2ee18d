"""Remission over time on the cards: loss alerts, surveillance due/overdue dates, order checks, FHIR validity."""
from __future__ import annotations

from datetime import date

import pytest

from cds_service.sandbox.builders import PatientBuilder
from fhir_mappings.record import LOINC, SNOMED
from conftest import assessment_cards

HOOK = "/cds-services/remission-status"
ORDER = "/cds-services/surveillance-order-check"
AS_OF = date(2026, 11, 22)


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch):
    import cds_service.app as appmod

    monkeypatch.setattr(appmod, "today", lambda: AS_OF)


def colorectal_cr(cea_last="2026-06-01", ct_last="2026-05-15") -> PatientBuilder:
    """Colorectal cancer, liver metastasis resolved: RECIST CR 2025-03-01, confirmed 2025-04-15."""
    p = PatientBuilder("crc-cr")
    p.condition(icd10="C18.7", text="Adenocarcinoma of sigmoid colon", onset="2024-10-01")
    les = p.lesion("L1", "liver segment VI")
    for when, size in (("2024-11-01", 32), ("2025-01-10", 14), ("2025-03-01", 0), ("2025-04-15", 0)):
        obs = p.tumor_size(les, when, longest_mm=size, role="target")
        p.report(when, results=[obs])
    p.observation(f"{LOINC}|2039-6", cea_last, display="CEA", value=1.8, unit="ng/mL")
    p.procedure(ct_last, f"{SNOMED}|169069000", "CT of chest, abdomen and pelvis")
    return p


def test_complete_remission_gets_a_schedule_with_due_dates(client):
    body = client.post(HOOK, json=colorectal_cr().hook_request()).get_json()
    ext = assessment_cards(body)[0]
    assert ext["category"] == "CR" and ext["remission"]["inRemission"] is True
    assert ext["remission"]["remissionConfirmed"] is True
    surv = next(c for c in body["cards"] if "org.remission-cds.surveillance" in c.get("extension", {}))
    items = {i["id"]: i for i in surv["extension"]["org.remission-cds.surveillance"]["items"]}
    # anchor = first CR 2025-03-01; month 20 -> CEA every 3-6 months: last 2026-06-01 -> due 2026-09-01
    assert items["cea"]["lastDone"] == "2026-06-01"
    assert items["cea"]["dueDate"] == "2026-09-01" and items["cea"]["status"] == "due"
    # CT every 6-12 months: last 2026-05-15 -> due 2026-11-15, overdue only after 2027-05-15
    assert items["ct_cap"]["dueDate"] == "2026-11-15" and items["ct_cap"]["status"] == "due"
    assert "due: " in surv["summary"] and "CEA" in surv["summary"].split("due: ")[-1]
    for s in surv.get("suggestions", []):
        assert s["actions"][0]["resource"]["resourceType"] == "ServiceRequest"


def test_overdue_item_makes_the_schedule_card_a_warning(client):
    body = client.post(HOOK, json=colorectal_cr(cea_last="2025-09-01").hook_request()).get_json()
    surv = next(c for c in body["cards"] if "org.remission-cds.surveillance" in c.get("extension", {}))
    items = {i["id"]: i for i in surv["extension"]["org.remission-cds.surveillance"]["items"]}
    assert items["cea"]["status"] == "overdue"   # 2025-09-01 + 6 months = 2026-03-01 < as of
    assert surv["indicator"] == "warning" and "CEA" in surv["summary"].split("overdue: ")[1].split(";")[0]


def test_relapse_after_complete_response_is_critical(client):
    p = colorectal_cr()
    les2 = p.lesion("L1", "liver segment VI")  # same identifier, new BodyStructure instance is fine
    obs = p.tumor_size(les2, "2026-10-01", longest_mm=18, role="target")
    p.report("2026-10-01", results=[obs])
    body = client.post(HOOK, json=p.hook_request()).get_json()
    first = body["cards"][0]
    assert first["indicator"] == "critical"
    assert first["summary"].startswith("PROGRESSION after complete response")
    ext = first["extension"]["org.remission-cds.assessment"]
    assert ext["remission"]["lossDate"] == "2026-10-01"
    assert not any("org.remission-cds.surveillance" in c.get("extension", {}) for c in body["cards"])


def test_every_suggested_resource_validates_as_fhir_r4(client):
    from fhir.resources.R4B import get_fhir_model_class

    body = client.post(HOOK, json=colorectal_cr(cea_last="2025-09-01").hook_request()).get_json()
    n = 0
    for card in body["cards"]:
        for s in card.get("suggestions", []):
            for a in s["actions"]:
                if "resource" in a:
                    get_fhir_model_class(a["resource"]["resourceType"]).model_validate(a["resource"])
                    n += 1
    assert n >= 2
    status = next(a["resource"] for c in body["cards"] for s in c.get("suggestions", []) for a in s["actions"]
                  if a.get("resource", {}).get("resourceType") == "Observation")
    assert status["code"]["coding"][0]["code"] == "97509-4"
    assert status["valueCodeableConcept"]["coding"][0]["code"] == "103338009"


def _order_request(p: PatientBuilder, hook: str, orders: list[dict]) -> dict:
    req = p.hook_request(hook=hook)
    req["context"]["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                     "entry": [{"resource": o} for o in orders]}
    if hook == "order-select":
        req["context"]["selections"] = [f"ServiceRequest/{o['id']}" for o in orders]
    return req


def _sr(oid: str, system: str, code: str, text: str) -> dict:
    return {"resourceType": "ServiceRequest", "id": oid, "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/crc-cr"},
            "code": {"coding": [{"system": system, "code": code}], "text": text}}


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_ct_repeated_too_early_draws_a_warning_with_removal(client, hook):
    req = _order_request(colorectal_cr(ct_last="2026-10-01"), hook, [_sr("o1", SNOMED, "169069000", "CT CAP")])
    cards = client.post(ORDER, json=req).get_json()["cards"]
    assert len(cards) == 1
    card = cards[0]
    assert card["indicator"] == "warning" and "too early" in card["summary"]
    action = card["suggestions"][0]["actions"][0]
    assert action == {"type": "delete", "description": action["description"], "resourceId": "ServiceRequest/o1"}
    assert all(r["display"] for r in card["overrideReasons"])


def test_pet_is_not_recommended_in_colorectal_follow_up(client):
    req = _order_request(colorectal_cr(), "order-sign", [_sr("o2", SNOMED, "82918005", "FDG PET-CT")])
    cards = client.post(ORDER, json=req).get_json()["cards"]
    assert len(cards) == 1 and "not recommended" in cards[0]["summary"]


def test_order_that_fits_the_schedule_is_silent(client):
    req = _order_request(colorectal_cr(cea_last="2026-06-01"), "order-sign", [_sr("o3", LOINC, "2039-6", "CEA")])
    assert client.post(ORDER, json=req).get_json() == {"cards": []}


def test_order_hook_without_draft_orders_is_400(client):
    req = colorectal_cr().hook_request(hook="order-sign")
    resp = client.post(ORDER, json=req)
    assert resp.status_code == 400 and "draftOrders" in resp.get_data(as_text=True)


def test_discovery_lists_both_order_hooks(client):
    hooks = {(s["id"], s["hook"]) for s in client.get("/cds-services").get_json()["services"]}
    assert ("surveillance-order-check", "order-select") in hooks and ("surveillance-order-check", "order-sign") in hooks


def test_rectal_only_items_are_dropped_for_colon_cancer(client):
    body = client.post(HOOK, json=colorectal_cr().hook_request()).get_json()
    surv = next(c for c in body["cards"] if "org.remission-cds.surveillance" in c.get("extension", {}))
    ids = {i["id"] for i in surv["extension"]["org.remission-cds.surveillance"]["items"]}
    assert "proctoscopy" not in ids and "cea" in ids


def test_rectal_cancer_keeps_proctoscopy(client):
    p = colorectal_cr()
    cond = next(r for r in p.resources if r["resourceType"] == "Condition")
    cond["code"] = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C20"}],
                    "text": "Adenocarcinoma of rectum"}
    body = client.post(HOOK, json=p.hook_request()).get_json()
    surv = next(c for c in body["cards"] if "org.remission-cds.surveillance" in c.get("extension", {}))
    ids = {i["id"] for i in surv["extension"]["org.remission-cds.surveillance"]["items"]}
    assert "proctoscopy" in ids
