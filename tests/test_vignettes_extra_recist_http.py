"""The extra RECIST 1.1 vignettes (tests/data/vignettes_extra_recist.json) through the same path as the public ones.

Written from criteria.md §2 (each case's ``source`` names the row): every Table 1 / Table 2 row, thresholds on both
sides (-30.0 % vs -29.9 %, +20 % with 5 mm vs 4 mm, nadir vs baseline), nodes at 9.9 vs 10 mm, NE and "PD already
provable" with missing lesions, new and equivocal lesions, confirmation required or not, best overall response over
several time points, and the other shapes authors write (sums only, cm, strings with units, labels only, baseline +
followup objects, lesions keyed by id).  Checked exactly as tests/test_vignettes_extra_http.py checks the other file.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import test_vignettes_http as public
from cds_service.sandbox.vignettes import UnreadableVignette, has_converter, to_patient

EXTRA = Path(__file__).resolve().parent / "data" / "vignettes_extra_recist.json"
VIGNETTES = json.loads(EXTRA.read_text(encoding="utf-8"))


def test_the_recist_extra_file_is_well_formed():
    ids = [v["id"] for v in VIGNETTES]
    assert len(ids) == len(set(ids))
    for v in VIGNETTES:
        assert set(v) >= {"id", "criteria", "title", "inputs", "expected", "source", "rationale"}, v["id"]
        assert v["id"].startswith("RECIST-") and v["criteria"] == "RECIST 1.1", v["id"]
        assert "category" in v["expected"], v["id"]
        assert "criteria.md" in v["source"], f"{v['id']}: source must name the criteria.md row"


@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_recist_extra_vignette_through_http(client, vignette, settings_dict):
    assert has_converter(vignette)
    patient = to_patient(vignette)
    if isinstance(patient, UnreadableVignette):
        pytest.fail(str(patient.error), pytrace=False)
    public.test_vignette_through_http(client, vignette, settings_dict)
