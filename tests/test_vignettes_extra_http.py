"""The extra vignettes (tests/data/vignettes_extra.json) through the same path as the public ones.

The extra file holds cases written from criteria.md's decision tables for every family other than RECIST 1.1:
each table row, thresholds exactly at and just past each boundary, and the other ways authors write the same
inputs (units in the value, g/L vs g/dL, mg/L vs mg/dL, "5%" strings, yes/no words, undated baselines, flat
fields instead of objects).  Each case's ``expected`` was computed from criteria.md (``source`` names the row),
not from the service.  Every case goes through ``to_patient`` -> FHIR -> the HTTP API and is checked exactly as
tests/test_vignettes_http.py checks the public file (category, key numbers, time-point sequence).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import test_vignettes_http as public
from cds_service.sandbox.vignettes import UnreadableVignette, has_converter, to_patient

EXTRA = Path(__file__).resolve().parent / "data" / "vignettes_extra.json"
VIGNETTES = json.loads(EXTRA.read_text(encoding="utf-8"))


def test_the_extra_file_is_well_formed():
    ids = [v["id"] for v in VIGNETTES]
    assert len(ids) == len(set(ids))
    for v in VIGNETTES:
        assert set(v) >= {"id", "criteria", "title", "inputs", "expected", "source", "rationale"}, v["id"]
        assert "category" in v["expected"], v["id"]
        assert "criteria.md" in v["source"], f"{v['id']}: source must name the criteria.md row"
        assert not v["id"].startswith("RECIST-"), "RECIST 1.1 is covered elsewhere"


@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_extra_vignette_through_http(client, vignette, settings_dict):
    assert has_converter(vignette)
    patient = to_patient(vignette)
    if isinstance(patient, UnreadableVignette):
        pytest.fail(str(patient.error), pytrace=False)
    public.test_vignette_through_http(client, vignette, settings_dict)
