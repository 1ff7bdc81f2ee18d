"""FHIR -> iwCLL 2018 inputs (fhir_mappings/iwcll.py): units, issues, representations, baseline/therapy, HTTP."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.sandbox.builders import PatientBuilder, concept, qty
from cds_service.sandbox.vignettes import to_patient
from conftest import assessment_cards, load_vignettes
from fhir_mappings import iwcll as c
from fhir_mappings import mrd as m
from fhir_mappings.pipeline import assess_record
from fhir_mappings.record import LOINC, SNOMED, PatientRecord
from fhir_mappings.routing import route
from rules import iwcll2018 as engine
from rules.iwcll2018 import CllInputs, CllTimepoint, Marrow

HOOK = "/cds-services/remission-status"
AS_OF = date(2026, 1, 1)
D = Decimal
BASE, CUR = "2024-01-10", "2024-09-10"


def patient(pid="cll-1") -> PatientBuilder:
    p = PatientBuilder(pid, birth_date="1955-01-01")
    p.condition(icd10="C91.10", text="Chronic lymphocytic leukemia of B-cell type not having achieved remission")
    return p


def lab(p, loinc, when, value, unit):
    return p.observation(f"{LOINC}|{loinc}", when, value=D(str(value)), unit=unit)


def baseline(p, when=BASE, *, marker=True):
    p.observation(c.LARGEST_NODE, when, value=D("4.5"), unit="cm", category="imaging")
    p.observation(c.NODE_SPD, when, value=D(20), unit="cm2", category="imaging")
    p.observation(c.SPLEEN_LENGTH, when, value=D(18), unit="cm", category="imaging")
    lab(p, "731-0", when, 60, "10*9/L")
    lab(p, "777-3", when, 80, "10*9/L")
    lab(p, "718-7", when, "9.5", "g/dL")
    if marker:
        p.observation(c.REPORTED, when, value_code="baseline", category="survey")


def current(p, when=CUR, *, plt=(130, "10*9/L"), hb=("11.5", "g/dL"), spleen=(14, "cm"), spd=(8, "cm2"),
            lymph=(3, "10*9/L")):
    p.observation(c.LARGEST_NODE, when, value=D("2.0"), unit="cm", category="imaging")
    p.observation(c.NODE_SPD, when, value=D(str(spd[0])), unit=spd[1], category="imaging")
    p.observation(c.SPLEEN_LENGTH, when, value=D(str(spleen[0])), unit=spleen[1], category="imaging")
    lab(p, "731-0", when, lymph[0], lymph[1])
    lab(p, "777-3", when, plt[0], plt[1])
    lab(p, "59260-0" if hb[1] == "mmol/L" else "718-7", when, hb[0], hb[1])


def cll_result(p, options=None):
    rec = PatientRecord(p.resources, p.patient_id)
    res = [r for r in assess_record(rec, AS_OF, options or {}) if r.criteria == "iwCLL 2018"]
    assert res
    return res[0], rec


def mapped(p, options=None):
    rec = PatientRecord(p.resources, p.patient_id)
    return c.map_iwcll(rec, route(rec)[0], AS_OF, options or {}), rec


# --- units ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [
    {},
    {"plt": (130000, "/uL")}, {"plt": (130, "10*3/uL")}, {"plt": (130, "K/uL")},
    {"hb": (115, "g/L")}, {"hb": ("7.138", "mmol/L")},       # 7.138 mmol/L x 1.611 = 11.4993 g/dL
    {"spleen": (140, "mm")}, {"spd": (800, "mm2")}, {"lymph": (3000, "/uL")},
])
def test_unit_variants_give_the_same_category(kw):
    p = patient()
    baseline(p)
    current(p, **kw)
    r, rec = cll_result(p)
    assert r.assessment.category == "PR", [i.text() for i in rec.issues]
    v = r.assessment.values
    assert v["platelets_10e9_per_L"] == 130 and v["spleen_mm"] == 140 and v["node_spd_mm2"] == 800
    assert v["lymphocytes_10e9_per_L"] == 3
    assert abs(v["hemoglobin_g_dL"] - D("11.5")) < D("0.001")
    assert not rec.issues


@pytest.mark.parametrize("kw,why", [
    ({"plt": (130, "10*3/L")}, "million times too small"),
    ({"lymph": (30, "%")}, "percentage is not an absolute count"),
    ({"hb": (11500, "mg/dL")}, "not accepted"),
    ({"spleen": (14, "mm")}, "not a plausible spleen length"),
    ({"spleen": (14, "m")}, "metres"),
    ({"spd": (8, "cm")}, "not a sum of products"),
])
def test_a_unit_that_cannot_be_right_is_rejected_with_an_issue(kw, why):
    p = patient()
    baseline(p)
    current(p, **kw)
    r, rec = cll_result(p)
    assert any(why in i.why for i in rec.issues), [i.text() for i in rec.issues]
    key = {"plt": "platelets_10e9_per_L", "lymph": "lymphocytes_10e9_per_L", "hb": "hemoglobin_g_dL",
           "spleen": "spleen_mm", "spd": "node_spd_mm2"}[next(iter(kw))]
    assert key not in r.assessment.values    # never converted


def test_deprecated_and_estimate_codes_are_not_used():
    p = patient()
    baseline(p)
    current(p)
    lab(p, "49497-1", CUR, 20, "10*9/L")
    lab(p, "752-6", CUR, 1, "10*9/L")
    r, rec = cll_result(p)
    assert r.assessment.category == "PR"
    whys = " ".join(i.why for i in rec.issues)
    assert "estimate" in whys and "deprecated" in whys


def test_entered_in_error_is_skipped():
    p = patient()
    baseline(p)
    current(p)
    wrong = p.observation(c.NODE_SPD, CUR, value=D(90), unit="cm2", category="imaging")   # would be PD
    wrong["status"] = "entered-in-error"
    r, rec = cll_result(p)
    assert r.assessment.category == "PR"
    assert any("entered-in-error" in i.why for i in rec.issues)


def test_configured_local_code_is_read():
    p = patient()
    baseline(p)
    current(p)
    # a lymphocytosis under a local code would be PD (+50 % over baseline 60 and >= 5)
    p.observation("http://hospital.example/lab|LYMPH1", "2024-09-12", value=D(100), unit="10*9/L")
    r, _ = cll_result(p)
    assert r.assessment.category == "PR"
    r, _ = cll_result(p, {"local_codes": {"lymphocytes": ["http://hospital.example/lab|LYMPH1"]}})
    assert r.assessment.category == "PD"


def test_missing_data_gives_an_insufficient_data_card(client):
    p = patient("cll-empty")
    body = client.post(HOOK, json=p.hook_request()).get_json()
    ext = [x["extension"]["org.remission-cds.assessment"] for x in body["cards"] if "extension" in x]
    card = next(e for e in ext if e["criteria"] == "iwCLL 2018")
    assert card["category"] == "insufficient data"
    assert "lymph node" in card["missing"][0]


def test_without_baseline_pr_is_not_guessed():
    p = patient()
    baseline(p, marker=False)   # no marker and no therapy: which assessment is baseline is unknown
    current(p)
    r, _ = cll_result(p)
    assert r.assessment.category == "NE"
    assert any("baseline" in x for x in r.assessment.missing)


def test_baseline_from_the_therapy_start_and_earlier_lines_dropped():
    p = patient()
    baseline(p, "2022-01-10", marker=False)
    baseline(p, marker=False)
    med = p.medication("2024-01-20", "Venetoclax 400 mg + obinutuzumab", status="completed")
    med["dosageInstruction"] = [{"timing": {"repeat": {"boundsPeriod": {"start": "2024-01-20", "end": "2024-06-20"}}}}]
    current(p)
    mp, _ = mapped(p)
    assert mp.inputs.baseline.date == date(2024, 1, 10)
    assert mp.inputs.therapy_end == date(2024, 6, 20)
    assert [t.date for t in mp.inputs.assessments] == [date(2024, 9, 10)]
    r, _ = cll_result(p)
    assert r.assessment.category == "PR" and r.assessment.confirmed   # 82 days after the end of therapy


def test_early_assessment_after_fixed_duration_is_unconfirmed():
    p = patient()
    baseline(p)
    med = p.medication("2024-01-20", "Venetoclax + obinutuzumab", status="completed")
    med["dosageInstruction"] = [{"timing": {"repeat": {"boundsPeriod": {"start": "2024-01-20", "end": "2024-08-20"}}}}]
    current(p)
    r, _ = cll_result(p)
    assert r.assessment.category == "PR" and not r.assessment.confirmed


def test_bcr_inhibitor_from_medication_request_makes_isolated_lymphocytosis_not_pd():
    p = patient()
    baseline(p)
    p.medication("2024-01-11", "Ibrutinib 420 mg daily")
    current(p, lymph=(120, "10*9/L"), spleen=(12, "cm"))   # nodes and spleen improved; lymphocytes not used
    mp, _ = mapped(p)
    assert mp.inputs.bcr_inhibitor and mp.inputs.therapy_end is None
    r, _ = cll_result(p)
    assert r.assessment.category == "PR"


def test_transfusion_procedure_makes_the_hb_transfused():
    p = patient()
    baseline(p)
    current(p)
    p.procedure("2024-09-01", f"{SNOMED}|116863004", "Transfusion of red blood cells")
    mp, _ = mapped(p)
    assert mp.inputs.assessments[-1].transfused is True


def test_findings_marrow_report_and_tumor_size_nodes():
    p = patient()
    when = "2024-11-05"
    n1 = p.lesion("N1", "left axillary lymph node", nodal=True)
    n2 = p.lesion("N2", "right cervical lymph node", nodal=True)
    for body, ld, sa in ((n1, 12, 8), (n2, 10, 7)):
        p.tumor_size(body, when, longest_mm=ld)["component"].append(
            {"code": concept(c.OTHER_DIM), "valueQuantity": qty(sa, "mm")})
    p.observation(c.SPLENOMEGALY, when, value_code=(SNOMED, "2667000"), category="exam")
    p.observation(c.HEPATOMEGALY, when, value_bool=False, category="exam")
    p.observation(c.CONSTITUTIONAL, when, value_bool=False, category="exam")
    lab(p, "731-0", when, "1.8", "10*9/L")
    lab(p, "777-3", when, 165, "10*9/L")
    lab(p, "718-7", when, "12.8", "g/dL")
    p.observation(c.TRANSFUSED, when, value_bool=False, category="therapy")
    p.report(when, category="pathology", code=(LOINC, "48807-2", "Bone marrow aspiration report"),
             conclusion="Normocellular marrow; no CLL infiltrate, no lymphoid nodules.")
    mp, _ = mapped(p)
    tp = mp.inputs.assessments[-1]
    assert tp.largest_node_mm == 12 and tp.node_spd_mm2 == 12 * 8 + 10 * 7
    assert tp.spleen_normal is True and tp.liver_normal is True and tp.constitutional_symptoms is False
    assert tp.marrow is Marrow.NORMOCELLULAR_CLEAR
    r, _ = cll_result(p)
    assert r.assessment.category == "CR"


@pytest.mark.parametrize("text,finding,pct", [
    ("normocellular, no CLL infiltrate, no nodules", Marrow.NORMOCELLULAR_CLEAR, None),
    ("hypocellular marrow with no evidence of CLL", Marrow.HYPOCELLULAR_CLEAR, None),
    ("CLL infiltrate 30 %, no nodules", Marrow.RESIDUAL, "30"),
    ("no CLL cells; B-lymphoid nodules present", Marrow.RESIDUAL, None),
    ("Marrow involved by CLL (40%)", Marrow.RESIDUAL, "40"),
    ("CLL cells not identified.", Marrow.NORMOCELLULAR_CLEAR, None),
    ("trilineage haematopoiesis", None, None),
])
def test_marrow_text(text, finding, pct):
    assert c.parse_marrow(text) == (finding, D(pct) if pct else None)


def test_mrd_only_record_gets_the_umrd4_card(client):
    p = patient("cll-mrd")
    obs = p.observation(m.MRD_RESULT, "2024-09-01", value=D("0.00005"), unit="1", method={"text": "8-colour flow"})
    obs["bodySite"] = concept(SNOMED, "87612001", "Blood")
    body = client.post(HOOK, json=p.hook_request()).get_json()
    card = next(a for a in assessment_cards(body) if a["criteria"] == "iwCLL 2018 MRD")
    assert card["category"] == "uMRD4"


def test_cll03_key_numbers_through_http(client):
    v = next(x for x in load_vignettes() if x["id"] == "CLL-03")
    body = client.post(HOOK, json=to_patient(v).hook_request()).get_json()
    card = next(a for a in assessment_cards(body) if a["criteria"] == "iwCLL 2018")
    values = {k.lower(): x for k, x in card["values"].items()}
    for key, want in v["expected"].items():
        if key.startswith("pct_change"):
            assert values[key.lower()] == pytest.approx(want, abs=0.011)
    assert card["values"]["relapse"] is True and card["outcome"] == "relapse"


# --- engine: a spleen recorded only as a finding (no length) ------------------------------------------
def test_engine_spleen_normal_flag_used_when_no_length():
    tp = CllTimepoint(date=date(2024, 9, 1), largest_node_mm=D(10), liver_normal=True, constitutional_symptoms=False,
                      lymphocytes=D(1), platelets=D(150), hemoglobin_g_dl=D(13), transfused=False,
                      marrow=Marrow.NORMOCELLULAR_CLEAR, spleen_normal=True)
    assert engine.assess(CllInputs((tp,)), AS_OF).category == "CR"
    assert engine.assess(CllInputs((replace(tp, spleen_normal=None),)), AS_OF).category == "NE"
    assert engine.assess(CllInputs((replace(tp, spleen_normal=False),)), AS_OF).category == "NE"
    assert engine.assess(CllInputs((replace(tp, spleen_mm=D(120), spleen_normal=False),)), AS_OF).category == "CR"
    base = CllTimepoint(date=date(2024, 1, 1), largest_node_mm=D(40), spleen_normal=False, lymphocytes=D(50),
                        platelets=D(150), hemoglobin_g_dl=D(13))
    cur = replace(tp, marrow=Marrow.RESIDUAL)
    a = engine.assess(CllInputs((cur,), baseline=base), AS_OF)
    assert a.category == "PR" and a.values["group_a_abnormal_at_baseline"] == 3


# --- properties --------------------------------------------------------------------------------------
counts = st.decimals(min_value=D("0.1"), max_value=D(500), places=1)
hbs = st.decimals(min_value=D("5.0"), max_value=D("18.0"), places=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plt=counts, lymph=counts, hb=hbs)
def test_alternative_units_map_to_the_same_inputs(plt, lymph, hb):
    def inputs(units):
        p = patient()
        baseline(p)
        current(p, plt=(plt * units[0], units[1]), lymph=(lymph * units[0], units[1]),
                hb=(hb * units[2], units[3]))
        mp, _ = mapped(p)
        return mp.inputs.assessments[-1], engine.assess(mp.inputs, AS_OF).category

    a = inputs((1, "10*9/L", 1, "g/dL"))
    b = inputs((1000, "/uL", 10, "g/L"))
    assert (a[0].platelets, a[0].lymphocytes, a[0].hemoglobin_g_dl) == (b[0].platelets, b[0].lymphocytes,
                                                                       b[0].hemoglobin_g_dl)
    assert a[1] == b[1]


junk = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda x: st.lists(x, max_size=3) | st.dictionaries(st.text(max_size=6), x, max_size=3),
                    max_leaves=8)
FIELDS = ("code", "valueQuantity", "valueString", "valueCodeableConcept", "valueBoolean", "component", "focus",
          "bodySite", "note", "effectiveDateTime", "status", "dosageInstruction", "medicationCodeableConcept",
          "dispenseRequest", "conclusion", "presentedForm", "performedDateTime")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extra=st.fixed_dictionaries({"resourceType": st.sampled_from(["Observation", "MedicationRequest",
                                                                      "DiagnosticReport", "Procedure", "Condition"])},
                                   optional={k: junk for k in FIELDS}),
       code=st.sampled_from([None, c.LARGEST_NODE, c.MARROW_FINDING, c.REPORTED, c.CONSTITUTIONAL, f"{LOINC}|718-7",
                             f"{LOINC}|21889-1", f"{LOINC}|48807-2"]))
def test_mapper_never_raises_on_junk(extra, code):
    p = patient()
    baseline(p)
    current(p)
    if code:
        extra = {**extra, "code": concept(code), "effectiveDateTime": "2024-09-11"}
    p.resources.append({"id": "junk", **json.loads(json.dumps(extra))})
    rec = PatientRecord(p.resources, p.patient_id)
    routed = route(rec)
    if routed:
        c.map_iwcll(rec, routed[0], AS_OF, {})


def test_reported_category_is_shown_beside_the_computed_one():
    p = patient()
    baseline(p)
    current(p)
    p.report(CUR, category="laboratory", conclusion="Response assessment per iwCLL 2018: CR.")
    r, _ = cll_result(p)
    assert r.assessment.category == "PR"
    assert any("Reported category CR" in n and "differ" in n for n in r.notes)


# --- vignette shapes beyond the public ones (converter + mapper + HTTP) ---------------------------------
SHAPES = [
    {'id': 'CLL-90',
     'criteria': 'iwCLL 2018',
     'inputs': {'baseline': {'date': '2024-01-10',
                             'largest_node_cm': 4.5,
                             'node_SPD_cm2': 20,
                             'spleen_cm': 18,
                             'liver': 'normal',
                             'lymphocytes_10e9_per_L': 60,
                             'platelets_10e9_per_L': 80,
                             'hemoglobin_g_dL': 9.5},
                'current': {'date': '2024-09-10',
                            'largest_node_cm': 2.0,
                            'node_SPD_cm2': 8,
                            'spleen_cm': 14,
                            'liver': 'normal',
                            'lymphocytes_10e9_per_L': 3,
                            'platelets_10e9_per_L': 130,
                            'hemoglobin_g_dL': 11.5,
                            'marrow': 'CLL infiltrate 20%'},
                'timing': '3 months after end of fixed-duration venetoclax-obinutuzumab'},
     'expected': {'category': 'PR'}},
    {'id': 'CLL-91',
     'criteria': 'iwCLL 2018',
     'inputs': {'baseline': {'date': '2024-01-10',
                             'largest_node_cm': 3.0,
                             'spleen_cm': 15,
                             'lymphocytes_10e9_per_L': 30,
                             'platelets_10e9_per_L': 150,
                             'hemoglobin_g_L': 125},
                'current': {'date': '2024-04-10',
                            'largest_node_cm': 1.2,
                            'spleen_cm': 12,
                            'lymphocytes_10e9_per_L': 80,
                            'platelets_10e9_per_L': 160,
                            'hemoglobin_g_L': 128},
                'therapy': 'continuous ibrutinib'},
     'expected': {'category': 'PR'}},
    {'id': 'CLL-92',
     'criteria': 'iwCLL 2018',
     'inputs': {'date': '2024-11-05',
                'timing': '3 months after end of therapy',
                'largest_node_cm': 1.0,
                'spleen_cm': 11,
                'liver': 'normal',
                'constitutional_symptoms': 'none',
                'lymphocytes_10e9_per_L': 1.2,
                'platelets_10e9_per_L': 85,
                'hemoglobin_g_dL': 12.0,
                'neutrophils_10e9_per_L': 2.0,
                'transfused': False,
                'marrow': 'hypocellular, no CLL cells, no nodules',
                'MRD': 'undetectable (<10^-4) by flow in PB'},
     'expected': {'category': 'CRi'}},
]


@pytest.mark.parametrize("v", SHAPES, ids=[v["id"] for v in SHAPES])
def test_other_vignette_shapes_convert_and_pass_through_http(client, v):
    from cds_service.sandbox.vignettes import card_criteria_of, to_patient

    patient = to_patient(v)
    body = client.post(HOOK, json=patient.hook_request()).get_json()
    card = next(a for a in assessment_cards(body) if a["criteria"] == card_criteria_of(v, patient))
    assert card["category"] == v["expected"]["category"]
