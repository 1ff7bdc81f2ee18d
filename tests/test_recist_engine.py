"""RECIST 1.1 decision tables (criteria.md §2): target response, Tables 1-3, boundaries, properties."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import recist as r
from rules.base import Outcome

D0 = date(2024, 1, 8)
AS_OF = date(2026, 1, 1)


def tp(days, *sizes, nodal=(), nt=None, new="no", reported=None, too_small=()):
    targets = tuple(
        r.TargetMeasurement(f"T{i}", i in nodal, None if s is None else Decimal(str(s)), too_small=i in too_small)
        for i, s in enumerate(sizes))
    return r.Timepoint(D0 + timedelta(days=days), targets, nt, new, reported)


def run(*tps, **kw):
    opts = {k: kw.pop(k) for k in ("continuing_pr",) if k in kw}
    return r.assess(r.RecistInputs(tuple(tps), **kw), AS_OF, **opts)


# --- target response (§2.4), each threshold below / at / above ---------------------------------
@pytest.mark.parametrize("current,expected", [
    (71, "SD"),      # -29 %: just short of PR
    (70, "PR"),      # -30.0 % exactly: PR (inclusive)
    (69, "PR"),
])
def test_pr_boundary_is_inclusive(current, expected):
    assert run(tp(0, 100), tp(56, current)).category == expected


@pytest.mark.parametrize("nadir,current,expected", [
    (40, 47, "PR"),   # +17.5 %, +7 mm: not PD (continuing PR); strict SD
    (40, 48, "PD"),   # +20 % exactly and +8 mm: PD
    (20, 24, "PR"),   # +20 % but only +4 mm: not PD (both conditions needed)
    (20, 25, "PD"),   # +25 % and +5 mm exactly: PD
])
def test_pd_needs_twenty_percent_and_five_mm_over_nadir(nadir, current, expected):
    a = run(tp(0, 100), tp(56, nadir), tp(112, current))
    assert a.category == expected


def test_strict_reading_gives_sd_after_pr():
    a = run(tp(0, 30), tp(56, 20), tp(112, 24), continuing_pr=False)
    assert a.category == "SD"
    assert a.values["best_overall_response"] == "PR"


def test_pd_from_nadir_while_below_baseline():
    a = run(tp(0, 60, 40), tp(56, 30, 20), tp(112, 24, 16), tp(168, 30, 20))
    assert a.category == "PD"
    assert a.values["nadir_sum_mm"] == 40 and a.values["pct_change_from_nadir"] == 25
    assert [h.category for h in a.history[1:]] == ["PR", "PR", "PD"]
    assert a.values["best_overall_response"] == "PR"


def test_cr_needs_nodes_below_ten_mm_short_axis():
    assert run(tp(0, 22, 18, nodal={1}), tp(56, 0, 9, nodal={1})).category == "CR"
    a = run(tp(0, 22, 18, nodal={1}), tp(56, 0, 10, nodal={1}))
    assert a.category == "PR" and a.values["target_sum_mm"] == 10


def test_too_small_counts_five_mm():
    a = run(tp(0, 20, 15), tp(56, None, 0, too_small={0}))
    assert a.category == "PR" and a.values["target_sum_mm"] == 5


def test_missing_target_is_ne_unless_pd_is_proven():
    assert run(tp(0, 20, 20, 10), tp(56, 20, 20, None)).category == "NE"
    a = run(tp(0, 20, 20, 10), tp(56, 40, 40, None))
    assert a.category == "PD"


# --- Table 1 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("target_cur,nt,new,expected", [
    (0, "CR", "no", "CR"),
    (0, "non-CR/non-PD", "no", "PR"),
    (0, "NE", "no", "PR"),
    (60, "non-CR/non-PD", "no", "PR"),
    (60, "NE", "no", "PR"),
    (90, "non-CR/non-PD", "no", "SD"),
    (90, "NE", "no", "SD"),
    (None, "non-CR/non-PD", "no", "NE"),
    (130, "non-CR/non-PD", "no", "PD"),
    (90, "PD", "no", "PD"),
    (60, "non-CR/non-PD", "yes", "PD"),
    (60, "non-CR/non-PD", "equivocal", "PR"),
])
def test_table1_overall_response(target_cur, nt, new, expected):
    a = run(tp(0, 100, nt="non-CR/non-PD"), tp(56, target_cur, nt=nt, new=new))
    assert a.category == expected


# --- Table 2 (non-target disease only) ------------------------------------------------------------
@pytest.mark.parametrize("nt,new,expected", [
    ("CR", "no", "CR"), ("non-CR/non-PD", "no", "non-CR/non-PD"), ("NE", "no", "NE"),
    ("PD", "no", "PD"), ("non-CR/non-PD", "yes", "PD"),
])
def test_table2_non_target_only(nt, new, expected):
    a = run(tp(0, nt="non-CR/non-PD"), tp(56, nt=nt, new=new))
    assert a.category == expected


# --- confirmation and Table 3 ----------------------------------------------------------------------
def test_confirmation_at_28_days_not_27():
    assert run(tp(0, 100), tp(56, 60), tp(83, 60)).confirmed is False
    a = run(tp(0, 100), tp(56, 60), tp(84, 60))
    assert a.confirmed is True and a.values["response_first_met"] == D0 + timedelta(days=56)


def test_unconfirmed_response_gives_the_date_to_confirm():
    a = run(tp(0, 100), tp(56, 60))
    assert a.confirmed is False
    assert a.values["confirm_on_or_after"] == D0 + timedelta(days=84)


@pytest.mark.parametrize("first,second,expected", [
    (0, 0, "CR"),        # CR then CR
    (60, 60, "PR"),      # PR then PR
    (60, 0, "PR"),       # PR then CR
    (60, 90, "SD"),      # PR then SD
    (60, 200, "SD"),     # PR then PD, SD duration met (day 56 >= 42)
])
def test_table3_bor_with_confirmation(first, second, expected):
    a = run(tp(0, 100), tp(56, first), tp(98, second), confirmation_required=True)
    assert a.values["best_overall_response"] == expected


def test_sd_before_the_minimum_interval_then_pd_gives_bor_pd():
    a = run(tp(-2, reported=None), r.Timepoint(date(2024, 2, 14), (), None, "no", "SD"),
            r.Timepoint(date(2024, 3, 27), (), None, "no", "PD"), treatment_start=date(2024, 1, 10))
    assert a.category == "PD" and a.values["best_overall_response"] == "PD"


def test_pd_is_progression_outcome_and_has_evidence():
    a = run(tp(0, 50), tp(56, 70))
    assert a.outcome is Outcome.PROGRESSION
    assert any(e.rule == "recist.target.pd" and "+40 %" in e.text for e in a.evidence)


# --- target selection (§4.2) -----------------------------------------------------------------------
def test_select_targets_five_total_two_per_organ_nodes_one_organ():
    les = [r.BaselineLesion(f"L{i}", False, Decimal(50 - i), "liver") for i in range(3)]
    les += [r.BaselineLesion("N1", True, Decimal(30)), r.BaselineLesion("N2", True, Decimal(20)),
            r.BaselineLesion("N3", True, Decimal(16)), r.BaselineLesion("N4", True, Decimal(12)),
            r.BaselineLesion("N5", True, Decimal(8)), r.BaselineLesion("P1", False, Decimal(25), "left lung"),
            r.BaselineLesion("P2", False, Decimal(24), "right lung"), r.BaselineLesion("P3", False, Decimal(9), "bone")]
    sel = r.select_targets(les)
    assert sel.targets == ("L0", "L1", "N1", "P1", "P2")
    assert "L2" in sel.non_targets and "N3" in sel.non_targets and "N4" in sel.non_targets and "P3" in sel.non_targets
    assert sel.not_disease == ("N5",)


# --- property: a larger current sum never gives a better category ---------------------------------
ORDER = {"CR": 5, "PR": 4, "SD": 3, "NE": 2, "PD": 1}


@settings(max_examples=300, deadline=None)
@given(base=st.integers(10, 300), nadir=st.integers(0, 300), cur=st.integers(0, 400), more=st.integers(1, 100))
def test_larger_sum_never_better(base, nadir, cur, more):
    def cat(c):
        return run(tp(0, base), tp(56, nadir), tp(112, c), continuing_pr=False).category
    assert ORDER[cat(cur + more)] <= ORDER[cat(cur)]


# --- continuing PR needs a confirmed PR where confirmation is required (criteria.md §2.4 note; §2.9 Table 3) ----
def test_unconfirmed_pr_does_not_continue_when_confirmation_is_required():
    a = run(tp(0, 50), tp(56, 35), tp(112, 40), confirmation_required=True)
    assert a.category == "SD" and a.values["best_overall_response"] == "SD"  # Table 3: PR then SD = SD


def test_confirmed_pr_continues_when_confirmation_is_required():
    a = run(tp(0, 50), tp(56, 35), tp(84, 34), tp(140, 40), confirmation_required=True)
    assert a.category == "PR" and a.values["best_overall_response"] == "PR"


def test_pr_continues_at_once_when_confirmation_is_not_required():
    a = run(tp(0, 50), tp(56, 35), tp(112, 40))
    assert a.category == "PR" and a.values["best_overall_response"] == "PR"


# --- reappearance after an overall CR at the previous assessment is PD (criteria.md §2.6) ----------------------
@pytest.mark.parametrize("sizes,nodal,expected", [
    ((4, 0), (), "PD"),          # non-nodal target back at 4 mm (< 5 mm absolute) after CR: PD
    ((0, 10), (1,), "PD"),       # node back to 10 mm short axis after CR: pathological again, PD
    ((0, 9.9), (1,), "CR"),      # node 9.9 mm: still normal, CR continues
])
def test_reappearance_after_cr(sizes, nodal, expected):
    a = run(tp(0, 20, 15, nodal=nodal), tp(56, 0, 8 if nodal else 0, nodal=nodal), tp(112, *sizes, nodal=nodal))
    assert a.category == expected


def test_reappearance_is_not_pd_when_the_previous_assessment_was_not_cr():
    a = run(tp(0, 20, 15), tp(56, 0, 5), tp(112, 4, 0))  # PR, then 4 mm: PD needs >= 5 mm over the 4 mm nadir
    assert a.category == "PR"
