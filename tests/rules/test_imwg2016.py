"""Tests for rules/imwg2016.py and rules/imwg_mrd.py: public IMWG 2016 and IMWG 2016 MRD vignettes, boundary rows
for every threshold, every category, confirmation/state rules and a monotonicity property."""
from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from rules import imwg2016 as imwg
from rules import imwg_mrd
from rules.base import D as _D, Outcome
from rules.imwg2016 import ConfirmedNadir, IMWGInputs, MyelomaAssessment as A, Plasmacytoma
from rules.imwg_mrd import IMWGMRDInputs, MRDTest, PETScan

VIGNETTES = Path(__file__).resolve().parents[3] / "shared" / "vignettes" / "public.json"
AS_OF = date(2030, 1, 1)
D = Decimal
B0 = date(2024, 1, 10)
T1 = date(2024, 3, 5)
T2 = date(2024, 4, 2)
T3 = date(2024, 5, 7)
T4 = date(2024, 6, 4)


def _all_vignettes() -> list[dict]:
    return json.loads(VIGNETTES.read_text())


IMWG_VIGNETTES = [v for v in _all_vignettes() if v["criteria"] == "IMWG 2016" or v["id"].startswith("IMWG-")]
MRD_VIGNETTES = [v for v in _all_vignettes() if v["criteria"] == "IMWG 2016 MRD"]


# ---------------------------------------------------------------------------
# Vignette adapters
# ---------------------------------------------------------------------------

_NUM_FIELDS = ("serum_M_g_dL", "urine_M_mg_24h", "kappa_FLC_mg_dL", "lambda_FLC_mg_dL", "FLC_ratio", "BMPC_pct",
               "BM_IHC_kappa_lambda_ratio", "circulating_PC_per_uL")


def _tp(raw: dict, plasmacytoma_default: str | None = None) -> A:
    kw: dict = {}
    for f in _NUM_FIELDS:
        if raw.get(f) is not None:
            kw[f] = _D(raw[f])
    for f in ("serum_IFE", "urine_IFE"):
        if raw.get(f) is not None:
            kw[f] = raw[f]
    pl = raw.get("plasmacytoma", plasmacytoma_default)
    if "soft_tissue_plasmacytoma_mm" in raw:
        dims = raw["soft_tissue_plasmacytoma_mm"]
        if dims and isinstance(dims[0], list):
            kw["plasmacytomas"] = tuple(Plasmacytoma(_D(a), _D(b)) for a, b in dims)
        else:
            kw["plasmacytomas"] = (Plasmacytoma(_D(dims[0]), _D(dims[1])),) if dims else ()
    elif pl == "none":
        kw["plasmacytomas"] = ()
    if raw.get("new_lesions"):
        kw["new_lesions"] = True
    return A(date.fromisoformat(raw["date"]), **kw)


def imwg_inputs(v: dict) -> IMWGInputs:
    inp = v["inputs"]
    base = _tp(inp["baseline"], inp.get("plasmacytoma")) if "baseline" in inp else None
    nadir = None
    if "confirmed_nadir" in inp:
        n = inp["confirmed_nadir"]
        nadir = ConfirmedNadir(
            date=date.fromisoformat(n["date"]) if n.get("date") else None,
            **{k: _D(n[k]) for k in ("serum_M_g_dL", "urine_M_mg_24h", "dFLC_mg_dL", "BMPC_pct") if k in n},
        )
    nts = inp.get("new_therapy_start")
    return IMWGInputs(
        assessments=tuple(_tp(a) for a in inp["assessments"]),
        baseline=base,
        confirmed_nadir=nadir,
        previous_confirmed_category=inp.get("previous_confirmed_category"),
        new_therapy_start=date.fromisoformat(nts) if nts else None,
        measurable_by=inp.get("measurable_by"),
    )


def mrd_inputs(v: dict) -> IMWGMRDInputs:
    inp = v["inputs"]
    tests = []
    if "mrd_tests" in inp:
        for t in inp["mrd_tests"]:
            tests.append(MRDTest(date.fromisoformat(t["date"]), t["method"], t["result"],
                                 _D(t.get("LOD_fraction", t.get("limit_of_detection_fraction")))))
    else:
        lod = inp.get("limit_of_detection_fraction", inp.get("LOD_fraction"))
        tests.append(MRDTest(date.fromisoformat(inp["date"]), inp.get("assay", inp.get("method", "")), inp["result"],
                             None if lod is None else _D(lod), cells_evaluated=inp.get("cells_evaluated")))
    pets = []
    for k, val in inp.items():
        m = re.match(r"PET_CT_(\d{4}-\d{2}-\d{2})", k)
        if m:
            neg = bool(re.search(r"\bno\b|negative|resolved", str(val).lower()))
            pets.append(PETScan(date.fromisoformat(m.group(1)), neg))
    status = inp.get("response", inp.get("response_status"))
    return IMWGMRDInputs(
        mrd_tests=tuple(tests),
        pet_scans=tuple(pets),
        response_category=status,
        response_confirmed=("confirmed" in status.lower()) if status else None,
        cr_maintained=True if status and "throughout" in status.lower() else None,
    )


def _close(actual, expected, places: int = 2) -> bool:
    return abs(Decimal(str(actual)) - Decimal(str(expected))) <= Decimal(1).scaleb(-places) / 2


# ---------------------------------------------------------------------------
# Public vignettes
# ---------------------------------------------------------------------------

def test_vignette_files_have_imwg_cases():
    assert len(IMWG_VIGNETTES) >= 9
    assert len(MRD_VIGNETTES) >= 2


@pytest.mark.parametrize("v", IMWG_VIGNETTES, ids=[v["id"] for v in IMWG_VIGNETTES])
def test_imwg_vignette(v):
    r = imwg.assess(imwg_inputs(v), AS_OF)
    exp = v["expected"]
    assert r.category in exp.get("accept", [exp["category"]])
    assert r.criteria == "IMWG 2016"
    assert r.outcome is imwg.OUTCOMES[r.category] or (r.category == "PD" and not r.confirmed)
    keymap = {"pct_change_serum_M": "pct_change_serum_M", "pct_change_urine_M": "pct_change_urine_M",
              "dFLC_baseline_mg_dL": "dFLC_baseline_mg_dL", "dFLC_mg_dL": "dFLC_mg_dL",
              "pct_change_dFLC": "pct_change_dFLC", "absolute_increase_mg_dL": "absolute_increase_mg_dL",
              "absolute_increase_g_dL": "absolute_increase_g_dL", "pct_increase": "pct_increase",
              "pct_change_plasmacytoma_SPD": "pct_change_plasmacytoma_SPD"}
    for k, val in exp.items():
        if k in keymap:
            assert _close(r.values[keymap[k]], val), (k, r.values.get(keymap[k]), val)
        elif k == "confirmed":
            assert r.confirmed is val
        elif k == "PD":
            assert r.values["PD"] is val
        elif k == "measurable_by":
            assert r.values["measurable_by"] == val
        elif k == "progression_date":
            assert r.values["progression_date"] == date.fromisoformat(val)
    assert r.history and len(r.history) == len(v["inputs"]["assessments"])
    assert not r.missing


@pytest.mark.parametrize("v", MRD_VIGNETTES, ids=[v["id"] for v in MRD_VIGNETTES])
def test_imwg_mrd_vignette(v):
    r = imwg_mrd.assess(mrd_inputs(v), AS_OF)
    exp = v["expected"]
    assert r.category in exp.get("accept", [exp["category"]])
    assert r.outcome is Outcome.COMPLETE
    if "days_between" in exp:
        assert r.values["days_between"] == exp["days_between"]
    if "imaging_plus_MRD_negative" in exp:
        assert r.values["imaging_plus_MRD_negative"] is exp["imaging_plus_MRD_negative"]


def test_vignette_imwg07_dflc_arithmetic_exact():
    v = next(v for v in IMWG_VIGNETTES if v["id"] == "IMWG-07")
    r = imwg.assess(imwg_inputs(v), AS_OF)
    assert r.values["dFLC_baseline_mg_dL"] == D("84.0")
    assert r.values["dFLC_mg_dL"] == D("33.8")
    assert r.values["pct_change_dFLC"] == D("-59.76")
    assert r.values["involved_FLC"] == "kappa"


def test_vignette_imwg09_progression_date_and_numbers():
    v = next(v for v in IMWG_VIGNETTES if v["id"] == "IMWG-09")
    r = imwg.assess(imwg_inputs(v), AS_OF)
    assert r.category == "PD" and r.confirmed and r.outcome is Outcome.PROGRESSION
    assert r.values["dFLC_mg_dL"] == D("20.9")
    assert r.values["absolute_increase_mg_dL"] == D("14.1")
    assert r.values["pct_increase"] == D("207.35")
    assert r.values["progression_date"] == date(2024, 10, 1)


# ---------------------------------------------------------------------------
# Helpers for synthetic cases
# ---------------------------------------------------------------------------

def serum_case(baseline_s, s1, s2=None, urine_base=None, u1=None, u2=None, **kw) -> IMWGInputs:
    s2 = s1 if s2 is None else s2
    u2 = u1 if u2 is None else u2
    base = A(B0, serum_M_g_dL=D(baseline_s), urine_M_mg_24h=None if urine_base is None else D(urine_base))
    a1 = A(T1, serum_M_g_dL=D(s1), urine_M_mg_24h=None if u1 is None else D(u1))
    a2 = A(T2, serum_M_g_dL=D(s2), urine_M_mg_24h=None if u2 is None else D(u2))
    return IMWGInputs(assessments=(a1, a2), baseline=base, **kw)


def cat(inputs, **kw) -> str:
    return imwg.assess(inputs, AS_OF, **kw).category


# ---------------------------------------------------------------------------
# Measurable disease (§6.1) boundaries
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("serum,urine,expected", [
    ("0.99", "199", "none"), ("1", "199", "serum"), ("1.01", "0", "serum"),
    ("0.5", "200", "urine"), ("0.5", "201", "urine"), ("1", "200", "serum and urine"),
])
def test_measurable_serum_urine_boundaries(serum, urine, expected):
    base = A(B0, serum_M_g_dL=D(serum), urine_M_mg_24h=D(urine))
    r = imwg.assess(IMWGInputs(assessments=(A(T1, serum_M_g_dL=D(serum)),), baseline=base), AS_OF)
    assert r.values["measurable_by"] == expected


@pytest.mark.parametrize("kappa,ratio_abnormal,expected", [
    ("9.99", True, "none"), ("10", True, "FLC only"), ("10.01", True, "FLC only"), ("50", False, "none"),
])
def test_measurable_flc_boundaries(kappa, ratio_abnormal, expected):
    lam = D("1") if ratio_abnormal else D(kappa)
    base = A(B0, serum_M_g_dL=D("0.2"), urine_M_mg_24h=D("0"), kappa_FLC_mg_dL=D(kappa), lambda_FLC_mg_dL=lam)
    r = imwg.assess(IMWGInputs(assessments=(A(T1, kappa_FLC_mg_dL=D(kappa), lambda_FLC_mg_dL=lam),),
                               baseline=base), AS_OF)
    assert r.values["measurable_by"] == expected


@pytest.mark.parametrize("bmpc,expected", [("29.9", "none"), ("30", "BMPC only"), ("31", "BMPC only")])
def test_measurable_bmpc_boundary(bmpc, expected):
    base = A(B0, serum_M_g_dL=D("0"), urine_M_mg_24h=D("0"), BMPC_pct=D(bmpc))
    r = imwg.assess(IMWGInputs(assessments=(A(T1, BMPC_pct=D(bmpc)),), baseline=base), AS_OF)
    assert r.values["measurable_by"] == expected


def test_lambda_flc_measurable_and_dflc_sign():
    base = A(B0, serum_M_g_dL=D("0.1"), urine_M_mg_24h=D("0"), kappa_FLC_mg_dL=D("0.5"), lambda_FLC_mg_dL=D("60.5"))
    a1 = A(T1, kappa_FLC_mg_dL=D("0.6"), lambda_FLC_mg_dL=D("5.6"))
    a2 = A(T2, kappa_FLC_mg_dL=D("0.6"), lambda_FLC_mg_dL=D("5.0"))
    r = imwg.assess(IMWGInputs(assessments=(a1, a2), baseline=base), AS_OF)
    assert r.values["involved_FLC"] == "lambda"
    assert r.values["dFLC_baseline_mg_dL"] == D("60.0")
    assert r.values["dFLC_mg_dL"] == D("5.0")
    assert r.category == "VGPR"  # -91.7 %


# ---------------------------------------------------------------------------
# Response thresholds (§6.2): serum, urine, dFLC, BMPC, plasmacytoma
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("s,expected", [
    ("3.0", "SD"), ("2.26", "SD"), ("2.25", "MR"), ("2.24", "MR"),       # -25 % at 2.25
    ("1.51", "MR"), ("1.5", "PR"), ("1.49", "PR"),                        # -50 % at 1.5
    ("0.31", "PR"), ("0.3", "VGPR"), ("0.29", "VGPR"), ("0", "VGPR"),     # -90 % at 0.3
])
def test_serum_response_boundaries(s, expected):
    assert cat(serum_case("3.0", s, urine_base="0", u1="0")) == expected


def test_serum_mr_between_49_and_50_pct_is_mr():
    assert cat(serum_case("2.0", "1.01", urine_base="0", u1="0")) == "MR"  # -49.5 %


@pytest.mark.parametrize("u,expected", [
    ("200", "MR"), ("199", "PR"), ("100", "PR"), ("99", "VGPR"),
])
def test_urine_absolute_boundaries_with_serum_vgpr(u, expected):
    # serum -95 % (VGPR level); urine limits the level: VGPR needs < 100, PR needs < 200 (or -90 %)
    assert cat(serum_case("4.0", "0.2", urine_base="1000", u1=u)) == expected


@pytest.mark.parametrize("u,expected", [
    ("4100", "SD"), ("2001", "SD"), ("2000", "MR"), ("1999", "MR"),   # -50 % at 2000
    ("401", "MR"), ("400", "PR"), ("399", "PR"),                      # -90 % at 400
])
def test_urine_relative_boundaries(u, expected):
    # urine-only measurable disease (serum 0.5 g/dL not measurable)
    base = A(B0, serum_M_g_dL=D("0.5"), urine_M_mg_24h=D("4000"))
    inputs = IMWGInputs(assessments=(A(T1, urine_M_mg_24h=D(u)), A(T2, urine_M_mg_24h=D(u))), baseline=base)
    r = imwg.assess(inputs, AS_OF)
    assert r.values["measurable_by"] == "urine"
    assert r.category == expected


def test_urine_measurable_but_missing_downgrades_one_level():
    r = imwg.assess(serum_case("3.0", "1.2", urine_base="800"), AS_OF)   # serum PR, urine not re-measured
    assert r.category == "MR"
    assert any("downgraded" in n for n in r.notes)


@pytest.mark.parametrize("d1,expected", [("40.1", "SD"), ("40", "PR"), ("8.1", "PR"), ("8", "VGPR")])
def test_dflc_boundaries(d1, expected):
    # baseline dFLC 80 (kappa 81, lambda 1): PR at 40 (-50 %), VGPR at 8 (-90 %); MR not defined for FLC-only
    base = A(B0, serum_M_g_dL=D("0.2"), urine_M_mg_24h=D("0"), kappa_FLC_mg_dL=D("81"), lambda_FLC_mg_dL=D("1"))
    k = D(d1) + 1
    a1 = A(T1, kappa_FLC_mg_dL=k, lambda_FLC_mg_dL=D("1"))
    a2 = A(T2, kappa_FLC_mg_dL=k, lambda_FLC_mg_dL=D("1"))
    assert cat(IMWGInputs(assessments=(a1, a2), baseline=base)) == expected


def test_flc_only_mr_not_defined():
    base = A(B0, serum_M_g_dL=D("0.2"), urine_M_mg_24h=D("0"), kappa_FLC_mg_dL=D("81"), lambda_FLC_mg_dL=D("1"))
    a = [A(t, kappa_FLC_mg_dL=D("51"), lambda_FLC_mg_dL=D("1")) for t in (T1, T2)]   # -37.5 %
    assert cat(IMWGInputs(assessments=tuple(a), baseline=base)) == "SD"


@pytest.mark.parametrize("bm,expected", [("20.1", "SD"), ("20", "PR"), ("19", "PR")])
def test_bmpc_only_pr_boundary(bm, expected):
    base = A(B0, serum_M_g_dL=D("0"), urine_M_mg_24h=D("0"), BMPC_pct=D("40"))
    inputs = IMWGInputs(assessments=(A(T1, BMPC_pct=D(bm)), A(T2)), baseline=base)
    assert cat(inputs) == expected


@pytest.mark.parametrize("dims,expected", [((D(30), D(21)), "SD"), ((D(30), D(20)), "PR"), ((D(30), D(19)), "PR")])
def test_plasmacytoma_spd_boundary(dims, expected):
    # baseline SPD 1200 mm2; 600 = -50 %
    base = A(B0, serum_M_g_dL=D("2.0"), urine_M_mg_24h=D("0"), plasmacytomas=(Plasmacytoma(D(40), D(30)),))
    a = [A(t, serum_M_g_dL=D("0.8"), plasmacytomas=(Plasmacytoma(*dims),)) for t in (T1, T2)]
    assert cat(IMWGInputs(assessments=tuple(a), baseline=base)) == expected


def test_plasmacytoma_blocks_mr_2016_wording():
    base = A(B0, serum_M_g_dL=D("2.0"), urine_M_mg_24h=D("0"), plasmacytomas=(Plasmacytoma(D(40), D(30)),))
    a = [A(t, serum_M_g_dL=D("1.4"), plasmacytomas=(Plasmacytoma(D(35), D(24)),)) for t in (T1, T2)]
    assert cat(IMWGInputs(assessments=tuple(a), baseline=base)) == "SD"
    a = [A(t, serum_M_g_dL=D("1.4"), plasmacytomas=(Plasmacytoma(D(20), D(20)),)) for t in (T1, T2)]
    assert cat(IMWGInputs(assessments=tuple(a), baseline=base)) == "MR"


# ---------------------------------------------------------------------------
# CR / sCR
# ---------------------------------------------------------------------------

def cr_case(bmpc="2", ihc="1.5", ratio1="1.1", ratio2="1.2", uife="negative", involved=None, baseline=None,
            counted=None):
    a1 = A(T1, serum_M_g_dL=D(0), urine_M_mg_24h=D(0), serum_IFE="negative", urine_IFE=uife,
           BMPC_pct=None if bmpc is None else D(bmpc), BM_IHC_kappa_lambda_ratio=None if ihc is None else D(ihc),
           BM_IHC_PCs_counted=counted, FLC_ratio=None if ratio1 is None else D(ratio1), plasmacytomas=())
    a2 = A(T2, serum_M_g_dL=D(0), urine_M_mg_24h=D(0), serum_IFE="negative", urine_IFE=uife,
           FLC_ratio=None if ratio2 is None else D(ratio2))
    return IMWGInputs(assessments=(a1, a2), baseline=baseline, involved_FLC=involved)


@pytest.mark.parametrize("bm,expected", [("4.9", "sCR"), ("5", "VGPR"), ("5.1", "VGPR")])
def test_cr_marrow_boundary(bm, expected):
    assert cat(cr_case(bmpc=bm)) == expected


@pytest.mark.parametrize("ratio,expected", [
    ("0.25", "CR"), ("0.26", "sCR"), ("1.65", "sCR"), ("1.66", "CR"),
])
def test_scr_flc_ratio_boundaries(ratio, expected):
    assert cat(cr_case(ratio1=ratio, ratio2=ratio)) == expected


@pytest.mark.parametrize("ihc,involved,expected", [
    ("4", "kappa", "sCR"), ("4.01", "kappa", "CR"), ("0.5", "lambda", "sCR"), ("0.49", "lambda", "CR"),
    ("0.3", "kappa", "sCR"), ("6", "lambda", "sCR"), ("4.01", None, "CR"), ("0.49", None, "CR"), ("1", None, "sCR"),
])
def test_scr_ihc_boundaries(ihc, involved, expected):
    assert cat(cr_case(ihc=ihc, involved=involved)) == expected


def test_scr_needs_100_pcs_counted():
    assert cat(cr_case(counted=99)) == "CR"
    assert cat(cr_case(counted=100)) == "sCR"


def test_cr_without_marrow_is_downgraded_to_vgpr():
    r = imwg.assess(cr_case(bmpc=None, ihc=None), AS_OF)
    assert r.category == "VGPR"
    assert any("downgraded to VGPR" in n for n in r.notes)


def test_cr_without_urine_ife_downgraded():
    assert cat(cr_case(uife=None)) == "VGPR"


def test_cr_without_flc_ratio_or_ihc_is_cr_not_scr():
    assert cat(cr_case(ihc=None)) == "CR"
    assert cat(cr_case(ratio1=None, ratio2=None)) == "CR"


def test_flc_only_cr_needs_normal_ratio():
    base = A(B0, serum_M_g_dL=D("0.2"), urine_M_mg_24h=D("0"), kappa_FLC_mg_dL=D("81"), lambda_FLC_mg_dL=D("1"))
    def mk(k):
        return tuple(A(t, serum_IFE="negative", urine_IFE="negative", kappa_FLC_mg_dL=D(k),
                       lambda_FLC_mg_dL=D("1"), BMPC_pct=D("1")) for t in (T1, T2))
    assert cat(IMWGInputs(assessments=mk("1.7"), baseline=base)) == "VGPR"   # ratio 1.7 abnormal, dFLC -99 %
    assert cat(IMWGInputs(assessments=mk("1.6"), baseline=base)) == "CR"     # ratio 1.6 normal, no IHC


def test_residual_plasmacytoma_blocks_cr():
    base = A(B0, serum_M_g_dL=D("2.0"), urine_M_mg_24h=D("0"), plasmacytomas=(Plasmacytoma(D(40), D(30)),))
    a = [A(t, serum_M_g_dL=D(0), urine_M_mg_24h=D(0), serum_IFE="negative", urine_IFE="negative", BMPC_pct=D(1),
           plasmacytomas=(Plasmacytoma(D(10), D(10)),)) for t in (T1, T2)]
    assert cat(IMWGInputs(assessments=tuple(a), baseline=base)) == "VGPR"


def test_vgpr_ife_positive_electrophoresis_negative():
    base = A(B0, serum_M_g_dL=D("2.0"), urine_M_mg_24h=D("300"))
    a = [A(t, serum_M_g_dL=D(0), urine_M_mg_24h=D(0), serum_IFE="positive", urine_IFE="positive") for t in (T1, T2)]
    assert cat(IMWGInputs(assessments=tuple(a), baseline=base)) == "VGPR"


# ---------------------------------------------------------------------------
# PD thresholds
# ---------------------------------------------------------------------------

def pd_case(nadir_s, s1, s2=None, **kw):
    s2 = s1 if s2 is None else s2
    return IMWGInputs(assessments=(A(T1, serum_M_g_dL=D(s1)), A(T2, serum_M_g_dL=D(s2))),
                      confirmed_nadir=ConfirmedNadir(serum_M_g_dL=D(nadir_s)), previous_confirmed_category="PR", **kw)


@pytest.mark.parametrize("s,expected", [("2.49", "PR"), ("2.5", "PD"), ("2.51", "PD")])
def test_pd_serum_absolute_boundary_inclusive(s, expected):
    # nadir 2.0: +25 % = 2.5 and +0.5 g/dL = 2.5 coincide
    assert cat(pd_case("2.0", s)) == expected


def test_pd_serum_absolute_strict_option():
    assert cat(pd_case("1.0", "1.5")) == "PD"
    assert cat(pd_case("1.0", "1.5"), serum_pd_absolute_inclusive=False) == "PR"
    assert cat(pd_case("1.0", "1.51"), serum_pd_absolute_inclusive=False) == "PD"


@pytest.mark.parametrize("s,expected", [("4.99", "PR"), ("5.0", "PD")])
def test_pd_serum_pct_boundary(s, expected):
    # nadir 4.0: +0.5 met from 4.5, +25 % only at 5.0 (nadir < 5 so the 1 g/dL rule does not apply)
    assert cat(pd_case("4.0", s)) == expected


@pytest.mark.parametrize("nadir,s,expected", [
    ("5.0", "6.0", "PD"), ("5.0", "5.99", "PR"), ("4.99", "5.99", "PR"), ("5.2", "6.3", "PD"),
])
def test_pd_high_nadir_rule(nadir, s, expected):
    assert cat(pd_case(nadir, s)) == expected


@pytest.mark.parametrize("u,expected", [("999", "PR"), ("1000", "PD")])
def test_pd_urine_boundaries(u, expected):
    # nadir 800: +25 % = 1000, +200 = 1000
    inputs = IMWGInputs(assessments=(A(T1, urine_M_mg_24h=D(u)), A(T2, urine_M_mg_24h=D(u))),
                        confirmed_nadir=ConfirmedNadir(urine_M_mg_24h=D("800")), previous_confirmed_category="PR")
    assert cat(inputs) == expected


@pytest.mark.parametrize("u,expected", [("399", "PR"), ("400", "PD")])
def test_pd_urine_absolute_boundary(u, expected):
    # nadir 200: +25 % = 250; +200 = 400
    inputs = IMWGInputs(assessments=(A(T1, urine_M_mg_24h=D(u)), A(T2, urine_M_mg_24h=D(u))),
                        confirmed_nadir=ConfirmedNadir(urine_M_mg_24h=D("200")), previous_confirmed_category="PR")
    assert cat(inputs) == expected


@pytest.mark.parametrize("d,expected", [("16", "PR"), ("16.01", "PD")])
def test_pd_dflc_absolute_boundary_strict(d, expected):
    # nadir 6: +10 exactly is not PD (> 10 mg/dL), +10.01 is
    a = tuple(A(t, kappa_FLC_mg_dL=D(d) + 1, lambda_FLC_mg_dL=D(1)) for t in (T1, T2))
    inputs = IMWGInputs(assessments=a, confirmed_nadir=ConfirmedNadir(dFLC_mg_dL=D(6)), measurable_by="FLC only",
                        involved_FLC="kappa", previous_confirmed_category="PR")
    assert cat(inputs) == expected


def test_pd_dflc_pct_boundary():
    # nadir 50: +10.01 is only +20 % -> not PD; 62.5 = +25 % and +12.5
    def run(d):
        a = tuple(A(t, kappa_FLC_mg_dL=D(d) + 1, lambda_FLC_mg_dL=D(1)) for t in (T1, T2))
        return cat(IMWGInputs(assessments=a, confirmed_nadir=ConfirmedNadir(dFLC_mg_dL=D(50)),
                              measurable_by="FLC only", involved_FLC="kappa", previous_confirmed_category="PR"))
    assert run("62.49") == "PR"
    assert run("62.5") == "PD"


def test_dflc_pd_not_used_when_serum_measurable():
    base = A(B0, serum_M_g_dL=D("3"), urine_M_mg_24h=D("0"), kappa_FLC_mg_dL=D("80"), lambda_FLC_mg_dL=D("1"))
    a = tuple(A(t, serum_M_g_dL=D("1.2"), kappa_FLC_mg_dL=D("200"), lambda_FLC_mg_dL=D("1")) for t in (T1, T2))
    assert cat(IMWGInputs(assessments=a, baseline=base)) == "PR"


@pytest.mark.parametrize("bm,expected", [("19.9", "PR"), ("20", "PD")])
def test_pd_bmpc_boundary_no_confirmation(bm, expected):
    base = A(B0, serum_M_g_dL=D("0"), urine_M_mg_24h=D("0"), BMPC_pct=D("40"))
    inputs = IMWGInputs(assessments=(A(T1, BMPC_pct=D("10")), A(T2), A(T3, BMPC_pct=D(bm))), baseline=base)
    r = imwg.assess(inputs, AS_OF)
    assert r.category == expected
    if expected == "PD":
        assert r.confirmed and r.values["progression_date"] == T3


def test_pd_new_lesion_needs_no_confirmation():
    inputs = serum_case("3.0", "1.2", urine_base="0")
    inputs = IMWGInputs(assessments=inputs.assessments + (A(T3, new_lesions=True),), baseline=inputs.baseline)
    r = imwg.assess(inputs, AS_OF)
    assert r.category == "PD" and r.confirmed and r.values["progression_date"] == T3


def test_pd_plasmacytoma_spd_growth():
    base = A(B0, serum_M_g_dL=D("2"), urine_M_mg_24h=D("0"),
             plasmacytomas=(Plasmacytoma(D(20), D(20), "a"), Plasmacytoma(D(10), D(10), "b")))
    grow = (Plasmacytoma(D(25), D(20), "a"), Plasmacytoma(D(14), D(10), "b"))   # SPD 640 vs 500 = +28 %
    big = (Plasmacytoma(D(30), D(20), "a"), Plasmacytoma(D(15), D(10), "b"))    # SPD 750 = +50 %
    assert cat(IMWGInputs(assessments=(A(T1, serum_M_g_dL=D("1.8"), plasmacytomas=grow),), baseline=base)) != "PD"
    assert cat(IMWGInputs(assessments=(A(T1, serum_M_g_dL=D("1.8"), plasmacytomas=big),), baseline=base)) == "PD"


def test_pd_new_plasmacytoma_by_lesion_id():
    base = A(B0, serum_M_g_dL=D("2"), urine_M_mg_24h=D("0"), plasmacytomas=(Plasmacytoma(D(20), D(20), "a"),))
    a = A(T1, serum_M_g_dL=D("1.8"), plasmacytomas=(Plasmacytoma(D(10), D(10), "a"), Plasmacytoma(D(5), D(5), "c")))
    assert cat(IMWGInputs(assessments=(a,), baseline=base)) == "PD"


@pytest.mark.parametrize("ld,short,expected", [(D(30), D(11), "PD"), (D(29), D(11), "not"), (D(30), D(10), "not")])
def test_pd_single_lesion_longest_diameter(ld, short, expected):
    base = A(B0, serum_M_g_dL=D("2"), urine_M_mg_24h=D("0"), plasmacytomas=(Plasmacytoma(D(20), D(15)),))
    a = A(T1, serum_M_g_dL=D("1.8"), plasmacytomas=(Plasmacytoma(ld, short),))
    c = cat(IMWGInputs(assessments=(a,), baseline=base))
    assert (c == "PD") is (expected == "PD")


# ---------------------------------------------------------------------------
# Confirmation, nadir and state rules
# ---------------------------------------------------------------------------

def test_single_assessment_response_is_unconfirmed():
    base = A(B0, serum_M_g_dL=D("3"), urine_M_mg_24h=D("0"))
    r = imwg.assess(IMWGInputs(assessments=(A(T1, serum_M_g_dL=D("1.2")),), baseline=base), AS_OF)
    assert r.category == "PR" and r.confirmed is False
    assert any("not yet confirmed" in n for n in r.notes)


def test_single_pd_is_unconfirmed_progression():
    inputs = IMWGInputs(assessments=(A(T1, serum_M_g_dL=D("3")),), confirmed_nadir=ConfirmedNadir(serum_M_g_dL=D(2)))
    r = imwg.assess(inputs, AS_OF)
    assert r.category == "PD" and not r.confirmed and r.outcome is Outcome.UNCONFIRMED_PROGRESSION


def test_single_pd_after_confirmed_pr_keeps_pr():
    inputs = serum_case("3.0", "1.2", urine_base="0")
    inputs = IMWGInputs(assessments=inputs.assessments + (A(T3, serum_M_g_dL=D("2.0")),), baseline=inputs.baseline)
    r = imwg.assess(inputs, AS_OF)
    assert r.category == "PR" and r.confirmed
    assert r.values["latest_timepoint_level"] == "PD"
    assert any("awaiting confirmation" in n for n in r.notes)
    inputs = IMWGInputs(assessments=inputs.assessments + (A(T4, serum_M_g_dL=D("2.1")),), baseline=inputs.baseline)
    r = imwg.assess(inputs, AS_OF)
    assert r.category == "PD" and r.values["progression_date"] == T3


def test_same_sample_does_not_confirm():
    base = A(B0, serum_M_g_dL=D("3"), urine_M_mg_24h=D("0"))
    a1 = A(T1, serum_M_g_dL=D("1.2"), sample_id="S1")
    a2 = A(T2, serum_M_g_dL=D("1.2"), sample_id="S1")
    r = imwg.assess(IMWGInputs(assessments=(a1, a2), baseline=base), AS_OF)
    assert not r.confirmed
    same_day = (A(T1, serum_M_g_dL=D("1.2")), A(T1, serum_M_g_dL=D("1.2")))
    assert not imwg.assess(IMWGInputs(assessments=same_day, baseline=base), AS_OF).confirmed
    diff = (A(T1, serum_M_g_dL=D("1.2"), sample_id="S1"), A(T1, serum_M_g_dL=D("1.2"), sample_id="S2"))
    assert imwg.assess(IMWGInputs(assessments=diff, baseline=base), AS_OF).confirmed


def test_confirmation_must_precede_new_therapy():
    base = A(B0, serum_M_g_dL=D("4"), urine_M_mg_24h=D("0"))
    a = (A(date(2024, 3, 5), serum_M_g_dL=D("1.9")), A(date(2024, 3, 13), serum_M_g_dL=D("1.8")))
    ok = imwg.assess(IMWGInputs(assessments=a, baseline=base, new_therapy_start=date(2024, 3, 14)), AS_OF)
    assert ok.category == "PR" and ok.confirmed
    late = imwg.assess(IMWGInputs(assessments=a, baseline=base, new_therapy_start=date(2024, 3, 13)), AS_OF)
    assert late.category == "PR" and not late.confirmed


def test_confirmed_level_is_the_lower_of_the_pair():
    base = A(B0, serum_M_g_dL=D("3"), urine_M_mg_24h=D("0"))
    a = (A(T1, serum_M_g_dL=D("0.2")), A(T2, serum_M_g_dL=D("1.4")))   # VGPR then PR
    r = imwg.assess(IMWGInputs(assessments=a, baseline=base), AS_OF)
    assert r.category == "PR" and r.confirmed


def test_stays_in_confirmed_category_when_worse_not_pd():
    base = A(B0, serum_M_g_dL=D("3"), urine_M_mg_24h=D("0"))
    a = tuple(A(t, serum_M_g_dL=D(s)) for t, s in ((T1, "1.2"), (T2, "1.2"), (T3, "1.6"), (T4, "1.6")))
    r = imwg.assess(IMWGInputs(assessments=a, baseline=base), AS_OF)
    assert r.category == "PR"   # time-point MR twice, +0.4 g/dL from nadir 1.2: not PD, PR stands
    assert [h.category for h in r.history] == ["PR", "PR", "PR", "PR"]
    assert r.history[0].values["confirmed"] is False or r.history[1].values["confirmed"] is True


def test_better_response_upgrades_state():
    base = A(B0, serum_M_g_dL=D("3"), urine_M_mg_24h=D("0"))
    a = tuple(A(t, serum_M_g_dL=D(s)) for t, s in ((T1, "1.2"), (T2, "1.2"), (T3, "0.2"), (T4, "0.25")))
    r = imwg.assess(IMWGInputs(assessments=a, baseline=base), AS_OF)
    assert r.category == "VGPR" and r.values["category_date"] == T3


def test_nadir_is_lowest_confirmed_value_not_a_single_low_value():
    # 1.0 appears once (unconfirmed), confirmed lowest is 1.5 (pair 1.5/1.5); 2.0 = +0.5 and +33 % from 1.5 -> PD;
    # from the unconfirmed 1.0 it would be PD too, so check a value that separates the two: 1.9 (+0.4 from 1.5)
    base = A(B0, serum_M_g_dL=D("3"), urine_M_mg_24h=D("0"))
    a = [A(date(2024, 2, 1), serum_M_g_dL=D("1.5")), A(date(2024, 3, 1), serum_M_g_dL=D("1.5")),
         A(date(2024, 4, 1), serum_M_g_dL=D("1.0")), A(date(2024, 5, 1), serum_M_g_dL=D("1.9")),
         A(date(2024, 6, 1), serum_M_g_dL=D("1.9"))]
    r = imwg.assess(IMWGInputs(assessments=tuple(a), baseline=base), AS_OF)
    assert r.category == "PR"
    assert r.values["latest_nadir_serum_M_g_dL"] == D("1.5")


def test_pd_from_lowest_confirmed_computed_series():
    base = A(B0, serum_M_g_dL=D("3"), urine_M_mg_24h=D("0"))
    a = [A(date(2024, 2, 1), serum_M_g_dL=D("1.0")), A(date(2024, 3, 1), serum_M_g_dL=D("1.0")),
         A(date(2024, 4, 1), serum_M_g_dL=D("1.5")), A(date(2024, 5, 1), serum_M_g_dL=D("1.6"))]
    r = imwg.assess(IMWGInputs(assessments=tuple(a), baseline=base), AS_OF)
    assert r.category == "PD" and r.values["progression_date"] == date(2024, 4, 1)
    assert r.values["absolute_increase_g_dL"] == D("0.5")
    assert r.values["pct_increase"] == D("50.00")


def test_no_response_is_sd_confirmed():
    assert cat(serum_case("3.0", "2.9", urine_base="0")) == "SD"


def test_relapse_from_cr():
    a = list(cr_case().assessments) + [
        A(T3, serum_M_g_dL=D(0), serum_IFE="positive", urine_IFE="negative"),
        A(T4, serum_M_g_dL=D(0), serum_IFE="positive", urine_IFE="negative"),
    ]
    r = imwg.assess(IMWGInputs(assessments=tuple(a)), AS_OF)
    assert r.category == "relapse from CR" and r.outcome is Outcome.RELAPSE
    r1 = imwg.assess(IMWGInputs(assessments=tuple(a[:3])), AS_OF)
    assert r1.category == "sCR"   # one positive IFE is not yet relapse


def test_relapse_from_cr_by_marrow_then_pd():
    r = imwg.assess(IMWGInputs(assessments=(A(T1, BMPC_pct=D("5")),), previous_confirmed_category="CR"), AS_OF)
    assert r.category == "relapse from CR"
    r = imwg.assess(IMWGInputs(assessments=(A(T1, BMPC_pct=D("4.9")),), previous_confirmed_category="CR"), AS_OF)
    assert r.category == "CR"
    # reappearing M-protein >= 0.5 g/dL from a confirmed nadir of 0 is PD, not just relapse from CR
    a = (A(T1, serum_M_g_dL=D("0.6"), serum_IFE="positive"), A(T2, serum_M_g_dL=D("0.7"), serum_IFE="positive"))
    r = imwg.assess(IMWGInputs(assessments=a, previous_confirmed_category="CR",
                               confirmed_nadir=ConfirmedNadir(serum_M_g_dL=D(0))), AS_OF)
    assert r.category == "PD"


def test_not_evaluable_without_baseline_or_state():
    r = imwg.assess(IMWGInputs(assessments=(A(T1, serum_M_g_dL=D("1.2")), A(T2, serum_M_g_dL=D("1.2")))), AS_OF)
    assert r.category == "NE" and r.outcome is Outcome.NOT_EVALUABLE and r.missing


def test_not_evaluable_without_assessments():
    r = imwg.assess(IMWGInputs(baseline=A(B0, serum_M_g_dL=D("3"))), AS_OF)
    assert r.category == "NE" and r.missing


def test_as_of_excludes_later_assessments():
    inputs = serum_case("3.0", "1.2", urine_base="0")
    r = imwg.assess(inputs, T1)
    assert r.category == "PR" and not r.confirmed


def test_refs_copied_into_evidence():
    base = A(B0, serum_M_g_dL=D("3"), urine_M_mg_24h=D("0"), refs={"serum_M_g_dL": "Observation/b"})
    a = (A(T1, serum_M_g_dL=D("1.2"), refs={"serum_M_g_dL": "Observation/1"}),
         A(T2, serum_M_g_dL=D("1.2"), ref="DiagnosticReport/2"))
    r = imwg.assess(IMWGInputs(assessments=a, baseline=base), AS_OF)
    refs = {x for e in r.evidence for x in e.refs}
    assert {"Observation/b", "Observation/1", "DiagnosticReport/2"} <= refs
    assert all(e.citation for e in r.evidence)


def test_module_contract():
    assert imwg.CRITERIA == "IMWG 2016" and imwg.SOURCE.url.startswith("https://doi.org/")
    assert imwg_mrd.CRITERIA == "IMWG 2016 MRD"
    assert imwg.PD_SERUM_ABS_G_DL == D("0.5") and imwg.PD_DFLC_ABS_GT_MG_DL == D("10")


def test_every_category_reachable():
    seen = set()
    seen.add(cat(cr_case()))                                     # sCR
    seen.add(cat(cr_case(ihc=None)))                             # CR
    seen.add(cat(serum_case("3.0", "0.2", urine_base="0")))      # VGPR
    seen.add(cat(serum_case("3.0", "1.2", urine_base="0")))      # PR
    seen.add(cat(serum_case("3.0", "2.1", urine_base="0")))      # MR
    seen.add(cat(serum_case("3.0", "2.9", urine_base="0")))      # SD
    seen.add(cat(pd_case("1.0", "2.0")))                         # PD
    seen.add(cat(IMWGInputs(assessments=(A(T1, BMPC_pct=D("6")),), previous_confirmed_category="sCR")))
    seen.add(cat(IMWGInputs(assessments=(A(T1, serum_M_g_dL=D(1)),))))   # NE
    assert seen == {"sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "relapse from CR", "NE"}


# ---------------------------------------------------------------------------
# Property: a lower M-protein never gives a worse category at the same time point
# ---------------------------------------------------------------------------

ORDER = {"PD": 0, "SD": 1, "MR": 2, "PR": 3, "VGPR": 4, "CR": 5, "sCR": 6}
serum_vals = st.decimals(min_value=D("0"), max_value=D("8"), places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(base=st.decimals(min_value=D("1"), max_value=D("8"), places=2), a=serum_vals, b=serum_vals,
       first=serum_vals, nadir=st.one_of(st.none(), serum_vals))
def test_property_lower_serum_never_worse(base, a, b, first, nadir):
    lo, hi = min(a, b), max(a, b)

    def run(last):
        inputs = IMWGInputs(
            baseline=A(B0, serum_M_g_dL=base, urine_M_mg_24h=D(0)),
            assessments=(A(T1, serum_M_g_dL=first), A(T2, serum_M_g_dL=last)),
            confirmed_nadir=None if nadir is None else ConfirmedNadir(serum_M_g_dL=nadir),
        )
        return imwg.assess(inputs, AS_OF).category

    assert ORDER[run(lo)] >= ORDER[run(hi)]


@settings(max_examples=200, deadline=None)
@given(u_base=st.integers(min_value=200, max_value=5000), u1=st.integers(0, 6000), u2=st.integers(0, 6000))
def test_property_lower_urine_never_worse(u_base, u1, u2):
    lo, hi = min(u1, u2), max(u1, u2)

    def run(u):
        inputs = IMWGInputs(baseline=A(B0, serum_M_g_dL=D("0.5"), urine_M_mg_24h=D(u_base)),
                            assessments=(A(T1, urine_M_mg_24h=D(u)), A(T2, urine_M_mg_24h=D(u))))
        return imwg.assess(inputs, AS_OF).category

    assert ORDER[run(lo)] >= ORDER[run(hi)]


# ---------------------------------------------------------------------------
# IMWG MRD
# ---------------------------------------------------------------------------

M1 = date(2023, 1, 10)


def mrd(tests, pets=(), resp="CR", maintained=True):
    return imwg_mrd.assess(IMWGMRDInputs(mrd_tests=tuple(tests), pet_scans=tuple(pets), response_category=resp,
                                         response_confirmed=True, cr_maintained=maintained), AS_OF)


@pytest.mark.parametrize("lod,expected", [
    ("1e-6", "sequencing MRD-negative"), ("1e-5", "sequencing MRD-negative"), ("1.1e-5", "CR"), ("1e-4", "CR"),
])
def test_mrd_sensitivity_boundary(lod, expected):
    r = mrd([MRDTest(M1, "NGS", "negative", D(lod))])
    assert r.category == expected
    assert r.values["MRD_evaluable"] is (expected != "CR")


def test_mrd_flow_1e4_not_evaluable_without_response():
    r = imwg_mrd.assess(IMWGMRDInputs(mrd_tests=(MRDTest(M1, "8-colour flow", "negative", D("1e-4")),)), AS_OF)
    assert r.category == "NE" and r.outcome is Outcome.NOT_EVALUABLE and r.missing


def test_mrd_negative_without_lod_not_evaluable():
    r = mrd([MRDTest(M1, "NGF", "negative", None, cells_evaluated=5_000_000)])
    assert r.category == "CR" and r.values["MRD_evaluable"] is False


def test_mrd_flow_and_methods():
    assert mrd([MRDTest(M1, "NGF (EuroFlow)", "negative", D("2e-6"))]).category == "flow MRD-negative"
    assert mrd([MRDTest(M1, "clonoSEQ", "no clonotype detected", D("1e-6"))]).category == "sequencing MRD-negative"
    assert mrd([MRDTest(M1, "ASO-qPCR", "negative", D("1e-5"))]).category == "CR"


def test_mrd_requires_cr():
    r = mrd([MRDTest(M1, "NGS", "negative", D("1e-6"))], resp="VGPR")
    assert r.category == "VGPR" and any("require CR" in n for n in r.notes)
    r = imwg_mrd.assess(IMWGMRDInputs(mrd_tests=(MRDTest(M1, "NGS", "negative", D("1e-6")),)), AS_OF)
    assert r.category == "NE"


def test_mrd_positive_and_relapse_from_mrd_negative():
    assert mrd([MRDTest(M1, "NGS", "positive", D("1e-6"), D("3e-5"))]).category == "CR"
    r = mrd([MRDTest(M1, "NGS", "negative", D("1e-6")), MRDTest(date(2024, 1, 1), "NGS", "positive", D("1e-6"))])
    assert r.category == "relapse from MRD-negative" and r.outcome is Outcome.RELAPSE


def test_mrd_imaging_plus():
    r = mrd([MRDTest(M1, "NGF", "negative", D("2e-6"))], [PETScan(date(2023, 1, 16), True)])
    assert r.category == "imaging-plus MRD-negative" and r.values["imaging_plus_MRD_negative"] is True
    r = mrd([MRDTest(M1, "NGF", "negative", D("2e-6"))], [PETScan(date(2023, 1, 16), False)])
    assert r.category == "flow MRD-negative"
    # PET outside the window does not count
    r = mrd([MRDTest(M1, "NGF", "negative", D("2e-6"))], [PETScan(M1 + timedelta(days=91), True)])
    assert r.category == "flow MRD-negative"


@pytest.mark.parametrize("second,expected", [
    (date(2024, 1, 9), "imaging-plus MRD-negative"), (date(2024, 1, 10), "sustained MRD-negative"),
])
def test_mrd_sustained_one_year_boundary(second, expected):
    tests = [MRDTest(M1, "NGF", "negative", D("2e-6")), MRDTest(second, "NGF", "negative", D("2e-6"))]
    pets = [PETScan(M1, True), PETScan(second, True)]
    assert mrd(tests, pets).category == expected


def test_mrd_sustained_needs_imaging_and_no_positive_between_and_cr():
    t0, t2 = MRDTest(M1, "NGS", "negative", D("1e-6")), MRDTest(date(2024, 2, 1), "NGS", "negative", D("1e-6"))
    assert mrd([t0, t2], [PETScan(date(2024, 2, 1), True)]).category == "imaging-plus MRD-negative"
    pos = MRDTest(date(2023, 7, 1), "NGS", "positive", D("1e-6"))
    assert mrd([t0, pos, t2], [PETScan(M1, True), PETScan(date(2024, 2, 1), True)]).category == \
        "imaging-plus MRD-negative"
    assert mrd([t0, t2], [PETScan(M1, True), PETScan(date(2024, 2, 1), True)], maintained=False).category == \
        "imaging-plus MRD-negative"
    assert mrd([t0, t2], [PETScan(M1, True), PETScan(date(2024, 2, 1), True)]).category == "sustained MRD-negative"


def test_mrd_insufficient_later_test_does_not_erase_earlier_negative():
    r = mrd([MRDTest(M1, "NGS", "negative", D("1e-6")), MRDTest(date(2023, 6, 1), "flow", "negative", D("1e-4"))])
    assert r.category == "sequencing MRD-negative"
    assert any("not evaluable" in n for n in r.notes)


def test_mrd_peripheral_blood_not_evaluable():
    r = mrd([MRDTest(M1, "NGS", "negative", D("1e-6"), sample="peripheral blood")])
    assert r.category == "CR" and r.values["MRD_evaluable"] is False
    r = mrd([MRDTest(M1, "NGS", "negative", D("1e-6"), sample="bone marrow aspirate, first pull")])
    assert r.category == "sequencing MRD-negative"
