"""Tests for rules/ata2015.py (ATA 2015 DTC response to therapy; criteria.md §7)."""
from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import ata2015 as ata
from rules.ata2015 import (
    AtaInputs,
    AtaRisk,
    ImagingFinding,
    ImagingModality,
    ImagingResult,
    Surgery,
    TgAbValue,
    TgCondition,
    TgValue,
    TshValue,
    assess,
)
from rules.base import Outcome

VIGNETTES = Path(__file__).resolve().parents[3] / "shared" / "vignettes" / "public.json"
D0 = date(2024, 10, 1)
AS_OF = date(2025, 1, 1)
SUPP, RHTSH, WD = TgCondition.SUPPRESSED, TgCondition.STIMULATED_RHTSH, TgCondition.STIMULATED_WITHDRAWAL
RAI, NO_RAI, LOB = Surgery.TOTAL_THYROIDECTOMY_RAI, Surgery.TOTAL_THYROIDECTOMY_NO_RAI, Surgery.LOBECTOMY


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------

def tg(value, cond=SUPP, d=D0, below=False, tsh=None, ref=None):
    return TgValue(d, Decimal(str(value)), cond, below_detection_limit=below,
                   tsh_mIU_L=None if tsh is None else Decimal(str(tsh)), ref=ref)


def neg_ab(d=D0, ref=None):
    return TgAbValue(d, positive=False, ref=ref)


def ab(value, d=D0, assay="A", positive=True, ref=None):
    return TgAbValue(d, Decimal(str(value)), positive=positive, assay=assay, ref=ref)


def us(result=ImagingResult.NEGATIVE, d=D0, desc="", ref=None, modality=ImagingModality.NECK_US):
    return ImagingFinding(d, modality, result, desc, ref)


def run(surgery=RAI, tgs=(), tgabs=None, imaging=None, as_of=AS_OF, **kw):
    risk = kw.pop("risk", None)
    prior = kw.pop("prior_excellent_response", False)
    tshs = kw.pop("tsh", ())
    inputs = AtaInputs(
        surgery,
        tg=tuple(tgs),
        tgab=(neg_ab(),) if tgabs is None else tuple(tgabs),
        imaging=(us(),) if imaging is None else tuple(imaging),
        tsh=tuple(tshs),
        initial_risk=risk,
        prior_excellent_response=prior,
    )
    return assess(inputs, as_of, **kw)


# ---------------------------------------------------------------------------------------------------
# vignette adapter
# ---------------------------------------------------------------------------------------------------

def _num(x):
    """Decimal and below-detection flag from 0.1, "0.1", "<0.1 (text)"."""
    if isinstance(x, (int, float)):
        return Decimal(str(x)), False
    m = re.search(r"(<)?\s*([0-9]+(?:\.[0-9]+)?)", str(x))
    assert m, x
    return Decimal(m.group(2)), bool(m.group(1))


def _condition(text):
    t = (text or "suppressed").lower()
    if "rhtsh" in t or "recombinant" in t:
        return RHTSH
    if "withdraw" in t or "stimulated" in t:
        return WD if "withdraw" in t else RHTSH
    return SUPP


def _imaging_result(text):
    t = str(text).lower().strip()
    if "faint" in t:
        return ImagingResult.FAINT_THYROID_BED_UPTAKE
    if "non-specific" in t or "nonspecific" in t or "indeterminate" in t or "equivocal" in t:
        return ImagingResult.NONSPECIFIC
    if t.startswith(("negative", "normal", "no uptake", "no ", "unremarkable")):
        return ImagingResult.NEGATIVE
    return ImagingResult.DISEASE


_MODALITY_KEYS = {
    "neck_US": ImagingModality.NECK_US,
    "diagnostic_WBS": ImagingModality.WBS,
    "WBS": ImagingModality.WBS,
    "CT": ImagingModality.CROSS_SECTIONAL,
    "CT_chest": ImagingModality.CROSS_SECTIONAL,
    "cross_sectional": ImagingModality.CROSS_SECTIONAL,
    "FDG_PET": ImagingModality.CROSS_SECTIONAL,
    "MRI": ImagingModality.CROSS_SECTIONAL,
}


def ata_inputs_from_vignette(v):
    i = v["inputs"]
    s = i["surgery"].lower()
    surgery = LOB if "lobectomy" in s else (NO_RAI if ("no rai" in s or "without rai" in s) else RAI)
    dates = [date.fromisoformat(x) for x in (i["dates"] if "dates" in i else [i["date"]])]
    last = dates[-1]
    cond = _condition(i.get("Tg_condition"))
    tgs = []
    if "Tg_ng_mL" in i:
        raw = i["Tg_ng_mL"]
        seq = raw if isinstance(raw, list) else [raw]
        for d, x in zip(dates[-len(seq):], seq):
            value, below = _num(x)
            tgs.append(TgValue(d, value, cond, below_detection_limit=below))
    tgabs = []
    if "TgAb_IU_mL" in i:
        raw = i["TgAb_IU_mL"]
        seq = raw if isinstance(raw, list) else [raw]
        for d, x in zip(dates[-len(seq):], seq):
            value, below = _num(x)
            # the vignettes give TgAb in IU/mL only when positive (interfering antibodies)
            tgabs.append(TgAbValue(d, value, positive=not below, assay="vignette assay", below_detection_limit=below))
    elif "TgAb" in i:
        tgabs.append(TgAbValue(last, positive=str(i["TgAb"]).lower().startswith("positive")))
    imaging = [ImagingFinding(last, mod, _imaging_result(i[k]), str(i[k])) for k, mod in _MODALITY_KEYS.items() if k in i]
    risk = AtaRisk(i["ATA_initial_risk"].lower()) if "ATA_initial_risk" in i else None
    return AtaInputs(surgery, tg=tuple(tgs), tgab=tuple(tgabs), imaging=tuple(imaging), initial_risk=risk), last


def _vignettes():
    data = json.loads(VIGNETTES.read_text())
    return [v for v in data if v["id"].startswith("ATA-") or v["criteria"].startswith("ATA 2015")]


@pytest.mark.parametrize("v", _vignettes(), ids=lambda v: v["id"])
def test_public_vignette(v):
    inputs, last = ata_inputs_from_vignette(v)
    a = assess(inputs, last)
    exp = v["expected"]
    assert a.category in exp.get("accept", [exp["category"]])
    assert a.category == exp["category"]  # the defaults reproduce the preferred answer
    if "next_Tg_interval_months" in exp:
        assert a.values["next_Tg_interval_months"] == exp["next_Tg_interval_months"]
    assert a.criteria == v["criteria"]
    assert a.assessment_date == last
    assert not a.missing
    assert a.evidence


def test_vignettes_present():
    ids = {v["id"] for v in _vignettes()}
    assert {"ATA-01", "ATA-03", "ATA-05", "ATA-07", "ATA-09", "ATA-11"} <= ids


def test_ata05_alternative_boundary_is_accepted():
    v = next(v for v in _vignettes() if v["id"] == "ATA-05")
    inputs, last = ata_inputs_from_vignette(v)
    a = assess(inputs, last, biochemical_boundary="gt")
    assert a.category == ata.INDETERMINATE
    assert a.category in v["expected"]["accept"]
    assert a.values["next_Tg_interval_months"] == "6-12"


# ---------------------------------------------------------------------------------------------------
# boundaries: Haugen Table 11 (total thyroidectomy + RAI)
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value,cond,boundary,expected",
    [
        ("0.19", SUPP, "ge", ata.EXCELLENT),
        ("0.2", SUPP, "ge", ata.INDETERMINATE),  # 0.2 is not < 0.2
        ("0.21", SUPP, "ge", ata.INDETERMINATE),
        ("0.99", SUPP, "ge", ata.INDETERMINATE),
        ("1.0", SUPP, "ge", ata.BIOCHEMICAL_INCOMPLETE),
        ("1.0", SUPP, "gt", ata.INDETERMINATE),
        ("1.01", SUPP, "ge", ata.BIOCHEMICAL_INCOMPLETE),
        ("1.01", SUPP, "gt", ata.BIOCHEMICAL_INCOMPLETE),
        ("0.99", RHTSH, "ge", ata.EXCELLENT),
        ("1", RHTSH, "ge", ata.INDETERMINATE),
        ("1.01", WD, "ge", ata.INDETERMINATE),
        ("9.99", RHTSH, "ge", ata.INDETERMINATE),
        ("10", RHTSH, "ge", ata.BIOCHEMICAL_INCOMPLETE),
        ("10", WD, "gt", ata.INDETERMINATE),
        ("10.01", WD, "gt", ata.BIOCHEMICAL_INCOMPLETE),
        ("10.01", RHTSH, "ge", ata.BIOCHEMICAL_INCOMPLETE),
    ],
)
def test_rai_thresholds(value, cond, boundary, expected):
    a = run(RAI, [tg(value, cond)], biochemical_boundary=boundary)
    assert a.category == expected
    assert a.values["Tg_ng_mL"] == Decimal(value)
    assert a.values["Tg_boundary"] == ("\u2265" if boundary == "ge" else ">")


def test_boundary_option_validated():
    with pytest.raises(ValueError):
        run(RAI, [tg("1")], biochemical_boundary=">=")


def test_boundary_note_present():
    assert any("Boundary" in n for n in run(RAI, [tg("1")]).notes)


# ---------------------------------------------------------------------------------------------------
# boundaries: Momesso 2016 (no RAI, lobectomy)
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value,cond,expected",
    [
        ("0.19", SUPP, ata.EXCELLENT),
        ("0.2", SUPP, ata.INDETERMINATE),
        ("3.0", SUPP, ata.INDETERMINATE),  # ATA-11
        ("5", SUPP, ata.INDETERMINATE),  # "0.2-5" includes 5
        ("5.01", SUPP, ata.BIOCHEMICAL_INCOMPLETE),
        ("1.99", RHTSH, ata.EXCELLENT),
        ("2", RHTSH, ata.INDETERMINATE),
        ("10", WD, ata.INDETERMINATE),
        ("10.01", RHTSH, ata.BIOCHEMICAL_INCOMPLETE),
    ],
)
def test_no_rai_thresholds(value, cond, expected):
    a = run(NO_RAI, [tg(value, cond)])
    assert a.category == expected
    assert a.criteria == ata.CRITERIA_NO_RAI
    assert a.source == ata.SOURCE_NO_RAI


def test_no_rai_boundary_option_does_not_apply():
    assert run(NO_RAI, [tg("5")], biochemical_boundary="ge").category == ata.INDETERMINATE


@pytest.mark.parametrize(
    "value,expected",
    [("0.5", ata.EXCELLENT), ("29.99", ata.EXCELLENT), ("30", ata.INDETERMINATE), ("30.01", ata.BIOCHEMICAL_INCOMPLETE)],
)
def test_lobectomy_thresholds(value, expected):
    a = run(LOB, [tg(value)])
    assert a.category == expected
    assert a.criteria == ata.CRITERIA_NO_RAI


def test_lobectomy_single_value_note_and_option():
    a = run(LOB, [tg("12")])
    assert a.category == ata.EXCELLENT
    assert any("single value" in n for n in a.notes)
    b = run(LOB, [tg("12")], lobectomy_requires_tg_series=True)
    assert b.category == ata.INDETERMINATE
    c = run(LOB, [tg("11", d=D0 - timedelta(days=365)), tg("12")], lobectomy_requires_tg_series=True)
    assert c.category == ata.EXCELLENT
    assert c.values["Tg_trend"] == "stable"


def test_lobectomy_ignores_stimulated_tg():
    a = run(LOB, [tg("50", RHTSH)])
    assert a.category == ata.NOT_EVALUABLE
    assert any("suppressed" in m for m in a.missing)
    assert any("lobectomy" in n for n in a.notes)


def test_lobectomy_rising_tg_is_biochemical():
    a = run(LOB, [tg("10", d=D0 - timedelta(days=365)), tg("15")])
    assert a.category == ata.BIOCHEMICAL_INCOMPLETE
    assert any(e.rule == "ata.tg.rising" for e in a.evidence)


# ---------------------------------------------------------------------------------------------------
# rising Tg (Momesso)
# ---------------------------------------------------------------------------------------------------

EARLY = D0 - timedelta(days=180)


@pytest.mark.parametrize(
    "first,second,expected",
    [
        ("0.5", "0.75", ata.BIOCHEMICAL_INCOMPLETE),  # +50 %, +0.25 ng/mL: rising
        ("0.5", "0.74", ata.INDETERMINATE),  # +48 %
        ("0.4", "0.6", ata.BIOCHEMICAL_INCOMPLETE),  # +50 %, +0.2 exactly
        ("0.3", "0.49", ata.INDETERMINATE),  # +63 % but only +0.19 ng/mL
        ("0.1", "0.19", ata.EXCELLENT),  # inside the excellent range: not rising
    ],
)
def test_no_rai_rising_tg(first, second, expected):
    a = run(NO_RAI, [tg(first, d=EARLY), tg(second)])
    assert a.category == expected


def test_rising_tg_from_undetectable_uses_limit_as_lower_bound():
    a = run(NO_RAI, [tg("0.1", d=EARLY, below=True), tg("0.4")])
    assert a.category == ata.BIOCHEMICAL_INCOMPLETE  # >= +300 %, >= +0.3


def test_rising_tg_needs_similar_tsh():
    a = run(NO_RAI, [tg("1", d=EARLY, tsh="0.5"), tg("2", tsh="1.5")])  # 3-fold TSH difference
    assert a.category == ata.INDETERMINATE
    assert any("TSH differed" in n for n in a.notes)
    b = run(NO_RAI, [tg("1", d=EARLY, tsh="0.5"), tg("2", tsh="1.0")])  # exactly 2-fold: similar
    assert b.category == ata.BIOCHEMICAL_INCOMPLETE


def test_rising_tg_tsh_from_series_and_unknown_tsh_option():
    a = run(NO_RAI, [tg("1", d=EARLY), tg("2")], tsh=[TshValue(EARLY, Decimal("0.1")), TshValue(D0, Decimal("2"))])
    assert a.category == ata.INDETERMINATE
    assert a.values["TSH_mIU_L"] == Decimal("2")
    b = run(NO_RAI, [tg("1", d=EARLY), tg("2")])
    assert b.category == ata.BIOCHEMICAL_INCOMPLETE
    assert any("similar TSH assumed" in n for n in b.notes)
    c = run(NO_RAI, [tg("1", d=EARLY), tg("2")], rising_tg_requires_tsh=True)
    assert c.category == ata.INDETERMINATE


def test_rising_tg_in_table11_framework_is_note_only():
    a = run(RAI, [tg("0.3", d=EARLY), tg("0.8")])
    assert a.category == ata.INDETERMINATE
    assert any("no rising-Tg rule" in n for n in a.notes)


# ---------------------------------------------------------------------------------------------------
# detection limits and paired Tg
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "limit,cond,expected",
    [("0.1", SUPP, ata.EXCELLENT), ("0.2", SUPP, ata.EXCELLENT), ("0.5", SUPP, ata.INDETERMINATE),
     ("1", RHTSH, ata.EXCELLENT), ("2", RHTSH, ata.INDETERMINATE), ("5", SUPP, ata.INDETERMINATE)],
)
def test_undetectable_tg(limit, cond, expected):
    a = run(RAI, [tg(limit, cond, below=True)])
    assert a.category == expected
    assert a.values["Tg_below_detection_limit"] is True


def test_paired_suppressed_and_stimulated():
    # suppressed 0.3 (indeterminate range) + stimulated 0.8 five days later -> stimulated decides: excellent
    a = run(RAI, [tg("0.3", d=D0 - timedelta(days=5)), tg("0.8", RHTSH)])
    assert a.category == ata.EXCELLENT
    assert a.values["Tg_condition"] == RHTSH.value
    assert a.values["Tg_suppressed_ng_mL"] == Decimal("0.3")
    # suppressed undetectable + stimulated 5 -> indeterminate (the more sensitive test)
    b = run(RAI, [tg("0.1", d=D0 - timedelta(days=5)), tg("5", RHTSH)])
    assert b.category == ata.INDETERMINATE
    # a later suppressed value >= 1 outside the pairing window is the current work-up
    c = run(RAI, [tg("0.5", RHTSH, d=D0 - timedelta(days=400)), tg("1.5")])
    assert c.category == ata.BIOCHEMICAL_INCOMPLETE
    assert "Tg_stimulated_ng_mL" not in c.values
    # either value in the biochemical range counts
    d = run(RAI, [tg("1.2", d=D0 - timedelta(days=5)), tg("8", WD)])
    assert d.category == ata.BIOCHEMICAL_INCOMPLETE
    assert d.values["Tg_ng_mL"] == Decimal("1.2")


def test_pairing_window_boundary():
    inside = run(RAI, [tg("0.1", d=D0 - timedelta(days=ata.TG_PAIRING_DAYS)), tg("5", RHTSH)])
    assert inside.values.get("Tg_suppressed_ng_mL") == Decimal("0.1")
    outside = run(RAI, [tg("0.1", d=D0 - timedelta(days=ata.TG_PAIRING_DAYS + 1)), tg("5", RHTSH)])
    assert "Tg_suppressed_ng_mL" not in outside.values


# ---------------------------------------------------------------------------------------------------
# TgAb
# ---------------------------------------------------------------------------------------------------

def test_tgab_rising_is_biochemical_incomplete():
    a = run(RAI, [tg("0.1", below=True)], tgabs=[ab(40, EARLY), ab(60)])  # +50 % exactly
    assert a.category == ata.BIOCHEMICAL_INCOMPLETE
    assert a.values["TgAb_trend"] == "rising"
    assert a.outcome is Outcome.STABLE
    assert any(e.rule == "ata.tgab.rising" and "+50 %" in e.text for e in a.evidence)


def test_tgab_just_below_rise_threshold_is_indeterminate():
    a = run(RAI, [tg("0.1", below=True)], tgabs=[ab(40, EARLY), ab("59.99")])
    assert a.category == ata.INDETERMINATE
    assert a.values["TgAb_trend"] == "stable"


def test_tgab_rise_measured_from_nadir():
    a = run(RAI, [], tgabs=[ab(120, EARLY - timedelta(days=180)), ab(50, EARLY), ab(80)])
    assert a.values["TgAb_trend"] == "rising"  # +60 % from nadir 50 although below first value
    assert a.category == ata.BIOCHEMICAL_INCOMPLETE


@pytest.mark.parametrize("last,trend", [("50", "declining"), ("51", "stable"), ("49", "declining")])
def test_tgab_decline_boundary(last, trend):
    a = run(RAI, [], tgabs=[ab(100, EARLY), ab(last)])
    assert a.values["TgAb_trend"] == trend
    assert a.category == ata.INDETERMINATE


def test_tgab_de_novo_is_rising():
    a = run(RAI, [tg("0.1", below=True)], tgabs=[TgAbValue(EARLY, positive=False, assay="A"), ab(30)])
    assert a.category == ata.BIOCHEMICAL_INCOMPLETE
    assert any(e.rule == "ata.tgab.de_novo" for e in a.evidence)


def test_tgab_became_negative_makes_tg_interpretable():
    a = run(RAI, [tg("0.1")], tgabs=[ab(100, EARLY), TgAbValue(D0, positive=False, assay="A")])
    assert a.category == ata.EXCELLENT
    assert a.values["TgAb_trend"] == "declining"


def test_tgab_single_positive_is_indeterminate_with_note():
    a = run(RAI, [tg("0.1", below=True)], tgabs=[ab(80)])
    assert a.category == ata.INDETERMINATE
    assert a.values["TgAb_trend"] is None
    assert any("trend not assessable" in n for n in a.notes)


def test_tgab_different_assay_not_compared():
    a = run(RAI, [], tgabs=[ab(20, EARLY, assay="A"), ab(200, assay="B")])
    assert a.values["TgAb_trend"] is None
    assert a.category == ata.INDETERMINATE


def test_tgab_positivity_from_reference_limit():
    pos = TgAbValue(D0, Decimal("4.2"), assay="A", upper_reference_limit_IU_mL=Decimal("4"))
    neg = TgAbValue(D0, Decimal("4"), assay="A", upper_reference_limit_IU_mL=Decimal("4"))
    assert run(RAI, [tg("0.1")], tgabs=[pos]).category == ata.INDETERMINATE
    assert run(RAI, [tg("0.1")], tgabs=[neg]).category == ata.EXCELLENT


def test_tgab_interpretation_missing_is_not_evaluable():
    a = run(RAI, [tg("0.1")], tgabs=[TgAbValue(D0, Decimal("4.2"))])
    assert a.category == ata.NOT_EVALUABLE
    assert a.outcome is Outcome.NOT_EVALUABLE
    assert a.missing


def test_elevated_tg_with_positive_tgab():
    a = run(RAI, [tg("5")], tgabs=[ab(100, EARLY), ab(90)])
    assert a.category == ata.BIOCHEMICAL_INCOMPLETE
    b = run(RAI, [tg("5")], tgabs=[ab(100, EARLY), ab(90)], elevated_tg_counts_with_tgab=False)
    assert b.category == ata.INDETERMINATE


# ---------------------------------------------------------------------------------------------------
# imaging, structural disease and relapse
# ---------------------------------------------------------------------------------------------------

def test_structural_incomplete_any_tg():
    a = run(RAI, [tg("0.1")], imaging=[us(ImagingResult.DISEASE, desc="1.2 cm level VI node, FNA PTC", ref="Observation/us1")])
    assert a.category == ata.STRUCTURAL_INCOMPLETE
    assert a.outcome is Outcome.STABLE
    assert a.values["structural_recurrence"] is False
    ev = next(e for e in a.evidence if e.rule == "ata.structural")
    assert "Observation/us1" in ev.refs and "level VI" in ev.text


def test_structural_needs_no_tg_or_tgab():
    a = run(RAI, [], tgabs=[], imaging=[us(ImagingResult.DISEASE, modality=ImagingModality.CROSS_SECTIONAL)])
    assert a.category == ata.STRUCTURAL_INCOMPLETE
    assert not a.missing


def test_structural_after_excellent_is_relapse():
    early = D0 - timedelta(days=365)
    a = run(
        RAI,
        [tg("0.1", d=early), tg("2")],
        tgabs=[neg_ab(early), neg_ab()],
        imaging=[us(d=early), us(ImagingResult.DISEASE)],
    )
    assert [h.category for h in a.history] == [ata.EXCELLENT, ata.STRUCTURAL_INCOMPLETE]
    assert a.outcome is Outcome.RELAPSE
    assert a.category == ata.STRUCTURAL_INCOMPLETE
    assert "recurrence" in a.label
    assert a.values["structural_recurrence"] is True
    assert any("Structural recurrence" in n for n in a.notes)


def test_prior_excellent_flag_gives_relapse():
    a = run(RAI, [tg("0.1")], imaging=[us(ImagingResult.DISEASE)], prior_excellent_response=True)
    assert a.outcome is Outcome.RELAPSE


def test_biochemical_after_excellent_stays_stable_with_note():
    early = D0 - timedelta(days=365)
    a = run(RAI, [tg("0.1", d=early), tg("1.5")], tgabs=[neg_ab(early)], imaging=[us(d=early)])
    assert a.category == ata.BIOCHEMICAL_INCOMPLETE
    assert a.outcome is Outcome.STABLE
    assert any("Biochemical recurrence" in n for n in a.notes)


def test_latest_result_per_modality():
    early = D0 - timedelta(days=200)
    ct = us(ImagingResult.DISEASE, d=early, modality=ImagingModality.CROSS_SECTIONAL, desc="lung nodules")
    a = run(RAI, [tg("0.1")], imaging=[ct, us()])
    assert a.category == ata.STRUCTURAL_INCOMPLETE  # neck US does not clear the lungs
    b = run(RAI, [tg("0.1")], imaging=[us(ImagingResult.DISEASE, d=early), us()])
    assert b.category == ata.EXCELLENT  # newer neck US supersedes the older one


@pytest.mark.parametrize("result", [ImagingResult.NONSPECIFIC, ImagingResult.FAINT_THYROID_BED_UPTAKE])
def test_equivocal_imaging_is_indeterminate(result):
    mod = ImagingModality.WBS if result is ImagingResult.FAINT_THYROID_BED_UPTAKE else ImagingModality.NECK_US
    a = run(RAI, [tg("0.1")], imaging=[us(), us(result, modality=mod)])
    assert a.category == ata.INDETERMINATE
    assert any(e.rule == "ata.indeterminate.imaging" for e in a.evidence)


def test_biochemical_tg_wins_over_nonspecific_imaging():
    a = run(RAI, [tg("12", RHTSH)], imaging=[us(ImagingResult.NONSPECIFIC)])
    assert a.category == ata.BIOCHEMICAL_INCOMPLETE


# ---------------------------------------------------------------------------------------------------
# missing data, history, intervals, refs
# ---------------------------------------------------------------------------------------------------

def test_missing_imaging_not_evaluable():
    a = run(RAI, [tg("0.1")], imaging=[])
    assert a.category == ata.NOT_EVALUABLE and a.outcome is Outcome.NOT_EVALUABLE
    assert any("imaging" in m for m in a.missing)
    assert a.values["next_Tg_interval_months"] is None


def test_missing_tgab_not_evaluable():
    a = run(RAI, [tg("0.1")], tgabs=[])
    assert a.category == ata.NOT_EVALUABLE
    assert any("TgAb" in m for m in a.missing)


def test_missing_tg_not_evaluable():
    a = run(RAI, [])
    assert a.category == ata.NOT_EVALUABLE
    assert any("thyroglobulin" in m for m in a.missing)


def test_no_data_not_evaluable():
    a = assess(AtaInputs(RAI), AS_OF)
    assert a.category == ata.NOT_EVALUABLE and a.assessment_date is None and a.missing
    assert a.history == ()


def test_results_after_as_of_ignored():
    later = AS_OF + timedelta(days=10)
    a = run(RAI, [tg("0.1"), tg("5", d=later)], as_of=AS_OF)
    assert a.category == ata.EXCELLENT
    assert a.assessment_date == D0
    assert any("ignored" in n for n in a.notes)


def test_history_one_per_date_and_confirmed():
    d1, d2, d3 = D0 - timedelta(days=400), D0 - timedelta(days=200), D0
    a = run(RAI, [tg("0.5", d=d1), tg("0.3", d=d2), tg("0.1", d=d3)], tgabs=[neg_ab(d1)], imaging=[us(d=d1)])
    assert [h.date for h in a.history] == [d1, d2, d3]
    assert [h.category for h in a.history] == [ata.INDETERMINATE, ata.INDETERMINATE, ata.EXCELLENT]
    assert a.history[-1].outcome is Outcome.COMPLETE
    assert a.confirmed is True


@pytest.mark.parametrize(
    "risk,value,interval",
    [(AtaRisk.LOW, "0.1", "12-24"), (AtaRisk.INTERMEDIATE, "0.1", "12-24"), (AtaRisk.HIGH, "0.1", "6-12"),
     (None, "0.1", "12-24"), (AtaRisk.LOW, "0.5", "6-12"), (AtaRisk.LOW, "2", "6-12")],
)
def test_next_tg_interval(risk, value, interval):
    a = run(RAI, [tg(value)], risk=risk)
    assert a.values["next_Tg_interval_months"] == interval
    assert any(e.rule == "ata.followup.tg_interval" for e in a.evidence)
    if risk is None:
        assert any("risk not supplied" in n for n in a.notes)


def test_refs_copied_into_evidence():
    a = run(RAI, [tg("0.1", ref="Observation/tg1")], tgabs=[neg_ab(ref="Observation/ab1")], imaging=[us(ref="DiagnosticReport/us1")])
    refs = {r for e in a.evidence for r in e.refs}
    assert {"Observation/tg1", "Observation/ab1", "DiagnosticReport/us1"} <= refs


@pytest.mark.parametrize(
    "category,outcome",
    [(ata.EXCELLENT, Outcome.COMPLETE), (ata.INDETERMINATE, Outcome.INDETERMINATE),
     (ata.BIOCHEMICAL_INCOMPLETE, Outcome.STABLE), (ata.STRUCTURAL_INCOMPLETE, Outcome.STABLE)],
)
def test_every_category_reachable_with_outcome(category, outcome):
    cases = {
        ata.EXCELLENT: dict(tgs=[tg("0.1")]),
        ata.INDETERMINATE: dict(tgs=[tg("0.5")]),
        ata.BIOCHEMICAL_INCOMPLETE: dict(tgs=[tg("3")]),
        ata.STRUCTURAL_INCOMPLETE: dict(tgs=[tg("3")], imaging=[us(ImagingResult.DISEASE)]),
    }
    a = run(RAI, **cases[category])
    assert (a.category, a.outcome) == (category, outcome)
    assert a.label
    assert a.source == ata.SOURCE


def test_thresholds_are_decimal_constants():
    for name in dir(ata):
        if name.isupper() and ("NG_ML" in name or name.endswith("_PCT") or name.endswith("FOLD")):
            assert isinstance(getattr(ata, name), Decimal), name


# ---------------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------------

_SEVERITY = {ata.EXCELLENT: 0, ata.INDETERMINATE: 1, ata.BIOCHEMICAL_INCOMPLETE: 2, ata.STRUCTURAL_INCOMPLETE: 3}
tg_values = st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    a=tg_values,
    b=tg_values,
    surgery=st.sampled_from([RAI, NO_RAI, LOB]),
    cond=st.sampled_from([SUPP, RHTSH, WD]),
    boundary=st.sampled_from(["ge", "gt"]),
    imaging=st.sampled_from([ImagingResult.NEGATIVE, ImagingResult.NONSPECIFIC]),
)
def test_lower_tg_never_worse(a, b, surgery, cond, boundary, imaging):
    if surgery is LOB:
        cond = SUPP
    lo, hi = min(a, b), max(a, b)
    r_lo = run(surgery, [tg(lo, cond)], imaging=[us(imaging)], biochemical_boundary=boundary)
    r_hi = run(surgery, [tg(hi, cond)], imaging=[us(imaging)], biochemical_boundary=boundary)
    assert _SEVERITY[r_lo.category] <= _SEVERITY[r_hi.category]


@settings(max_examples=100, deadline=None)
@given(value=tg_values, cond=st.sampled_from([SUPP, RHTSH]), surgery=st.sampled_from([RAI, NO_RAI]))
def test_structural_disease_dominates(value, cond, surgery):
    a = run(surgery, [tg(value, cond)], imaging=[us(), us(ImagingResult.DISEASE, modality=ImagingModality.WBS)])
    assert a.category == ata.STRUCTURAL_INCOMPLETE


@settings(max_examples=100, deadline=None)
@given(first=st.integers(min_value=1, max_value=1000), last=st.integers(min_value=1, max_value=2000))
def test_tgab_rising_iff_at_least_fifty_percent(first, last):
    a = run(RAI, [], tgabs=[ab(first, EARLY), ab(last)])
    assert (a.values["TgAb_trend"] == "rising") == (2 * last >= 3 * first)
    assert (a.category == ata.BIOCHEMICAL_INCOMPLETE) == (2 * last >= 3 * first)
