"""iRECIST engine: public vignettes, boundaries of every threshold, every category, properties."""
from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import irecist as ir
from rules.base import Outcome, rounded

VIGNETTES = Path(__file__).resolve().parents[3] / "shared" / "vignettes" / "public.json"
AS_OF = date(2030, 1, 1)
D0 = date(2024, 1, 8)


def _vignettes(prefix: str) -> list[dict]:
    return [v for v in json.loads(VIGNETTES.read_text()) if v["id"].startswith(prefix)]


def _dec(x):
    return None if x is None else Decimal(str(x))


# --- vignette adapter -------------------------------------------------------------------------------
def _new_lesion(n: dict) -> ir.NewLesion:
    size = n.get("ld_mm", n.get("short_axis_mm", n.get("size_mm")))
    return ir.NewLesion(lesion_id=n.get("id", "NL"), size_mm=_dec(size), site=n.get("site"),
                        nodal=n.get("type") == "nodal" or "short_axis_mm" in n, category=n.get("category"),
                        increased=bool(n.get("increased", False)))


def _timepoint(t: dict) -> ir.IRecistTimepoint:
    lesions = tuple(
        ir.TargetLesion(lesion_id=x["id"], size_mm=_dec(x.get("ld_mm", x.get("short_axis_mm"))),
                        nodal=x.get("type") == "nodal")
        for x in t.get("target_lesions", ()))
    new = t.get("new_lesions", [])
    if isinstance(new, bool):  # a plain yes/no becomes one anonymous lesion
        new = [{"id": f"NL-{t['date']}"}] if new else []
    nt = t.get("non_target")
    if isinstance(nt, str) and nt.lower().startswith("present"):
        nt = "non-CR/non-PD"
    return ir.IRecistTimepoint(date=date.fromisoformat(t["date"]), target_lesions=lesions,
                               target_sum_mm=_dec(t.get("target_sum_mm")), non_target=nt,
                               non_target_further_increase=bool(t.get("non_target_further_increase", False)),
                               new_lesions=tuple(_new_lesion(n) for n in new))


def adapt(v: dict) -> ir.IRecistInputs:
    return ir.IRecistInputs(timepoints=tuple(_timepoint(t) for t in v["inputs"]["timepoints"]))


@pytest.mark.parametrize("v", _vignettes("iRECIST-"), ids=lambda v: v["id"])
def test_public_vignette(v):
    a = ir.assess(adapt(v), AS_OF)
    exp = v["expected"]
    assert a.category in exp.get("accept", [exp["category"]])
    assert a.category == exp["category"]
    assert a.criteria == "iRECIST" and a.label == ir.LABELS[a.category]
    if "timepoint_responses" in exp:
        assert [h.category for h in a.history] == exp["timepoint_responses"]
    for key in ("new_lesion_target_sum_change_mm", "cumulative_increase_since_iUPD_mm"):
        if key in exp:
            assert rounded(a.values[key]) == rounded(Decimal(str(exp[key])))
    if "progression_date_for_PFS" in exp:
        assert str(a.values["progression_date_for_PFS"]) == exp["progression_date_for_PFS"]
    assert a.evidence and all(e.citation for e in a.evidence)


def test_public_vignettes_present():
    assert len(_vignettes("iRECIST-")) >= 2


# --- helpers for hand-made series ------------------------------------------------------------------
def tp(day: int, total=None, nt=None, new=(), lesions=(), further=False, ref=None):
    return ir.IRecistTimepoint(date=D0 + timedelta(days=day), target_sum_mm=_dec(total), non_target=nt,
                               new_lesions=tuple(new), target_lesions=tuple(lesions),
                               non_target_further_increase=further, ref=ref)


def nl(lid, size=None, site="liver", nodal=False, category=None, increased=False):
    return ir.NewLesion(lesion_id=lid, size_mm=_dec(size), site=site, nodal=nodal, category=category,
                        increased=increased)


def run(*tps, **kw):
    return ir.assess(ir.IRecistInputs(timepoints=tuple(tps), **kw), AS_OF)


def cats(a):
    return [h.category for h in a.history]


# --- RECIST 1.1 time-point thresholds -------------------------------------------------------------
@pytest.mark.parametrize("follow,expected", [("70", "iPR"), ("70.1", "iSD"), ("69.9", "iPR")])
def test_pr_boundary_30_percent_vs_baseline(follow, expected):
    assert run(tp(0, 100), tp(56, follow)).category == expected


@pytest.mark.parametrize("follow,expected", [
    ("60", "iUPD"),      # +20 %, +10 mm
    ("59.9", "iSD"),     # +19.8 %
    ("60.1", "iUPD"),
])
def test_pd_boundary_20_percent_vs_nadir(follow, expected):
    assert run(tp(0, 50), tp(56, follow)).category == expected


@pytest.mark.parametrize("follow,expected", [("24", "iSD"), ("25", "iUPD")])
def test_pd_needs_5_mm_absolute(follow, expected):
    # nadir 20 mm: 24 mm is +20 % but only +4 mm; 25 mm is +25 % and +5 mm
    assert run(tp(0, 30), tp(56, 20), tp(112, follow)).history[-1].category == expected


def test_pd_against_nadir_not_baseline():
    a = run(tp(0, 100), tp(56, 40), tp(112, 50))
    assert cats(a) == ["iPR", "iUPD"]
    assert a.values["nadir_sum_mm"] == 40 and a.values["pct_change_from_baseline"] == -50


def test_strict_time_point_reading_after_pr():
    a = run(tp(0, 30), tp(56, 20), tp(112, 24))
    assert cats(a) == ["iPR", "iSD"]
    assert a.values["iBOR"] == "iPR"


# --- complete response (nodes < 10 mm) -------------------------------------------------------------
def _lesions(t1, n1):
    return (ir.TargetLesion("T1", _dec(t1)), ir.TargetLesion("N1", _dec(n1), nodal=True))


@pytest.mark.parametrize("node,expected", [("9.9", "iCR"), ("10", "iPR"), ("10.1", "iPR")])
def test_cr_needs_nodes_below_10_mm(node, expected):
    a = run(tp(0, lesions=_lesions(22, 18)), tp(56, lesions=_lesions(0, node)))
    assert a.category == expected
    assert a.outcome is (Outcome.COMPLETE if expected == "iCR" else Outcome.PARTIAL)


def test_target_cr_with_non_target_present_is_ipr():
    assert run(tp(0, 30, nt="non-CR/non-PD"), tp(56, 0, nt="non-CR/non-PD")).category == "iPR"


def test_too_small_to_measure_counts_5_mm():
    base = (ir.TargetLesion("T1", _dec(20)), ir.TargetLesion("T2", _dec(15)))
    follow = (ir.TargetLesion("T1", None, too_small_to_measure=True), ir.TargetLesion("T2", _dec(0)))
    a = run(tp(0, lesions=base), tp(56, lesions=follow))
    assert a.category == "iPR" and a.values["target_sum_mm"] == 5


def test_nt_only_disease_non_icr_non_iupd_and_icr():
    a = run(tp(0, nt="non-CR/non-PD"), tp(56, nt="non-CR/non-PD"))
    assert a.category == "non-iCR/non-iUPD" and a.outcome is Outcome.STABLE
    assert run(tp(0, nt="non-CR/non-PD"), tp(56, nt="CR")).category == "iCR"
    assert run(tp(0, nt="non-CR/non-PD"), tp(56, nt="PD")).category == "iUPD"


# --- not evaluable ---------------------------------------------------------------------------------
def test_missing_target_could_change_category_is_ne():
    base = (ir.TargetLesion("T1", _dec(20)), ir.TargetLesion("T2", _dec(20)), ir.TargetLesion("T3", _dec(10)))
    follow = (ir.TargetLesion("T1", _dec(20)), ir.TargetLesion("T2", _dec(20)), ir.TargetLesion("T3", None))
    a = run(tp(0, lesions=base), tp(56, lesions=follow))
    assert a.category == "NE" and a.outcome is Outcome.NOT_EVALUABLE and not a.confirmed
    assert a.values["available_sum_mm"] == 40
    assert any("T3" in m for m in a.missing)


def test_missing_target_but_pd_established():
    base = (ir.TargetLesion("T1", _dec(20)), ir.TargetLesion("T2", _dec(20)))
    follow = (ir.TargetLesion("T1", _dec(48)), ir.TargetLesion("T2", None))  # 48 >= 40 * 1.2 and +8 mm
    assert run(tp(0, lesions=base), tp(56, lesions=follow)).category == "iUPD"
    follow = (ir.TargetLesion("T1", _dec("47.9")), ir.TargetLesion("T2", None))
    assert run(tp(0, lesions=base), tp(56, lesions=follow)).category == "NE"


def test_no_follow_up_is_ne_with_missing():
    a = run(tp(0, 50))
    assert a.category == "NE" and a.missing


def test_no_baseline_disease_is_ne():
    a = run(tp(0, None), tp(56, 40))
    assert a.category == "NE" and a.missing


def test_unknown_non_target_wording_is_not_guessed():
    a = run(tp(0, 50, nt="non-CR/non-PD"), tp(56, 50, nt="somewhat bigger?"))
    assert a.category == "iSD"  # target SD + NT not evaluable -> SD (RECIST Table 1)
    a = run(tp(0, nt="non-CR/non-PD"), tp(56, nt="somewhat bigger?"))
    assert a.category == "NE" and any("somewhat" in m for m in a.missing)


def test_as_of_ignores_later_assessments():
    a = ir.assess(ir.IRecistInputs((tp(0, 50), tp(56, 62), tp(98, 70))), D0 + timedelta(days=60))
    assert a.category == "iUPD" and len(a.history) == 1


# --- confirmation of iUPD --------------------------------------------------------------------------
@pytest.mark.parametrize("follow,expected", [("66.9", "iUPD"), ("67", "iCPD"), ("67.1", "iCPD")])
def test_icpd_target_plus_5_mm_from_iupd(follow, expected):
    a = run(tp(0, 50), tp(56, 62), tp(98, follow))
    assert a.category == expected
    assert a.values["cumulative_increase_since_iUPD_mm"] == Decimal(follow) - 62


def test_icpd_outcomes_and_confirmation_flags():
    a = run(tp(0, 50), tp(56, 62))
    assert a.outcome is Outcome.UNCONFIRMED_PROGRESSION and not a.confirmed
    assert a.values["iUPD_date"] == D0 + timedelta(days=56)
    assert a.values["confirm_iUPD_not_before"] == D0 + timedelta(days=84)
    assert a.values["confirm_iUPD_by"] == D0 + timedelta(days=112)
    a = run(tp(0, 50), tp(56, 62), tp(98, 70))
    assert a.outcome is Outcome.PROGRESSION and a.confirmed


@pytest.mark.parametrize("size,expected", [("16.9", "iUPD"), ("17", "iCPD")])
def test_icpd_new_lesion_target_sum_plus_5_mm(size, expected):
    a = run(tp(0, 60), tp(56, 55, new=[nl("NL1", 12)]), tp(98, 54, new=[nl("NL1", size)]))
    assert a.category == expected
    assert a.values["new_lesion_target_sum_change_mm"] == Decimal(size) - 12


def test_nlt_sum_is_cumulative_and_separate_from_target_sum():
    a = run(tp(0, 60), tp(56, 55, new=[nl("NL1", 12)]), tp(98, 55, new=[nl("NL1", 15)]),
            tp(140, 55, new=[nl("NL1", 17)]))
    assert cats(a) == ["iUPD", "iUPD", "iCPD"]
    assert a.values["target_sum_mm"] == 55


@pytest.mark.parametrize("size,nodal,category", [
    ("9.9", False, "NLNT"), ("10", False, "NLT"), ("14.9", True, "NLNT"), ("15", True, "NLT")])
def test_new_lesion_target_measurability(size, nodal, category):
    # an NLT growing +5 mm confirms; an NLNT growing (any increase) confirms too, so we look at evidence
    a = run(tp(0, 60), tp(56, 60, new=[nl("NL1", size, nodal=nodal)]))
    text = " ".join(e.text for e in a.evidence if e.rule == "irecist.new_lesions")
    assert f"({category}," in text


def test_nlt_limits_two_per_organ_five_total():
    first = [nl(f"L{i}", 30 - i, site="liver") for i in range(3)] + \
            [nl(f"P{i}", 20 - i, site=f"organ{i}") for i in range(4)]
    a = run(tp(0, 60), tp(56, 60, new=first))
    text = " ".join(e.text for e in a.evidence if e.rule == "irecist.new_lesions")
    assert "L0 (NLT" in text and "L1 (NLT" in text and "L2 (NLNT" in text  # third in the liver
    assert "P2 (NLT" in text and "P3 (NLNT" in text  # sixth measurable lesion
    assert text.count("(NLT") == 5
    assert any("limits" in n for n in a.notes)


def test_explicit_reader_category_wins():
    a = run(tp(0, 60), tp(56, 60, new=[nl("NL1", 30, category="new lesion non-target")]))
    assert "NL1 (NLNT" in " ".join(e.text for e in a.evidence)


@pytest.mark.parametrize("second,expected", [
    (dict(size=6), "iUPD"), (dict(size=7), "iCPD"), (dict(size=6, increased=True), "iCPD")])
def test_icpd_any_increase_of_new_lesion_non_target(second, expected):
    a = run(tp(0, 60), tp(56, 60, new=[nl("NL1", 6)]), tp(98, 60, new=[nl("NL1", **second)]))
    assert a.category == expected


def test_icpd_another_new_lesion():
    a = run(tp(0, 60), tp(56, 60, new=[nl("NL1", 12)]), tp(98, 60, new=[nl("NL1", 12), nl("NL2", 4)]))
    assert a.category == "iCPD"
    assert any("another new lesion" in e.text for e in a.evidence)


def test_icpd_further_non_target_increase():
    base = tp(0, 60, nt="non-CR/non-PD")
    assert run(base, tp(56, 60, nt="PD"), tp(98, 60, nt="PD")).category == "iUPD"
    assert run(base, tp(56, 60, nt="PD"), tp(98, 60, nt="PD", further=True)).category == "iCPD"


def test_icpd_pd_newly_met_in_another_category():
    base = tp(0, 50, nt="non-CR/non-PD")
    assert run(base, tp(56, 62, nt="non-CR/non-PD"), tp(98, 62, nt="PD")).category == "iCPD"
    assert run(base, tp(56, 62, nt="non-CR/non-PD"), tp(98, 62, nt="non-CR/non-PD", new=[nl("N", 4)])).category \
        == "iCPD"
    # iUPD by a new lesion; targets then meet RECIST PD vs nadir
    assert run(tp(0, 50), tp(56, 50, new=[nl("N", 12)]), tp(98, 60, new=[nl("N", 12)])).category == "iCPD"
    # ... but a target rise of +5 mm that is not RECIST PD does not confirm when targets did not drive iUPD
    assert run(tp(0, 50), tp(56, 50, new=[nl("N", 12)]), tp(98, 55, new=[nl("N", 12)])).category == "iUPD"


# --- reset, remains, NE, window --------------------------------------------------------------------
def test_reset_then_new_block_and_progression_date():
    a = run(tp(0, 100), tp(42, 95), tp(84, 96), tp(126, 120), tp(168, 65), tp(210, 60), tp(252, 75), tp(294, 80))
    assert cats(a) == ["iSD", "iSD", "iUPD", "iPR", "iPR", "iUPD", "iCPD"]
    assert a.values["progression_date_for_PFS"] == D0 + timedelta(days=252)
    assert any(e.rule == "irecist.reset" for e in a.evidence)


def test_reset_to_isd_after_new_lesion_resolves():
    a = run(tp(0, 60), tp(56, 60, new=[nl("N", 12)]), tp(98, 58))
    assert cats(a) == ["iUPD", "iSD"] and a.category == "iSD"


def test_remains_iupd_while_new_lesion_persists_unchanged():
    a = run(tp(0, 60), tp(56, 40, new=[nl("N", 12)]), tp(98, 40, new=[nl("N", 12)]))
    assert cats(a) == ["iUPD", "iUPD"]


def test_iupd_followed_by_ne_keeps_ibor_iupd():
    a = run(tp(0, 50), tp(56, 62), tp(98, None))
    assert cats(a) == ["iUPD", "NE"]
    assert a.category == "NE" and a.values["iBOR"] == "iUPD" and a.missing
    # the pending iUPD can still be confirmed after the NE
    a = run(tp(0, 50), tp(56, 62), tp(98, None), tp(140, 70))
    assert cats(a) == ["iUPD", "NE", "iCPD"]
    assert a.values["progression_date_for_PFS"] == D0 + timedelta(days=56)


@pytest.mark.parametrize("gap,expected", [(27, "iUPD"), (28, "iCPD"), (56, "iCPD"), (57, "iCPD")])
def test_confirmation_window(gap, expected):
    a = run(tp(0, 50), tp(56, 62), tp(56 + gap, 70))
    assert a.category == expected
    late = any("recommended window" in n for n in a.notes)
    assert late is (gap > 56)


def test_icpd_is_final():
    a = run(tp(0, 50), tp(56, 62), tp(98, 70), tp(140, 30))
    assert cats(a) == ["iUPD", "iCPD", "iCPD"]


# --- response confirmation and iBOR ----------------------------------------------------------------
@pytest.mark.parametrize("gap,confirmed", [(27, False), (28, True)])
def test_ipr_confirmed_after_28_days(gap, confirmed):
    a = run(tp(0, 100), tp(42, 60), tp(42 + gap, 60))
    assert a.category == "iPR" and a.confirmed is confirmed


def test_icr_confirmation_and_ibor_with_confirmation_required():
    a = run(tp(0, 100), tp(42, 60), tp(84, 0), confirmation_required=True)
    assert a.category == "iCR" and not a.confirmed and a.values["iBOR"] == "iPR"
    a = run(tp(0, 100), tp(42, 0), tp(84, 0), confirmation_required=True)
    assert a.confirmed and a.values["iBOR"] == "iCR"
    a = run(tp(0, 100), tp(42, 60), tp(84, 120), confirmation_required=True)
    assert a.values["iBOR"] == "iSD"


def test_ibor_min_sd_interval():
    a = run(tp(0, 50), tp(35, 50), tp(77, 62), min_sd_days=42)
    assert a.values["iBOR"] == "iUPD"
    a = run(tp(0, 50), tp(42, 50), tp(84, 62), min_sd_days=42)
    assert a.values["iBOR"] == "iSD"


def test_every_category_reachable():
    seen = {
        run(tp(0, 50), tp(56, 0)).category,
        run(tp(0, 50), tp(56, 30)).category,
        run(tp(0, 50), tp(56, 50)).category,
        run(tp(0, nt="non-CR/non-PD"), tp(56, nt="non-CR/non-PD")).category,
        run(tp(0, 50), tp(56, 62)).category,
        run(tp(0, 50), tp(56, 62), tp(98, 70)).category,
        run(tp(0, 50), tp(56, None)).category,
    }
    assert seen == set(ir.LABELS)


def test_refs_reach_evidence():
    a = run(tp(0, 50, ref="DiagnosticReport/b"), tp(56, 62, ref="DiagnosticReport/f"))
    assert any("DiagnosticReport/f" in e.refs for e in a.evidence if e.rule == "irecist.iupd")


# --- properties ------------------------------------------------------------------------------------
sizes = st.decimals(min_value=1, max_value=300, places=1, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(base=sizes, follow=st.decimals(min_value=0, max_value=600, places=1))
def test_property_single_follow_up_matches_exact_rules(base, follow):
    a = run(tp(0, base), tp(56, follow))
    b, f = Fraction(base), Fraction(follow)
    if (f - b) / b >= Fraction(1, 5) and f - b >= 5:
        assert a.category == "iUPD"
    elif f == 0:
        assert a.category == "iCR"
    elif (f - b) / b <= Fraction(-3, 10):
        assert a.category == "iPR"
    else:
        assert a.category == "iSD"


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.decimals(min_value=0, max_value=Decimal("4.9"), places=1), min_size=1, max_size=4))
def test_property_cumulative_increase_confirms_once_5_mm(steps):
    series = [tp(0, 50), tp(56, 62)]
    total, day = Decimal(62), 56
    for s in steps:
        day += 42
        total += s
        series.append(tp(day, total))
    a = run(*series)
    assert a.category == ("iCPD" if total - 62 >= 5 else "iUPD")


def test_baseline_non_target_description_means_present():
    a = run(tp(0, 35, nt="small right pleural effusion (malignant)"), tp(56, 33, nt="PD"))
    assert a.category == "iUPD"
    assert any("read as non-target disease present" in n for n in a.notes)
