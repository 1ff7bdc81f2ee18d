"""Breast pCR / RCB mapping: FHIR record -> rules.breast inputs (fhir_mappings/breast.py), and cards through HTTP."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.sandbox.builders import PatientBuilder, concept
from conftest import assessment_cards
from fhir_mappings import breast as m
from fhir_mappings.record import LOCAL, LOINC, SNOMED, PatientRecord
from rules import breast as engine
from rules.base import Outcome

AS_OF = date(2024, 8, 1)
D = "2024-07-02"
HOOK = "/cds-services/remission-status"


def patient() -> PatientBuilder:
    p = PatientBuilder("pcr-test")
    p.condition(icd10="C50.911", text="Invasive ductal carcinoma of right breast")
    return p


def tnm(p: PatientBuilder, which: str, text: str, *, code: str | None = None, when: str = D):
    key = code or (f"{SNOMED}|384625004" if which == "T" else f"{LOINC}|21900-6")
    obs = p.observation(key, when)
    obs["valueCodeableConcept"] = {"text": text}
    return obs


def cap_obs(p: PatientBuilder, question_code: str, question: str, answer: str, when: str = D):
    obs = p.observation(f"{m.CAP}|{question_code}", when, display=question)
    obs["valueCodeableConcept"] = {"coding": [{"system": m.CAP, "code": "x.100004300", "display": answer}]}
    return obs


def narrative(p: PatientBuilder, text: str, when: str = D, *, presented: bool = False):
    return p.report(when, category="pathology", code=(LOINC, "60568-3", "Pathology Synoptic report"),
                    **({"text": text} if presented else {"conclusion": text}))


def rcb(p: PatientBuilder, d1="20", d2="15", ca="10", cis="0", ln=0, dmet="0", *, len_unit="mm", when=D, skip=()):
    rows = ((m.RCB_D1, d1, len_unit), (m.RCB_D2, d2, len_unit), (m.RCB_CELLULARITY, ca, "%"), (m.RCB_IN_SITU, cis, "%"),
            (m.RCB_NODES, ln, "{#}"), (m.RCB_DMET, dmet, len_unit))
    return [p.observation(code, when, value=Decimal(str(v)), unit=u) for code, v, u in rows if code not in skip]


def run(p: PatientBuilder, options=None, as_of=AS_OF):
    record = PatientRecord(p.resources)
    a, mapping = m.assess(record, as_of, options or {})
    return a, mapping, record


# --- shapes of ypT / ypN -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("t,n,category,strict", [
    ("ypT0", "ypN0", engine.PCR, True),
    ("ypTis", "ypN0", engine.PCR, False),
    ("ypT1mi", "ypN0", engine.NOT_PCR, False),
    ("ypT0", "ypN0(i+)", engine.NOT_PCR, False),
    ("ypT0", "ypN1mi (1.5 mm deposit in 1/4 nodes)", engine.NOT_PCR, False),
    ("American Joint Committee on Cancer ypT0 (qualifier value)", "AJCC ypN0 (qualifier value)", engine.PCR, True),
])
def test_mcode_tnm_observations(t, n, category, strict):
    p = patient()
    tnm(p, "T", t)
    tnm(p, "N", n, code=f"{SNOMED}|371494008")
    a, _, _ = run(p)
    assert a.category == category
    assert a.values["pCR_ypT0_ypN0"] is strict
    assert a.assessment_date == date(2024, 7, 2)


def test_loinc_codes_and_value_string():
    p = patient()
    tnm(p, "T", "ypT0", code=f"{LOINC}|21899-0")
    obs = p.observation(f"{LOINC}|21900-6", D, value_string="ypN0(sn)")
    a, _, _ = run(p)
    assert a.category == engine.PCR and obs


def test_pathologic_category_without_y_is_not_used():
    p = patient()
    tnm(p, "T", "pT2")
    tnm(p, "N", "pN1a")
    a, mapping, record = run(p)
    assert a is None
    assert any("no y prefix" in i.why for i in record.issues)
    assert any("ypT and ypN" in x for x in mapping.missing)
    assert not m.has_post_neoadjuvant_data(PatientRecord(p.resources))


def test_yp_value_under_a_clinical_code_is_rejected():
    p = patient()
    tnm(p, "T", "ypT0", code=f"{SNOMED}|399504009")
    tnm(p, "N", "ypN0")
    a, _, record = run(p)
    assert any("clinical staging code" in i.what for i in record.issues)
    assert a.category == engine.NOT_EVALUABLE
    assert any("ypT" in x for x in a.missing)


def test_cap_ecc_answers_with_the_y_descriptor():
    p = patient()
    cap_obs(p, "327740.100004300", "pT Category", "pT1b: Tumor > 5 mm but <= 10 mm")
    cap_obs(p, "763178.100004300", "pN Category", "pN0: No regional lymph node metastasis identified or ITCs only")
    cap_obs(p, "12345.100004300", "TNM Descriptors", "y (post-neoadjuvant therapy)")
    a, _, _ = run(p)
    assert a.category == engine.NOT_PCR
    assert a.values["ypT"] == "ypT1b" and a.values["ypN"] == "ypN0"


def test_cap_only_dcis_answer():
    p = patient()
    cap_obs(p, "327740.100004300", "pT Category", "pTis (DCIS)")
    cap_obs(p, "763178.100004300", "pN Category", "pN0: No regional lymph node metastasis identified")
    cap_obs(p, "22222.100004300", "Residual tumor", "Only DCIS is present after presurgical (neoadjuvant) therapy")
    a, _, _ = run(p)
    assert a.category == engine.PCR and a.values["pCR_ypT0_ypN0"] is False


def test_cap_answers_without_the_y_descriptor_are_not_used():
    p = patient()
    cap_obs(p, "327740.100004300", "pT Category", "pT0: No evidence of primary tumor")
    cap_obs(p, "763178.100004300", "pN Category", "pN0: No regional lymph node metastasis identified")
    a, _, record = run(p)
    assert a is None and sum("no y prefix" in i.why for i in record.issues) == 2


@pytest.mark.parametrize("text,category,values", [
    ("FINAL DIAGNOSIS: No residual invasive carcinoma. Lymph nodes negative (0/3). ypT0 ypN0.", engine.PCR, {}),
    ("Residual invasive ductal carcinoma, 4 mm. Pathologic stage: ypT1a ypN0(i+) (sn).", engine.NOT_PCR,
     {"ypN": "ypN0(i+)"}),
    ("ypT0 ypN0. Residual DCIS, 6 mm.", engine.PCR, {"pCR_ypT0_ypN0": False}),
    ("ypT0 ypN0. Lymphovascular invasion: present.", engine.NOT_PCR, {}),
    ("ypT0 ypN0. Lymphovascular invasion: not identified. No residual DCIS.", engine.PCR, {"pCR_ypT0_ypN0": True}),
])
def test_narrative_only_pathology(text, category, values):
    p = patient()
    narrative(p, text, presented=True)
    a, mapping, _ = run(p)
    assert a.category == category
    for k, v in values.items():
        assert a.values[k] == v
    assert any("as reported by pathology on 2024-07-02" in n for n in mapping.notes)


def test_coded_wins_over_text():
    p = patient()
    tnm(p, "T", "ypT0")
    tnm(p, "N", "ypN0")
    narrative(p, "ypT1c ypN1a")
    a, mapping, _ = run(p)
    assert a.category == engine.PCR
    assert not any("as reported" in n for n in mapping.notes)


def test_configured_local_code_for_ypt():
    p = patient()
    obs = p.observation("http://hospital.example/path|YPT", D)
    obs["valueCodeableConcept"] = {"text": "ypT0"}
    tnm(p, "N", "ypN0")
    a, _, _ = run(p)
    assert a.category == engine.NOT_EVALUABLE
    a, _, _ = run(p, {"local_codes": {"ypT": ["http://hospital.example/path|YPT"]}})
    assert a.category == engine.PCR


def test_entered_in_error_is_skipped():
    p = patient()
    bad = tnm(p, "T", "ypT2")
    bad["status"] = "entered-in-error"
    tnm(p, "T", "ypT0")
    tnm(p, "N", "ypN0")
    a, _, record = run(p)
    assert a.category == engine.PCR
    assert any("entered-in-error" in i.why for i in record.issues)


def test_missing_ypn_is_not_evaluable_and_says_so():
    p = patient()
    tnm(p, "T", "ypT0")
    a, _, _ = run(p)
    assert a.category == engine.NOT_EVALUABLE
    assert any("ypN" in x for x in a.missing)


def test_latest_surgery_and_later_pathology():
    p = patient()
    tnm(p, "T", "ypT0", when="2024-07-02")
    tnm(p, "N", "ypN0", when="2024-07-02")
    tnm(p, "T", "ypT2", when="2024-09-10")
    tnm(p, "N", "ypN1a", when="2024-09-10")
    a, mapping, _ = run(p)
    assert a.category == engine.PCR
    assert any("after 2024-08-01" in n for n in mapping.notes)


def test_surgery_date_from_the_procedure():
    p = patient()
    p.procedure("2024-06-28", f"{SNOMED}|0", "Partial mastectomy with sentinel lymph node biopsy")
    tnm(p, "T", "ypT0")
    tnm(p, "N", "ypN0")
    a, _, _ = run(p)
    assert a.assessment_date == date(2024, 6, 28)


# --- residual DCIS / LVI -------------------------------------------------------------------------------------------

def test_coded_residual_dcis_and_lvi():
    p = patient()
    tnm(p, "T", "ypT0")
    tnm(p, "N", "ypN0")
    p.observation(m.RESIDUAL_DCIS, D, value_bool=True)
    a, _, _ = run(p)
    assert a.category == engine.PCR and a.values["pCR_ypT0_ypN0"] is False
    p.observation(m.RESIDUAL_LVI, D, value_code=(LOCAL, "present"))
    a, _, _ = run(p)
    assert a.category == engine.NOT_PCR


# --- RCB ---------------------------------------------------------------------------------------------------------

def test_rcb_in_mm_and_cm_is_the_same():
    for unit, scale in (("mm", 1), ("cm", Decimal("0.1"))):
        p = patient()
        tnm(p, "T", "ypT1a")
        tnm(p, "N", "ypN0")
        rcb(p, d1=str(20 * scale), d2=str(15 * scale), len_unit=unit)
        a, _, record = run(p)
        assert a.criteria == engine.CRITERIA_RCB
        assert a.values["RCB_index"] == Decimal("1.537") and a.values["RCB_class"] == "RCB-II", unit
        assert not record.issues


def test_rcb_panel_components():
    p = patient()
    tnm(p, "T", "ypT2")
    tnm(p, "N", "ypN2a")
    comps = [{"code": concept(code), "valueQuantity": {"value": v, "unit": u, "system": "http://unitsofmeasure.org",
                                                        "code": u}}
             for code, v, u in ((m.RCB_D1, 40, "mm"), (m.RCB_D2, 30, "mm"), (m.RCB_CELLULARITY, 50, "%"),
                                (m.RCB_IN_SITU, 10, "%"), (m.RCB_NODES, 4, "{#}"), (m.RCB_DMET, 12, "mm"))]
    p.observation(m.RCB_PANEL, D, components=comps)
    a, _, _ = run(p)
    assert a.values["RCB_index"] == Decimal("4.043") and a.values["RCB_class"] == "RCB-III"


@pytest.mark.parametrize("code,value,unit", [
    (m.RCB_D1, "20", "m"), (m.RCB_D1, "20", "%"), (m.RCB_CELLULARITY, "0.1", "1"), (m.RCB_CELLULARITY, "150", "%"),
    (m.RCB_NODES, "1.5", "{#}"), (m.RCB_NODES, "2", "mm"), (m.RCB_DMET, "5", "um"),
])
def test_rcb_unit_or_value_that_cannot_be_right_is_rejected(code, value, unit):
    p = patient()
    tnm(p, "T", "ypT1a")
    tnm(p, "N", "ypN1a")
    rcb(p, ln=2, dmet="5", skip=(code,))
    p.observation(code, D, value=Decimal(value), unit=unit)
    a, mapping, record = run(p)
    assert any(i.what.endswith("skipped") for i in record.issues)
    assert "RCB_index_exact" not in a.values
    assert a.criteria == engine.CRITERIA
    assert any("RCB not calculated" in n for n in mapping.notes)


def test_rcb_nodes_implied_by_ypn0():
    p = patient()
    tnm(p, "T", "ypT1a")
    tnm(p, "N", "ypN0")
    rcb(p, skip=(m.RCB_NODES, m.RCB_DMET))
    a, mapping, _ = run(p)
    assert a.values["RCB_class"] == "RCB-II"
    assert any("positive nodes taken as 0" in n for n in mapping.notes)


def test_rcb_incomplete_keeps_the_pcr_category():
    p = patient()
    tnm(p, "T", "ypT1a")
    tnm(p, "N", "ypN1a")
    rcb(p, skip=(m.RCB_CELLULARITY,))
    a, mapping, _ = run(p)
    assert a.category == engine.NOT_PCR and a.values.get("RCB_class") is None
    assert any("cancer cellularity" in n for n in mapping.notes)


def test_reported_rcb_is_shown_beside_the_computed_one():
    p = patient()
    tnm(p, "T", "ypT1a")
    tnm(p, "N", "ypN0")
    rcb(p)
    narrative(p, "Residual cancer burden: RCB-I (RCB index 1.2).")
    a, _, _ = run(p)
    assert a.values["RCB_class"] == "RCB-II" and a.values["RCB_class_reported"] == "RCB-I"
    assert a.values["RCB_index_reported"] == Decimal("1.2")
    assert any(e.rule == "breast.rcb.reported" for e in a.evidence)
    assert any("differs from the computed" in n for n in a.notes)


def test_reported_rcb_from_coded_observation():
    p = patient()
    tnm(p, "T", "ypT1a")
    tnm(p, "N", "ypN0")
    p.observation(m.RCB_CLASS, D, value_code=(LOCAL, "RCB-II"))
    a, _, _ = run(p)
    assert a.values["RCB_class_reported"] == "RCB-II"
    assert a.values.get("RCB_class") is None


# --- not operated --------------------------------------------------------------------------------------------------

def test_not_operated_because_of_progression():
    p = patient()
    p.add({"resourceType": "Procedure", "id": "np", "status": "not-done", "subject": p.subject,
           "code": {"text": "Mastectomy"}, "statusReason": {"text": "Disease progression on neoadjuvant therapy"}})
    p.observation(m.NOT_OPERATED, "2024-05-10", value_bool=True)
    a, _, _ = run(p)
    assert a.category == engine.NOT_PCR and a.outcome is Outcome.PROGRESSION
    assert a.assessment_date == date(2024, 5, 10)


# --- HTTP ----------------------------------------------------------------------------------------------------------

def _cards(client, p):
    return assessment_cards(client.post(HOOK, json=p.hook_request()).get_json())


def test_no_post_neoadjuvant_data_gives_no_pcr_card(client):
    p = patient()
    tnm(p, "T", "pT2")
    assert not [c for c in _cards(client, p) if c["criteria"].startswith("Breast")]


def test_missing_ypn_card_says_what_is_missing(client):
    p = patient()
    tnm(p, "T", "ypT0")
    cards = [c for c in _cards(client, p) if c["criteria"].startswith("Breast")]
    assert cards and cards[0]["category"] == engine.NOT_EVALUABLE
    assert any("ypN" in x for x in cards[0]["missing"])


def test_card_criteria_follow_rcb_inputs(client):
    p = patient()
    tnm(p, "T", "ypT1a")
    tnm(p, "N", "ypN0")
    assert [c["criteria"] for c in _cards(client, p) if c["criteria"].startswith("Breast")] == [engine.CRITERIA]
    rcb(p)
    cards = [c for c in _cards(client, p) if c["criteria"].startswith("Breast")]
    assert [c["criteria"] for c in cards] == [engine.CRITERIA_RCB]
    assert cards[0]["values"]["RCB_index"] == 1.537


# --- properties ----------------------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(d1=st.integers(1, 80), d2=st.integers(1, 80), ca=st.integers(0, 100), cis=st.integers(0, 100),
       ln=st.integers(0, 12), dmet=st.integers(0, 30))
def test_rcb_mm_cm_invariance(d1, d2, ca, cis, ln, dmet):
    out = []
    for unit, scale in (("mm", Decimal(1)), ("cm", Decimal("0.1"))):
        p = patient()
        tnm(p, "T", "ypT1c")
        tnm(p, "N", "ypN1a" if ln else "ypN0")
        rcb(p, str(d1 * scale), str(d2 * scale), str(ca), str(cis), ln, str(dmet * scale), len_unit=unit)
        a, _, _ = run(p)
        out.append((a.values["RCB_class"], a.values["RCB_index"]))
    assert out[0] == out[1]


@settings(max_examples=40, deadline=None)
@given(t=st.sampled_from(["ypT0", "ypTis", "ypT1mi", "ypT1a", "ypT2", "ypT4d"]),
       n=st.sampled_from(["ypN0", "ypN0(i+)", "ypN1mi", "ypN1a", "ypN2a", "ypN3c"]),
       shape=st.sampled_from(["coded", "text"]))
def test_coded_and_narrative_agree(t, n, shape):
    p = patient()
    if shape == "coded":
        tnm(p, "T", t)
        tnm(p, "N", n)
    else:
        narrative(p, f"Pathologic stage: {t} {n}.")
    a, _, _ = run(p)
    pcr = t in ("ypT0", "ypTis") and n == "ypN0"
    assert a.category == (engine.PCR if pcr else engine.NOT_PCR)


# --- hostile input ---------------------------------------------------------------------------------------------

_JUNK = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.just("2024-07-02"),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(
                         ["coding", "text", "value", "unit", "code", "system", "reference", "data", "display"]), c,
                         max_size=3), max_leaves=8)
_FIELDS = ["code", "valueQuantity", "valueString", "valueCodeableConcept", "valueBoolean", "component", "method", "note",
           "effectiveDateTime", "status", "conclusion", "presentedForm", "conclusionCode", "category", "result",
           "performedDateTime", "statusReason"]


@settings(max_examples=150, deadline=None)
@given(index=st.integers(0, 30), field=st.sampled_from(_FIELDS), junk=_JUNK)
def test_malformed_fields_never_raise(index, field, junk):
    p = patient()
    tnm(p, "T", "ypT1a")
    tnm(p, "N", "ypN0")
    rcb(p)
    narrative(p, "ypT1a ypN0, RCB-II")
    p.observation(m.RESIDUAL_DCIS, D, value_bool=False)
    p.add({"resourceType": "Procedure", "id": "np", "status": "not-done", "subject": p.subject,
           "code": {"text": "Mastectomy"}, "statusReason": {"text": "progression"}})
    res = p.resources[index % len(p.resources)]
    res[field] = junk
    record = PatientRecord(p.resources)
    m.has_post_neoadjuvant_data(record)
    m.assess(record, AS_OF, {})  # must not raise
