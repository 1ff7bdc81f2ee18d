"""ELN 2022 AML: FHIR -> engine inputs (fhir_mappings/eln.py) and the card, fixture by fixture.

Unit variants give the same category; a unit that cannot be right is rejected with an issue; entered-in-error is
skipped; configured local codes are read; missing data gives an "insufficient data" / non-evaluable card that says
what is missing; hypothesis properties for unit invariance and for robustness against malformed resources.
"""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.sandbox.builders import PatientBuilder, concept, qty
from cds_service.sandbox.vignettes import to_patient
from fhir_mappings import eln as m
from fhir_mappings.pipeline import assess_record
from fhir_mappings.record import ICD10CM, LOCAL, LOINC, SNOMED, PatientRecord
from rules import eln2022 as engine

HOOK = "/cds-services/remission-status"
AS_OF = date(2025, 1, 1)
D = "2024-03-18"
PRESENT = (SNOMED, "52101004")
ABSENT = (SNOMED, "2667000")


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


def aml(pid: str = "eln-t", icd10: str = "C92.00", onset: str = "2024-01-10") -> PatientBuilder:
    p = PatientBuilder(pid)
    p.condition(icd10=icd10, text="Acute myeloblastic leukemia", onset=onset)
    return p


def marrow(p: PatientBuilder, when: str = D, blasts="2", *, cells=300, spicules=True, cellularity="20") -> None:
    if blasts is not None:
        p.observation(m.BM_BLASTS, when, value=Decimal(str(blasts)), unit="%")
    if cells is not None:
        p.observation(m.CELLS_COUNTED, when, value=cells, unit="{cells}")
    if spicules is not None:
        p.observation(m.SPICULES, when, value_code=PRESENT if spicules else ABSENT)
    if cellularity is not None:
        p.observation(m.CELLULARITY, when, value=Decimal(cellularity), unit="%")


def counts(p: PatientBuilder, anc, plt, when: str = D, anc_unit="10*9/L", plt_unit="10*9/L",
           anc_code=f"{LOINC}|751-8", plt_code=f"{LOINC}|777-3") -> None:
    if anc is not None:
        p.observation(anc_code, when, value=Decimal(str(anc)), unit=anc_unit)
    if plt is not None:
        p.observation(plt_code, when, value=Decimal(str(plt)), unit=plt_unit)


def pb_absent(p: PatientBuilder, when: str = D) -> None:
    p.observation(f"{LOINC}|26446-5", when, value_code=ABSENT)


def induction(p: PatientBuilder, when: str) -> None:
    p.medication(when, "cytarabine 200 mg/m2/day days 1-7 (7+3)", rxnorm="3041")
    p.medication(when, "daunorubicin 60 mg/m2 days 1-3 (7+3)", rxnorm="3109")


def standard(anc="1.5", plt="150", blasts="2", **kw) -> PatientBuilder:
    p = aml()
    induction(p, "2024-02-19")
    p.observation(m.BM_BLASTS, "2024-02-15", value=Decimal(60), unit="%")  # diagnostic marrow
    marrow(p, blasts=blasts)
    counts(p, anc, plt, **kw)
    pb_absent(p)
    return p


def result(p: PatientBuilder, options: dict | None = None, as_of: date = AS_OF):
    rec = PatientRecord(p.resources)
    out = [r for r in assess_record(rec, as_of, options or {}) if r.criteria == "ELN 2022"]
    assert len(out) == 1
    return out[0]


def category(p: PatientBuilder, options: dict | None = None) -> str | None:
    r = result(p, options)
    return r.assessment.category if r.assessment else None


def issues(p: PatientBuilder, options: dict | None = None) -> list[str]:
    return [i.text() for i in result(p, options).issues]


def card(client, p: PatientBuilder) -> dict:
    body = client.post(HOOK, json=p.hook_request()).get_json()
    cards = [c for c in body["cards"] if (c.get("extension") or {}).get("org.remission-cds.assessment", {})
             .get("criteria") in (engine.CRITERIA, "ELN 2022")]
    assert cards, [c["summary"] for c in body["cards"]]
    return cards[0]


# ---------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("anc,anc_unit,plt,plt_unit", [
    ("0.7", "10*9/L", "62", "10*9/L"),
    ("0.7", "10*3/uL", "62", "10*3/uL"),
    ("700", "/uL", "62000", "/uL"),
    ("0.7", "10^9/L", "62", "10^3/uL"),
    ("0.7", "K/uL", "62000", "{cells}/uL"),
    ("700", "/mm3", "62", "10*6/mL"),
    ("0.7", "x10E3/uL", "62", "thou/uL"),
    ("700", "cells/uL", "62", "x10E9/L"),
])
def test_count_unit_variants_give_the_same_category_and_values(anc, anc_unit, plt, plt_unit):
    r = result(standard(anc, plt, anc_unit=anc_unit, plt_unit=plt_unit))
    a = r.assessment
    assert a.category == "CRh"
    assert a.values["anc_10e9_per_L"] == Decimal("0.7")
    assert a.values["platelets_10e9_per_L"] == Decimal("62")
    assert not r.issues


@pytest.mark.parametrize("unit", ["10*3/L", "10^3/L"])
def test_count_in_10e3_per_L_is_rejected_never_converted(unit):
    p = standard("1.5", "150", anc_unit=unit)
    r = result(p)
    assert any(unit in i and "million" in i for i in (x.text() for x in r.issues))
    # no ANC: an adequate marrow with blasts < 5 % is MLFS (no count recovery assessable), never CR
    assert r.assessment.category == "MLFS"
    assert "anc_10e9_per_L" not in r.assessment.values


def test_unknown_count_unit_is_an_issue():
    r = result(standard("1.5", "150", plt_unit="g/L"))
    assert any("g/L" in i.text() and "not accepted" in i.text() for i in r.issues)
    assert r.assessment.category == "MLFS"


@pytest.mark.parametrize("unit", ["1", "{fraction}"])
def test_blast_fraction_is_a_percentage(unit):
    p = standard(blasts=None)
    p.observation(m.BM_BLASTS, D, value=Decimal("0.03"), unit=unit)
    assert result(p).assessment.values["bone_marrow_blasts_pct"] == Decimal(3)


def test_blasts_above_100_percent_are_rejected():
    p = standard(blasts="250")
    r = result(p)
    assert any("above 100" in i.text() for i in r.issues)
    assert r.assessment is None or r.assessment.category == "non-evaluable"


# ---------------------------------------------------------------------------
# Codes: variants, deprecated, estimates, local codes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("anc_code", [f"{LOINC}|751-8", f"{LOINC}|753-4", f"{LOINC}|26499-4"])
@pytest.mark.parametrize("plt_code", [f"{LOINC}|777-3", f"{LOINC}|26515-7", f"{LOINC}|778-1"])
def test_anc_and_platelet_code_variants(anc_code, plt_code):
    assert category(standard("1.5", "150", anc_code=anc_code, plt_code=plt_code)) == "CR"


def test_deprecated_anc_and_platelet_estimate_are_not_used():
    p = standard(None, None)
    counts(p, "1.5", "150", anc_code=f"{LOINC}|752-6", plt_code=f"{LOINC}|49497-1")
    r = result(p)
    texts = " | ".join(i.text() for i in r.issues)
    assert "752-6 is deprecated" in texts and "49497-1 is a platelet estimate" in texts
    assert r.assessment.category == "MLFS"  # counts unavailable: CR cannot be called


def test_invalid_pb_blast_code_is_reported():
    p = standard()
    p.observation(f"{LOINC}|26446-3", D, value=Decimal(0), unit="%")
    assert any("26446-3 is not a valid LOINC code" in i for i in issues(p))


def test_anc_from_segs_and_bands_and_from_wbc_times_percentage():
    p = standard(None, "150")
    p.observation(f"{LOINC}|30451-9", D, value=Decimal("0.9"), unit="10*3/uL")
    p.observation(f"{LOINC}|26507-4", D, value=Decimal("0.2"), unit="10*3/uL")
    a = result(p).assessment
    assert a.values["anc_10e9_per_L"] == Decimal("1.1") and a.category == "CR"
    q = standard(None, "150")
    q.observation(f"{LOINC}|6690-2", D, value=Decimal("2.0"), unit="10*3/uL")
    q.observation(f"{LOINC}|770-8", D, value=Decimal("40"), unit="%")
    a = result(q).assessment
    assert a.values["anc_10e9_per_L"] == Decimal("0.8") and a.category == "CRh"


def test_direct_anc_wins_over_derived():
    p = standard("1.5", "150")
    p.observation(f"{LOINC}|30451-9", D, value=Decimal("0.3"), unit="10*3/uL")
    assert result(p).assessment.values["anc_10e9_per_L"] == Decimal("1.5")


def test_configured_local_codes_are_read():
    p = aml()
    marrow(p)
    pb_absent(p)
    p.observation("http://hospital.example/lab|ANC1", D, value=Decimal("1.2"), unit="10*3/uL")
    p.observation("http://hospital.example/lab|PLT", D, value=Decimal("120"))  # no unit: configured default
    assert category(p) == "MLFS"  # without the configuration the counts are not read
    options = {"local_codes": {"anc": ["http://hospital.example/lab|ANC1"],
                               "platelets": [("http://hospital.example/lab|PLT", "10*9/L")]}}
    a = result(p, options).assessment
    assert a.category == "CR"
    assert a.values["anc_10e9_per_L"] == Decimal("1.2") and a.values["platelets_10e9_per_L"] == Decimal(120)


def test_local_code_for_marrow_blasts():
    p = aml()
    p.observation("http://hospital.example/lab|BMBL", D, value=Decimal(3), unit="%")
    counts(p, "1.5", "150")
    pb_absent(p)
    a = result(p).assessment  # without the configuration there is no marrow examination
    assert a is None or (a.category == "non-evaluable" and a.assessment_date is None)
    assert category(p, {"local_codes": {"blasts_bm_pct": ["http://hospital.example/lab|BMBL"]}}) == "CR"


def test_entered_in_error_is_skipped():
    p = standard("1.5", "150")
    bad = p.observation(f"{LOINC}|777-3", D, value=Decimal(20), unit="10*9/L")
    bad["status"] = "entered-in-error"
    bad_bm = p.observation(m.BM_BLASTS, D, value=Decimal(40), unit="%")
    bad_bm["status"] = "entered-in-error"
    rec = PatientRecord(p.resources)
    assert sum("entered-in-error" in i.text() for i in rec.issues) == 2
    a = [r for r in assess_record(rec, AS_OF, {}) if r.criteria == "ELN 2022"][0].assessment
    assert a.category == "CR"
    assert a.values["bone_marrow_blasts_pct"] == Decimal(2)
    assert a.values["platelets_10e9_per_L"] == Decimal(150)


# ---------------------------------------------------------------------------
# Marrow: adequacy, report text, pretreatment
# ---------------------------------------------------------------------------


def test_marrow_from_report_text_only():
    p = aml()
    p.report(D, category="pathology", code=(LOINC, "48807-2", "Bone marrow aspiration report"),
             conclusion="Bone marrow aspirate: blasts 3 %. Spicules present; 300 nucleated cells counted.")
    counts(p, "0.3", "20")
    pb_absent(p)
    r = result(p)
    assert r.assessment.category == "MLFS"
    assert r.assessment.values["bone_marrow_blasts_pct"] == Decimal(3)
    assert any("report text" in n for n in r.notes)


@pytest.mark.parametrize("text,expected", [
    ("Dry tap; blasts 2 %.", "non-evaluable"),
    ("Haemodilute aspirate, blasts 1 %; no spicules.", "non-evaluable"),
    ("Blasts 2 %. Aparticulate; 150 nucleated cells counted.", "non-evaluable"),
    ("Blasts 2 %. Spicules present; 500-cell differential.", "MLFS"),
    ("Blasts 2 %; biopsy cellularity 15 %.", "MLFS"),
    ("Blasts 2 %; hypocellular, cellularity <10 %.", "non-evaluable"),
])
def test_adequacy_from_report_text(text, expected):
    p = aml()
    p.report(D, category="pathology", code=(LOINC, "48807-2", "Bone marrow aspiration report"), conclusion=text)
    counts(p, "0.3", "20")
    pb_absent(p)
    assert category(p) == expected


def test_marrow_text_does_not_take_blood_blasts_or_bounds():
    assert m.parse_marrow_text("Peripheral blood blasts 12 %. Marrow blasts 3 %.")["blasts"] == Decimal(3)
    assert "blasts" not in m.parse_marrow_text("Blasts <5 %.")
    assert m.parse_marrow_text("cellularity 30 %")["cellularity"] == Decimal(30)


def test_technically_suboptimal_coded():
    p = standard()
    p.observation(m.SAMPLE_ADEQUACY, D, value_code=(LOCAL, "suboptimal"))
    r = result(p)
    assert r.assessment.category == "non-evaluable"
    assert any("suboptimal" in x for x in r.assessment.missing)


def test_pretreatment_marrow_is_the_earliest_before_therapy_and_not_an_assessment():
    p = aml(onset="2024-01-05")
    p.observation(m.BM_BLASTS, "2024-01-05", value=Decimal(40), unit="%")   # diagnosis
    p.observation(m.BM_BLASTS, "2024-01-20", value=Decimal(30), unit="%")   # repeat before therapy
    induction(p, "2024-01-22")
    marrow(p, "2024-02-19", blasts="12")
    counts(p, "1.2", "110", when="2024-02-19")
    pb_absent(p, "2024-02-19")
    a = result(p).assessment
    assert a.category == "PR"
    assert a.values["pretreatment_bone_marrow_blasts_pct"] == Decimal(40)
    assert [h.category for h in a.history] == ["PR"]


def test_pretreatment_from_the_diagnosis_date_when_no_therapy_is_recorded():
    p = aml(onset="2024-02-01")
    p.observation(m.BM_BLASTS, "2024-02-01", value=Decimal(40), unit="%")
    marrow(p, blasts="12")
    counts(p, "1.2", "110")
    pb_absent(p)
    assert category(p) == "PR"


def test_pr_without_pretreatment_is_non_evaluable_with_missing():
    p = aml(onset=None)
    marrow(p, blasts="12")
    counts(p, "1.2", "110")
    pb_absent(p)
    a = result(p).assessment
    assert a.category == "non-evaluable"
    assert any("pretreatment" in x for x in a.missing)


# ---------------------------------------------------------------------------
# PB blasts and EMD
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pct0", "abs0", "coded", "text"])
def test_pb_blasts_absent_representations(kind):
    p = standard()
    p.resources = [r for r in p.resources if "26446-5" not in json.dumps(r.get("code", {}))]
    if kind == "pct0":
        p.observation(f"{LOINC}|709-6", D, value=Decimal(0), unit="%")
    elif kind == "abs0":
        p.observation(f"{LOINC}|30376-8", D, value=Decimal(0), unit="10*3/uL")
    elif kind == "coded":
        p.observation(f"{LOINC}|26446-5", D, value_code=(SNOMED, "260415000"))
    else:
        p.observation(f"{LOINC}|26446-5", D, value_string="None seen")
    assert category(p) == "CR"


def test_pb_blasts_present_prevent_cr_and_later_ones_are_a_suspected_relapse():
    p = standard()
    p.resources = [r for r in p.resources if "26446-5" not in json.dumps(r.get("code", {}))]
    p.observation(f"{LOINC}|26446-5", D, value=Decimal(2), unit="%")
    assert category(p) == "no response"
    q = standard()
    q.observation(f"{LOINC}|26446-5", "2024-04-19", value=Decimal(2), unit="%")
    assert category(q) == "suspected relapse"


def test_pb_blasts_reported_as_a_bound_are_not_guessed():
    p = aml()
    marrow(p)
    counts(p, "1.5", "150")
    p.observation(f"{LOINC}|26446-5", D, extra={"valueQuantity": {**qty(1, "%"), "comparator": "<"}})
    r = result(p)
    assert r.assessment.category == "non-evaluable"
    assert any("bound" in i.text() for i in r.issues)
    assert any("peripheral blood blast" in x for x in r.assessment.missing)


def test_emd_observation_and_myeloid_sarcoma_condition():
    p = standard()
    p.observation(m.EMD, D, value_code=PRESENT, extra={"bodySite": {"text": "skin"}})
    assert category(p) == "no response"
    q = standard()
    q.observation(m.EMD, D, value_code=ABSENT)
    assert category(q) == "CR"
    s = standard()
    s.condition(icd10="C92.30", text="Myeloid sarcoma", onset="2024-03-01")
    assert category(s) == "no response"
    t = standard()
    cond = t.condition(icd10="C92.30", text="Myeloid sarcoma", onset="2024-01-15")
    cond["abatementDateTime"] = "2024-03-01"
    assert category(t) == "CR"


# ---------------------------------------------------------------------------
# MRD
# ---------------------------------------------------------------------------


def mrd_obs(p, when=D, *, method="MFC", value=None, unit="%", comparator=None, detected=None, lod=None,
            code=m.MRD, lod_code=m.MRD_LOD, components=()):
    extra: dict = {}
    comps = list(components)
    if value is not None:
        q = qty(Decimal(str(value)), unit)
        if comparator:
            q["comparator"] = comparator
        extra["valueQuantity"] = q
    elif detected is not None:
        extra["valueCodeableConcept"] = concept(SNOMED, "260373001" if detected else "260415000")
    if lod is not None:
        comps.append({"code": concept(lod_code), "valueQuantity": qty(Decimal(str(lod)), "%")})
    return p.observation(code, when, method={"text": method}, components=comps, extra=extra)


def test_mfc_not_detected_with_adequate_lod_is_mrd_negative():
    p = standard()
    mrd_obs(p, detected=False, lod="0.02")
    a = result(p).assessment
    assert a.category == "CR_MRD-"
    assert a.values["mrd_lod_fraction"] == Decimal("0.0002")


def test_mrd_level_below_a_bound_is_not_detected_with_that_lod():
    p = standard()
    mrd_obs(p, value="0.01", comparator="<")
    assert category(p) == "CR_MRD-"


def test_mrd_without_lod_is_not_mrd_negative():
    p = standard()
    mrd_obs(p, detected=False)
    r = result(p)
    assert r.assessment.category == "CR"
    assert any("LOD" in n or "sensitivity" in n for n in r.assessment.notes)


def test_mrd_shared_project_code_and_sensitivity_component():
    p = standard()
    mrd_obs(p, detected=False, lod="1e-2", code=m.MRD_SHARED, lod_code=m.MRD_SENSITIVITY, method="flow cytometry")
    assert category(p) == "CR_MRD-"


def test_mrd_fraction_unit_and_positive_level():
    p = standard()
    mrd_obs(p, value="0.002", unit="1")  # 0.2 % >= 0.1 %: positive
    a = result(p).assessment
    assert a.category == "CR" and a.values["mrd_status"] == "positive"


def test_mrd_text_result_from_immunophenotyping():
    p = standard()
    p.observation(m.IMMUNOPHENOTYPING, D, value_string="MRD not detected (sensitivity 0.01 %)")
    assert category(p) == "CR_MRD-"


def test_mrd_method_missing_is_an_issue():
    p = standard()
    p.observation(m.MRD, D, value_code=(SNOMED, "260415000"))
    r = result(p)
    assert r.assessment.category == "CR"
    assert any("method" in i.text() for i in r.issues)


def test_qpcr_replicates_and_mrd_relapse_after_recorded_cr_mrd_negative():
    p = aml(icd10="C92.01")
    p.observation(m.DISEASE_STATUS[0], "2024-03-18", method={"text": "ELN 2022"},
                  extra={"valueCodeableConcept": {"text": "CR_MRD-"}})
    reps = [{"code": concept(m.MRD_REPLICATES_POSITIVE), "valueInteger": 3},
            {"code": concept(m.MRD_REPLICATES_TESTED), "valueInteger": 3}]
    mrd_obs(p, "2024-06-01", method="NPM1 RT-qPCR", value="0.05", components=reps)
    mrd_obs(p, "2024-06-20", method="NPM1 RT-qPCR", value="0.2", components=reps)
    r = result(p)
    a = r.assessment
    assert [h.category for h in a.history] == ["CR_MRD-", "suspected MRD relapse", "MRD relapse"]
    assert a.category == "MRD relapse"
    assert any("still codes this AML as in remission" in n for n in r.notes)


# ---------------------------------------------------------------------------
# Recorded categories, therapy context, not evaluable
# ---------------------------------------------------------------------------


def test_recorded_category_of_another_criteria_set_or_unknown_value():
    p = aml()
    p.observation(m.DISEASE_STATUS[0], "2024-03-18", method={"text": "RECIST 1.1"},
                  extra={"valueCodeableConcept": {"text": "CR"}})
    assert result(p).assessment is None
    q = aml()
    q.observation(m.DISEASE_STATUS[0], "2024-03-18", method={"text": "ELN 2022"},
                  extra={"valueCodeableConcept": {"text": "very good"}})
    assert any("not an ELN 2022 category" in i for i in issues(q))


def test_two_intensive_courses_without_remission_is_refractory():
    p = aml()
    p.observation(m.BM_BLASTS, "2024-01-10", value=Decimal(70), unit="%")
    induction(p, "2024-01-12")
    marrow(p, "2024-02-09", blasts="40")
    induction(p, "2024-02-12")
    p.medication("2024-02-14", "daunorubicin day 3 dose")  # same course, not a third
    marrow(p, "2024-03-12", blasts="35")
    counts(p, "0.4", "30", when="2024-03-12")
    a = result(p).assessment
    assert [h.category for h in a.history] == ["no response", "refractory"]
    assert a.values["intensive_courses_completed"] == 2


def test_less_intensive_landmark_180_days():
    def patient(days_on: int) -> PatientBuilder:
        p = aml()
        p.observation(m.BM_BLASTS, "2024-01-01", value=Decimal(50), unit="%")
        start = date(2024, 1, 3)
        p.medication(start.isoformat(), "azacitidine 75 mg/m2 days 1-7", rxnorm="1251")
        p.medication(start.isoformat(), "venetoclax 400 mg daily", rxnorm="1747556")
        when = date.fromordinal(start.toordinal() + days_on).isoformat()
        marrow(p, when, blasts="30")
        counts(p, "0.4", "30", when=when)
        return p
    assert category(patient(179)) == "no response"
    assert category(patient(180)) == "refractory"


def test_recorded_landmark_and_recorded_course_count():
    p = standard(blasts="30")
    p.observation(m.LANDMARK, D, extra={"valueDateTime": D})
    assert category(p) == "refractory"
    q = aml(onset=None)
    q.observation(m.INTENSIVE_COURSES, D, extra={"valueInteger": 2})
    marrow(q, blasts="30")
    counts(q, "0.4", "30")
    assert category(q) == "refractory"


def test_planned_orders_are_not_courses():
    p = aml()
    p.observation(m.BM_BLASTS, "2024-01-10", value=Decimal(70), unit="%")
    induction(p, "2024-01-12")
    planned = p.medication("2024-02-12", "daunorubicin 60 mg/m2 (7+3 re-induction)")
    planned["intent"] = "plan"
    marrow(p, "2024-03-12", blasts="35")
    counts(p, "0.4", "30", when="2024-03-12")
    assert category(p) == "no response"


def test_early_death_is_not_evaluable():
    p = aml()
    induction(p, "2024-02-01")
    p.resources[0]["deceasedDateTime"] = "2024-02-10"
    r = result(p)
    assert r.assessment.category == "non-evaluable"
    assert any("early death" in x for x in r.assessment.missing)


def test_cri_reading_setting_from_options_and_from_the_record():
    assert category(standard("0.3", "20")) == "MLFS"
    assert category(standard("0.3", "20"), {"eln_cri_allows_both_lineages_low": True}) == "CRi"
    p = standard("0.3", "20")
    p.observation(m.CRI_INCLUSIVE, D, value_bool=True, category="survey")
    assert category(p) == "CRi"


# ---------------------------------------------------------------------------
# Missing data and the cards
# ---------------------------------------------------------------------------


def test_no_eln_data_gives_an_insufficient_data_card(client):
    p = aml()
    c = card(client, p)
    ext = c["extension"]["org.remission-cds.assessment"]
    assert ext["category"] == "insufficient data"
    assert any("11150-0" in x for x in ext["missing"])
    assert "Nothing was guessed" in c["detail"]


def test_missing_counts_on_an_unreported_adequacy_marrow_says_what_is_missing(client):
    p = aml()
    marrow(p, cells=None, spicules=None, cellularity=None)
    pb_absent(p)
    c = card(client, p)
    ext = c["extension"]["org.remission-cds.assessment"]
    assert ext["category"] == "non-evaluable"
    assert any("ANC" in x for x in ext["missing"]) and any("platelet" in x for x in ext["missing"])


def test_card_summary_shows_category_counts_and_blasts(client):
    c = card(client, standard("0.7", "62", blasts="2"))
    assert c["summary"].startswith("ELN 2022 AML: CRh (ANC 0.7, platelets 62 × 10⁹/L; marrow blasts 2 %)")
    assert len(c["summary"]) < 140
    ext = c["extension"]["org.remission-cds.assessment"]
    assert ext["values"]["ANC_10e9_per_L"] == 0.7 and ext["values"]["platelets_10e9_per_L"] == 62
    assert ext["values"]["bone_marrow_blasts_pct"] == 2


def test_problem_list_relapse_code_is_noted():
    p = standard()
    p.resources[1]["code"]["coding"][0]["code"] = "C92.02"
    r = result(p)
    assert r.assessment.category == "CR"
    assert any("in relapse" in n and "consider updating" in n for n in r.notes)


def test_reported_category_in_report_text_is_shown_beside_the_computed_one():
    p = standard("0.7", "62")
    p.report(D, category="pathology", code=(LOINC, "33721-2", "Bone marrow Pathology biopsy report"),
             conclusion="Morphologic remission. ELN 2022 response: CR.")
    r = result(p)
    assert r.assessment.category == "CRh"
    assert any("states ELN CR, computed CRh" in n for n in r.notes)
    q = standard("1.5", "150")
    q.report(D, category="pathology", code=(LOINC, "33721-2", "Bone marrow Pathology biopsy report"),
             conclusion="ELN 2022: CR.")
    assert any("states ELN CR, as computed" in n for n in result(q).notes)


def test_prefetch_template_asks_for_the_eln_codes(client):
    body = client.get("/cds-services").get_json()
    obs = next(s for s in body["services"] if s["id"] == "remission-status")["prefetch"]["observations"]
    for code in ("11150-0", "751-8", "777-3", "26446-5", "38257-2", "97509-4"):
        assert code in obs


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

decimals = st.decimals(min_value=Decimal("0"), max_value=Decimal("400"), places=2, allow_nan=False,
                       allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(anc=st.decimals(min_value=Decimal("0"), max_value=Decimal("3"), places=2),
       plt=st.integers(min_value=0, max_value=300),
       blasts=st.decimals(min_value=Decimal("0"), max_value=Decimal("40"), places=1),
       style=st.sampled_from([("10*9/L", 1), ("10*3/uL", 1), ("/uL", 1000), ("10^9/L", 1)]))
def test_unit_choice_never_changes_the_category(anc, plt, blasts, style):
    unit, factor = style
    canonical = category(standard(str(anc), str(plt), blasts=str(blasts)))
    other = category(standard(str(anc * factor), str(plt * factor), blasts=str(blasts), anc_unit=unit,
                              plt_unit=unit))
    assert other == canonical
    # and the mapped category is the engine's on the same canonical numbers
    inputs = engine.ELNInputs(
        marrow=(engine.MarrowExam(date(2024, 3, 18), blasts, True, 300, Decimal(20)),),
        counts=(engine.BloodCount(date(2024, 3, 18), anc, Decimal(plt)),),
        pb_blasts=(engine.PeripheralBlasts(date(2024, 3, 18), present=False),),
        pretreatment_marrow_blasts_pct=Decimal(60),
        therapy=engine.TherapyContext(intensive_course_starts=(date(2024, 2, 19),)))
    assert engine.assess(inputs, AS_OF).category == canonical


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["coding", "system", "code", "value", "unit", "comparator", "text", "display", "reference",
                         "valueQuantity", "valueInteger", "valueBoolean", "start"]), children, max_size=3),
    max_leaves=12)
ELN_CODES = [m.BM_BLASTS, m.CELLS_COUNTED, m.SPICULES, m.CELLULARITY, m.SAMPLE_ADEQUACY, m.EMD, m.MRD, m.MRD_SHARED,
             m.DISEASE_STATUS[0], m.LANDMARK, m.INTENSIVE_COURSES, f"{LOINC}|751-8", f"{LOINC}|777-3",
             f"{LOINC}|26446-5", f"{LOINC}|30376-8", f"{LOINC}|30451-9", f"{LOINC}|6690-2", m.IMMUNOPHENOTYPING,
             m.NOT_EVALUABLE_REASON, "http://loinc.org|48807-2"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=st.sampled_from(ELN_CODES), fields=st.dictionaries(
    st.sampled_from(["valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger",
                     "valueDateTime", "component", "method", "effectiveDateTime", "focus", "specimen", "bodySite",
                     "note", "interpretation", "status", "intent", "medicationCodeableConcept", "conclusion"]),
    json_values, max_size=5), rtype=st.sampled_from(["Observation", "MedicationRequest", "Procedure",
                                                     "DiagnosticReport", "Condition"]))
def test_malformed_resources_never_raise(code, fields, rtype):
    p = standard()
    res = {"resourceType": rtype, "id": "x", "code": concept(code), **fields}
    if rtype == "Condition":
        res["code"] = {"coding": [{"system": ICD10CM, "code": "C92.30"}], "text": "myeloid sarcoma"}
    p.resources.append(res)
    rec = PatientRecord(p.resources)
    out = m.map_eln(rec, None, {})
    # the readers handle every shape themselves: the last-resort guard in map_eln never has to step in
    assert not [i for i in rec.issues if "malformed resource in the record" in i.why]
    if out.inputs is not None:
        engine.assess(out.inputs, AS_OF)


# ---------------------------------------------------------------------------
# The vignette converter on vignette shapes beyond the public file
# ---------------------------------------------------------------------------

BASE = {"assessment_date": "2024-03-18", "context": "day 28 after cycle 1 of intensive induction (7+3)",
        "pretreatment_bone_marrow_blasts_pct": 60, "peripheral_blood_blasts": "absent",
        "extramedullary_disease": "absent",
        "marrow_adequacy": "spicules present; 300 nucleated cells counted; biopsy cellularity 20%"}


@pytest.mark.parametrize("extra,expected", [
    ({"bone_marrow_blasts_pct": 2, "ANC_10e9_per_L": 1.5, "platelets_10e9_per_L": 150,
      "MRD": {"method": "qPCR", "marker": "NPM1", "result": "not detected", "LOD_fraction": 0.00001,
              "sample": "BM"}}, "CR_MRD-"),
    ({"bone_marrow_blasts_pct": 3, "ANC_per_uL": 700, "platelets_per_uL": 60000}, "CRh"),
    ({"bone_marrow_blasts_pct": 3, "ANC_10e3_per_uL": 0.7, "platelets_10e3_per_uL": 60,
      "MRD": {"method": "MFC", "result": "not detected", "LOD_pct": 0.05}}, "CRh_MRD-"),
    ({"bone_marrow_blasts_pct": 2, "ANC_10e3_per_L": 1.5, "platelets_10e9_per_L": 150}, "MLFS"),
    ({"bone_marrow_blasts_pct": 12, "ANC_10e9_per_L": 1.2, "platelets_10e9_per_L": 110}, "PR"),
    ({"bone_marrow_blasts_pct": 2, "ANC_10e9_per_L": 1.5, "platelets_10e9_per_L": 150,
      "extramedullary_disease": "present (skin, leukaemia cutis)"}, "no response"),
    ({"bone_marrow_blasts_pct": 2, "ANC_10e9_per_L": 1.5, "platelets_10e9_per_L": 150,
      "peripheral_blood_blasts": "present (2%)"}, "no response"),
    ({"bone_marrow_blasts_pct": 2, "ANC_10e9_per_L": 1.5, "platelets_10e9_per_L": 150,
      "marrow_adequacy": "dry tap; inadequate aspirate"}, "non-evaluable"),
    ({"bone_marrow_blasts_pct": 40, "ANC_10e9_per_L": 0.4, "platelets_10e9_per_L": 30,
      "context": "day 28 after cycle 2 of intensive induction (7+3 re-induction)"}, "refractory"),
    ({"bone_marrow_blasts_pct": 30, "ANC_10e9_per_L": 0.4, "platelets_10e9_per_L": 30,
      "context": "after 2 courses of intensive induction"}, "refractory"),
    ({"bone_marrow_blasts_pct": 30, "ANC_10e9_per_L": 0.4, "platelets_10e9_per_L": 30,
      "context": "day 180 of azacitidine + venetoclax (less-intensive)"}, "refractory"),
    ({"bone_marrow_blasts_pct": 30, "ANC_10e9_per_L": 0.4, "platelets_10e9_per_L": 30,
      "context": "cycle 2 day 28 of azacitidine + venetoclax"}, "no response"),
    ({"bone_marrow_blasts_pct": 8, "ANC_10e9_per_L": 0.4, "platelets_10e9_per_L": 30,
      "context": "at landmark"}, "refractory"),
    ({"bone_marrow_blasts_pct": 2, "ANC": {"value": 1000, "unit": "/uL"},
      "platelets": {"value": 100000, "unit": "/uL"}}, "CR"),
    ({"bone_marrow_blasts_pct": 2, "ANC_per_µL": 1000, "platelets_per_µL": 100000}, "CR"),
    ({"bone_marrow_blasts_pct": 12, "ANC_10e9_per_L": 1.2, "platelets_10e9_per_L": 110,
      "pretreatment_bone_marrow_blasts_pct": None, "baseline_bone_marrow_blasts_fraction": 0.6}, "PR"),
    ({"assessment_date": None, "bone_marrow_blasts_pct": 2, "ANC_10e9_per_L": 1.5, "platelets_10e9_per_L": 150,
      "context": None}, "CR"),
])
def test_converter_handles_vignette_variants(client, extra, expected):
    v = {"id": "ELN-T", "inputs": {**BASE, **extra}}
    ext = card(client, to_patient(v))["extension"]["org.remission-cds.assessment"]
    assert ext["category"] == expected


def test_converter_marrow_described_as_inadequate_is_a_dated_non_evaluable(client):
    v = {"id": "ELN-T", "inputs": {"assessment_date": "2024-03-18",
                                   "context": "day 28 after cycle 1 of intensive induction (7+3)",
                                   "bone_marrow": "dry tap; inadequate sample", "ANC_10e9_per_L": 1.5,
                                   "platelets_10e9_per_L": 150, "peripheral_blood_blasts": "absent"}}
    ext = card(client, to_patient(v))["extension"]["org.remission-cds.assessment"]
    assert ext["category"] == "non-evaluable" and ext["assessmentDate"] == "2024-03-18"
    assert any("suboptimal" in x for x in ext["missing"])


def test_converter_early_death_is_the_criterion_verdict():
    v = {"id": "ELN-T", "inputs": {"assessment_date": "2024-03-01",
                                   "context": "died on day 12 of intensive induction (7+3), before the response marrow",
                                   "bone_marrow": "not performed"}}
    r = result(to_patient(v))
    assert r.assessment.category == "non-evaluable" and r.show_not_evaluable
    assert any("early death" in x for x in r.assessment.missing)


def test_converter_mrd_relapse_series(client):
    v = {"id": "ELN-T", "inputs": {
        "history": [{"date": "2024-03-18", "category": "CR_MRD-"}],
        "MRD": [{"date": "2024-06-03", "method": "qPCR", "marker": "NPM1", "value_pct": 0.05, "sample": "BM"},
                {"date": "2024-06-24", "method": "qPCR", "marker": "NPM1", "value_pct": 0.3, "sample": "BM"}],
        "bone_marrow": "not performed"}}
    ext = card(client, to_patient(v))["extension"]["org.remission-cds.assessment"]
    assert ext["category"] == "MRD relapse"
    assert [h["category"] for h in ext["history"]] == ["CR_MRD-", "suspected MRD relapse", "MRD relapse"]


@pytest.mark.parametrize("text,expected", [
    ("CR", "CR"), ("CR (MRD unknown)", "CR"), ("CRh, MRD-negative", "CRh_MRD-"), ("CR with MRD negativity", "CR_MRD-"),
    ("CRi (MRD+)", "CRi"), ("complete remission", "CR"), ("Complete remission with partial haematologic recovery",
                                                         "CRh"),
    ("morphologic leukemia-free state", "MLFS"), ("Refractory disease", "refractory"), ("very good", None),
    ("In full remission", None),
])
def test_recorded_category_wording(text, expected):
    assert m.category_of(text) == expected


def test_converter_multi_timepoint_relapse_by_marrow(client):
    v = {"id": "ELN-T", "inputs": {
        "context": "intensive induction (7+3)",
        "timepoints": [
            {"date": "2024-03-18", "bone_marrow_blasts_pct": 2, "ANC_10e9_per_L": 1.4, "platelets_10e9_per_L": 160,
             "peripheral_blood_blasts": "absent", "marrow_adequacy": "spicules present; 400 nucleated cells counted"},
            {"date": "2024-10-01", "bone_marrow_blasts_pct": 9, "ANC_10e9_per_L": 1.1, "platelets_10e9_per_L": 90,
             "peripheral_blood_blasts": "absent"}]}}
    ext = card(client, to_patient(v))["extension"]["org.remission-cds.assessment"]
    assert [h["category"] for h in ext["history"]] == ["CR", "hematologic relapse"]


def test_converter_history_with_findings_and_worded_mrd(client):
    v = {"id": "ELN-T", "inputs": {
        "history": [{"date": "2024-03-18", "category": "CR (MRD unknown)", "bone_marrow_blasts_pct": 1,
                     "ANC_10e9_per_L": 2.0, "platelets_10e9_per_L": 180, "peripheral_blood_blasts": "absent"}],
        "assessment_date": "2024-06-17", "bone_marrow_blasts_pct": 1, "ANC_10e9_per_L": 2.1,
        "platelets_10e9_per_L": 190, "peripheral_blood_blasts": "absent",
        "MRD": "negative by MFC (LOD 0.01%)"}}
    ext = card(client, to_patient(v))["extension"]["org.remission-cds.assessment"]
    assert ext["category"] == "CR_MRD-"


def test_converter_single_pb_sample_is_suspected_relapse(client):
    v = {"id": "ELN-T", "inputs": {"history": [{"date": "2024-03-18", "category": "CR"}],
                                   "peripheral_blood": [{"date": "2024-09-02", "blasts_pct": 3}]}}
    ext = card(client, to_patient(v))["extension"]["org.remission-cds.assessment"]
    assert ext["category"] == "suspected relapse" and ext["confirmed"] is False


def test_converter_writes_facts_not_the_answer():
    v = {"id": "ELN-T", "inputs": {**BASE, "bone_marrow_blasts_pct": 3, "ANC_10e9_per_L": 0.7,
                                   "platelets_10e9_per_L": 60}, "expected": {"category": "CRh"}}
    text = json.dumps(to_patient(v).resources)
    assert "CRh" not in text
