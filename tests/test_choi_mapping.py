"""Choi (GIST) from FHIR (fhir_mappings/choi.py): size and mean attenuation, nodules, modified Choi, the card.

cm and mm give the same category; "HU" and "[hnsf'U]" are the same; an impossible unit is rejected with an issue;
entered-in-error is skipped; missing data gives an "insufficient data" card; properties: FHIR round trip equals
the engine on the same numbers, and unit invariance.
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
from fhir_mappings.choi import MODIFIED_CHOI, map_choi
from fhir_mappings.imaging_series import INTRATUMORAL_NODULE, MEAN_ATTENUATION, SUM_LONGEST_DIAMETERS, TARGET_SUM
from fhir_mappings.pipeline import assess_record
from fhir_mappings.record import UCUM, PatientRecord
from rules import choi as engine

HOOK = "/cds-services/remission-status"
AS_OF = date(2030, 1, 1)
D0 = date(2024, 1, 10)


def day(n: int) -> str:
    return (D0 + timedelta(days=n)).isoformat()


def gist(pid="choi-t") -> PatientBuilder:
    p = PatientBuilder(pid)
    p.condition(icd10="C49.A0", text="Gastrointestinal stromal tumor", onset="2023-10-01")
    p.medication(day(0), "imatinib 400 MG Oral Tablet")
    return p


def reported(p: PatientBuilder, rows, size_unit="mm", hu_unit="[hnsf'U]", code=SUM_LONGEST_DIAMETERS) -> list[dict]:
    out = []
    for i, (sld, hu) in enumerate(rows):
        res = [p.observation(code, day(56 * i), value=sld, unit=size_unit, category="imaging")]
        if hu is not None:
            res.append(p.observation(MEAN_ATTENUATION, day(56 * i), value=hu, unit=hu_unit, category="imaging"))
        p.report(day(56 * i), results=res)
        out.extend(res)
    return out


def lesion_rows(p: PatientBuilder, rows: dict[str, list], unit="mm", hu_unit="HU") -> None:
    for lid, values in rows.items():
        body = p.lesion(lid, "stomach" if lid == "L1" else "liver")
        for i, (size, hu) in enumerate(values):
            obs = p.tumor_size(body, day(56 * i), longest_mm=size, unit=unit, role="target")
            if hu is not None:
                obs["component"].append({"code": concept(MEAN_ATTENUATION),
                                         "valueQuantity": {"value": hu, "unit": "HU", "system": UCUM,
                                                           "code": hu_unit}})


def run(p: PatientBuilder, options=None):
    record = PatientRecord(p.resources, p.patient_id)
    return {r.criteria: r for r in assess_record(record, AS_OF, options or {})}, record


def test_pr_by_attenuation_through_http(client):
    p = gist()
    reported(p, [(100, 80), (95, 60)])
    body = client.post(HOOK, json=p.hook_request()).get_json()
    card = [c for c in assessment_cards(body) if c["criteria"] == "Choi (GIST)"][0]
    assert card["category"] == "PR"
    assert card["values"]["pct_change_attenuation"] == -25 and card["values"]["RECIST_1.1_equivalent"] == "SD"


@pytest.mark.parametrize("code", [SUM_LONGEST_DIAMETERS, TARGET_SUM])
def test_sld_in_cm_and_mm_and_hu_spellings_give_the_same_category(code):
    a, b = gist("mm"), gist("cm")
    reported(a, [(100, 80), (112, 75)], code=code)
    reported(b, [(Decimal("10.0"), 80), (Decimal("11.2"), 75)], size_unit="cm", hu_unit="HU", code=code)
    ra, rb = run(a)[0]["Choi"].assessment, run(b)[0]["Choi"].assessment
    assert ra.category == rb.category == "PD"
    assert ra.values["pct_change_size"] == rb.values["pct_change_size"] == 12


def test_per_lesion_attenuation_is_averaged_per_lesion():
    p = gist()
    lesion_rows(p, {"L1": [(60, 90), (58, 70)], "L2": [(40, 70), (40, 60)]})
    a = run(p)[0]["Choi"].assessment
    # mean of lesion means: 80 -> 65 HU = -18.75 %: PR by attenuation; size -2 %
    assert a.category == "PR" and a.values["attenuation_hu"] == 65 and a.values["sld_mm"] == 98


def test_lesion_attenuation_as_its_own_observation_with_focus():
    p = gist()
    body = p.lesion("L1", "stomach")
    for i, (size, hu) in enumerate([(60, 90), (58, 70)]):
        p.tumor_size(body, day(56 * i), longest_mm=size, role="target")
        p.observation(MEAN_ATTENUATION, day(56 * i), value=hu, unit="HU", category="imaging",
                      extra={"focus": [{"reference": f"BodyStructure/{body['id']}"}]})
    a = run(p)[0]["Choi"].assessment
    assert a.category == "PR" and a.values["attenuation_hu"] == 70


def test_impossible_unit_is_rejected_with_an_issue():
    p = gist()
    obs = reported(p, [(100, 80), (95, 60)])
    obs[-1]["valueQuantity"] = qty(60, "mg/dL")
    by, _ = run(p)
    r = by["Choi"]
    assert any("mg/dL" in i.why for i in r.issues)
    # size -5 % alone is SD, but the unread attenuation could make it PR: not evaluable, nothing guessed
    assert r.assessment.category == "NE" and any("attenuation" in m for m in r.assessment.missing)


def test_entered_in_error_is_skipped():
    p = gist()
    reported(p, [(100, 80), (95, 60)])
    wrong = p.observation(SUM_LONGEST_DIAMETERS, day(56), value=150, unit="mm", category="imaging")
    wrong["status"] = "entered-in-error"
    by, record = run(p)
    assert by["Choi"].assessment.category == "PR"
    assert any("entered-in-error" in i.why for i in record.issues)


def test_missing_data_gives_an_insufficient_data_card(client):
    body = client.post(HOOK, json=gist().hook_request()).get_json()
    ext = [c for c in assessment_cards(body) if c["criteria"] == "Choi"][0]
    assert ext["category"] == "insufficient data" and ext["missing"]


def test_intratumoral_nodule_new_lesion_and_non_measurable_progression_are_pd():
    for kind in ("nodule", "new", "nt"):
        p = gist(f"pd-{kind}")
        reported(p, [(100, 80), (95, 60)])
        if kind == "nodule":
            p.observation(INTRATUMORAL_NODULE, day(56), value_bool=True, category="imaging")
        elif kind == "new":
            p.observation(codes.NEW_LESION, day(56), value_bool=True, category="imaging")
        else:
            p.observation(codes.NON_TARGET_RESPONSE, day(56), value_code="PD", category="imaging")
        assert run(p)[0]["Choi"].assessment.category == "PD", kind


def test_modified_choi_from_protocol_observation_or_option():
    p = gist()
    reported(p, [(100, 80), (95, 60)])
    assert run(p, {"choi_modified": True})[0]["Choi"].assessment.category == "SD"
    p.observation(MODIFIED_CHOI, day(0), value_bool=True, category="survey")
    a = run(p)[0]["Choi"].assessment
    assert a.criteria == "modified Choi" and a.category == "SD"


def test_targets_without_role_coding_are_the_baseline_lesions():
    p = gist()
    for lid, rows in {"L1": [(50, 80), (40, 78)], "L2": [(30, 80), (27, 78)]}.items():
        body = p.lesion(lid, "liver")
        for i, (size, hu) in enumerate(rows):
            obs = p.tumor_size(body, day(56 * i), longest_mm=size)
            obs["component"].append({"code": concept(MEAN_ATTENUATION), "valueQuantity": qty(hu, "[hnsf'U]")})
    mapping = map_choi(PatientRecord(p.resources))
    a = engine.assess(mapping.inputs, AS_OF)
    assert a.category == "PR" and a.values["sld_mm"] == 67 and mapping.notes


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), st.integers(-20, 200)), min_size=2, max_size=5))
def test_fhir_round_trip_equals_the_engine(rows):
    p = gist()
    reported(p, rows)
    got = run(p)[0]["Choi"].assessment
    direct = engine.assess(engine.ChoiInputs(tuple(
        engine.ChoiTimepoint(D0 + timedelta(days=56 * i), sld_mm=Decimal(s), mean_attenuation_hu=Decimal(h))
        for i, (s, h) in enumerate(rows))), AS_OF)
    assert got.category == direct.category and got.values == direct.values


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4000), st.integers(1, 200)), min_size=2, max_size=4))
def test_category_is_the_same_in_cm_and_mm(rows):
    a, b = gist("a"), gist("b")
    reported(a, [(Decimal(s), h) for s, h in rows])
    reported(b, [(Decimal(s) / 10, h) for s, h in rows], size_unit="cm", hu_unit="HU")
    ra, rb = run(a)[0]["Choi"].assessment, run(b)[0]["Choi"].assessment
    assert [h.category for h in ra.history] == [h.category for h in rb.history]


# --- the vignette converter reads every shape of the same facts ---------------------------------------------
SHAPES = [
    ("size PD, attenuation not PR", {"drug": "imatinib", "baseline": {"date": "2024-01-10", "SLD_mm": 100,
                                                                       "mean_attenuation_HU": 80},
                                     "followup": {"date": "2024-03-06", "SLD_mm": 112, "mean_attenuation_HU": 75},
                                     "new_lesions": False}, "Choi (GIST)", "PD"),
    ("cm", {"baseline": {"date": "2024-01-10", "SLD_cm": 10, "mean_attenuation_HU": 80},
            "followup": {"date": "2024-03-06", "SLD_cm": 9.5, "mean_attenuation_HU": 75}}, "Choi (GIST)", "SD"),
    ("intratumoural nodule", {"baseline": {"date": "2024-01-10", "SLD_mm": 100, "mean_attenuation_HU": 80},
                              "followup": {"date": "2024-03-06", "SLD_mm": 95, "mean_attenuation_HU": 75,
                                           "new_intratumoral_nodules": True}}, "Choi (GIST)", "PD"),
    ("per lesion", {"baseline": {"date": "2024-01-10", "lesions": [{"id": "L1", "ld_mm": 60, "attenuation_HU": 90},
                                                                 {"id": "L2", "ld_mm": 40, "attenuation_HU": 70}]},
                    "followup": {"date": "2024-03-06", "lesions": [{"id": "L1", "ld_mm": 58, "attenuation_HU": 70},
                                                                 {"id": "L2", "ld_mm": 40, "attenuation_HU": 60}]}},
     "Choi (GIST)", "PR"),
    ("modified Choi", {"modified": True, "baseline": {"date": "2024-01-10", "SLD_mm": 100, "mean_attenuation_HU": 80},
                       "followup": {"date": "2024-03-06", "SLD_mm": 95, "mean_attenuation_HU": 60}},
     "modified Choi", "SD"),
]


@pytest.mark.parametrize("title,inputs,criteria,expected", SHAPES, ids=[s[0] for s in SHAPES])
def test_converter_reads_every_shape(client, title, inputs, criteria, expected):
    from cds_service.sandbox.vignettes import card_criteria_of, to_patient

    v = {"id": "CHOI-99", "inputs": inputs}
    p = to_patient(v)
    assert card_criteria_of(v, p) == criteria
    body = client.post(HOOK, json=p.hook_request()).get_json()
    assert [c for c in assessment_cards(body) if c["criteria"] == criteria][0]["category"] == expected
