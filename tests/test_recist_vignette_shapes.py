"""RECIST vignettes written in other shapes (cm suffixes, sums only, new lesions as a list) give the same cards."""
from __future__ import annotations

import copy

import pytest

from cds_service.sandbox.vignettes import to_patient
from conftest import assessment_cards, load_vignettes

HOOK = "/cds-services/remission-status"
BY_ID = {v["id"]: v for v in load_vignettes()}


def category(client, v) -> tuple[str, dict]:
    card = next(a for a in assessment_cards(client.post(HOOK, json=to_patient(v).hook_request()).get_json())
                if a["criteria"] == "RECIST 1.1")
    return card["category"], card["values"]


def test_centimetre_fields_give_the_same_card(client):
    v = copy.deepcopy(BY_ID["RECIST-01"])
    for tp in v["inputs"]["timepoints"]:
        for t in tp["target_lesions"]:
            for key in ("ld_mm", "short_axis_mm"):
                if key in t:
                    t[key.replace("_mm", "_cm")] = t.pop(key) / 10
    cat, values = category(client, v)
    assert cat == "PR" and values["pct_change_from_baseline"] == -30


def test_sums_only_give_the_same_category(client):
    v = copy.deepcopy(BY_ID["RECIST-05"])
    for tp in v["inputs"]["timepoints"]:
        tp["target_sum_mm"] = sum(t.get("ld_mm", 0) for t in tp.pop("target_lesions"))
    cat, values = category(client, v)
    assert cat == "PD" and values["nadir_sum_mm"] == 40 and values["target_sum_mm"] == 50


@pytest.mark.parametrize("new,expected", [([{"id": "NL1", "site": "bone"}], "PD"), ([], "PR"), ("equivocal", "PR")])
def test_new_lesions_as_list_or_words(client, new, expected):
    v = copy.deepcopy(BY_ID["RECIST-01"])
    v["inputs"]["timepoints"][-1]["new_lesions"] = new
    assert category(client, v)[0] == expected


def test_not_unequivocal_non_target_change_is_not_pd(client):
    v = copy.deepcopy(BY_ID["RECIST-01"])
    v["inputs"]["timepoints"][-1]["non_target"] = "slight increase, not unequivocal progression"
    assert category(client, v)[0] == "PR"
