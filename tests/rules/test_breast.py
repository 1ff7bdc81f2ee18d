"""Tests for rules/breast.py (breast pCR and RCB; criteria.md §8)."""
from __future__ import annotations

import json
import math
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rules import breast
from rules.base import Outcome
from rules.breast import (
    BreastPathologyInputs,
    RcbMeasurements,
    assess,
    compute_rcb,
    parse_ypn,
    parse_ypt,
    rcb_class,
    split_yptn,
)

VIGNETTES = Path(__file__).resolve().parents[3] / "shared" / "vignettes" / "public.json"
SURG = date(2024, 7, 2)
AS_OF = date(2024, 8, 1)


def rcbm(d1="20", d2="15", ca="10", cis="0", ln=0, dmet="0", ref=None):
    return RcbMeasurements(Decimal(d1), Decimal(d2), Decimal(ca), Decimal(cis), ln, Decimal(dmet), ref)


def run(ypT="ypT0", ypN="ypN0", as_of=AS_OF, surgery_date=SURG, **kw):
    opts = {k: kw.pop(k) for k in list(kw) if k in ("pcr_definition", "itc_is_pcr", "mol_positive_is_pcr", "inclusive_rcb_boundaries")}
    return assess(BreastPathologyInputs(surgery_date, ypT, ypN, **kw), as_of, **opts)


def float_rcb(d1, d2, ca, cis, ln, dmet):
    """Independent float cross-check of the Symmans formula (test only)."""
    finv = (1 - cis / 100) * (ca / 100)
    dprim = math.sqrt(d1 * d2)
    a = 1.4 * (finv * dprim) ** 0.17 if finv * dprim > 0 else 0.0
    x = 4 * (1 - 0.75 ** ln) * dmet
    return a + (x ** 0.17 if x > 0 else 0.0)


# ---------------------------------------------------------------------------------------------------
# vignette adapter
# ---------------------------------------------------------------------------------------------------

def breast_inputs_from_vignette(v):
    i = v["inputs"]
    ypT, ypN = i.get("ypT"), i.get("ypN")
    if "ypTN" in i:
        ypT, ypN = split_yptn(i["ypTN"])
    rcb = None
    if "tumor_bed_d1_mm" in i:
        rcb = RcbMeasurements(
            Decimal(str(i["tumor_bed_d1_mm"])), Decimal(str(i["tumor_bed_d2_mm"])),
            Decimal(str(i["cancer_cellularity_pct"])), Decimal(str(i["in_situ_pct_of_cancer"])),
            int(i["positive_lymph_nodes"]), Decimal(str(i["largest_nodal_metastasis_mm"])),
        )
    surgery = date.fromisoformat(i["surgery_date"]) if i.get("surgery_date") else None
    progression = date.fromisoformat(i["progression_date"]) if i.get("progression_date") else None
    not_operated = bool(i.get("not_operated_due_to_progression") or i.get("progression_before_surgery")) or (
        not ypT and any(isinstance(x, str) and "progress" in x.lower() for x in i.values())
    )
    return BreastPathologyInputs(
        surgery, ypT, ypN, residual_dcis=i.get("residual_DCIS"), residual_lvi=i.get("LVI"), rcb=rcb,
        not_operated_due_to_progression=not_operated, progression_date=progression,
    ), surgery or progression


def _vignettes():
    data = json.loads(VIGNETTES.read_text())
    return [v for v in data if v["id"].startswith("PCR-")]


@pytest.mark.parametrize("v", _vignettes(), ids=lambda v: v["id"])
def test_public_vignette(v):
    inputs, when = breast_inputs_from_vignette(v)
    a = assess(inputs, when or AS_OF)
    exp = v["expected"]
    assert a.category in exp.get("accept", [exp["category"]])
    assert a.category == exp["category"]
    for key in ("pCR_ypT0is_ypN0", "pCR_ypT0_ypN0", "RCB_class"):
        if key in exp:
            assert a.values[key] == exp[key], key
    if "RCB_index" in exp:
        assert a.values["RCB_index"] == Decimal(str(exp["RCB_index"])).quantize(Decimal("0.001"))
    assert a.criteria == v["criteria"]
    assert not a.missing
    assert a.confirmed is True


def test_vignettes_present():
    assert {"PCR-01", "PCR-03", "PCR-05", "PCR-07"} <= {v["id"] for v in _vignettes()}


# ---------------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text,code,invasive,in_situ",
    [("ypT0", "0", False, False), ("ypTis", "is", False, True), ("ypTis (DCIS)", "is", False, True),
     ("ypT1mi", "1mi", True, False), ("ypT1a", "1a", True, False), ("ypT1c(m)", "1c", True, False),
     ("ypT2", "2", True, False), ("ypT4d", "4d", True, False), ("pT0", "0", False, False),
     ("ypTX", "X", None, False)],
)
def test_parse_ypt(text, code, invasive, in_situ):
    t = parse_ypt(text)
    assert (t.code, t.invasive, t.in_situ) == (code, invasive, in_situ)


@pytest.mark.parametrize(
    "text,code,itc,mol,positive",
    [("ypN0", "0", False, False, False), ("ypN0 (0/3 sentinel nodes)", "0", False, False, False),
     ("ypN0(i+)", "0", True, False, False), ("ypN0(i+)(sn)", "0", True, False, False),
     ("ypN0(i-)", "0", False, False, False), ("ypN0(mol+)", "0", False, True, False),
     ("ypN0(mol-)", "0", False, False, False), ("ypN1mi", "1mi", False, False, True),
     ("ypN1mi (1.5 mm deposit in 1/4 nodes)", "1mi", False, False, True), ("ypN1a", "1a", False, False, True),
     ("ypN2a", "2a", False, False, True), ("ypN3c", "3c", False, False, True), ("ypNX", "X", False, False, None)],
)
def test_parse_ypn(text, code, itc, mol, positive):
    n = parse_ypn(text)
    assert (n.code, n.itc, n.mol, n.macro_or_micro) == (code, itc, mol, positive)


@pytest.mark.parametrize("bad", ["", "T5", "ypQ0", "residual"])
def test_parse_rejects_garbage(bad):
    with pytest.raises(ValueError):
        parse_ypt(bad)
    with pytest.raises(ValueError):
        parse_ypn(bad)


def test_split_yptn():
    assert split_yptn("ypT1a ypN0") == ("ypT1a", "ypN0")
    assert split_yptn("ypTis ypN0(i+)(sn)") == ("ypTis", "ypN0(i+)(sn)")
    assert split_yptn("ypT2 ypN2a") == ("ypT2", "ypN2a")


# ---------------------------------------------------------------------------------------------------
# pCR decision table
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "ypT,ypN,extra,pcr_is,pcr_strict",
    [
        ("ypT0", "ypN0", {}, True, True),
        ("ypTis", "ypN0", {}, True, False),  # residual DCIS: pCR under ypT0/is only
        ("ypT0", "ypN0", {"residual_dcis": True}, True, False),
        ("ypT1mi", "ypN0", {}, False, False),
        ("ypT1a", "ypN0", {}, False, False),
        ("ypT0", "ypN0(i+)", {}, False, False),  # isolated tumour cells: not pCR
        ("ypT0", "ypN0(mol+)", {}, False, False),
        ("ypT0", "ypN1mi", {}, False, False),  # micrometastasis: not pCR
        ("ypT0", "ypN1a", {}, False, False),
        ("ypT0", "ypN0", {"residual_lvi": True}, False, False),
        ("ypTis", "ypN0(i-)", {}, True, False),
    ],
)
def test_pcr_definitions(ypT, ypN, extra, pcr_is, pcr_strict):
    a = run(ypT, ypN, **extra)
    assert a.values["pCR_ypT0is_ypN0"] is pcr_is
    assert a.values["pCR_ypT0_ypN0"] is pcr_strict
    assert a.category == (breast.PCR if pcr_is else breast.NOT_PCR)
    assert a.outcome is (Outcome.COMPLETE if pcr_is else Outcome.STABLE)
    strict = run(ypT, ypN, pcr_definition="ypT0 ypN0", **extra)
    assert strict.category == (breast.PCR if pcr_strict else breast.NOT_PCR)


def test_pcr_definition_validated():
    with pytest.raises(ValueError):
        run(pcr_definition="ypT0/is")


def test_itc_and_mol_options():
    assert run("ypT0", "ypN0(i+)", itc_is_pcr=True).category == breast.PCR
    assert run("ypT0", "ypN0(mol+)", mol_positive_is_pcr=True).category == breast.PCR
    assert run("ypT0", "ypN1mi", itc_is_pcr=True, mol_positive_is_pcr=True).category == breast.NOT_PCR


def test_progression_without_surgery():
    a = assess(BreastPathologyInputs(None, not_operated_due_to_progression=True, progression_date=date(2024, 6, 1)), AS_OF)
    assert a.category == breast.NOT_PCR
    assert a.outcome is Outcome.PROGRESSION
    assert a.values["pCR_ypT0is_ypN0"] is False and a.values["pCR_ypT0_ypN0"] is False
    assert a.assessment_date == date(2024, 6, 1)
    assert len(a.history) == 1


@pytest.mark.parametrize(
    "ypT,ypN,phrase",
    [("ypTX", "ypN0", "ypTX"), ("ypT0", "ypNX", "ypNX"), (None, "ypN0", "ypT"), ("ypT0", None, "ypN"),
     ("residual", "ypN0", "recognised")],
)
def test_missing_or_unusable_staging_not_evaluable(ypT, ypN, phrase):
    a = run(ypT, ypN)
    assert a.category == breast.NOT_EVALUABLE
    assert a.outcome is Outcome.NOT_EVALUABLE
    assert any(phrase in m for m in a.missing)


def test_surgery_after_as_of_not_evaluable():
    a = run(surgery_date=date(2024, 9, 1), as_of=AS_OF)
    assert a.category == breast.NOT_EVALUABLE and a.missing and a.assessment_date is None


def test_history_and_refs():
    a = run("ypT1a", "ypN0", ref="DiagnosticReport/path1", rcb=rcbm(ref="Observation/rcb1"))
    assert [h.date for h in a.history] == [SURG]
    assert a.history[0].category == breast.NOT_PCR
    rcb_ev = next(e for e in a.evidence if e.rule == "breast.rcb")
    assert "Observation/rcb1" in rcb_ev.refs and "DiagnosticReport/path1" in rcb_ev.refs
    assert "1.537" in rcb_ev.text and "RCB-II" in rcb_ev.text


# ---------------------------------------------------------------------------------------------------
# RCB
# ---------------------------------------------------------------------------------------------------

def test_rcb_pcr_without_measurements_is_rcb0():
    a = run("ypTis", "ypN0")
    assert a.values["RCB_index"] == Decimal("0") and a.values["RCB_class"] == "RCB-0"


def test_rcb_absent_for_residual_disease_without_measurements():
    a = run("ypT2", "ypN1a")
    assert a.values["RCB_index"] is None and a.values["RCB_class"] is None
    assert any("RCB not calculated" in n for n in a.notes)
    assert not a.missing  # pCR status is still decided


@pytest.mark.parametrize(
    "m,expected",
    [
        (dict(d1="20", d2="15", ca="10", cis="0"), "1.537"),  # PCR-05
        (dict(d1="40", d2="30", ca="50", cis="10", ln=4, dmet="12"), "4.043"),  # PCR-07
        (dict(d1="10", d2="10", ca="100", cis="100"), "0.000"),  # in situ only
        (dict(d1="0", d2="0", ca="0", cis="0", ln=2, dmet="3"), None),
        (dict(d1="25", d2="8", ca="30", cis="20", ln=1, dmet="2"), None),
        (dict(d1="60", d2="50", ca="80", cis="5", ln=12, dmet="25"), None),
    ],
)
def test_rcb_formula(m, expected):
    r = compute_rcb(rcbm(**m))
    f = float_rcb(float(m["d1"]), float(m["d2"]), float(m["ca"]), float(m["cis"]), m.get("ln", 0), float(m.get("dmet", "0")))
    assert abs(float(r.index) - f) < 1e-9
    if expected is not None:
        assert r.index.quantize(Decimal("0.001")) == Decimal(expected)


def test_rcb_precision_is_at_least_28_digits():
    r = compute_rcb(rcbm())
    assert len(r.index.as_tuple().digits) >= 28
    assert breast.RCB_PRECISION >= 28


@pytest.mark.parametrize(
    "index,inclusive,cls",
    [
        ("0", True, "RCB-0"),
        ("0.001", True, "RCB-I"),
        ("1.359", True, "RCB-I"),
        ("1.36", True, "RCB-I"),
        ("1.36", False, "RCB-II"),
        ("1.3600000001", True, "RCB-II"),
        ("3.28", True, "RCB-II"),
        ("3.28", False, "RCB-III"),
        ("3.2799999", False, "RCB-II"),
        ("3.2800001", True, "RCB-III"),
    ],
)
def test_rcb_class_boundaries(index, inclusive, cls):
    assert rcb_class(Decimal(index), inclusive=inclusive) == cls


def test_rcb_classes_reachable_through_assess():
    seen = set()
    for kw in (dict(ca="0"), dict(d1="5", d2="5", ca="2"), dict(), dict(d1="40", d2="30", ca="50", cis="10", ln=4, dmet="12")):
        a = run("ypT1a", "ypN0", rcb=rcbm(**kw))
        seen.add(a.values["RCB_class"])
    assert seen == {"RCB-0", "RCB-I", "RCB-II", "RCB-III"}


def test_rcb_boundary_option_passed_through(monkeypatch):
    r = compute_rcb(rcbm())
    monkeypatch.setattr(breast, "RCB_II_UPPER", r.index)  # make the PCR-05 index sit exactly on the boundary
    assert run("ypT1a", "ypN0", rcb=rcbm()).values["RCB_class"] == "RCB-II"
    assert run("ypT1a", "ypN0", rcb=rcbm(), inclusive_rcb_boundaries=False).values["RCB_class"] == "RCB-III"


@pytest.mark.parametrize(
    "m,problem",
    [(dict(ca="120"), "cellularity"), (dict(cis="-1"), "in-situ"), (dict(d1="-5"), "d1"), (dict(ln=-1), "lymph nodes")],
)
def test_invalid_rcb_measurements(m, problem):
    with pytest.raises(ValueError):
        compute_rcb(rcbm(**m))
    a = run("ypT1a", "ypN0", rcb=rcbm(**m))
    assert a.category == breast.NOT_PCR
    assert a.values["RCB_index"] is None
    assert any(problem in n for n in a.notes)


def test_staging_from_rcb_when_ypTN_absent():
    a = run(None, None, rcb=rcbm(ca="0", ln=0))
    assert a.category == breast.PCR and a.values["RCB_class"] == "RCB-0"
    b = run(None, None, rcb=rcbm())
    assert b.category == breast.NOT_PCR and b.values["RCB_class"] == "RCB-II"


def test_inconsistent_staging_and_rcb_noted():
    a = run("ypT0", "ypN0", rcb=rcbm())
    assert a.category == breast.PCR  # pCR follows the staging
    assert any("disagree" in n for n in a.notes)


def test_itc_with_zero_rcb_is_rcb0_but_not_pcr():
    a = run("ypT0", "ypN0(i+)", rcb=rcbm(ca="0"))
    assert a.category == breast.NOT_PCR and a.values["RCB_class"] == "RCB-0"
    assert any("RCB index 0 but not pCR" in n for n in a.notes)


# ---------------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------------

mm = st.decimals(min_value=Decimal("0"), max_value=Decimal("150"), places=1, allow_nan=False, allow_infinity=False)
pct = st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), places=0, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(d1=mm, d2=mm, ca=pct, cis=pct, ln=st.integers(min_value=0, max_value=30), m1=mm, m2=mm)
def test_rcb_monotone_in_dmet(d1, d2, ca, cis, ln, m1, m2):
    lo, hi = min(m1, m2), max(m1, m2)
    r_lo = compute_rcb(RcbMeasurements(d1, d2, ca, cis, ln, lo)).index
    r_hi = compute_rcb(RcbMeasurements(d1, d2, ca, cis, ln, hi)).index
    assert r_lo <= r_hi
    if ln > 0 and lo < hi:
        assert r_lo < r_hi


@settings(max_examples=100, deadline=None)
@given(d1=mm, d2=mm, ca=pct, cis=pct, l1=st.integers(min_value=0, max_value=30), l2=st.integers(min_value=0, max_value=30), dmet=mm)
def test_rcb_monotone_in_nodes(d1, d2, ca, cis, l1, l2, dmet):
    lo, hi = min(l1, l2), max(l1, l2)
    assert compute_rcb(RcbMeasurements(d1, d2, ca, cis, lo, dmet)).index <= compute_rcb(RcbMeasurements(d1, d2, ca, cis, hi, dmet)).index


@settings(max_examples=100, deadline=None)
@given(d1=mm, d2=mm, ca=pct, cis=pct, ln=st.integers(min_value=0, max_value=30), dmet=mm)
def test_rcb_zero_iff_no_invasive_burden(d1, d2, ca, cis, ln, dmet):
    r = compute_rcb(RcbMeasurements(d1, d2, ca, cis, ln, dmet))
    burden = (1 - cis / 100) * (ca / 100) * d1 * d2 > 0 or (ln > 0 and dmet > 0)
    assert (r.index > 0) == burden
    assert (r.rcb_class == "RCB-0") == (not burden)
    assume(burden)
    assert abs(float(r.index) - float_rcb(float(d1), float(d2), float(ca), float(cis), ln, float(dmet))) < 1e-9


# --- the RCB index as the card shows it never reads as another class ----------------------------------------------

@pytest.mark.parametrize("index,inclusive,shown", [
    ("1.3602", True, "1.3602"), ("1.3599", True, "1.360"), ("1.3599", False, "1.3599"), ("1.36", True, "1.360"),
    ("3.2801", True, "3.2801"), ("3.2799", False, "3.2799"), ("0.0004", True, "0.0004"), ("2.5", True, "2.500"),
    ("1.36000001", True, "1.36000001"),
])
def test_rcb_display_keeps_the_class(index, inclusive, shown):
    from rules.breast import rcb_display

    value, places = rcb_display(Decimal(index), inclusive=inclusive)
    assert str(value) == shown and places == max(3, -value.as_tuple().exponent)
    assert rcb_class(value, inclusive=inclusive) == rcb_class(Decimal(index), inclusive=inclusive)


@settings(max_examples=400, deadline=None)
@given(st.decimals(min_value=0, max_value=6, places=8, allow_nan=False, allow_infinity=False), st.booleans())
def test_rcb_display_class_is_the_exact_class(index, inclusive):
    from rules.breast import rcb_display

    value, places = rcb_display(index, inclusive=inclusive)
    assert rcb_class(value, inclusive=inclusive) == rcb_class(index, inclusive=inclusive)
    assert 3 <= places <= 8 and abs(value - index) <= Decimal(1).scaleb(-places) / 2


@pytest.mark.parametrize("d1,d2,ca,ln,dmet,cls,text", [
    (19, 15, 5, 0, 0, "RCB-II", "= 1.3602 -> RCB-II"),      # exactly 1.36 at 3 decimals, RCB-II exactly
    (30, 20, 20, 2, 5, "RCB-III", "= 3.2801 -> RCB-III"),
])
def test_rcb_card_text_near_a_cut_off_shows_the_class_it_names(d1, d2, ca, ln, dmet, cls, text):
    m = RcbMeasurements(Decimal(d1), Decimal(d2), Decimal(ca), Decimal(0), ln, Decimal(dmet))
    a = assess(BreastPathologyInputs(SURG, "ypT1b ypN0" if ln == 0 else "ypT1c ypN1a", rcb=m), AS_OF)
    assert a.values["RCB_class"] == cls
    line = next(e.text for e in a.evidence if e.text.startswith("RCB = "))
    assert text in line, line
    assert rcb_class(a.values["RCB_index"]) == cls
