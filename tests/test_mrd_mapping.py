"""FHIR -> MRD inputs (fhir_mappings/mrd.py): representations, units, issues, scheme choice, text rules, HTTP cards."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.sandbox.builders import PatientBuilder, concept, qty
from conftest import assessment_cards
from fhir_mappings import mrd as m
from fhir_mappings.pipeline import assess_record
from fhir_mappings.record import LOINC, SNOMED, PatientRecord
from fhir_mappings.routing import route
from rules import mrd as engine

HOOK = "/cds-services/remission-status"
AS_OF = date(2026, 1, 1)
D = Decimal


def child(pid="mrd-child", *, icd="C91.00", text="Acute lymphoblastic leukemia not having achieved remission",
          birth="2016-01-01") -> PatientBuilder:
    p = PatientBuilder(pid, birth_date=birth)
    p.condition(icd10=icd, text=text, onset="2024-01-01")
    return p


def adult(pid="mrd-adult") -> PatientBuilder:
    p = PatientBuilder(pid, birth_date="1975-01-01")
    p.condition(icd10="C91.00", text="Acute lymphoblastic leukemia not having achieved remission", onset="2024-01-01")
    return p


def mrd_obs(p: PatientBuilder, when: str, *, value=None, unit="%", code=None, text=None, sens=None, sens_unit="1",
            tp=None, method="6-colour flow cytometry", site="marrow", markers=None, comparator=None, status=None,
            obs_code=m.MRD_RESULT, loq=None) -> dict:
    comps = []
    if sens is not None:
        comps.append({"code": concept(m.MRD_SENSITIVITY), "valueQuantity": qty(D(str(sens)), sens_unit)})
    if loq is not None:
        comps.append({"code": concept(m.MRD_LOQ), "valueQuantity": qty(D(str(loq)), "1")})
    if tp:
        comps.append({"code": concept(m.MRD_TIMEPOINT), "valueString": tp})
    if markers is not None:
        comps.append({"code": concept(m.MRD_MARKERS), "valueInteger": markers})
    kw: dict = {}
    if value is not None:
        kw = {"value": D(str(value)), "unit": unit} if unit else {"value": D(str(value))}
    elif code:
        kw = {"value_code": (SNOMED, code)}
    elif text:
        kw = {"value_string": text}
    obs = p.observation(obs_code, when, display="Measurable residual disease", components=comps,
                        method={"text": method} if method else None, **kw)
    if comparator:
        obs["valueQuantity"]["comparator"] = comparator
    if site == "marrow":
        obs["bodySite"] = concept(SNOMED, "14016003", "Bone marrow structure")
    elif site == "blood":
        obs["bodySite"] = concept(SNOMED, "87612001", "Blood")
    if status:
        obs["status"] = status
    return obs


def run(p: PatientBuilder, options=None):
    rec = PatientRecord(p.resources, p.patient_id)
    results = assess_record(rec, AS_OF, options or {})
    return results, rec


def mrd_result(p: PatientBuilder, options=None):
    results, rec = run(p, options)
    r = [x for x in results if x.criteria in ("ALL MRD", engine.SCHEME_CRITERIA[engine.Scheme.AML_MFC],
                                              "iwCLL 2018")]
    assert r, [x.criteria for x in results]
    return r[0], rec


# --- units: the same level in %, fraction or per million gives the same category -----------------------
@pytest.mark.parametrize("value,unit", [("0.01", "%"), ("0.0001", "1"), ("0.0001", "{fraction}"),
                                        ("100", "{cells}/10*6{cells}"), ("1E-4", "1")])
def test_level_unit_variants_agree(value, unit):
    p = child()
    mrd_obs(p, "2024-02-05", value=value, unit=unit, tp="end of induction (day 29)")
    r, _ = mrd_result(p)
    assert r.assessment.category == "EOI MRD-positive (>=0.01%)"
    assert r.assessment.values["mrd_level_fraction"] == D("0.0001")


@pytest.mark.parametrize("value,unit,why", [
    ("0.02", "10*9/L", "absolute count"),
    ("2", "1", "fraction above 1"),
    ("0.02", None, "no unit"),
    ("0.02", "mg/dL", "not accepted"),
])
def test_a_unit_that_cannot_be_right_is_rejected_with_an_issue(value, unit, why):
    p = child()
    mrd_obs(p, "2024-02-05", value=value, unit=unit, tp="day 29")
    r, rec = mrd_result(p)
    assert r.assessment is None  # nothing converted: no MRD result at all
    assert any(why in i.why for i in rec.issues), [i.text() for i in rec.issues]
    assert any("MRD result" in x for x in r.missing)


def test_entered_in_error_is_skipped():
    p = child()
    mrd_obs(p, "2024-02-05", value="0.5", tp="day 29", status="entered-in-error")
    mrd_obs(p, "2024-02-05", code="260415000", sens="1E-5", tp="day 29")
    r, rec = mrd_result(p)
    assert r.assessment.category == "EOI MRD-negative (<0.01%)"
    assert any("entered-in-error" in i.why for i in rec.issues)


def test_configured_local_code_is_read():
    p = child()
    mrd_obs(p, "2024-02-05", value="0.3", tp="day 29", obs_code="http://hospital.example/lab|MRDFLOW")
    r, _ = mrd_result(p)
    assert r.assessment is None
    r, _ = mrd_result(p, {"local_codes": {"mrd": ["http://hospital.example/lab|MRDFLOW"]}})
    assert r.assessment.category == "EOI MRD-positive (>=0.01%)"


def test_missing_data_gives_an_insufficient_data_card(client):
    p = child("mrd-empty")
    body = client.post(HOOK, json=p.hook_request()).get_json()
    ext = [c["extension"]["org.remission-cds.assessment"] for c in body["cards"] if "extension" in c]
    card = next(e for e in ext if e["criteria"] == "ALL MRD")
    assert card["category"] == "insufficient data"
    assert any("MRD result" in x for x in card["missing"])


# --- value representations ------------------------------------------------------------------------------
def test_coded_negative_with_sensitivity_and_comparator_forms():
    p = adult()
    mrd_obs(p, "2024-05-01", code="260415000", sens="1E-6", method="NGS (clonoSEQ)")
    r, _ = mrd_result(p)
    assert r.assessment.category == "MRD-CR" and r.assessment.values["sensitivity_fraction"] == D("1E-6")
    p = adult("mrd-adult-2")
    mrd_obs(p, "2024-05-01", value="0.1", comparator="<")   # "< 0.1 %": not detected at 1E-3
    r, _ = mrd_result(p)
    assert r.assessment.category == "MRD intermediate"
    assert r.assessment.values["mrd_detected"] is False


def test_detected_not_quantifiable_uses_the_loq():
    p = adult()
    mrd_obs(p, "2024-05-01", code="260373001", loq="5E-5", method="ASO-qPCR")
    r, _ = mrd_result(p)
    assert r.assessment.category == "MRD intermediate"   # positive < LOQ 5E-5 < 1E-4


@pytest.mark.parametrize("text,detected,level,sens,loq", [
    ("MRD negative (<10^-5)", False, None, "1E-5", None),
    ("not detected at sensitivity 1×10⁻⁶", False, None, "1E-6", None),
    ("0.02%", True, "0.0002", None, None),
    ("detected at 3 x 10^-4", True, "0.0003", None, None),
    ("positive, below LOQ (<0.01%)", True, None, None, "0.0001"),
    ("12 clonal cells per million nucleated cells", True, "0.000012", None, None),
    ("uMRD4", False, None, "0.0001", None),
    ("no clonotype detected; LOD 1e-6", False, None, "0.000001", None),
    ("No residual leukaemic cells identified (sensitivity 0.01%)", False, None, "0.0001", None),
    ("MRD 1 in 10 000 not detected", False, None, "0.0001", None),
])
def test_text_rules(text, detected, level, sens, loq):
    got = m.parse_mrd_text(text)
    assert got.detected is detected
    assert got.level == (D(level) if level else None)
    assert got.sensitivity == (D(sens) if sens else None)
    assert got.loq == (D(loq) if loq else None)


def test_value_string_and_report_text_fallback():
    p = adult()
    mrd_obs(p, "2024-05-01", text="MRD negative, sensitivity 1 x 10^-4", method="flow")
    r, _ = mrd_result(p)
    assert r.assessment.category == "MRD-CR"
    p = adult("mrd-report")
    p.report("2024-05-01", category="laboratory", code=(LOINC, "101119-6", "Leukemia/lymphoma immunophenotyping"),
             conclusion="Bone marrow flow cytometry: MRD detected at 0.05 % of leukocytes.")
    r, _ = mrd_result(p)
    assert r.assessment.category == "MRD failure"
    assert r.assessment.values["mrd_level_fraction"] == D("0.0005")


# --- scheme choice --------------------------------------------------------------------------------------
def test_adult_by_age_and_child_by_time_point():
    p = adult()
    mrd_obs(p, "2024-02-05", value="0.01", tp="day 29")
    r, _ = mrd_result(p)
    assert r.assessment.criteria == "ALL MRD (adult consensus)" and r.assessment.category == "MRD failure"
    p = child()
    mrd_obs(p, "2024-02-05", value="0.005", tp="day 29")
    r, _ = mrd_result(p)
    assert r.assessment.criteria == "ALL MRD (COG end of induction)"
    assert r.assessment.category == "EOI MRD-negative (<0.01%)"
    assert any("COG chosen from the time points" in n for n in r.notes)


def test_aieop_from_time_points_and_version_from_record_or_config():
    def build(pid, protocol=None):
        p = child(pid)
        if protocol:
            p.observation(m.TREATMENT_PROTOCOL, "2024-01-08", value_string=protocol, category="therapy")
        mrd_obs(p, "2024-03-04", value="0.2", tp="day 33", method="IG/TR ASO-qPCR", markers=2)
        mrd_obs(p, "2024-04-18", value="0.06", tp="day 78", method="IG/TR ASO-qPCR", markers=2)
        return p

    r, _ = mrd_result(build("a1"))
    assert r.assessment.category == "MRD-HR (AIEOP-BFM ALL 2009: day-78 >=5x10^-4)"
    r, _ = mrd_result(build("a2", "AIEOP-BFM ALL 2000"))
    assert r.assessment.category == "MRD-IR (AIEOP-BFM ALL 2000: day-78 <10^-3)"
    r, _ = mrd_result(build("a3"), {"aieop_bfm_protocol": "2000"})
    assert r.assessment.category == "MRD-IR (AIEOP-BFM ALL 2000: day-78 <10^-3)"
    r, _ = mrd_result(build("a4", "AIEOP-BFM ALL 2009"), {"aieop_bfm_protocol": "2000"})
    assert r.assessment.values["protocol"] == "AIEOP-BFM ALL 2009"   # the record wins over the site default


def test_time_point_derived_from_induction_start():
    p = child()
    p.medication("2024-01-08", "Vincristine 1.5 mg/m2 IV (induction)")
    mrd_obs(p, "2024-02-05", value="0.02", tp=None, site=None)   # day 29 of induction
    r, _ = mrd_result(p)
    assert r.assessment.category == "EOI MRD-positive (>=0.01%)"
    assert any("derived from the induction start" in n for n in r.notes)
    assert any("not recorded; taken as bone marrow" in n for n in r.notes)


def test_end_of_induction_means_day_33_in_aieop_bfm():
    p = child()
    p.observation(m.TREATMENT_PROTOCOL, "2024-01-08", value_string="AIEOP-BFM ALL 2017", category="therapy")
    mrd_obs(p, "2024-03-04", code="260415000", sens="1E-4", tp="end of induction", method="ASO-qPCR", markers=2)
    mrd_obs(p, "2024-04-18", code="260415000", sens="1E-4", tp="end of consolidation", method="ASO-qPCR",
            markers=2)
    r, _ = mrd_result(p)
    assert r.assessment.category == "MRD-SR (AIEOP-BFM ALL 2009: negative day 33 and day 78)"


def test_relapse_scheme_from_condition_in_relapse():
    p = child(icd="C91.02", text="Acute lymphoblastic leukemia, in relapse")
    mrd_obs(p, "2024-06-01", value="8", method="flow")
    mrd_obs(p, "2024-06-01", value="3", method="ASO-qPCR")
    r, _ = mrd_result(p)
    assert r.assessment.criteria == "ALL MRD (paediatric relapse)"
    assert r.assessment.category == "relapse"
    assert r.assessment.values["mrd_level_fraction"] == D("0.08")


def test_no_birth_date_and_nothing_else_uses_the_adult_terminology_with_a_note():
    p = adult()
    del p.resources[0]["birthDate"]
    mrd_obs(p, "2024-05-01", value="0.005")
    r, _ = mrd_result(p)
    assert r.assessment.criteria == "ALL MRD (adult consensus)"
    assert any("no birth date" in n for n in r.notes)


def test_aml_mfc_card_only_when_eln_has_no_data():
    p = PatientBuilder("aml-mrd", birth_date="1960-01-01")
    p.condition(icd10="C92.00", text="Acute myeloblastic leukemia, not having achieved remission")
    mrd_obs(p, "2024-09-01", value="0.1", method="MFC")
    results, _ = run(p)
    crits = [r.criteria for r in results]
    assert engine.SCHEME_CRITERIA[engine.Scheme.AML_MFC] in crits and "ELN 2022" not in crits
    r = next(r for r in results if r.criteria == engine.SCHEME_CRITERIA[engine.Scheme.AML_MFC])
    assert r.assessment.category == "MRD-positive (MFC >=0.1%)"
    p.observation(f"{LOINC}|11150-0", "2024-09-01", value=D(3), unit="%")
    results, _ = run(p)
    crits = [r.criteria for r in results]
    assert "ELN 2022" in crits and engine.SCHEME_CRITERIA[engine.Scheme.AML_MFC] not in crits


def test_http_card_shows_small_fractions(client):
    p = adult("mrd-http")
    mrd_obs(p, "2024-05-01", code="260415000", sens="2E-6", method="NGS")
    body = client.post(HOOK, json=p.hook_request()).get_json()
    card = next(a for a in assessment_cards(body) if a["criteria"] == "ALL MRD (adult consensus)")
    assert card["category"] == "MRD-CR"
    assert card["values"]["sensitivity_fraction"] == pytest.approx(2e-6, rel=1e-12)


# --- properties -----------------------------------------------------------------------------------------
levels = st.decimals(min_value=D("0.000001"), max_value=D("0.5"), places=7, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(level=levels)
def test_percent_and_fraction_give_the_same_result_and_the_cut_off_is_exact(level):
    out = []
    for value, unit in ((level * 100, "%"), (level, "1")):
        p = child()
        mrd_obs(p, "2024-02-05", value=value, unit=unit, tp="day 29")
        r, _ = mrd_result(p)
        out.append((r.assessment.category, r.assessment.values["mrd_level_fraction"]))
    assert out[0] == out[1]
    assert out[0][0] == ("EOI MRD-positive (>=0.01%)" if level >= D("0.0001") else "EOI MRD-negative (<0.01%)")


junk = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats(allow_nan=False,
                                                                                                 allow_infinity=False),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                    max_leaves=8)
FIELDS = ("code", "valueQuantity", "valueString", "valueCodeableConcept", "component", "method", "bodySite",
          "specimen", "note", "interpretation", "effectiveDateTime", "focus", "status", "dosageInstruction",
          "medicationCodeableConcept", "title", "valueBoolean")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extra=st.fixed_dictionaries({"resourceType": st.sampled_from(["Observation", "MedicationRequest",
                                                                      "DiagnosticReport", "CarePlan"])},
                                   optional={k: junk for k in FIELDS}),
       coded=st.booleans())
def test_mapper_never_raises_on_junk(extra, coded):
    p = child()
    mrd_obs(p, "2024-02-05", value="0.02", tp="day 29")
    if coded:
        extra = {**extra, "code": concept(m.MRD_RESULT), "effectiveDateTime": "2024-02-06"}
    p.resources.append({"id": "junk", **extra})
    rec = PatientRecord(p.resources, p.patient_id)
    m.map_all_mrd(rec, route(rec)[0], AS_OF, {})


def test_configured_aieop_version_reaches_the_mapper_through_the_service(tmp_path):
    from cds_service import create_app
    from cds_service.sandbox.vignettes import to_patient
    from conftest import load_vignettes

    v = next(x for x in load_vignettes() if x["id"] == "MRD-07")
    app = create_app({"feedback_database_url": f"sqlite:///{tmp_path}/fb.sqlite3",
                      "criteria_options": {"aieop_bfm_protocol": "2000"}})
    body = app.test_client().post(HOOK, json=to_patient(v).hook_request()).get_json()
    card = next(a for a in assessment_cards(body) if a["criteria"] == "ALL MRD (AIEOP-BFM)")
    assert card["category"] == "MRD-IR (AIEOP-BFM ALL 2000: day-78 <10^-3)"
    assert card["category"] in v["expected"]["accept"]


# --- vignette shapes beyond the public ones (converter + mapper + HTTP) ---------------------------------
SHAPES = [
    {'id': 'MRD-90',
     'criteria': 'ALL MRD (COG end of induction)',
     'inputs': {'disease': 'pediatric B-ALL',
                'timepoint': 'day 8 peripheral blood',
                'date': '2024-01-15',
                'assay': 'flow',
                'MRD_pct': 1.5},
     'expected': {'category': 'Day-8 PB MRD >=1%'}},
    {'id': 'MRD-91',
     'criteria': 'ALL MRD (COG end of induction)',
     'inputs': {'disease': 'pediatric B-ALL',
                'timepoint': 'end of induction (day 29) bone marrow',
                'date': '2024-02-05',
                'assay': '6-colour flow',
                'result': 'MRD negative',
                'LOD_pct': 0.01},
     'expected': {'category': 'EOI MRD-negative (<0.01%)'}},
    {'id': 'MRD-92',
     'criteria': 'ALL MRD (AIEOP-BFM)',
     'inputs': {'disease': 'pediatric B-ALL',
                'MRD': [{'timepoint': 'day 33',
                         'method': 'IG/TR ASO-qPCR, 2 markers',
                         'result': 'negative',
                         'sensitivity_fraction': 0.0001,
                         'date': '2024-03-04'},
                        {'timepoint': 'day 78',
                         'method': 'IG/TR ASO-qPCR, 2 markers',
                         'result': 'negative',
                         'sensitivity_fraction': 1e-05,
                         'date': '2024-04-18'}]},
     'expected': {'category': 'MRD-SR (AIEOP-BFM ALL 2009: negative day 33 and day 78)'}},
    {'id': 'MRD-93',
     'criteria': 'ALL MRD (AIEOP-BFM)',
     'inputs': {'disease': 'pediatric B-ALL',
                'protocol': 'AIEOP-BFM ALL 2000',
                'MRD': [{'timepoint': 'TP1', 'method': 'ASO-qPCR', 'MRD_fraction': 0.002, 'date': '2024-03-04'},
                        {'timepoint': 'TP2', 'method': 'ASO-qPCR', 'MRD_fraction': 0.0006, 'date': '2024-04-18'}]},
     'expected': {'category': 'MRD-IR (AIEOP-BFM ALL 2000: day-78 <10^-3)'}},
    {'id': 'MRD-94',
     'criteria': 'ALL MRD (adult consensus)',
     'inputs': {'disease': 'adult Ph-negative B-ALL',
                'date': '2024-05-01',
                'assay': 'NGS (clonoSEQ)',
                'sample': 'bone marrow',
                'result': 'no clonotype detected',
                'limit_of_detection_fraction': 1e-06},
     'expected': {'category': 'MRD-CR'}},
    {'id': 'MRD-95',
     'criteria': 'ALL MRD (adult consensus)',
     'inputs': {'disease': 'adult B-ALL',
                'date': '2024-05-01',
                'assay': 'flow',
                'result': 'negative',
                'LOD_pct': 0.1},
     'expected': {'category': 'MRD intermediate'}},
    {'id': 'MRD-96',
     'criteria': 'ALL MRD (paediatric relapse)',
     'inputs': {'disease': 'pediatric B-ALL, suspected relapse',
                'date': '2024-06-01',
                'assay': 'flow',
                'sample': 'bone marrow',
                'MRD_pct': 8,
                'other_tests': [{'method': 'PCR', 'level_pct': 3, 'date': '2024-06-01'}]},
     'expected': {'category': 'relapse'}},
    {'id': 'MRD-97',
     'criteria': 'iwCLL 2018 MRD',
     'inputs': {'disease': 'CLL',
                'date': '2024-09-01',
                'method': '4-colour flow',
                'sample': 'peripheral blood',
                'MRD_fraction': 5e-05},
     'expected': {'category': 'uMRD4'}},
    {'id': 'MRD-98',
     'criteria': 'ELN 2021 MRD (MFC)',
     'inputs': {'disease': 'AML', 'date': '2024-09-01', 'method': 'MFC', 'sample': 'bone marrow', 'MRD_pct': 0.1},
     'expected': {'category': 'MRD-positive (MFC >=0.1%)'}},
    {'id': 'MRD-99',
     'criteria': 'iwCLL 2018 uMRD',
     'inputs': {'disease': 'CLL',
                'date': '2024-09-01',
                'method': 'flow',
                'sample': 'peripheral blood',
                'MRD_fraction': 0.0001},
     'expected': {'category': 'MRD detectable (>=10^-4)'}},
    {'id': 'MRD-80',
     'criteria': 'ALL MRD (COG end of induction)',
     'inputs': {'disease': 'pediatric B-ALL',
                'date': '2024-02-05',
                'assay': 'flow',
                'day8_PB_MRD_pct': 0.5,
                'day29_BM_MRD_pct': 0.005},
     'expected': {'category': 'EOI MRD-negative (<0.01%)'}},
    {'id': 'MRD-81',
     'criteria': 'ALL MRD (AIEOP-BFM)',
     'inputs': {'disease': 'pediatric B-ALL',
                'method': 'ASO-qPCR, 2 markers',
                'day33_MRD_fraction': 0.002,
                'day33_date': '2024-03-04',
                'day78_MRD_fraction': 0.0006,
                'day78_date': '2024-04-18'},
     'expected': {'category': 'MRD-HR (AIEOP-BFM ALL 2009: day-78 >=5x10^-4)'}},
    {'id': 'MRD-82',
     'criteria': 'ALL MRD (adult consensus)',
     'inputs': {'disease': 'adult B-ALL',
                'mrd_tests': [{'date': '2024-03-01', 'method': 'NGS', 'result': 'negative', 'LOD_fraction': 1e-06},
                              {'date': '2024-09-01', 'method': 'NGS', 'MRD_fraction': 0.0003}]},
     'expected': {'category': 'MRD failure'}},
    {'id': 'MRD-83',
     'criteria': 'ALL MRD (paediatric relapse)',
     'inputs': {'disease': 'pediatric B-ALL',
                'date': '2024-06-01',
                'assay': 'flow',
                'sample': 'bone marrow',
                'MRD_pct': 3,
                'other_tests': [{'method': 'FISH', 'result': 'positive 12%'},
                                {'method': 'morphology', 'blasts_pct': 6}]},
     'expected': {'category': 'relapse'}},
]


@pytest.mark.parametrize("v", SHAPES, ids=[v["id"] for v in SHAPES])
def test_other_vignette_shapes_convert_and_pass_through_http(client, v):
    from cds_service.sandbox.vignettes import card_criteria_of, to_patient

    patient = to_patient(v)
    body = client.post(HOOK, json=patient.hook_request()).get_json()
    card = next(a for a in assessment_cards(body) if a["criteria"] == card_criteria_of(v, patient))
    assert card["category"] == v["expected"]["category"]
