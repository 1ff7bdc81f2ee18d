"""Inputs written in unexpected shapes: read correctly, or a clear error naming the field - never a silent answer.

Two kinds of checks:
* the text readers the extra vignettes (tests/data/vignettes_extra.json) found wrong, pinned with the criteria.md
  row they decide (ATA imaging impressions, iwCLL marrow text, RANO clinical status, IMWG PET/CT reads);
* vignette fields a converter does not read, or values it cannot read, give VignetteInputError naming the field,
  and every runner (the ``vignettes`` command, the tests) reports that one vignette and goes on.
"""
from __future__ import annotations

import copy
import json

import pytest

from cds_service.sandbox.vignettes import (
    UnreadableVignette,
    VignetteInputError,
    count_unit,
    has_converter,
    parse_quantity,
    to_patient,
)
from conftest import assessment_cards
from fhir_mappings import ata, imwg, iwcll, rano
from rules.ata2015 import ImagingResult
from rules.iwcll2018 import Marrow

HOOK = "/cds-services/remission-status"


# --- text readers (criteria.md rows in the ids) ----------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    # §7.1: "structural incomplete" needs structural evidence of disease; a negated disease phrase is negative
    ("no structural disease", ImagingResult.NEGATIVE),
    ("negative for papillary carcinoma", ImagingResult.NEGATIVE),
    ("Negative (normal contralateral lobe)", ImagingResult.NEGATIVE),
    ("negative, normal remaining lobe", ImagingResult.NEGATIVE),
    ("1.4 cm node, FNA positive for papillary thyroid carcinoma", ImagingResult.DISEASE),
    ("negative, but 5 mm suspicious level VI node", ImagingResult.DISEASE),
    ("Negative (no suspicious nodes; 4 mm indeterminate thyroid-bed focus)", ImagingResult.NONSPECIFIC),
    ("The patient was seen.", None),
])
def test_ata_imaging_impressions(text, expected):
    assert ata.classify_imaging(text) is expected


@pytest.mark.parametrize("text,expected", [
    # §10.1 marrow row: CR = no CLL cells, no B-lymphoid nodules; negation before or after the finding
    ("normocellular marrow without CLL cells or lymphoid nodules", Marrow.NORMOCELLULAR_CLEAR),
    ("uninvolved", Marrow.NORMOCELLULAR_CLEAR),
    ("normocellular; CLL cells absent", Marrow.NORMOCELLULAR_CLEAR),
    ("CLL infiltrate not seen", Marrow.NORMOCELLULAR_CLEAR),
    ("hypocellular, no CLL", Marrow.HYPOCELLULAR_CLEAR),
    ("residual CLL infiltrate 10%", Marrow.RESIDUAL),
    ("B-lymphoid nodules present, no diffuse infiltrate", Marrow.RESIDUAL),
    ("interstitial CLL infiltrate", Marrow.RESIDUAL),
])
def test_iwcll_marrow_text(text, expected):
    assert iwcll.parse_marrow(text)[0] is expected


@pytest.mark.parametrize("text,negated", [
    # §10.2 row PD: "clinical deterioration not due to other causes" is RANO's own wording of PD
    ("clinical deterioration not due to other causes", False),
    ("neurological deterioration attributed to tumour, not to other causes", False),
    ("deterioration; no other cause found", False),
    ("deterioration due to radiation necrosis", True),
    ("no tumour-related deterioration", True),
])
def test_rano_deterioration_wording(text, negated):
    assert rano.negated_deterioration(text) is negated


@pytest.mark.parametrize("text,negative", [
    # §6.4 imaging-plus MRD-negative: disappearance of every area of uptake seen at baseline
    ("complete resolution of all previously FDG-avid lesions; uptake below mediastinal blood pool", True),
    ("baseline hypermetabolic foci have resolved", True),
    ("new FDG-avid lytic lesion in T8", False),
])
def test_imwg_pet_reads(text, negative):
    assert imwg.pet_reading(text) is negative


# --- quantities written as text --------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,value,cmp,unit", [
    ("1.2 x10^9/L", "1.2", None, "x10^9/L"), ("1,500/µL", "1500", None, "/uL"), ("<0.1 ng/mL", "0.1", "<", "ng/mL"),
    ("800 mg/24h (24-h collection)", "800", None, "mg/24h"), ("3%", "3", None, "%"), (0.19, "0.19", None, ""),
])
def test_parse_quantity(raw, value, cmp, unit):
    got = parse_quantity(raw)
    assert got is not None and str(got[0]) == value and got[1] == cmp and got[2] == unit


@pytest.mark.parametrize("raw", ["1,5", "2:1", "about one", True, None])
def test_parse_quantity_refuses_what_is_not_a_number(raw):
    assert parse_quantity(raw) is None


@pytest.mark.parametrize("text,unit", [("x10^9/L", "10*9/L"), ("10^3/µL", "10*3/uL"), ("K/uL", "10*3/uL"),
                                       ("cells/uL", "/uL"), ("10^3/L", "10*3/L"), ("bananas", None)])
def test_count_units(text, unit):
    assert count_unit(text) == unit


# --- unreadable inputs: the field is named, the runner goes on -------------------------------------------------

ELN_OK = {"id": "ELN-T01", "criteria": "ELN 2022 AML", "title": "t",
          "inputs": {"assessment_date": "2024-04-15", "bone_marrow_blasts_pct": 3, "peripheral_blood_blasts": "absent",
                     "ANC_10e9_per_L": 1.2, "platelets_10e9_per_L": 120}, "expected": {"category": "CR"}}


def _with(v: dict, **inputs) -> dict:
    v = copy.deepcopy(v)
    if "ANC" in inputs:
        v["inputs"].pop("ANC_10e9_per_L")
    v["inputs"].update(inputs)
    return v


@pytest.mark.parametrize("vignette,field", [
    (_with(ELN_OK, marrow_blast_count_fraction=0.03), "marrow_blast_count_fraction"),
    (_with(ELN_OK, ANC="about one"), "ANC"),
    (_with(ELN_OK, ANC="1.2 furlongs"), "ANC"),
    (_with(ELN_OK, history="in remission"), "history"),
    ({"id": "IMWG-T01", "criteria": "IMWG 2016", "inputs": {"baseline": {"date": "2024-01-10", "serum_M_g_dL": 3.0},
      "assessments": [{"date": "2024-04-02", "serum_M_g_dL": 1.4, "FLC_difference_mg_dL": 12}]},
      "expected": {"category": "PR"}}, "assessments[0].FLC_difference_mg_dL"),
    ({"id": "IMWG-T02", "criteria": "IMWG 2016", "inputs": {"baseline": {"date": "2024-01-10", "serum_M_g_dL": 3.0},
      "assessments": [{"date": "2024-04-02", "serum_M_g_dL": 1.4}], "bone_marrow": "2% plasma cells"},
      "expected": {"category": "PR"}}, "bone_marrow"),
    ({"id": "PCR-T01", "criteria": "Breast pCR", "inputs": {"surgery_date": "2024-07-02", "ypT": "ypTis",
      "ypN": "ypN0", "pCR_definition": "the surgeon's"}, "expected": {"category": "not pCR"}}, "pCR_definition"),
    ({"id": "PCWG3-T01", "criteria": "PCWG3", "inputs": {"psa": [{"date": "2024-01-05", "label": "baseline"}]},
      "expected": {"category": "PSA not evaluable"}}, "psa[0]"),
    ({"id": "CLL-T01", "criteria": "iwCLL 2018", "inputs": {"date": "2024-11-05", "lymph_nodes": 3},
      "expected": {"category": "CR"}}, "lymph_nodes"),
    ({"id": "RANO-T01", "criteria": "RANO 2.0", "inputs": {"baseline": {"date": "2024-01-08", "SPD_mm2": 300},
      "scans": [{"date": "2024-04-01", "SPD_mm2": 0}], "non_measurable_disease": "hmm"},
      "expected": {"category": "CR"}}, "non_measurable_disease"),
    ({"id": "MRD-T01", "criteria": "ALL MRD (COG end of induction)", "inputs": {"disease": "pediatric B-ALL",
      "timepoint": "day 29", "date": "2024-02-05", "MRD": 0.02}, "expected": {"category": "x"}}, "MRD"),
    ({"id": "ATA-T01", "criteria": "ATA 2015 DTC response to therapy", "inputs": {"surgery": "total thyroidectomy + RAI",
      "date": "2024-10-01", "Tg_ng_mL": "<0.1", "TgAb": "positive, rising", "neck_US": "negative"},
      "expected": {"category": "x"}}, "TgAb"),
    ({"id": "LUGANO-T01", "criteria": "Lugano 2014 (CT-based)", "inputs": {"baseline_date": "2024-01-15",
      "date": "2024-07-15", "target_nodes_mm": [{"id": "N1", "baseline": [40, 30], "current": [18, 12]}],
      "new_organ_involvement": "liver"}, "expected": {"category": "PD"}}, "new_organ_involvement"),
    ({"id": "LUGANO-T02", "criteria": "Lugano 2014 (PET-CT)", "inputs": {"date": "2024-03-11",
      "pet": {"highest_deauville_score": 4, "uptake_vs_baseline": "hard to say"}}, "expected": {"category": "x"}},
     "pet.uptake_vs_baseline"),
    ({"id": "mRECIST-T01", "criteria": "mRECIST (HCC)", "inputs": {"baseline": {"date": "2024-01-10",
      "viable_sum_mm": 60}, "followup": {"date": "2024-03-06", "viable_sum_mm": 40}, "viable_sum_week12_mm": 30},
      "expected": {"category": "PR"}}, "viable_sum_week12_mm"),
])
def test_an_unreadable_field_is_named(vignette, field):
    assert has_converter(vignette)
    patient = to_patient(vignette)
    assert isinstance(patient, UnreadableVignette)
    with pytest.raises(VignetteInputError) as exc:
        patient.hook_request()
    assert f"inputs.{field}:" in str(exc.value) and vignette["id"] in str(exc.value)


def test_the_vignettes_command_reports_an_unreadable_vignette_and_goes_on(tmp_path, capsys):
    from cds_service.cli import main

    path = tmp_path / "v.json"
    path.write_text(json.dumps([_with(ELN_OK, ANC="about one") | {"id": "ELN-T02"}, ELN_OK]), encoding="utf-8")
    assert main(["vignettes", str(path)]) == 1
    out = capsys.readouterr().out
    assert "ELN-T02  unreadable: vignette ELN-T02: inputs.ANC" in out and "ELN-T01  ok" in out
    assert "1 passed, 1 failed" in out


def test_new_nodes_listed_apart_are_new_lesions(client):
    """Lugano CT: new nodes given under ``new_nodes`` are new lesions (criteria.md §4.3 row PD (5): new node >1.5 cm)."""
    v = {"id": "LUGANO-T03", "criteria": "Lugano 2014 (CT-based)", "inputs": {
        "histology": "follicular lymphoma - CT criteria", "baseline_date": "2024-01-15", "date": "2024-07-15",
        "target_nodes_mm": [{"id": "N1", "baseline": [40, 30], "current": [18, 12]}],
        "spleen_length_cm": {"baseline": 12, "current": 12}, "new_lesions": False,
        "new_nodes": [{"site": "left axillary lymph node", "ldi_mm": 18, "sdi_mm": 12}]}}
    body = client.post(HOOK, json=to_patient(v).hook_request()).get_json()
    assert next(a for a in assessment_cards(body) if a["criteria"] == "Lugano 2014 (CT-based)")["category"] == "PD"


def test_a_readable_shape_gives_the_same_card_as_the_documented_one(client):
    """Counts written with their unit in the value give the card of the unit-suffixed fields (criteria.md §1)."""
    plain = _with(ELN_OK)
    texty = _with(ELN_OK, ANC="1200/uL", platelets_10e9_per_L="120 x10^9/L")

    def card(v):
        body = client.post(HOOK, json=to_patient(v).hook_request()).get_json()
        return next(a for a in assessment_cards(body) if a["criteria"] == "ELN 2022 AML")

    a, b = card(plain), card(texty)
    assert a["category"] == b["category"] == "CR"
    assert b["values"]["ANC_10e9_per_L"] == pytest.approx(1.2)
