"""Surveillance schedules: default data, due/overdue/phase/thereafter, not-recommended items, order checks."""
from __future__ import annotations

import copy
import json
import re
from datetime import date
from importlib import resources

import pytest

from rules import surveillance as sv
from rules.surveillance import (
    check_order,
    load_default_schedules,
    plan,
    resolve_cancer_type,
    validate_schedules,
)

LOINC = "http://loinc.org|"
CPT = "http://www.ama-assn.org/go/cpt|"
SCT = "http://snomed.info/sct|"

# surveillance.md §4 keys (testicular_I is split by histology, see the data notes).
SECTION4_TYPES = {
    "breast_early", "colorectal_II_III", "nsclc_I_III", "hodgkin", "dlbcl", "follicular", "aml_cr", "all_cr",
    "myeloma", "thyroid_dtc", "cll", "testicular_I_seminoma", "testicular_I_nonseminoma", "ovarian_epithelial",
    "prostate", "generic_solid",
}


@pytest.fixture(scope="module")
def defaults():
    return load_default_schedules()


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def test_default_json_loads_and_validates(defaults):
    assert validate_schedules(defaults) == []
    assert set(defaults["cancer_types"]) == SECTION4_TYPES
    # The packaged file is plain JSON reachable through importlib.resources.
    raw = resources.files("rules.data").joinpath("surveillance.json").read_text(encoding="utf-8")
    assert json.loads(raw) == defaults


def test_every_row_has_citation_version_and_codes_or_note(defaults):
    for key, ct in defaults["cancer_types"].items():
        for row in ct["items"] + ct["not_recommended"]:
            assert row["citation"].strip() and row["version"].strip(), (key, row["id"])
            assert row["codes"] or row["codes_note"], (key, row["id"])
            for code in row["codes"]:
                system, value = code.split("|")
                assert system.startswith("http") and value


def test_codes_from_codes_md_are_used(defaults):
    crc = {i["id"]: i for i in defaults["cancer_types"]["colorectal_II_III"]["items"]}
    assert LOINC + "2039-6" in crc["cea"]["codes"]
    assert LOINC + "24627-2" in crc["ct_cap"]["codes"]
    psa = defaults["cancer_types"]["prostate"]["items"][0]
    assert LOINC + "35741-8" in psa["codes"]  # ultrasensitive PSA after prostatectomy (codes.md §3.5)


def test_load_returns_a_fresh_copy(defaults):
    a = load_default_schedules()
    a["cancer_types"].clear()
    assert load_default_schedules()["cancer_types"]


def test_validate_catches_malformed_override(defaults):
    bad = copy.deepcopy(defaults)
    crc = bad["cancer_types"]["colorectal_II_III"]
    crc["items"][0]["bands"][1]["from_month"] = 30        # gap between 24 and 30
    crc["items"][1]["bands"][0]["every"] = [6, 3]          # lower > upper
    crc["items"][2]["codes"] = ["2039-6"]                  # no system
    del crc["items"][3]["citation"]
    bad["cancer_types"]["hodgkin"]["aliases"].append("colon")  # name clash with colorectal
    problems = validate_schedules(bad)
    text = "\n".join(problems)
    assert "bands[1].from_month" in text
    assert "lower <= upper" in text
    assert "'2039-6' is not 'system|code'" in text
    assert "citation" in text
    assert "also used by" in text
    assert len(problems) >= 5


def test_validate_catches_code_both_scheduled_and_advised_against(defaults):
    bad = copy.deepcopy(defaults)
    ct = bad["cancer_types"]["breast_early"]
    ct["items"][0]["codes"].append(LOINC + "2039-6")  # CEA is on the breast not-recommended list
    assert any("both scheduled" in p for p in validate_schedules(bad))


@pytest.mark.parametrize("bad", [None, [], {"schema_version": 1}, {"schema_version": 2, "cancer_types": {}}])
def test_validate_rejects_non_schedules(bad):
    assert validate_schedules(bad)


def test_aliases_resolve(defaults):
    assert resolve_cancer_type("Breast") == "breast_early"
    assert resolve_cancer_type("colon") == "colorectal_II_III"
    assert resolve_cancer_type("Hodgkin-Lymphoma") == "hodgkin"
    assert resolve_cancer_type("unknown") is None
    with pytest.raises(KeyError):
        plan("unknown", date(2020, 1, 1), {}, date(2021, 1, 1))


# ---------------------------------------------------------------------------
# Planning: due, overdue, never done, phases, thereafter
# ---------------------------------------------------------------------------

ANCHOR = date(2020, 1, 15)


@pytest.mark.parametrize(
    ("cancer", "item", "last", "as_of", "status", "due"),
    [
        # Colorectal CEA q3-6m in years 1-2 (NCCN Colon v1.2022): due from +3 m, overdue after +6 m.
        ("colorectal_II_III", "cea", date(2020, 4, 15), date(2020, 6, 1), "upcoming", date(2020, 7, 15)),
        ("colorectal_II_III", "cea", date(2020, 4, 15), date(2020, 7, 15), "due", date(2020, 7, 15)),
        ("colorectal_II_III", "cea", date(2020, 4, 15), date(2020, 10, 15), "due", date(2020, 7, 15)),
        ("colorectal_II_III", "cea", date(2020, 4, 15), date(2020, 10, 16), "overdue", date(2020, 7, 15)),
        # Years 3-5: every 6 months exactly (lower = upper), overdue the day after.
        ("colorectal_II_III", "cea", date(2022, 3, 1), date(2022, 9, 1), "due", date(2022, 9, 1)),
        ("colorectal_II_III", "cea", date(2022, 3, 1), date(2022, 9, 2), "overdue", date(2022, 9, 1)),
        # Never done: anchor + first interval (3 months), overdue after anchor + 6 months.
        ("colorectal_II_III", "cea", None, date(2020, 4, 14), "upcoming", date(2020, 4, 15)),
        ("colorectal_II_III", "cea", None, date(2020, 4, 20), "due", date(2020, 4, 15)),
        ("colorectal_II_III", "cea", None, date(2020, 7, 15), "due", date(2020, 4, 15)),
        ("colorectal_II_III", "cea", None, date(2020, 8, 1), "overdue", date(2020, 4, 15)),
        # Prostate PSA q6-12m for 5 years then yearly (ACS 2014).
        ("prostate", "psa", date(2021, 1, 10), date(2021, 9, 1), "due", date(2021, 7, 10)),
        ("prostate", "psa", date(2021, 1, 10), date(2022, 1, 11), "overdue", date(2021, 7, 10)),
        # AML CBC q1-3m years 1-2.
        ("aml_cr", "cbc", date(2020, 3, 1), date(2020, 4, 1), "due", date(2020, 4, 1)),
        # AML MRD in weeks (4-6 weeks, ELN MRD 2021 as summarised).
        ("aml_cr", "mrd_molecular_pb", date(2020, 3, 2), date(2020, 3, 20), "upcoming", date(2020, 3, 30)),
        ("aml_cr", "mrd_molecular_pb", date(2020, 3, 2), date(2020, 4, 14), "overdue", date(2020, 3, 30)),
    ],
)
def test_status_table(cancer, item, last, as_of, status, due):
    p = plan(cancer, ANCHOR, {item: last}, as_of)
    it = p.item(item)
    assert (it.status, it.due_date) == (status, due)


def test_phase_change_at_year_boundary_breast_hp():
    # ASCO 2013: q3-6m in years 1-3, q6-12m in years 4-5. Same last visit, as_of either side of the 3rd anniversary.
    last = {"hp": date(2022, 12, 1)}
    before = plan("breast_early", ANCHOR, last, date(2023, 1, 14)).item("hp")
    after = plan("breast_early", ANCHOR, last, date(2023, 1, 15)).item("hp")
    assert before.phase == "years 1\u20133" and before.due_date == date(2023, 3, 1)
    assert after.phase == "years 4\u20135" and after.due_date == date(2023, 6, 1)
    assert after.interval.startswith("every 6\u201312 months")


def test_thereafter_rule_applies_after_last_closed_band():
    # Breast H&P yearly from year 6.
    it = plan("breast_early", ANCHOR, {"hp": date(2025, 6, 1)}, date(2026, 3, 1)).item("hp")
    assert it.phase == "from year 6"
    assert (it.status, it.due_date, it.overdue_after) == ("upcoming", date(2026, 6, 1), date(2026, 6, 1))


def test_schedule_ends_after_last_band_without_thereafter():
    # Colorectal CEA stops after 5 years (NCCN Colon v1.2022).
    it = plan("colorectal_II_III", ANCHOR, {"cea": date(2024, 12, 1)}, date(2025, 2, 1)).item("cea")
    assert it.status == "completed-phase" and it.due_date is None
    assert "year 5" in it.interval
    # Before the 5th anniversary it is still scheduled while the next one falls inside year 5 ...
    assert plan("colorectal_II_III", ANCHOR, {"cea": date(2024, 6, 1)}, date(2025, 1, 14)).item("cea").status == "overdue"
    # ... but not when the next one would fall after the end of the schedule (month 58 + 6 > 60).
    assert plan("colorectal_II_III", ANCHOR, {"cea": date(2024, 12, 1)}, date(2025, 1, 14)).item("cea").status == (
        "completed-phase"
    )


def test_band_without_interval_defers_to_next_band_testicular_seminoma_ct():
    # EAU/ESMO seminoma: CT abdomen/pelvis 6, 6, 12, none, 12 months in years 1-5.
    it = plan("seminoma", ANCHOR, {"ct_abdomen_pelvis": date(2023, 1, 10)}, date(2023, 6, 1)).item("ct_abdomen_pelvis")
    assert it.status == "upcoming"
    assert it.due_date == date(2024, 1, 15)  # start of year 5, not last + 12 months (2024-01-10)
    assert it.interval.startswith("none in year 4")


def test_first_due_override_mammogram_and_colonoscopy():
    p = plan("breast_early", ANCHOR, {}, date(2020, 6, 1))
    assert (p.item("mammogram").status, p.item("mammogram").due_date) == ("upcoming", date(2020, 7, 15))
    c = plan("colorectal_II_III", ANCHOR, {}, date(2021, 1, 15)).item("colonoscopy")
    assert (c.status, c.due_date) == ("due", date(2021, 1, 15))  # "at 1 year": lower = upper
    assert plan("colorectal_II_III", ANCHOR, {}, date(2021, 1, 16)).item("colonoscopy").status == "overdue"


def test_colonoscopy_counts_from_previous_colonoscopy():
    # NCCN: at 1 year; if normal 3 years later; then every 5 years (band chosen by when it was last done).
    first = plan("colon", ANCHOR, {"colonoscopy": date(2021, 1, 20)}, date(2022, 6, 1)).item("colonoscopy")
    assert first.due_date == date(2024, 1, 20)
    second = plan("colon", ANCHOR, {"colonoscopy": date(2024, 1, 20)}, date(2025, 6, 1)).item("colonoscopy")
    assert second.due_date == date(2029, 1, 20)


def test_time_points_dlbcl_labs():
    p = plan("dlbcl", ANCHOR, {"cbc_ldh": date(2020, 7, 10)}, date(2020, 9, 1))
    it = p.item("cbc_ldh")
    assert (it.status, it.due_date) == ("upcoming", date(2021, 1, 15))  # the 12-month point
    late = plan("dlbcl", ANCHOR, {"cbc_ldh": date(2020, 7, 10)}, date(2021, 3, 1)).item("cbc_ldh")
    assert late.status == "overdue"
    done_all = plan("dlbcl", ANCHOR, {"cbc_ldh": date(2022, 1, 20)}, date(2023, 1, 1)).item("cbc_ldh")
    assert done_all.status == "completed-phase"


def test_last_done_before_anchor_or_after_as_of_is_not_counted():
    p = plan("prostate", ANCHOR, {"psa": date(2019, 12, 1)}, date(2020, 9, 1))
    assert p.item("psa").due_date == date(2020, 7, 15)  # anchor + 6 months, as if never done
    p2 = plan("prostate", ANCHOR, {"psa": date(2021, 1, 1)}, date(2020, 9, 1))
    assert p2.item("psa").due_date == date(2020, 7, 15)
    assert any("ignored" in n for n in p2.notes)


def test_conditions_drop_items_only_when_false():
    p = plan("breast_early", ANCHOR, {}, date(2021, 1, 1), conditions={"breast_conserving_therapy": False})
    assert p.item("mammogram") is None
    p = plan("breast_early", ANCHOR, {}, date(2021, 1, 1))
    assert p.item("mammogram").condition.startswith("after breast-conserving therapy")


def test_grace_days_from_data(defaults):
    data = copy.deepcopy(defaults)
    data["grace_days"] = 14
    it = plan("colorectal_II_III", ANCHOR, {"cea": date(2022, 3, 1)}, date(2022, 9, 10), schedules=data).item("cea")
    assert it.status == "due" and it.overdue_after == date(2022, 9, 15)


def test_override_schedule_changes_result(defaults):
    data = copy.deepcopy(defaults)
    data["cancer_types"]["prostate"]["items"][0]["bands"] = [
        {"from_month": 0, "to_month": None, "every": [3, 3], "unit": "months"}
    ]
    assert validate_schedules(data) == []
    it = plan("prostate", ANCHOR, {"psa": date(2021, 1, 10)}, date(2021, 5, 1), schedules=data).item("psa")
    assert (it.status, it.due_date) == ("overdue", date(2021, 4, 10))


# ---------------------------------------------------------------------------
# Not recommended
# ---------------------------------------------------------------------------

def test_lymphoma_surveillance_pet_not_recommended():
    for cancer in ("hodgkin", "dlbcl", "follicular"):
        p = plan(cancer, ANCHOR, {}, date(2021, 1, 1))
        pet = p.item("surveillance_pet")
        assert pet.status == "not_recommended", cancer
        assert "Choosing Wisely" in pet.citation
        assert CPT + "78815" in pet.codes


def test_breast_tumour_markers_and_mri_not_recommended():
    p = plan("breast_early", ANCHOR, {}, date(2021, 1, 1))
    markers, mri = p.item("tumor_markers"), p.item("breast_mri")
    assert markers.status == mri.status == "not_recommended"
    assert {LOINC + "6875-9", LOINC + "17842-6", LOINC + "2039-6"} <= set(markers.codes)
    assert "ASCO" in mri.citation and mri.condition == "unless the patient meets high-risk criteria"


def test_not_recommended_window_hodgkin_ct_after_first_year():
    assert plan("hodgkin", ANCHOR, {}, date(2020, 10, 1)).item("routine_ct") is None
    assert plan("hodgkin", ANCHOR, {}, date(2021, 1, 15)).item("routine_ct").status == "not_recommended"


# ---------------------------------------------------------------------------
# Order checks
# ---------------------------------------------------------------------------

def test_order_pet_in_hodgkin_remission_is_not_recommended():
    f = check_order("hodgkin", [CPT + "78815"], ANCHOR, {}, date(2021, 6, 1), in_remission=True)
    assert [x.kind for x in f] == ["not_recommended"]
    assert f[0].item_id == "surveillance_pet" and "Choosing Wisely" in f[0].citation
    assert "poor response" in f[0].unless


def test_order_ca153_in_breast_is_not_recommended():
    f = check_order("breast", [" " + LOINC + "6875-9 "], ANCHOR, {}, date(2021, 6, 1), in_remission=True)
    assert len(f) == 1 and f[0].kind == "not_recommended" and f[0].order_code == LOINC + "6875-9"


def test_order_cea_too_early_in_colorectal():
    f = check_order("colorectal_II_III", [LOINC + "2039-6"], ANCHOR, {"cea": date(2020, 5, 1)}, date(2020, 6, 1), True)
    assert len(f) == 1 and f[0].kind == "too_early"
    assert f[0].next_due == date(2020, 8, 1) and f[0].last_done == date(2020, 5, 1)
    assert "2020-08-01" in f[0].message


def test_order_cea_that_fits_gives_nothing():
    assert check_order("colorectal_II_III", [LOINC + "2039-6"], ANCHOR, {"cea": date(2020, 5, 1)}, date(2020, 8, 1), True) == []
    assert check_order("colorectal_II_III", [LOINC + "2039-6"], ANCHOR, {}, date(2020, 2, 1), True) == []


def test_order_checks_silent_when_not_in_remission_or_unknown():
    assert check_order("hodgkin", [CPT + "78815"], ANCHOR, {}, date(2021, 6, 1), in_remission=False) == []
    assert check_order("hodgkin", ["http://example.org|x"], ANCHOR, {}, date(2021, 6, 1), True) == []
    assert check_order("no-such-cancer", [CPT + "78815"], ANCHOR, {}, date(2021, 6, 1), True) == []


def test_order_ct_limit_dlbcl_then_not_recommended_after_two_years():
    ct = CPT + "74177"
    early = check_order("dlbcl", [ct], ANCHOR, {"ct": date(2020, 7, 1)}, date(2020, 10, 1), True)
    assert [x.kind for x in early] == ["too_early"] and early[0].next_due == date(2021, 1, 1)
    assert check_order("dlbcl", [ct], ANCHOR, {"ct": date(2020, 7, 1)}, date(2021, 1, 2), True) == []
    late = check_order("dlbcl", [ct], ANCHOR, {"ct": date(2021, 7, 1)}, date(2022, 3, 1), True)
    assert [x.kind for x in late] == ["not_recommended"] and late[0].item_id == "routine_ct_after_2y"


def test_order_with_schedule_override_uses_the_override(defaults):
    data = copy.deepcopy(defaults)
    data["cancer_types"]["hodgkin"]["not_recommended"] = []
    assert check_order("hodgkin", [CPT + "78815"], ANCHOR, {}, date(2021, 6, 1), True, schedules=data) == []


def test_module_never_reads_the_clock():
    src = resources.files("rules").joinpath("surveillance.py").read_text(encoding="utf-8")
    src += resources.files("rules").joinpath("timeline.py").read_text(encoding="utf-8")
    assert "today()" not in src and "now()" not in src
    assert "import logging" not in src
    assert not re.search(r"(?<![\w.])open\(", src)
    assert sv.STATUS_COMPLETED == "completed-phase"


def test_validate_catches_bad_units_time_points_and_open_band(defaults):
    bad = copy.deepcopy(defaults)
    aml = bad["cancer_types"]["aml_cr"]["items"]
    aml[1]["bands"][0]["unit"] = "days"
    bad["cancer_types"]["dlbcl"]["items"][1]["time_points_months"] = [6, 3]
    bad["cancer_types"]["prostate"]["items"][0]["bands"][0]["to_month"] = None  # open band that is not last
    text = "\n".join(validate_schedules(bad))
    assert "unit" in text and "time_points_months" in text and "only the last band may be open-ended" in text


def test_before_anchor_everything_is_upcoming():
    p = plan("prostate", ANCHOR, {}, date(2019, 12, 1))
    assert p.months_since_anchor == 0
    assert {it.status for it in p.items} == {"upcoming"}
    assert p.item("psa").due_date == date(2020, 7, 15)


def test_thyroid_tg_interval_lengthens_after_year_one():
    last = {"tg_tgab": date(2020, 12, 1)}
    y1 = plan("thyroid", ANCHOR, last, date(2021, 1, 14)).item("tg_tgab")
    y2 = plan("thyroid", ANCHOR, last, date(2021, 1, 15)).item("tg_tgab")
    assert (y1.due_date, y1.overdue_after) == (date(2021, 6, 1), date(2021, 12, 1))
    assert (y2.due_date, y2.overdue_after) == (date(2021, 12, 1), date(2022, 12, 1))
    assert "excellent response" in y2.interval
