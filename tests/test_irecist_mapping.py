"""iRECIST from FHIR (fhir_mappings/irecist.py): who is on a checkpoint inhibitor, what the mapper reads, the card.

cm and mm give the same category; an impossible unit is rejected with an issue; entered-in-error is skipped; a
RECIST patient without a checkpoint inhibitor keeps RECIST 1.1 and one with it gets iRECIST instead; missing data
gives an "insufficient data" card; properties: FHIR round trip equals the engine on the same numbers, and unit
invariance.
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.sandbox.builders import PatientBuilder, concept
from conftest import assessment_cards
from fhir_mappings import codes
from fhir_mappings.imaging_series import INTERPRETATION, NEW_LESION_CATEGORY, TARGET_SUM
from fhir_mappings.irecist import checkpoint_inhibitor_orders, map_irecist, on_checkpoint_inhibitor
from fhir_mappings.pipeline import assess_record
from fhir_mappings.record import LOCAL, PatientRecord
from rules import irecist as engine

HOOK = "/cds-services/remission-status"
AS_OF = date(2030, 1, 1)
D0 = date(2024, 1, 8)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def day(n: int) -> str:
    return (D0 + timedelta(days=n)).isoformat()


def solid(pid="ir-t", drug: str | None = "pembrolizumab", rxnorm: str | None = None) -> PatientBuilder:
    p = PatientBuilder(pid)
    p.condition(icd10="C43.9", text="Malignant melanoma of skin", onset="2023-11-01")
    if drug is not None:
        p.medication(day(0), drug, rxnorm=rxnorm)
    return p


def sums(p: PatientBuilder, values, unit="mm") -> list[dict]:
    out = []
    for i, v in enumerate(values):
        obs = p.observation(TARGET_SUM, day(56 * i), value=v, unit=unit, category="imaging")
        p.report(day(56 * i), results=[obs])
        out.append(obs)
    return out


def lesions(p: PatientBuilder, series: dict[str, list], unit="mm", role="target") -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for lid, values in series.items():
        body = p.lesion(lid, "liver")
        out[lid] = [p.tumor_size(body, day(56 * i), longest_mm=v, unit=unit, role=role)
                    for i, v in enumerate(values) if v is not None]
    return out


def run(p: PatientBuilder, options=None):
    record = PatientRecord(p.resources, p.patient_id)
    results = assess_record(record, AS_OF, options or {})
    return {r.criteria: r for r in results}, record


def card(client, p: PatientBuilder, criteria="iRECIST") -> dict:
    body = client.post(HOOK, json=p.hook_request()).get_json()
    found = [c for c in assessment_cards(body) if c["criteria"] == criteria]
    assert found, [c["summary"] for c in body["cards"]]
    return found[0]


# --- applicability: checkpoint inhibitors -----------------------------------------------------------------
@pytest.mark.parametrize("text,rxnorm", [
    ("pembrolizumab 25 MG/ML Injectable Solution", None), ("Keytruda", None), ("OPDIVO 240 mg", None),
    ("Nivolumab / relatlimab (Opdualag)", None), ("anti-PD-1 monoclonal antibody (study drug)", None),
    ("anti-PD-L1", None), ("tremelimumab", None), ("Study drug", "1547545"), ("toripalimab-tpzi", None),
])
def test_checkpoint_inhibitor_recognised_by_name_brand_class_or_rxnorm(text, rxnorm):
    p = solid(drug=text, rxnorm=rxnorm)
    assert on_checkpoint_inhibitor(PatientRecord(p.resources))


@pytest.mark.parametrize("text", ["carboplatin", "Systemic anticancer therapy (protocol)", "imatinib", "bevacizumab",
                                  "interleukin-2 immunotherapy"])
def test_other_drugs_are_not_checkpoint_inhibitors(text):
    assert not on_checkpoint_inhibitor(PatientRecord(solid(drug=text).resources))


def test_draft_not_taken_and_do_not_perform_orders_do_not_count():
    p = solid(drug=None)
    p.medication(day(0), "pembrolizumab", status="draft")
    p.add({"resourceType": "MedicationStatement", "id": "ms1", "status": "not-taken",
           "medicationCodeableConcept": {"text": "nivolumab"}, "subject": p.subject})
    p.add({"resourceType": "MedicationRequest", "id": "mr9", "status": "active", "intent": "order",
           "doNotPerform": True, "medicationCodeableConcept": {"text": "atezolizumab"}, "subject": p.subject})
    p.medication(day(0), "ipilimumab", status="entered-in-error")
    assert not on_checkpoint_inhibitor(PatientRecord(p.resources))


def test_medication_reference_and_administration_are_read():
    p = solid(drug=None)
    p.add({"resourceType": "Medication", "id": "med1",
           "code": {"coding": [{"system": RXNORM, "code": "1597876", "display": "nivolumab"}]}})
    p.add({"resourceType": "MedicationAdministration", "id": "ma1", "status": "completed", "subject": p.subject,
           "medicationReference": {"reference": "Medication/med1"}, "effectiveDateTime": day(0)})
    assert len(checkpoint_inhibitor_orders(PatientRecord(p.resources))) == 1


def test_configured_drug_list_replaces_the_default():
    p = solid(drug="investigational anti-TIGIT XYZ-123")
    rec = PatientRecord(p.resources)
    assert not on_checkpoint_inhibitor(rec)
    assert on_checkpoint_inhibitor(rec, None, {"checkpoint_inhibitors": ["XYZ-123"]})
    assert not on_checkpoint_inhibitor(PatientRecord(solid().resources), None, {"checkpoint_inhibitors": ["XYZ-123"]})
    coded = solid(drug="Study drug", rxnorm="999999")
    assert on_checkpoint_inhibitor(PatientRecord(coded.resources), None, {"checkpoint_inhibitors": ["999999"]})


def test_recist_patient_without_checkpoint_inhibitor_keeps_recist(client):
    p = solid(drug="carboplatin")
    lesions(p, {"T1": [50, 62]})
    by, _ = run(p)
    assert "RECIST 1.1" in by and "iRECIST" not in by
    assert card(client, p, "RECIST 1.1")["category"] == "PD"


def test_patient_on_checkpoint_inhibitor_gets_irecist_not_recist(client):
    p = solid()
    lesions(p, {"T1": [50, 62]})
    by, _ = run(p)
    assert "iRECIST" in by and "RECIST 1.1" not in by
    c = card(client, p)
    assert c["category"] == "iUPD" and c["values"]["iUPD_date"] == day(56)
    body = client.post(HOOK, json=p.hook_request()).get_json()
    assert not [x for x in assessment_cards(body) if x["criteria"] == "RECIST 1.1"]


def test_checkpoint_inhibitor_does_not_replace_other_criteria():
    p = PatientBuilder("hcc-ici")
    p.condition(icd10="C22.0", text="Hepatocellular carcinoma")
    p.medication(day(0), "atezolizumab")
    by, _ = run(p)
    assert "iRECIST" not in by and "mRECIST" in by


# --- inputs --------------------------------------------------------------------------------------------------
def test_reported_sums_in_cm_and_mm_give_the_same_category():
    a = solid("mm")
    sums(a, [50, 62, 66, 68])
    b = solid("cm")
    sums(b, [Decimal("5.0"), Decimal("6.2"), Decimal("6.6"), Decimal("6.8")], unit="cm")
    ra, rb = run(a)[0]["iRECIST"].assessment, run(b)[0]["iRECIST"].assessment
    assert ra.category == rb.category == "iCPD"
    assert [h.category for h in ra.history] == [h.category for h in rb.history] == ["iUPD", "iUPD", "iCPD"]
    assert ra.values["cumulative_increase_since_iUPD_mm"] == rb.values["cumulative_increase_since_iUPD_mm"] == 6


def test_per_lesion_measurements_in_cm_and_mm_give_the_same_category():
    a, b = solid("mm"), solid("cm")
    lesions(a, {"T1": [30, 20], "T2": [20, 14]})
    lesions(b, {"T1": [3, 2], "T2": [2, Decimal("1.4")]}, unit="cm")
    ra, rb = run(a)[0]["iRECIST"].assessment, run(b)[0]["iRECIST"].assessment
    assert ra.category == rb.category == "iPR" and ra.values["target_sum_mm"] == rb.values["target_sum_mm"] == 34


def test_impossible_unit_is_rejected_with_an_issue():
    p = solid()
    obs = sums(p, [50, 62])
    obs[1]["valueQuantity"] = {"value": 62, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    by, record = run(p)
    result = by["iRECIST"]
    assert any("kg" in i.why for i in result.issues)
    # the follow-up sum is gone: only the baseline is left, nothing is guessed
    assert result.assessment is None or result.assessment.category == "NE"


def test_impossible_lesion_unit_is_rejected_with_an_issue():
    p = solid()
    sizes = lesions(p, {"T1": [40, 40]})
    sizes["T1"][1]["component"][0]["valueQuantity"] = {"value": 4, "unit": "[degF]", "code": "[degF]",
                                                       "system": "http://unitsofmeasure.org"}
    by, _ = run(p)
    assert by["iRECIST"].assessment.category == "NE"
    assert any("[degF]" in i.why for i in by["iRECIST"].issues)


def test_entered_in_error_measurement_is_skipped():
    p = solid()
    obs = sums(p, [50, 62, 55])
    wrong = p.observation(TARGET_SUM, day(112), value=90, unit="mm", category="imaging")
    wrong["status"] = "entered-in-error"
    by, record = run(p)
    assert by["iRECIST"].assessment.category == "iSD"  # 55 mm resets the iUPD; the 90 mm entry is ignored
    assert any(i.ref == f"Observation/{wrong['id']}" and "entered-in-error" in i.why for i in record.issues)
    assert obs


def test_missing_imaging_gives_an_insufficient_data_card(client):
    p = solid()
    body = client.post(HOOK, json=p.hook_request()).get_json()
    ext = [c for c in assessment_cards(body) if c["criteria"] == "iRECIST"][0]
    assert ext["category"] == "insufficient data" and "TumorSize" in ext["missing"][0]


def test_new_lesion_category_and_growth_confirm_iupd():
    p = solid()
    sums(p, [50, 48, 47])
    body = p.lesion("NL1", "lung")
    p.tumor_size(body, day(56), longest_mm=8, role="new")
    grown = p.tumor_size(body, day(112), longest_mm=9, role="new")
    grown["interpretation"] = [concept(INTERPRETATION, "U")]
    for o in [r for r in p.resources if r.get("focus")]:
        o["component"].append({"code": concept(NEW_LESION_CATEGORY), "valueCodeableConcept": concept(LOCAL, "NLNT")})
    a = run(p)[0]["iRECIST"].assessment
    assert [h.category for h in a.history] == ["iUPD", "iCPD"]


def test_new_lesion_status_without_lesions_gives_iupd_and_is_not_another_lesion_later():
    p = solid()
    sums(p, [50, 48, 47])
    p.observation(codes.NEW_LESION, day(56), value_bool=True, category="imaging")
    p.observation(codes.NEW_LESION, day(112), value_bool=True, category="imaging")
    a = run(p)[0]["iRECIST"].assessment
    assert [h.category for h in a.history] == ["iUPD", "iUPD"]


def test_non_target_further_increase_confirms_non_target_iupd():
    p = solid()
    sums(p, [40, 38, 36])
    for i, value in enumerate(["present", "PD", "PD"]):
        obs = p.observation(codes.NON_TARGET_RESPONSE, day(56 * i), value_code=value, category="imaging")
        if i == 2:
            obs["interpretation"] = [concept(INTERPRETATION, "U", "Significant change up")]
    a = run(p)[0]["iRECIST"].assessment
    assert [h.category for h in a.history] == ["iUPD", "iCPD"]
    assert a.values["progression_date_for_PFS"] == D0 + timedelta(days=56)


def test_lesions_without_role_are_selected_and_new_ones_detected():
    p = solid()
    for lid, vals in {"T1": [30, 28, 27], "T2": [25, 24, 24]}.items():
        body = p.lesion(lid, "liver" if lid == "T1" else "lung")
        for i, v in enumerate(vals):
            p.tumor_size(body, day(56 * i), longest_mm=v)
    nl = p.lesion("N9", "bone")
    p.tumor_size(nl, day(56), longest_mm=12)
    p.tumor_size(nl, day(112), longest_mm=18)
    mapping = map_irecist(PatientRecord(p.resources))
    assert any("selected automatically" in n for n in mapping.notes)
    a = engine.assess(mapping.inputs, AS_OF)
    assert [h.category for h in a.history] == ["iUPD", "iCPD"]
    assert a.values["new_lesion_target_sum_change_mm"] == 6


def test_confirmation_required_protocol_setting_is_read():
    p = solid()
    sums(p, [100, 60, 60])
    p.observation(codes.TRIAL_CONFIRMATION, day(0), value_bool=True, category="survey")
    assert map_irecist(PatientRecord(p.resources)).inputs.confirmation_required


# --- properties ------------------------------------------------------------------------------------------
series_st = st.lists(st.integers(min_value=1, max_value=300), min_size=2, max_size=6)


@settings(max_examples=60, deadline=None)
@given(series_st)
def test_fhir_round_trip_equals_the_engine_on_the_same_sums(values):
    p = solid()
    sums(p, values)
    got = run(p)[0]["iRECIST"].assessment
    direct = engine.assess(engine.IRecistInputs(tuple(
        engine.IRecistTimepoint(D0 + timedelta(days=56 * i), target_sum_mm=Decimal(v)) for i, v in enumerate(values))),
        AS_OF)
    assert [h.category for h in got.history] == [h.category for h in direct.history]
    assert got.category == direct.category and got.values == direct.values


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=3000), min_size=2, max_size=5))
def test_category_is_the_same_in_cm_and_mm(tenths_of_cm):
    a, b = solid("a"), solid("b")
    sums(a, [Decimal(t) for t in tenths_of_cm])
    sums(b, [Decimal(t) / 10 for t in tenths_of_cm], unit="cm")
    ra, rb = run(a)[0]["iRECIST"].assessment, run(b)[0]["iRECIST"].assessment
    assert [h.category for h in ra.history] == [h.category for h in rb.history]


# --- the vignette converter reads every shape of the same facts ---------------------------------------------
def _tp(d, **k):
    return dict(date=d, **k)


SHAPES = [
    ("cm sums, reset by iPR", {"treatment": "ipilimumab + nivolumab", "timepoints": [
        _tp("2024-01-08", target_sum_cm=6.0), _tp("2024-03-04", target_sum_cm=7.4),
        _tp("2024-04-15", target_sum_cm=4.0)]}, ["iUPD", "iPR"]),
    ("non-target further increase", {"treatment": "nivolumab", "timepoints": [
        _tp("2024-01-08", target_sum_mm=40, non_target="present"),
        _tp("2024-03-04", target_sum_mm=38, non_target="unequivocal progression"),
        _tp("2024-04-15", target_sum_mm=36, non_target="further increase")]}, ["iUPD", "iCPD"]),
    ("new lesions as yes/no, then another", {"treatment": "anti-PD-1", "timepoints": [
        _tp("2024-01-08", target_sum_mm=50, new_lesions=False), _tp("2024-03-04", target_sum_mm=48, new_lesions=True),
        _tp("2024-04-15", target_sum_mm=45, new_lesions="another new lesion in the liver")]}, ["iUPD", "iCPD"]),
    ("time points given as weeks, no dates", {"treatment": "anti-PD-1", "timepoints": [
        {"label": "baseline", "target_sum_mm": 50}, {"label": "week 8", "target_sum_mm": 62},
        {"label": "week 14", "target_sum_mm": 68}]}, ["iUPD", "iCPD"]),
    ("new lesions as counts", {"treatment": "anti-PD-1", "timepoints": [
        _tp("2024-01-08", target_sum_mm=50, new_lesions=0), _tp("2024-03-04", target_sum_mm=48, new_lesions=1),
        _tp("2024-04-15", target_sum_mm=47, new_lesions=1)]}, ["iUPD", "iUPD"]),
    ("per-lesion targets with a node and a growing NLNT", {"treatment": "pembrolizumab", "timepoints": [
        _tp("2024-01-08", target_lesions=[{"id": "T1", "site": "liver", "ld_mm": 30},
                                          {"id": "N1", "site": "mediastinal lymph node", "type": "nodal",
                                           "short_axis_mm": 20}], non_target="none", new_lesions=[]),
        _tp("2024-03-04", target_lesions=[{"id": "T1", "ld_mm": 28},
                                          {"id": "N1", "type": "nodal", "short_axis_mm": 18}],
            non_target="none", new_lesions=[{"id": "NL1", "site": "lung", "ld_mm": 8, "category": "NLNT"}]),
        _tp("2024-04-15", target_lesions=[{"id": "T1", "ld_mm": 27},
                                          {"id": "N1", "type": "nodal", "short_axis_mm": 17}],
            non_target="none", new_lesions=[{"id": "NL1", "site": "lung", "ld_mm": 9, "category": "NLNT",
                                             "increased": True}])]}, ["iUPD", "iCPD"]),
]


@pytest.mark.parametrize("title,inputs,expected", SHAPES, ids=[s[0] for s in SHAPES])
def test_converter_reads_every_shape(client, title, inputs, expected):
    from cds_service.sandbox.vignettes import to_patient

    p = to_patient({"id": "iRECIST-99", "inputs": inputs})
    c = card(client, p)
    assert [h["category"] for h in c["history"]] == expected


def test_every_public_vignette_of_these_families_has_a_converter():
    from cds_service.sandbox.vignettes import has_converter
    from conftest import load_vignettes

    mine = [v for v in load_vignettes() if v["id"].split("-")[0] in ("iRECIST", "mRECIST", "CHOI")]
    assert mine and all(has_converter(v) for v in mine)


# --- malformed data never raises out of the iRECIST / mRECIST / Choi mappers ------------------------------------
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=6),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                           max_leaves=12)
IMAGING_KEYS = [codes.TUMOR_SIZE, codes.NON_TARGET_RESPONSE, codes.NEW_LESION, TARGET_SUM,
                f"{LOCAL}|viable-tumor-sum", f"{LOCAL}|mean-attenuation", f"{LOCAL}|effusion-new-or-increased",
                f"{LOCAL}|effusion-cytology", f"{LOCAL}|intratumoral-nodule"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Observation", "BodyStructure", "MedicationRequest", "Medication"]),
     "id": st.sampled_from(["a", "b", "c"]),
     "code": st.sampled_from(IMAGING_KEYS).map(lambda k: concept(k)) | json_values},
    optional={"component": json_values, "valueQuantity": json_values, "effectiveDateTime": st.sampled_from(
        ["2024-01-08", "2024-03-04", "x"]) | json_values, "focus": json_values, "interpretation": json_values,
        "valueCodeableConcept": json_values, "valueBoolean": json_values, "identifier": json_values,
        "location": json_values, "medicationCodeableConcept": json_values, "medicationReference": json_values,
        "status": json_values}), max_size=5))
def test_malformed_resources_never_raise(resources):
    from fhir_mappings.choi import map_choi
    from fhir_mappings.mrecist import map_mrecist

    base = solid()
    sums(base, [50, 62])
    record = PatientRecord(base.resources + resources)
    on_checkpoint_inhibitor(record)
    map_irecist(record)
    map_mrecist(record)
    map_choi(record)
