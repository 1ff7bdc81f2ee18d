"""mRECIST (HCC) from FHIR (fhir_mappings/mrecist.py): viable-diameter component, sums, nodes, effusion, the card.

cm and mm give the same category; an impossible unit is rejected with an issue; entered-in-error is skipped; an
HCC patient gets mRECIST (never RECIST 1.1 or iRECIST); missing data gives an "insufficient data" card; properties:
FHIR round trip equals the engine on the same numbers.
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.sandbox.builders import PatientBuilder, concept, qty
from conftest import assessment_cards
from fhir_mappings import codes
from fhir_mappings.imaging_series import EFFUSION, EFFUSION_CYTOLOGY, TARGET_SUM, VIABLE_DIAMETER, VIABLE_SUM
from fhir_mappings.mrecist import map_mrecist
from fhir_mappings.pipeline import assess_record
from fhir_mappings.record import LOCAL, PatientRecord
from rules import mrecist as engine

HOOK = "/cds-services/remission-status"
AS_OF = date(2030, 1, 1)
D0 = date(2024, 1, 10)


def day(n: int) -> str:
    return (D0 + timedelta(days=n)).isoformat()


def hcc(pid="mr-t") -> PatientBuilder:
    p = PatientBuilder(pid)
    p.condition(icd10="C22.0", text="Hepatocellular carcinoma", onset="2023-10-01")
    return p


def target(p: PatientBuilder, body: dict, when: str, total, viable, unit="mm", role="target") -> dict:
    obs = p.tumor_size(body, when, longest_mm=total, unit=unit, role=role)
    if viable is not None:
        obs["component"].append({"code": concept(VIABLE_DIAMETER), "valueQuantity": qty(viable, unit)})
    return obs


def two_targets(p: PatientBuilder, unit="mm", scale=Decimal(1)) -> None:
    t1, t2 = p.lesion("T1", "liver segment 7"), p.lesion("T2", "liver segment 4")
    for i, (a, b) in enumerate([((50, 40), (30, 20)), ((46, 25), (26, 15))]):
        results = [target(p, t1, day(56 * i), a[0] * scale, a[1] * scale, unit),
                   target(p, t2, day(56 * i), b[0] * scale, b[1] * scale, unit)]
        p.report(day(56 * i), results=results)


def run(p: PatientBuilder):
    record = PatientRecord(p.resources, p.patient_id)
    return {r.criteria: r for r in assess_record(record, AS_OF, {})}, record


def test_viable_pr_with_recist_sd_in_mm_and_cm(client):
    a, b = hcc("mm"), hcc("cm")
    two_targets(a)
    two_targets(b, "cm", Decimal("0.1"))
    ra, rb = run(a)[0]["mRECIST"].assessment, run(b)[0]["mRECIST"].assessment
    for r in (ra, rb):
        assert r.category == "PR" and r.values["RECIST_1.1_equivalent"] == "SD"
        assert r.values["viable_sum_mm"] == 40 and r.values["total_sum_mm"] == 72
    body = client.post(HOOK, json=a.hook_request()).get_json()
    card = [c for c in assessment_cards(body) if c["criteria"] == "mRECIST (HCC)"][0]
    assert card["values"]["pct_change_viable_sum"] == -33.33


def test_hcc_gets_mrecist_only_even_on_a_checkpoint_inhibitor():
    p = hcc()
    two_targets(p)
    p.medication(day(0), "atezolizumab")
    by, _ = run(p)
    assert set(by) == {"mRECIST"}


def test_impossible_unit_is_rejected_with_an_issue():
    p = hcc()
    two_targets(p)
    comp = [o for o in p.resources if o.get("focus")][-1]["component"][-1]
    comp["valueQuantity"] = qty(15, "mg")
    by, _ = run(p)
    r = by["mRECIST"]
    assert any("mg" in i.why for i in r.issues)
    assert r.assessment.category == "NE"


def test_entered_in_error_measurement_is_skipped():
    p = hcc()
    two_targets(p)
    bad = target(p, p.lesion("T1", "liver"), day(56), 50, 60)
    bad["status"] = "entered-in-error"
    by, record = run(p)
    assert by["mRECIST"].assessment.category == "PR"
    assert any("entered-in-error" in i.why for i in record.issues)


def test_missing_data_gives_an_insufficient_data_card(client):
    body = client.post(HOOK, json=hcc().hook_request()).get_json()
    ext = [c for c in assessment_cards(body) if c["criteria"] == "mRECIST"][0]
    assert ext["category"] == "insufficient data" and "viable" in ext["missing"][0]


def test_complete_loss_of_enhancement_is_cr():
    p = hcc()
    t1 = p.lesion("T1", "liver")
    target(p, t1, day(0), 50, 40)
    target(p, t1, day(56), 50, 0)
    assert run(p)[0]["mRECIST"].assessment.category == "CR"


def test_reported_sums_when_no_lesions_were_measured():
    p = hcc()
    for i, (v, t) in enumerate([(50, 70), (30, 68), (36, 69)]):
        res = [p.observation(VIABLE_SUM, day(56 * i), value=v, unit="mm", category="imaging"),
               p.observation(TARGET_SUM, day(56 * i), value=t, unit="mm", category="imaging")]
        p.report(day(56 * i), results=res)
    a = run(p)[0]["mRECIST"].assessment
    assert [h.category for h in a.history] == ["PR", "PD"]  # 36 vs nadir 30 = +20 %: no 5-mm rule in mRECIST


def test_new_porta_hepatis_node_counts_only_from_20_mm():
    for sa, expected in ((18, "PR"), (20, "PD")):
        p = hcc(f"node-{sa}")
        two_targets(p)
        node = p.add({"resourceType": "BodyStructure", "id": f"n{sa}", "patient": p.subject,
                      "identifier": [{"value": "NN1"}], "location": {"text": "porta hepatis lymph node",
                                                                     "coding": [{"system": "http://snomed.info/sct",
                                                                                 "code": "59441001"}]}})
        p.tumor_size(node, day(56), short_axis_mm=sa, longest_mm=sa, role="new")
        assert run(p)[0]["mRECIST"].assessment.category == expected, sa


def test_effusion_counts_only_with_malignant_cytology():
    for cyto, expected in ((None, "PR"), ("negative", "PR"), ("malignant", "PD")):
        p = hcc(f"eff-{cyto}")
        two_targets(p)
        p.observation(EFFUSION, day(56), value_bool=True, category="imaging")
        if cyto:
            p.observation(EFFUSION_CYTOLOGY, day(60), value_code=(LOCAL, cyto))
        assert run(p)[0]["mRECIST"].assessment.category == expected, cyto


def test_non_target_status_ir_sd_is_read():
    p = hcc()
    two_targets(p)
    p.observation(codes.NON_TARGET_RESPONSE, day(0), value_code="present", category="imaging")
    p.observation(codes.NON_TARGET_RESPONSE, day(56), value_code="IR/SD", category="imaging")
    assert run(p)[0]["mRECIST"].assessment.category == "PR"


def test_without_role_coding_small_lesions_are_left_out_of_the_sums():
    p = hcc()
    big, small = p.lesion("A", "liver"), p.lesion("B", "liver")
    for i, (b, s) in enumerate([(40, 8), (26, 8)]):
        target(p, big, day(56 * i), 50, b, role=None)
        target(p, small, day(56 * i), 9, s, role=None)
    mapping = map_mrecist(PatientRecord(p.resources))
    a = engine.assess(mapping.inputs, AS_OF)
    assert a.category == "PR" and a.values["viable_sum_mm"] == 26
    assert any("not eligible" in n for n in a.notes)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 150), st.integers(0, 50)), min_size=2, max_size=5))
def test_fhir_round_trip_equals_the_engine(rows):
    rows = [(v, v + extra) for v, extra in rows]
    p = hcc()
    body = p.lesion("T1", "liver")
    for i, (viable, total) in enumerate(rows):
        target(p, body, day(56 * i), total, viable)
    got = run(p)[0]["mRECIST"].assessment
    direct = engine.assess(engine.MrecistInputs(tuple(
        engine.MrecistTimepoint(D0 + timedelta(days=56 * i),
                                targets=(engine.HccTarget("T1", Decimal(v), Decimal(t), site="liver"),))
        for i, (v, t) in enumerate(rows))), AS_OF)
    assert got.category == direct.category
    assert [h.category for h in got.history] == [h.category for h in direct.history]


# --- the vignette converter reads every shape of the same facts ---------------------------------------------
SHAPES = [
    ("sums only, two follow-ups", {"baseline": {"date": "2024-01-10", "viable_sum_mm": 50, "total_sum_mm": 70},
                                   "followup": [{"date": "2024-03-06", "viable_sum_mm": 30, "total_sum_mm": 68},
                                                {"date": "2024-05-06", "viable_sum_mm": 36, "total_sum_mm": 69}],
                                   "new_lesions": False}, "PD"),
    ("cm, sub-threshold porta hepatis node", {
        "baseline": {"date": "2024-01-10", "targets": [{"id": "T1", "ld_cm": 5.0, "viable_enhancing_ld_cm": 4.0}],
                     "non_target": "present"},
        "followup": {"date": "2024-03-06", "targets": [{"id": "T1", "ld_cm": 4.8, "viable_enhancing_ld_cm": 2.5}],
                     "non_target": "IR/SD"},
        "new_lesions": [{"id": "NN1", "type": "nodal", "site": "porta hepatis", "short_axis_mm": 18,
                         "porta_hepatis": True}]}, "PR"),
    ("ascites with malignant cytology", {
        "baseline": {"date": "2024-01-10", "targets": [{"id": "T1", "ld_mm": 50, "viable_enhancing_ld_mm": 40}]},
        "followup": {"date": "2024-03-06", "targets": [{"id": "T1", "ld_mm": 48, "viable_enhancing_ld_mm": 35}],
                     "effusion": {"new_or_increased": True, "cytology": "malignant cells"}}}, "PD"),
    ("ascites without cytology", {
        "baseline": {"date": "2024-01-10", "targets": [{"id": "T1", "ld_mm": 50, "viable_enhancing_ld_mm": 40}]},
        "followup": {"date": "2024-03-06", "targets": [{"id": "T1", "ld_mm": 48, "viable_enhancing_ld_mm": 35}],
                     "effusion": "new ascites", "cytology": "not done"}, "new_lesions": False}, "SD"),
]


@pytest.mark.parametrize("title,inputs,expected", SHAPES, ids=[s[0] for s in SHAPES])
def test_converter_reads_every_shape(client, title, inputs, expected):
    from cds_service.sandbox.vignettes import to_patient

    body = client.post(HOOK, json=to_patient({"id": "mRECIST-99", "inputs": inputs}).hook_request()).get_json()
    assert [c for c in assessment_cards(body) if c["criteria"] == "mRECIST (HCC)"][0]["category"] == expected


def test_liver_segments_are_one_organ_for_the_two_per_organ_rule():
    p = hcc()
    for lid, seg, (b, f) in (("A", "liver segment 7", (40, 20)), ("B", "right hepatic lobe", (30, 15)),
                             ("C", "liver segment 2", (20, 40))):
        body = p.lesion(lid, seg)
        target(p, body, day(0), b + 5, b)
        target(p, body, day(56), f + 5, f)
    a = run(p)[0]["mRECIST"].assessment
    assert a.values["baseline_viable_sum_mm"] == 70 and a.category == "PR"  # C is left out: 2 per organ
    assert any("C exceeds the target limits" in n for n in a.notes)
