"""Tests for rules/iwcll2018.py: public iwCLL vignettes, boundary rows, every category, properties."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from rules import iwcll2018 as cll
from rules.base import Outcome
from rules.iwcll2018 import CllInputs, CllTimepoint, Marrow, add_months, assess
from rules.mrd import Method, MrdResult, Sample

VIGNETTES = Path(__file__).resolve().parents[3] / "shared" / "vignettes" / "public.json"
D = Decimal
AS_OF = date(2030, 1, 1)


# ---------------------------------------------------------------------------
# Vignette adapter
# ---------------------------------------------------------------------------


def _marrow(text: str) -> Marrow:
    t = text.lower()
    if "no cll" in t and ("nodul" not in t or "no nodul" in t):
        return Marrow.HYPOCELLULAR_CLEAR if "hypocellular" in t else Marrow.NORMOCELLULAR_CLEAR
    return Marrow.RESIDUAL


def _tp(raw: dict) -> CllTimepoint:
    kw: dict = {"date": date.fromisoformat(raw["date"])}
    for k, v in raw.items():
        if v is None:
            continue
        lk = k.lower()
        if lk.startswith("largest_node"):
            kw["largest_node_mm"] = D(str(v)) * (10 if lk.endswith("_cm") else 1)
        elif lk.startswith("node_spd"):
            kw["node_spd_mm2"] = D(str(v)) * (100 if lk.endswith("_cm2") else 1)
        elif lk.startswith("spleen"):
            kw["spleen_mm"] = D(str(v)) * (10 if lk.endswith("_cm") else 1)
        elif lk == "liver":
            kw["liver_normal"] = str(v).lower() == "normal"
        elif lk.startswith("constitutional"):
            kw["constitutional_symptoms"] = str(v).lower() not in ("none", "no", "false", "absent")
        elif lk.startswith("lymphocytes"):
            kw["lymphocytes"] = D(str(v))
        elif lk.startswith("platelets"):
            kw["platelets"] = D(str(v))
        elif lk.startswith("hemoglobin") or lk.startswith("haemoglobin"):
            kw["hemoglobin_g_dl"] = D(str(v)) / (10 if lk.endswith("_g_l") else 1)
        elif lk.startswith("neutrophils") or lk.startswith("anc"):
            kw["neutrophils"] = D(str(v))
        elif lk == "transfused":
            kw["transfused"] = bool(v)
        elif lk == "marrow":
            kw["marrow"] = _marrow(str(v))
        elif lk == "category":
            kw["reported_category"] = str(v)
        elif lk in ("new_lesion", "transformation", "cytopenia_due_to_cll"):
            kw[lk] = bool(v)
    return CllTimepoint(**kw)


def vignette_inputs(v: dict) -> CllInputs:
    inp = v["inputs"]
    if "current" in inp:
        tps = [_tp(h) for h in inp.get("history", [])] + [_tp(inp["current"])]
    else:
        tps = [_tp({k: x for k, x in inp.items() if k not in ("baseline", "timing")})]
    baseline = _tp(inp["baseline"]) if isinstance(inp.get("baseline"), dict) else None
    therapy_end = None
    m = re.search(r"(\d+)\s*months? after end of", str(inp.get("timing", "")))
    if m:
        therapy_end = add_months(tps[-1].date, -int(m.group(1)))
    text = json.dumps(inp).lower()
    bcri = any(w in text for w in ("ibrutinib", "acalabrutinib", "zanubrutinib", "idelalisib", "bcr inhibitor",
                                   "btk inhibitor"))
    return CllInputs(assessments=tuple(tps), baseline=baseline, therapy_end=therapy_end, bcr_inhibitor=bcri)


VIGS = [v for v in json.loads(VIGNETTES.read_text()) if v["id"].startswith("CLL-")]


def test_public_cll_vignettes_present():
    assert {v["id"] for v in VIGS} >= {"CLL-01", "CLL-03"}


@pytest.mark.parametrize("v", VIGS, ids=[v["id"] for v in VIGS])
def test_vignette(v):
    a = assess(vignette_inputs(v), AS_OF)
    exp = v["expected"]
    assert a.category in exp.get("accept", [exp["category"]])
    assert a.category == exp["category"]
    for k, x in exp.items():
        if k.startswith("pct_change"):
            assert a.values[k.lower()] == D(str(x))
        if k == "relapse":
            assert a.values["relapse"] is str(x).lower().startswith("yes")
    assert a.history[-1].category == a.category


def test_cll03_relapse_outcome():
    v = next(v for v in VIGS if v["id"] == "CLL-03")
    a = assess(vignette_inputs(v), AS_OF)
    assert a.outcome is Outcome.RELAPSE
    assert a.values["nadir_node_spd_mm2"] == D(400)
    assert any(e.rule == "iwcll.relapse" for e in a.evidence)


# ---------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------

BASE_DATE = date(2024, 1, 10)
END = date(2024, 6, 1)
CUR = date(2024, 9, 1)  # 3 months after END

BASELINE = CllTimepoint(
    date=BASE_DATE, largest_node_mm=D(40), node_spd_mm2=D(1000), spleen_mm=D(180), liver_normal=True,
    constitutional_symptoms=True, lymphocytes=D(20), platelets=D(80), hemoglobin_g_dl=D(10),
    neutrophils=D(2), marrow=Marrow.RESIDUAL, marrow_cll_pct=D(40), refs=("Observation/base",),
)
CR_TP = CllTimepoint(
    date=CUR, largest_node_mm=D(10), node_spd_mm2=D(100), spleen_mm=D(120), liver_normal=True,
    constitutional_symptoms=False, lymphocytes=D("1.5"), platelets=D(150), hemoglobin_g_dl=D(13),
    neutrophils=D(2), transfused=False, marrow=Marrow.NORMOCELLULAR_CLEAR, refs=("Observation/cur",),
)
# measured, clearly stable relative to BASELINE (no PD, no PR)
SD_TP = CllTimepoint(
    date=CUR, largest_node_mm=D(38), node_spd_mm2=D(900), spleen_mm=D(175), liver_normal=True,
    constitutional_symptoms=False, lymphocytes=D(18), platelets=D(85), hemoglobin_g_dl=D("10.2"),
    neutrophils=D(2), transfused=False, marrow=Marrow.RESIDUAL,
)


def run(tp, baseline=BASELINE, priors=(), **kw):
    opts = {k: kw.pop(k) for k in ("spleen_change_basis", "require_marrow_for_cr", "use_anc") if k in kw}
    kw.setdefault("therapy_end", END)
    return assess(CllInputs(assessments=(*priors, tp), baseline=baseline, **kw), AS_OF, **opts)


# ---------------------------------------------------------------------------
# CR / CRi boundaries
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("changes, category", [
    ({}, "CR"),
    ({"largest_node_mm": D("14.9")}, "CR"),
    ({"largest_node_mm": D(15)}, "PR"),          # "none >= 1.5 cm": 15 mm is not CR
    ({"spleen_mm": D(129)}, "CR"),
    ({"spleen_mm": D(130)}, "PR"),               # spleen < 13 cm
    ({"lymphocytes": D("3.99")}, "CR"),
    ({"lymphocytes": D(4)}, "PR"),               # lymphocytes < 4
    ({"platelets": D(100)}, "CR"),
    ({"platelets": D("99.9")}, "PR"),            # >= 100, cytopenia not attributed elsewhere
    ({"hemoglobin_g_dl": D("11.0")}, "CR"),
    ({"hemoglobin_g_dl": D("10.99")}, "PR"),
    ({"transfused": True}, "PR"),                # Hb must be untransfused
    ({"neutrophils": D("1.5")}, "PR"),           # ANC > 1.5 (2008), exactly 1.5 fails
    ({"neutrophils": D("1.51")}, "CR"),
    ({"constitutional_symptoms": True}, "PR"),
    ({"liver_normal": False}, "PR"),
    ({"marrow": Marrow.RESIDUAL}, "PR"),
    ({"marrow": None}, "PR"),                    # marrow needed for CR
    ({"marrow": Marrow.HYPOCELLULAR_CLEAR, "platelets": D(80)}, "CRi"),
    ({"platelets": D(80), "cytopenia_due_to_cll": False}, "CRi"),
    ({"hemoglobin_g_dl": D(9), "marrow": Marrow.HYPOCELLULAR_CLEAR}, "CRi"),
    ({"neutrophils": D(1), "marrow": Marrow.HYPOCELLULAR_CLEAR}, "CRi"),
])
def test_cr_boundaries(changes, category):
    a = run(replace(CR_TP, **changes))
    assert a.category == category
    assert a.outcome is {"CR": Outcome.COMPLETE, "CRi": Outcome.PARTIAL, "PR": Outcome.PARTIAL}[category]
    assert a.evidence and a.confirmed


def test_anc_options_and_notes():
    no_anc = run(replace(CR_TP, neutrophils=None))
    assert no_anc.category == "CR" and any("ANC" in n for n in no_anc.notes)
    assert run(replace(CR_TP, neutrophils=D(1)), use_anc=False).category == "CR"


def test_marrow_option():
    a = run(replace(CR_TP, marrow=None))
    assert a.category == "PR" and any("marrow" in n for n in a.notes)
    assert run(replace(CR_TP, marrow=None), require_marrow_for_cr=False).category == "CR"


def test_cr_without_baseline_and_ne_without_baseline():
    assert run(CR_TP, baseline=None).category == "CR"
    a = run(replace(CR_TP, marrow=None), baseline=None)
    assert a.category == "NE" and a.outcome is Outcome.NOT_EVALUABLE
    assert any("marrow" in m for m in a.missing) and any("baseline" in m for m in a.missing)
    b = run(SD_TP, baseline=None)
    assert b.category == "NE" and any("baseline" in m for m in b.missing)


# ---------------------------------------------------------------------------
# PR boundaries
# ---------------------------------------------------------------------------

PR_BASE = CllTimepoint(date=BASE_DATE, largest_node_mm=D(40), node_spd_mm2=D(1000), spleen_mm=D(120),
                       liver_normal=True, lymphocytes=D(20), platelets=D(60), hemoglobin_g_dl=D(12))
PR_TP = CllTimepoint(date=CUR, largest_node_mm=D(30), node_spd_mm2=D(500), spleen_mm=D(120), liver_normal=True,
                     constitutional_symptoms=False, lymphocytes=D(10), platelets=D(90), hemoglobin_g_dl=D(12),
                     marrow=Marrow.RESIDUAL)


@pytest.mark.parametrize("changes, category", [
    ({}, "PR"),                                          # SPD -50 %, lymphocytes -50 %, platelets +50 %
    ({"node_spd_mm2": D(501)}, "SD"),                    # only 1 of 2 group-A improved
    ({"lymphocytes": D("10.01")}, "SD"),
    ({"lymphocytes": D("3.9")}, "PR"),                   # [I] normalised counts as improved
    ({"platelets": D("89.9")}, "SD"),                    # +49.8 % and < 100: group B not improved
    ({"platelets": D(100)}, "PR"),
])
def test_pr_boundaries(changes, category):
    a = run(replace(PR_TP, **changes), baseline=PR_BASE)
    assert a.category == category
    assert a.values["group_a_abnormal_at_baseline"] == 2 and a.values["group_b_abnormal_at_baseline"] == 1


def test_pr_one_of_each_and_hb_rule():
    base = CllTimepoint(date=BASE_DATE, largest_node_mm=D(30), node_spd_mm2=D(600), spleen_mm=D(100),
                        liver_normal=True, lymphocytes=D(3), platelets=D(150), hemoglobin_g_dl=D(6))
    tp = CllTimepoint(date=CUR, largest_node_mm=D(20), node_spd_mm2=D(300), spleen_mm=D(100), liver_normal=True,
                      lymphocytes=D(3), platelets=D(150), hemoglobin_g_dl=D(9), transfused=False)
    assert run(tp, baseline=base).category == "PR"                         # Hb +50 %
    assert run(replace(tp, hemoglobin_g_dl=D("8.99")), baseline=base).category == "SD"
    assert run(replace(tp, hemoglobin_g_dl=D(11)), baseline=base).category == "PR"
    assert run(replace(tp, transfused=True), baseline=base).category == "NE"  # transfused Hb unusable


def test_pr_no_group_b_abnormal():
    base = replace(PR_BASE, platelets=D(150))
    assert run(PR_TP, baseline=base).category == "PR"


def test_pr_with_unmeasured_parameter_is_ne_when_not_met():
    a = run(replace(PR_TP, lymphocytes=None, node_spd_mm2=D(900), largest_node_mm=D(39)), baseline=PR_BASE)
    assert a.category == "NE" and any("Lymphocytes" in m for m in a.missing)


def test_bcr_inhibitor_excludes_lymphocytes_from_pr():
    a = run(replace(PR_TP, lymphocytes=D(25)), baseline=PR_BASE, bcr_inhibitor=True)
    assert a.category == "PR"  # lymphocytosis +25 % isolated and not counted; nodes + platelets improved
    assert "lymphocytosis" in a.label


# ---------------------------------------------------------------------------
# PD boundaries
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("changes, category", [
    ({"node_spd_mm2": D(1500)}, "PD"),
    ({"node_spd_mm2": D(1499)}, "SD"),
    ({"largest_node_mm": D(60), "node_spd_mm2": None}, "PD"),
    ({"largest_node_mm": D("59.9"), "node_spd_mm2": None}, "SD"),
    ({"spleen_mm": D(270)}, "PD"),
    ({"spleen_mm": D(269)}, "SD"),
    ({"lymphocytes": D(30)}, "PD"),
    ({"lymphocytes": D("29.99")}, "SD"),
    ({"platelets": D(40), "cytopenia_due_to_cll": True}, "PD"),
    ({"platelets": D("40.1"), "cytopenia_due_to_cll": True}, "SD"),
    ({"platelets": D(40)}, "SD"),                        # fall not attributed to CLL: not counted
    ({"hemoglobin_g_dl": D(8), "cytopenia_due_to_cll": True}, "PD"),
    ({"hemoglobin_g_dl": D("8.01"), "cytopenia_due_to_cll": True}, "SD"),
    ({"marrow_cll_pct": D(60)}, "PD"),
    ({"marrow_cll_pct": D(59)}, "SD"),
    ({"new_lesion": True}, "PD"),
    ({"transformation": True}, "PD"),
    ({"constitutional_symptoms": True}, "SD"),           # symptoms alone are not PD
])
def test_pd_boundaries(changes, category):
    a = run(replace(SD_TP, **changes))
    assert a.category == category
    if category == "PD":
        assert a.outcome in (Outcome.PROGRESSION, Outcome.RELAPSE)
        assert any(e.rule.startswith("iwcll.pd") for e in a.evidence)


def test_pd_from_nadir():
    prior = replace(SD_TP, date=date(2024, 7, 1), node_spd_mm2=D(400), reported_category="PR")
    a = run(replace(SD_TP, node_spd_mm2=D(600)), priors=(prior,))
    assert a.category == "PD"
    assert a.values["pct_change_node_spd_from_nadir"] == D(50)
    assert a.values["pct_change_node_spd_from_baseline"] == D(-40)
    assert run(replace(SD_TP, node_spd_mm2=D(599)), priors=(prior,)).category != "PD"


def test_spleen_enlargement_basis():
    tp = replace(SD_TP, spleen_mm=D(205))  # length +13.9 %; enlargement 50 -> 75 mm = +50 %
    assert run(tp).category == "SD"
    assert run(tp, spleen_change_basis="enlargement").category == "PD"
    with pytest.raises(ValueError):
        run(tp, spleen_change_basis="volume")


def test_lymphocytosis_floor_and_bcr_inhibitor():
    base = replace(BASELINE, lymphocytes=D(2))
    assert run(replace(SD_TP, lymphocytes=D("4.9")), baseline=base).category != "PD"   # +145 % but < 5
    assert run(replace(SD_TP, lymphocytes=D(5)), baseline=base).category == "PD"
    a = run(replace(SD_TP, lymphocytes=D(40)), bcr_inhibitor=True)
    assert a.category == "SD" and any("BCR" in n for n in a.notes)
    b = run(replace(SD_TP, lymphocytes=D(40), node_spd_mm2=D(1600)), bcr_inhibitor=True)
    assert b.category == "PD"


# ---------------------------------------------------------------------------
# Relapse, refractory, timing
# ---------------------------------------------------------------------------


def test_relapse_exactly_six_months():
    prior = replace(PR_TP, date=date(2024, 1, 15), reported_category="PR")
    pd_tp = replace(SD_TP, date=date(2024, 7, 15), new_lesion=True)
    a = run(pd_tp, baseline=BASELINE, priors=(prior,), therapy_end=None)
    assert a.values["relapse"] is True and a.outcome is Outcome.RELAPSE
    b = run(replace(pd_tp, date=date(2024, 7, 14)), baseline=BASELINE, priors=(prior,), therapy_end=None)
    assert b.category == "PD" and b.values["relapse"] is False and b.outcome is Outcome.PROGRESSION


def test_refractory():
    a = run(SD_TP)  # SD 3 months after end of therapy = no response
    assert a.values["refractory"] is True and a.outcome is Outcome.NO_RESPONSE
    prior = replace(PR_TP, date=date(2024, 8, 1), reported_category="PR")
    b = run(replace(SD_TP, date=date(2024, 11, 30), new_lesion=True), priors=(prior,))
    assert b.values["refractory"] is True and b.values["relapse"] is False  # PD < 6 months after therapy end
    c = run(replace(SD_TP, date=date(2025, 3, 1), new_lesion=True), priors=(prior,))
    assert c.values["refractory"] is False and c.values["relapse"] is True
    d = run(SD_TP, therapy_end=None)
    assert d.values["refractory"] is None and d.outcome is Outcome.STABLE


def test_timing_two_months():
    early = run(replace(CR_TP, date=date(2024, 7, 31)))
    assert early.category == "CR" and early.confirmed is False
    assert any("2 months" in n for n in early.notes)
    on_time = run(replace(CR_TP, date=date(2024, 8, 1)))
    assert on_time.confirmed is True
    assert on_time.values["days_after_end_of_therapy"] == 61


def test_add_months():
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2024, 8, 31), 6) == date(2025, 2, 28)
    assert add_months(date(2024, 11, 5), -3) == date(2024, 8, 5)


def test_no_assessment_is_ne_and_as_of():
    a = assess(CllInputs(assessments=()), AS_OF)
    assert a.category == "NE" and a.missing
    b = assess(CllInputs(assessments=(CR_TP,), baseline=BASELINE), date(2024, 8, 1))
    assert b.category == "NE" and b.assessment_date is None


def test_umrd4_reported_with_cr_and_refs():
    m = MrdResult(CUR, Method.FLOW, False, None, D("1E-4"), Sample.PB, ref="Observation/mrd")
    a = run(CR_TP, mrd=(m,))
    assert a.category == "CR" and a.values["mrd_status"] == "uMRD4" and "uMRD4" in a.label
    assert any("Observation/mrd" in e.refs for e in a.evidence)
    assert any("Observation/cur" in e.refs for e in a.evidence)
    pos = MrdResult(CUR, Method.FLOW, True, D("1E-4"), sample=Sample.PB)
    b = run(CR_TP, mrd=(pos,))
    assert b.values["mrd_status"] == "MRD detectable (>=10^-4)" and "uMRD4" not in b.label


def test_every_category_reachable():
    cats = {run(CR_TP).category, run(replace(CR_TP, marrow=Marrow.HYPOCELLULAR_CLEAR, platelets=D(80))).category,
            run(PR_TP, baseline=PR_BASE).category, run(SD_TP).category,
            run(replace(SD_TP, new_lesion=True)).category, run(SD_TP, baseline=None).category}
    assert cats == {"CR", "CRi", "PR", "SD", "PD", "NE"}


# ---------------------------------------------------------------------------
# Properties: a smaller tumour burden never gives a worse category
# ---------------------------------------------------------------------------

SEV = {"CR": 0, "CRi": 1, "PR": 2, "SD": 3, "PD": 4}


@settings(max_examples=200, deadline=None)
@given(a=st.integers(0, 3000), b=st.integers(0, 3000), lym_a=st.integers(1, 4000), lym_b=st.integers(1, 4000))
def test_smaller_burden_never_worse(a, b, lym_a, lym_b):
    lo, hi = sorted((a, b))
    llo, lhi = sorted((lym_a, lym_b))
    r_lo = run(replace(PR_TP, node_spd_mm2=D(lo), lymphocytes=D(llo) / 100), baseline=PR_BASE)
    r_hi = run(replace(PR_TP, node_spd_mm2=D(hi), lymphocytes=D(lhi) / 100), baseline=PR_BASE)
    assert SEV[r_lo.category] <= SEV[r_hi.category]
