"""Reported vs computed on the card: both visible, disagreement said out loud."""
from __future__ import annotations

from cds_service.sandbox.builders import PatientBuilder
from conftest import assessment_cards

HOOK = "/cds-services/remission-status"


def patient(conclusion: str) -> PatientBuilder:
    p = PatientBuilder("rep-1")
    p.condition(icd10="C34.90", text="Lung cancer")
    les = p.lesion("T1", "lung")
    p.report("2024-01-05", results=[p.tumor_size(les, "2024-01-05", longest_mm=50)])
    p.report("2024-03-04", results=[p.tumor_size(les, "2024-03-04", longest_mm=30)], conclusion=conclusion)
    return p


def test_report_agreeing_with_computed(client):
    body = client.post(HOOK, json=patient("Impression: RECIST 1.1 partial response.").hook_request()).get_json()
    ext = assessment_cards(body)[0]
    assert ext["category"] == "PR" and ext["reported"]["category"] == "PR" and ext["reported"]["agreesWithComputed"]
    assert "Reported by radiology on 2024-03-04" in body["cards"][0]["detail"]


def test_report_disagreeing_is_said_on_the_card(client):
    body = client.post(HOOK, json=patient("Impression: stable disease per RECIST.").hook_request()).get_json()
    card = body["cards"][0]
    ext = card["extension"]["org.remission-cds.assessment"]
    assert ext["category"] == "PR" and ext["reported"]["category"] == "SD"
    assert ext["reported"]["agreesWithComputed"] is False
    assert "differs from the reported one" in card["detail"] and "report says SD" in card["summary"]


def test_negated_statement_is_not_a_report(client):
    body = client.post(HOOK, json=patient("No evidence of progressive disease.").hook_request()).get_json()
    ext = assessment_cards(body)[0]
    assert ext.get("reported", {}).get("category") != "PD"


def test_report_only_patient_gets_the_reported_category_marked_as_reported(client):
    p = PatientBuilder("rep-2")
    p.condition(icd10="C34.90", text="Lung cancer")
    p.report("2024-03-04", conclusion="CT chest: partial response (RECIST 1.1) compared with January.")
    body = client.post(HOOK, json=p.hook_request()).get_json()
    card = body["cards"][0]
    assert "Reported by radiology on 2024-03-04: PR" in card["detail"]
    assert card["extension"]["org.remission-cds.assessment"]["reported"]["category"] == "PR"
