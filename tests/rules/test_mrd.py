"""Tests for rules/mrd.py: public ALL MRD vignettes, boundaries of every threshold, every category, properties."""
from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from rules import mrd
from rules.base import Outcome
from rules.mrd import Method, MrdInputs, MrdResult, Sample, Scheme, assess

VIGNETTES = Path(__file__).resolve().parents[3] / "shared" / "vignettes" / "public.json"
AS_OF = date(2030, 1, 1)
DAY = date(2024, 3, 1)
D = Decimal


# ---------------------------------------------------------------------------
# Vignette adapter
# ---------------------------------------------------------------------------


def _method(text: str) -> Method:
    t = text.lower()
    if "ngf" in t:
        return Method.NGF
    if "ngs" in t or "clonoseq" in t or "sequencing" in t:
        return Method.NGS
    if "pcr" in t:
        return Method.PCR
    if "flow" in t or "colour" in t or "color" in t or "mfc" in t or "fcm" in t:
        return Method.FLOW
    return Method.OTHER


def _result(item: dict, defaults: dict | None = None) -> MrdResult:
    item = {**(defaults or {}), **item}
    text = " ".join(str(item.get(k, "")) for k in ("method", "assay", "timepoint", "sample"))
    level = sens = None
    for k, v in item.items():
        if v is None or isinstance(v, (dict, list, bool)):
            continue
        if re.search(r"lod|sensitivity|limit_of_detection", k, re.IGNORECASE):
            sens = D(str(v)) if k.lower().endswith("fraction") else mrd.pct_to_fraction(D(str(v)))
        elif re.search(r"(mrd|level).*_fraction$", k, re.IGNORECASE) and level is None:
            level = D(str(v))
        elif re.search(r"(mrd|level).*_pct$", k, re.IGNORECASE) and level is None:
            level = mrd.pct_to_fraction(D(str(v)))
    res = str(item.get("result", "")).lower()
    detected = not (("negative" in res) or ("not detected" in res) or ("no clonotype" in res)
                    or ("undetectable" in res)) if res else True
    if level is not None and level == 0:
        detected = False
    loq = None
    bound = re.search(r"<\s*([\d.]+)\s*%", res)
    if detected and level is None and bound:
        loq = mrd.pct_to_fraction(D(bound.group(1)))
    markers = re.search(r"(\d+)\s*markers?", text)
    sample = Sample.PB if re.search(r"peripheral blood|\bPB\b|blood", text) and "marrow" not in text else Sample.BM
    return MrdResult(
        date=date.fromisoformat(item["date"]),
        method=_method(text),
        detected=detected,
        level=level if detected else None,
        sensitivity=sens,
        sample=sample,
        timepoint=item.get("timepoint"),
        markers=int(markers.group(1)) if markers else None,
        loq=loq,
    )


def _scheme(criteria: str) -> Scheme:
    if "COG" in criteria:
        return Scheme.COG
    if "AIEOP" in criteria:
        return Scheme.AIEOP_BFM
    if "relapse" in criteria.lower():
        return Scheme.ALL_RELAPSE
    if "adult" in criteria.lower():
        return Scheme.ADULT_ALL
    if "CLL" in criteria:
        return Scheme.CLL
    if "AML" in criteria or "ELN" in criteria:
        return Scheme.AML_MFC
    raise ValueError(criteria)


def vignette_inputs(v: dict) -> MrdInputs:
    inp = v["inputs"]
    if isinstance(inp.get("MRD"), list):
        results = tuple(_result(x) for x in inp["MRD"])
    elif isinstance(inp.get("mrd_tests"), list):
        results = tuple(_result(x) for x in inp["mrd_tests"])
    else:
        results = (_result(inp),)
    others = tuple(_result(x) for x in inp.get("other_tests", []))
    return MrdInputs(scheme=_scheme(v["criteria"]), results=results, other_tests=others,
                     protocol=inp.get("protocol"))


def _all_mrd_vignettes() -> list[dict]:
    data = json.loads(VIGNETTES.read_text())
    # IMWG 2016 MRD vignettes belong to rules/imwg2016.py; every other MRD- vignette is this engine's.
    return [v for v in data if v["id"].startswith("MRD-") and not v["criteria"].startswith("IMWG")]


ALL_VIGNETTES = _all_mrd_vignettes()


def test_public_file_has_all_mrd_vignettes():
    assert {v["id"] for v in ALL_VIGNETTES} >= {"MRD-05", "MRD-07"}


@pytest.mark.parametrize("v", ALL_VIGNETTES, ids=[v["id"] for v in ALL_VIGNETTES])
def test_vignette_default(v):
    a = assess(vignette_inputs(v), AS_OF)
    accept = v["expected"].get("accept", [v["expected"]["category"]])
    assert a.category in accept
    assert a.category == v["expected"]["category"]  # the defaults reproduce the vignette's own category
    assert a.outcome is not Outcome.NOT_EVALUABLE and not a.missing


@pytest.mark.parametrize("v", [v for v in ALL_VIGNETTES if "accept" in v["expected"]],
                         ids=lambda v: v["id"])
def test_vignette_each_accepted_protocol(v):
    for cat in v["expected"]["accept"]:
        m = re.search(r"ALL (2000|2009)", cat)
        assert m, cat
        a = assess(vignette_inputs(v), AS_OF, protocol=m.group(1))
        assert a.category == cat
        assert a.values["protocol"] == f"AIEOP-BFM ALL {m.group(1)}"
        assert any(m.group(1) in n for n in a.notes)  # the card says which protocol was applied


def test_mrd07_numbers():
    v = next(v for v in ALL_VIGNETTES if v["id"] == "MRD-07")
    a = assess(vignette_inputs(v), AS_OF)
    assert a.values["day78_mrd_level_fraction"] == D("0.0006")
    assert a.values["day33_mrd_level_fraction"] == D("0.002")
    assert a.values["threshold_fraction"] == D("5E-4")
    assert [h.date for h in a.history] == [date(2024, 3, 4), date(2024, 4, 18)]
    assert a.history[-1].category == a.category


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def pos(level, method=Method.FLOW, tp=None, sample=Sample.BM, d=DAY, **kw) -> MrdResult:
    return MrdResult(d, method, True, D(level), timepoint=tp, sample=sample, **kw)


def neg(sens=None, method=Method.FLOW, tp=None, sample=Sample.BM, d=DAY, **kw) -> MrdResult:
    return MrdResult(d, method, False, None, D(sens) if sens is not None else None, timepoint=tp,
                     sample=sample, **kw)


def run(scheme, *results, **kw):
    protocol = kw.pop("protocol", None)
    return assess(MrdInputs(scheme, tuple(results), **kw), AS_OF, protocol=protocol)


def test_negative_at_and_sensitivity_of():
    assert mrd.negative_at(neg("1E-5"), D("1E-5"))
    assert mrd.negative_at(neg("1E-6"), D("1E-5"))
    assert not mrd.negative_at(neg("1E-4"), D("1E-5"))
    assert not mrd.negative_at(pos("1E-7"), D("1E-5"))
    assert mrd.sensitivity_of(neg(method=Method.NGS)) == (D("1E-6"), True)
    assert mrd.sensitivity_of(neg(method=Method.PCR)) == (D("1E-5"), True)
    assert mrd.sensitivity_of(neg("2E-6", method=Method.NGF)) == (D("2E-6"), False)
    assert mrd.sensitivity_of(neg(method=Method.OTHER)) == (None, False)
    assert not mrd.negative_at(neg(method=Method.FLOW), D("1E-5"))  # typical flow 1E-4 does not reach 1E-5
    assert mrd.negative_at(neg(method=Method.NGS), D("1E-5"))


def test_compare_level():
    assert mrd.compare_level(pos("1E-4"), D("1E-4")) == "at_or_above"
    assert mrd.compare_level(pos("0.99E-4"), D("1E-4")) == "below"
    assert mrd.compare_level(MrdResult(DAY, Method.PCR, True, loq=D("5E-5")), D("1E-4")) == "below"
    assert mrd.compare_level(MrdResult(DAY, Method.PCR, True, loq=D("1E-3")), D("1E-4")) == "unknown"
    assert mrd.compare_level(neg("1E-3"), D("1E-4")) == "unknown"


def test_timepoint_day():
    assert mrd.timepoint_day("end of induction (day 29) bone marrow") == 29
    assert mrd.timepoint_day("End of induction") == 29
    assert mrd.timepoint_day("day 78") == 78
    assert mrd.timepoint_day("TP1") == 33
    assert mrd.timepoint_day("TP2") == 78
    assert mrd.timepoint_day("week 14") is None


def test_result_validation():
    with pytest.raises(ValueError):
        MrdResult(DAY, Method.FLOW, False, D("0.01"))
    with pytest.raises(ValueError):
        MrdResult(DAY, Method.FLOW, True, D("-1"))


def test_aml_and_cll_helpers():
    assert mrd.aml_mfc_positive(D("0.001"))
    assert not mrd.aml_mfc_positive(D("0.000999"))
    assert mrd.cll_umrd4(pos("1E-4")) is False
    assert mrd.cll_umrd4(pos("9.9E-5")) is True
    assert mrd.cll_umrd4(neg("1E-3")) is None


# ---------------------------------------------------------------------------
# Adult ALL
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("result, category, outcome", [
    (neg("1E-4"), "MRD-CR", Outcome.COMPLETE),
    (neg("1E-6", Method.NGS), "MRD-CR", Outcome.COMPLETE),
    (neg("1.1E-4"), "MRD intermediate", Outcome.INDETERMINATE),
    (neg("1E-3"), "MRD intermediate", Outcome.INDETERMINATE),
    (pos("1E-4"), "MRD failure", Outcome.NO_RESPONSE),           # exactly 0.01 % = failure
    (pos("1.01E-4"), "MRD failure", Outcome.NO_RESPONSE),
    (pos("0.99E-4"), "MRD intermediate", Outcome.INDETERMINATE),
    (MrdResult(DAY, Method.PCR, True, loq=D("1E-4")), "MRD intermediate", Outcome.INDETERMINATE),
    (MrdResult(DAY, Method.PCR, True), "NE", Outcome.NOT_EVALUABLE),
])
def test_adult_all(result, category, outcome):
    a = run(Scheme.ADULT_ALL, result)
    assert (a.category, a.outcome) == (category, outcome)
    assert a.criteria == "ALL MRD (adult consensus)"
    assert bool(a.missing) == (category == "NE")
    if category != "NE":
        assert a.evidence and a.confirmed


def test_adult_all_assumed_sensitivity_is_said():
    a = run(Scheme.ADULT_ALL, neg(method=Method.FLOW))
    assert a.category == "MRD-CR"
    assert a.values["sensitivity_assumed"] is True
    assert a.values["sensitivity_fraction"] == D("1E-4")
    assert any("assumed" in n for n in a.notes)
    b = run(Scheme.ADULT_ALL, neg("1E-4"))
    assert b.values["sensitivity_assumed"] is False
    assert not any("assumed" in n for n in b.notes)


def test_adult_all_conversion_is_relapse_outcome():
    a = run(Scheme.ADULT_ALL, neg("1E-5", d=date(2024, 1, 1)), pos("2E-4", d=date(2024, 6, 1), ref="Observation/2"))
    assert a.category == "MRD failure"
    assert a.outcome is Outcome.RELAPSE
    assert [h.category for h in a.history] == ["MRD-CR", "MRD failure"]
    assert "Observation/2" in a.evidence[-1].refs
    assert a.values["converted_from_mrd_cr"] is True


def test_as_of_ignores_later_results():
    results = (neg("1E-5", d=date(2024, 1, 1)), pos("2E-4", d=date(2024, 6, 1)))
    a = assess(MrdInputs(Scheme.ADULT_ALL, results), date(2024, 3, 1))
    assert a.category == "MRD-CR"
    assert a.assessment_date == date(2024, 1, 1)
    assert any("after" in n for n in a.notes)


def test_no_results_is_ne():
    a = run(Scheme.CLL)
    assert a.category == "NE" and a.outcome is Outcome.NOT_EVALUABLE and a.missing
    assert a.assessment_date is None and not a.confirmed


# ---------------------------------------------------------------------------
# COG
# ---------------------------------------------------------------------------

EOI = "end of induction (day 29)"


@pytest.mark.parametrize("result, category", [
    (pos("1E-4", tp=EOI), "EOI MRD-positive (>=0.01%)"),
    (pos("0.99E-4", tp=EOI), "EOI MRD-negative (<0.01%)"),
    (pos("1.01E-4", tp="day 29"), "EOI MRD-positive (>=0.01%)"),
    (neg("1E-4", tp=EOI), "EOI MRD-negative (<0.01%)"),
    (neg(tp=EOI), "EOI MRD-negative (<0.01%)"),  # flow typical 1E-4 assumed
    (neg("1E-3", tp=EOI), "NE"),
    (pos("0.5", tp=EOI, sample=Sample.PB), "NE"),
    (pos("0.5"), "NE"),  # no timepoint label
])
def test_cog_eoi(result, category):
    a = run(Scheme.COG, result)
    assert a.category == category
    assert a.outcome is {"EOI MRD-positive (>=0.01%)": Outcome.NO_RESPONSE,
                         "EOI MRD-negative (<0.01%)": Outcome.COMPLETE, "NE": Outcome.NOT_EVALUABLE}[category]


@pytest.mark.parametrize("level, category", [
    ("1E-2", "Day-8 PB MRD >=1%"),
    ("0.0099", "Day-8 PB MRD 0.01-<1%"),
    ("1E-4", "Day-8 PB MRD 0.01-<1%"),
    ("0.99E-4", "Day-8 PB MRD <0.01%"),
])
def test_cog_day8(level, category):
    a = run(Scheme.COG, pos(level, tp="day 8", sample=Sample.PB))
    assert a.category == category
    assert a.values["day8_pb_mrd_level_fraction"] == D(level)


def test_cog_eoi_wins_over_day8_and_history_has_both():
    a = run(Scheme.COG, pos("0.02", tp="day 8", sample=Sample.PB, d=date(2024, 1, 8)),
            neg("1E-5", tp=EOI, d=date(2024, 1, 29)))
    assert a.category == "EOI MRD-negative (<0.01%)"
    assert [h.category for h in a.history] == ["Day-8 PB MRD >=1%", "EOI MRD-negative (<0.01%)"]
    assert a.values["day8_pb_mrd_level_fraction"] == D("0.02")


# ---------------------------------------------------------------------------
# AIEOP-BFM
# ---------------------------------------------------------------------------

D33, D78 = date(2024, 3, 4), date(2024, 4, 18)


def tp33(r_kind, *args, **kw):
    return (pos if r_kind == "pos" else neg)(*args, method=Method.PCR, tp="day 33", d=D33, **kw)


def tp78(r_kind, *args, **kw):
    return (pos if r_kind == "pos" else neg)(*args, method=Method.PCR, tp="day 78", d=D78, **kw)


@pytest.mark.parametrize("protocol, results, category, outcome", [
    ("2000", (tp33("pos", "2E-3"), tp78("pos", "1E-3")), "MRD-HR (AIEOP-BFM ALL 2000: day-78 >=10^-3)",
     Outcome.NO_RESPONSE),
    ("2000", (tp33("pos", "2E-3"), tp78("pos", "0.999E-3")), "MRD-IR (AIEOP-BFM ALL 2000: day-78 <10^-3)",
     Outcome.STABLE),
    ("2000", (tp33("pos", "2E-3"), tp78("neg", "1E-4")), "MRD-IR (AIEOP-BFM ALL 2000: day-78 <10^-3)",
     Outcome.STABLE),
    ("2000", (tp33("neg", "1E-4", markers=2), tp78("neg", "1E-4", markers=2)),
     "MRD-SR (AIEOP-BFM ALL 2000: negative day 33 and day 78)", Outcome.COMPLETE),
    ("2000", (tp33("neg", "1E-4", markers=1), tp78("neg", "1E-4", markers=2)), "NE", Outcome.NOT_EVALUABLE),
    ("2000", (tp33("neg", "1E-3"), tp78("neg", "1E-4")), "NE", Outcome.NOT_EVALUABLE),
    ("2000", (tp33("neg", "1E-4"),), "NE", Outcome.NOT_EVALUABLE),
    ("2000", (tp78("neg", "1E-4"),), "NE", Outcome.NOT_EVALUABLE),
    ("2000", (tp78("pos", "1E-4"),), "MRD-IR (AIEOP-BFM ALL 2000: day-78 <10^-3)", Outcome.STABLE),
    ("2009", (tp33("pos", "4E-4"), tp78("pos", "5E-4")), "MRD-HR (AIEOP-BFM ALL 2009: day-78 >=5x10^-4)",
     Outcome.NO_RESPONSE),
    ("2009", (tp33("pos", "4.99E-4"), tp78("pos", "4.99E-4")), "MRD-IR (AIEOP-BFM ALL 2009: day-78 <5x10^-4)",
     Outcome.STABLE),
    ("2009", (tp33("pos", "5E-4"), tp78("pos", "1E-5")),
     "MRD-HR (AIEOP-BFM ALL 2009: day-33 >=5x10^-4, day-78 positive <5x10^-4)", Outcome.NO_RESPONSE),
    ("2009", (tp33("pos", "5E-4"), tp78("neg", "1E-5")), "MRD-IR (AIEOP-BFM ALL 2009: day-78 <5x10^-4)",
     Outcome.STABLE),
    ("2009", (tp33("neg", "1E-5"), tp78("neg", "1E-5")), "MRD-SR (AIEOP-BFM ALL 2009: negative day 33 and day 78)",
     Outcome.COMPLETE),
    ("2009", (pos("0.1", tp="day 15", d=date(2024, 2, 15)), tp33("neg", "1E-5"), tp78("neg", "1E-5")),
     "MRD-HR (AIEOP-BFM ALL 2009: day-15 FCM >=10%)", Outcome.NO_RESPONSE),
    ("2009", (pos("0.0999", tp="day 15", d=date(2024, 2, 15)), tp33("neg", "1E-5"), tp78("neg", "1E-5")),
     "MRD-SR (AIEOP-BFM ALL 2009: negative day 33 and day 78)", Outcome.COMPLETE),
    ("2009", (pos("0.00099", tp="day 15"),), "MRD-SR (AIEOP-BFM ALL 2009: day-15 FCM <0.1%, PCR unavailable)",
     Outcome.COMPLETE),
    ("2009", (pos("0.001", tp="day 15"),), "MRD-IR (AIEOP-BFM ALL 2009: day-15 FCM 0.1-<10%, PCR unavailable)",
     Outcome.STABLE),
    ("2000", (pos("0.5", tp="day 15"), tp33("neg", "1E-5"), tp78("neg", "1E-5")),
     "MRD-SR (AIEOP-BFM ALL 2000: negative day 33 and day 78)", Outcome.COMPLETE),  # day-15 rule is ALL 2009 only
])
def test_aieop_bfm(protocol, results, category, outcome):
    a = run(Scheme.AIEOP_BFM, *results, protocol=protocol)
    assert (a.category, a.outcome) == (category, outcome)
    assert bool(a.missing) == (category == "NE")


def test_aieop_2009_day33_rule_b_lineage_only():
    a = run(Scheme.AIEOP_BFM, tp33("pos", "5E-4"), tp78("pos", "1E-5"), protocol="2009", b_lineage=False)
    assert a.category == "MRD-IR (AIEOP-BFM ALL 2009: day-78 <5x10^-4)"


def test_aieop_protocol_precedence_and_validation():
    res = (tp33("pos", "2E-3"), tp78("pos", "6E-4"))
    assert run(Scheme.AIEOP_BFM, *res).category.startswith("MRD-HR (AIEOP-BFM ALL 2009")
    assert run(Scheme.AIEOP_BFM, *res, protocol=None, **{}).values["protocol"] == "AIEOP-BFM ALL 2009"
    a = assess(MrdInputs(Scheme.AIEOP_BFM, res, protocol="AIEOP-BFM ALL 2000"), AS_OF)
    assert a.category.startswith("MRD-IR (AIEOP-BFM ALL 2000")
    b = assess(MrdInputs(Scheme.AIEOP_BFM, res, protocol="2000"), AS_OF, protocol="2009")
    assert b.category.startswith("MRD-HR (AIEOP-BFM ALL 2009")
    with pytest.raises(ValueError):
        assess(MrdInputs(Scheme.AIEOP_BFM, res), AS_OF, protocol="2017")
    assert mrd.DEFAULT_AIEOP_BFM_PROTOCOL == "2009"


def test_aieop_markers_not_reported_is_noted():
    a = run(Scheme.AIEOP_BFM, tp33("neg", "1E-5"), tp78("neg", "1E-5"), protocol="2000")
    assert a.category.startswith("MRD-SR")
    assert any("markers" in n for n in a.notes)


# ---------------------------------------------------------------------------
# Paediatric ALL relapse
# ---------------------------------------------------------------------------

def other(level):
    return pos(level, method=Method.OTHER)


@pytest.mark.parametrize("results, others, category, outcome", [
    ((pos("0.25"),), (), "relapse", Outcome.RELAPSE),
    ((pos("0.2499"),), (), "unconfirmed relapse", Outcome.UNCONFIRMED_PROGRESSION),
    ((pos("0.2499"),), (other("0.01"),), "relapse", Outcome.RELAPSE),
    ((pos("0.05"),), (other("0.0099"),), "unconfirmed relapse", Outcome.UNCONFIRMED_PROGRESSION),
    ((pos("0.05"),), (other("0.02"),), "relapse", Outcome.RELAPSE),
    ((pos("0.0499"),), (other("0.02"),), "unconfirmed relapse", Outcome.UNCONFIRMED_PROGRESSION),
    ((pos("0.0499"),), (other("0.02"), other("0.01")), "relapse", Outcome.RELAPSE),
    ((pos("0.01"),), (), "unconfirmed relapse", Outcome.UNCONFIRMED_PROGRESSION),
    ((pos("0.02", d=date(2024, 2, 1)), pos("0.01")), (), "relapse", Outcome.RELAPSE),  # confirmatory marrow
    ((pos("0.0099", d=date(2024, 2, 1)), pos("0.01")), (), "unconfirmed relapse", Outcome.UNCONFIRMED_PROGRESSION),
    ((pos("0.0099"),), (), "no relapse (BM MRD <1%)", Outcome.STABLE),
    ((neg("1E-4"),), (), "no relapse (BM MRD-negative)", Outcome.COMPLETE),
    ((pos("0.3", sample=Sample.PB),), (), "NE", Outcome.NOT_EVALUABLE),
    ((MrdResult(DAY, Method.FLOW, True),), (), "NE", Outcome.NOT_EVALUABLE),
])
def test_all_relapse(results, others, category, outcome):
    a = run(Scheme.ALL_RELAPSE, *results, other_tests=others)
    assert (a.category, a.outcome) == (category, outcome)
    assert a.confirmed == (category not in ("unconfirmed relapse", "NE"))


# ---------------------------------------------------------------------------
# CLL and AML
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("result, category", [
    (pos("1E-4", sample=Sample.PB), "MRD detectable (>=10^-4)"),
    (pos("0.99E-4", Method.NGS), "uMRD4"),
    (neg("1E-4"), "uMRD4"),
    (neg(method=Method.NGS), "uMRD4"),
    (neg("1E-3"), "NE"),
])
def test_cll(result, category):
    a = run(Scheme.CLL, result)
    assert a.category == category
    assert a.criteria == "iwCLL 2018 MRD"


@pytest.mark.parametrize("result, category", [
    (pos("1E-3"), "MRD-positive (MFC >=0.1%)"),
    (pos("0.999E-3"), "MRD-negative (MFC <0.1%)"),
    (neg("1E-4"), "MRD-negative (MFC <0.1%)"),
    (neg("2E-3"), "NE"),
    (pos("0.5", Method.PCR), "NE"),
])
def test_aml_mfc(result, category):
    assert run(Scheme.AML_MFC, result).category == category


def test_every_category_has_evidence_with_numbers_and_refs():
    a = run(Scheme.CLL, pos("3E-4", ref="Observation/mrd-1"))
    ev = a.evidence[0]
    assert "0.03 %" in ev.text and "1E-4" in ev.text and ev.citation and ev.refs == ("Observation/mrd-1",)
    assert a.values["mrd_level_fraction"] == D("3E-4") and a.values["mrd_level_pct"] == D("0.03")


# ---------------------------------------------------------------------------
# Properties: a lower MRD level never gives a worse category
# ---------------------------------------------------------------------------

SEVERITY = {
    "MRD-CR": 0, "MRD intermediate": 1, "MRD failure": 2,
    "EOI MRD-negative (<0.01%)": 0, "EOI MRD-positive (>=0.01%)": 2,
    "uMRD4": 0, "MRD detectable (>=10^-4)": 2,
    "MRD-negative (MFC <0.1%)": 0, "MRD-positive (MFC >=0.1%)": 2,
    "no relapse (BM MRD-negative)": 0, "no relapse (BM MRD <1%)": 1, "unconfirmed relapse": 2, "relapse": 3,
}


def _sev(category: str) -> int:
    if category.startswith("MRD-SR"):
        return 0
    if category.startswith("MRD-IR"):
        return 1
    if category.startswith("MRD-HR"):
        return 2
    return SEVERITY[category]


levels = st.integers(min_value=1, max_value=10**7).map(lambda n: D(n) / D(10**7))


@settings(max_examples=200, deadline=None)
@given(a=levels, b=levels, scheme=st.sampled_from([Scheme.ADULT_ALL, Scheme.COG, Scheme.CLL, Scheme.AML_MFC,
                                                   Scheme.ALL_RELAPSE]))
def test_lower_level_never_worse(a, b, scheme):
    lo, hi = sorted((a, b))
    r_lo = run(scheme, pos(lo, tp=EOI), other_tests=(other("0.02"),))
    r_hi = run(scheme, pos(hi, tp=EOI), other_tests=(other("0.02"),))
    assert _sev(r_lo.category) <= _sev(r_hi.category)


@settings(max_examples=200, deadline=None)
@given(a=levels, b=levels, d33=levels, protocol=st.sampled_from(["2000", "2009"]))
def test_aieop_lower_day78_never_worse(a, b, d33, protocol):
    lo, hi = sorted((a, b))
    r_lo = run(Scheme.AIEOP_BFM, tp33("pos", d33), tp78("pos", lo), protocol=protocol)
    r_hi = run(Scheme.AIEOP_BFM, tp33("pos", d33), tp78("pos", hi), protocol=protocol)
    assert _sev(r_lo.category) <= _sev(r_hi.category)
