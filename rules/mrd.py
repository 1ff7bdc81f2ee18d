"""MRD depth: measurable residual disease results judged against disease-specific criteria.

Reference: remission-cds ``criteria.md`` §9 (MRD thresholds), §12 items 6 and 13.

Generic pieces (reusable by other engines, e.g. IMWG 2016 MRD in ``rules/imwg2016.py`` or ELN 2022 AML):

* :class:`MrdResult` - one dated MRD result (method, sensitivity/LOD as a fraction, detected or not, level as a
  fraction, sample, timepoint label, FHIR reference).
* :func:`sensitivity_of` - the assay sensitivity, or the method's *typical* sensitivity when the assay reported
  none (flagged as assumed; criteria.md §9 row 1 and §12 item 6: typical, not normative).
* :func:`negative_at` - whether a negative result counts as negative at a required sensitivity.
* :func:`compare_level` - exact three-way comparison of a result with a threshold ("at_or_above", "below",
  "unknown"); "exactly at threshold" is positive (criteria.md §9 [I] note).
* :func:`aml_mfc_positive`, :func:`cll_umrd4` - single-threshold helpers.

Disease schemes (``Scheme``) assessed by :func:`assess`:

* ``ADULT_ALL`` - adult ALL consensus terminology (PMC8824253 Table 1): ``"MRD-CR"``, ``"MRD failure"``,
  ``"MRD intermediate"``.  A negative whose sensitivity does not reach 10^-4 is "MRD intermediate" (the
  terminology's own category for it), not NE.
* ``COG`` - paediatric ALL, COG (Borowitz 2008; AALL08B1): end of induction (day 29, bone marrow)
  ``"EOI MRD-positive (>=0.01%)"`` / ``"EOI MRD-negative (<0.01%)"``; day-8 peripheral blood
  ``"Day-8 PB MRD >=1%"`` / ``"Day-8 PB MRD 0.01-<1%"`` / ``"Day-8 PB MRD <0.01%"`` (used as the category only when
  no end-of-induction result exists yet).
* ``AIEOP_BFM`` - AIEOP-BFM ALL 2000 (Conter 2010) or ALL 2009; the protocol version is a keyword option of
  :func:`assess` (default :data:`DEFAULT_AIEOP_BFM_PROTOCOL` = "2009", as vignette MRD-07 ``category``; criteria.md
  §12 item 13).  Categories ``"MRD-SR (...)"``, ``"MRD-IR (...)"``, ``"MRD-HR (...)"``, the bracket naming the
  protocol and the deciding rule, e.g. ``"MRD-HR (AIEOP-BFM ALL 2009: day-78 >=5x10^-4)"``.
* ``ALL_RELAPSE`` - paediatric ALL relapse by bone-marrow MRD level (international consensus, ashpublications
  view-large 10495469): ``"relapse"``, ``"unconfirmed relapse"``, ``"no relapse (BM MRD <1%)"``,
  ``"no relapse (BM MRD-negative)"``.
* ``CLL`` - iwCLL 2018 undetectable MRD: ``"uMRD4"`` (< 10^-4; exactly 10^-4 is detectable) /
  ``"MRD detectable (>=10^-4)"``.
* ``AML_MFC`` - ELN 2021 MFC-MRD: ``"MRD-positive (MFC >=0.1%)"`` / ``"MRD-negative (MFC <0.1%)"``.

Outcome mapping (documented choice; base.Outcome):
  negative / MRD-CR / MRD-SR / uMRD4                     -> COMPLETE
  MRD intermediate (adult ALL)                           -> INDETERMINATE (neither CR nor failure by definition)
  MRD-IR, day-8 0.01-<1 %, CLL/AML positive, BM MRD <1 % -> STABLE (residual disease, not a failure category)
  MRD failure, EOI MRD-positive, MRD-HR, day-8 >=1 %     -> NO_RESPONSE (MRD failure / persistence of disease)
  relapse                                                -> RELAPSE; unconfirmed relapse -> UNCONFIRMED_PROGRESSION
  insufficient data                                      -> NOT_EVALUABLE (category ``"NE"``, ``missing`` filled)
  Exception: adult-ALL "MRD failure" after an earlier MRD-CR in the series is reported as Outcome.RELAPSE
  (conversion from MRD negativity; the category string is unchanged).

``confirmed``: none of these schemes defines a confirmation interval, so ``confirmed`` is True (said in notes),
except the ALL relapse scheme where "unconfirmed relapse" is False (its confirmation rule is the second test /
confirmatory marrow).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Literal

from .base import Assessment, Evidence, KeyValue, Outcome, Source, TimepointResult, D, fmt

CRITERIA = "MRD depth (ALL, CLL, AML)"
SOURCE = Source(
    label="Adult ALL MRD terminology (ASH Education Program 2021, Table 1); COG: Borowitz MJ et al. Blood "
    "2008;111:5477; AIEOP-BFM: Conter V et al. Blood 2010;115:3206; iwCLL: Hallek M et al. Blood 2018;131:2745",
    url="https://www.ncbi.nlm.nih.gov/pmc/articles/PMC8824253/",
)

# ---------------------------------------------------------------------------
# Thresholds (fractions; 10^-4 = 0.01 %)
# ---------------------------------------------------------------------------

# Typical assay sensitivities used ONLY when an assay reports none (criteria.md §9 row 1, seed 001; §12 item 6:
# "typical assay ranges, not criteria").  NGF: EuroFlow NGF reaches 10^-5 to 10^-6 [P]; the conservative end is used
# (consistent with the Kumar 2016 MRD table reproduction: EuroFlow NGF, "minimum sensitivity of 1 in 10^5 or higher").
TYPICAL_SENSITIVITY_FLOW = Decimal("1E-4")   # conventional MFC, criteria.md §9 row 1
TYPICAL_SENSITIVITY_NGF = Decimal("1E-5")    # next-generation flow, criteria.md §9 row 1 (10^-5-10^-6)
TYPICAL_SENSITIVITY_PCR = Decimal("1E-5")    # ASO-qPCR, criteria.md §9 row 1
TYPICAL_SENSITIVITY_NGS = Decimal("1E-6")    # NGS (clonoSEQ), criteria.md §9 row 1

# Adult ALL consensus (criteria.md §9, PMC8824253 T1): MRD-CR needs a negative at >= 0.01 % sensitivity;
# MRD failure = positive >= 0.01 %.
ADULT_ALL_REQUIRED_SENSITIVITY = Decimal("1E-4")
ADULT_ALL_FAILURE_THRESHOLD = Decimal("1E-4")

# COG (criteria.md §9; Borowitz Blood 2008;111:5477; AALL08B1): day-29 (EOI) BM cut-off 0.01 %;
# day-8 PB cut-offs 0.01 % and 1 %.
COG_EOI_THRESHOLD = Decimal("1E-4")
COG_DAY8_LOW_THRESHOLD = Decimal("1E-4")
COG_DAY8_HIGH_THRESHOLD = Decimal("1E-2")

# AIEOP-BFM (criteria.md §9; Conter Blood 2010;115:3206 for ALL 2000; view-large 7546576 for ALL 2009).
AIEOP_REQUIRED_SENSITIVITY = Decimal("1E-4")      # PCR-MRD markers with sensitivity >= 10^-4 (ALL 2000 and 2009)
AIEOP_REQUIRED_MARKERS = 2                         # two markers for an MRD-SR negative (Conter 2010)
AIEOP_2000_HR_DAY78 = Decimal("1E-3")              # ALL 2000: MRD-HR = day-78 >= 10^-3
AIEOP_2009_HR_DAY78 = Decimal("5E-4")              # ALL 2009: MRD-HR = day-78 PCR >= 5x10^-4 (0.05 %)
AIEOP_2009_HR_DAY33 = Decimal("5E-4")              # ALL 2009 (B-ALL): day-33 >= 5x10^-4 and day-78 positive < 5x10^-4
AIEOP_2009_HR_DAY15_FCM = Decimal("0.1")           # ALL 2009: day-15 FCM >= 10 % -> HR
AIEOP_2009_SR_DAY15_FCM = Decimal("1E-3")          # ALL 2009: day-15 FCM < 0.1 % -> SR if PCR unavailable
DEFAULT_AIEOP_BFM_PROTOCOL = "2009"                # [I] criteria.md §12 item 13; vignette MRD-07 `category`

# Paediatric ALL relapse (criteria.md §9 last row; view-large 10495469).
RELAPSE_DEFINITE = Decimal("0.25")                 # BM MRD >= 25 % => relapse
RELAPSE_BAND_5 = Decimal("0.05")                   # 5 - <25 % needs >= 1 other test >= 1 %
RELAPSE_BAND_1 = Decimal("0.01")                   # 1 - <5 % needs >= 2 other tests >= 1 % or a confirmatory marrow
RELAPSE_CONFIRM_LEVEL = Decimal("0.01")            # "other test >= 1 %"
RELAPSE_OTHER_TESTS_BAND_5 = 1
RELAPSE_OTHER_TESTS_BAND_1 = 2

# iwCLL 2018 (criteria.md §9 CLL row): uMRD4 = < 1 CLL cell per 10 000 leukocytes (< 10^-4); 10^-4 is detectable.
CLL_UMRD4_THRESHOLD = Decimal("1E-4")

# ELN MRD 2021 (Heuser Blood 2021;138:2753 [P]; criteria.md §9 AML row): MFC-MRD positive >= 0.1 %.  Re-check: the
# Heuser 2021 threshold table was not found in stored sources (its Delphi tables at ash-sap view-large 10353406 /
# 10353450 are, without the threshold row); a later ELN MRD reproduction also uses >= 0.1 % for MFC.
AML_MFC_THRESHOLD = Decimal("1E-3")


class Method(str, Enum):
    FLOW = "flow"          # conventional multiparameter flow cytometry (MFC)
    NGF = "NGF"            # next-generation flow (EuroFlow)
    PCR = "ASO-qPCR"       # allele-specific oligonucleotide qPCR (IG/TR), or other qPCR
    NGS = "NGS"            # next-generation sequencing (clonoSEQ etc.)
    OTHER = "other"        # morphology, FISH, cytogenetics (used as confirmatory tests for relapse)


class Sample(str, Enum):
    BM = "bone marrow"
    PB = "peripheral blood"


class Scheme(str, Enum):
    ADULT_ALL = "adult ALL"
    COG = "COG"
    AIEOP_BFM = "AIEOP-BFM"
    ALL_RELAPSE = "ALL relapse"
    CLL = "CLL"
    AML_MFC = "AML MFC"


TYPICAL_SENSITIVITY: dict[Method, Decimal] = {
    Method.FLOW: TYPICAL_SENSITIVITY_FLOW,
    Method.NGF: TYPICAL_SENSITIVITY_NGF,
    Method.PCR: TYPICAL_SENSITIVITY_PCR,
    Method.NGS: TYPICAL_SENSITIVITY_NGS,
}

SCHEME_CRITERIA: dict[Scheme, str] = {
    Scheme.ADULT_ALL: "ALL MRD (adult consensus)",
    Scheme.COG: "ALL MRD (COG end of induction)",
    Scheme.AIEOP_BFM: "ALL MRD (AIEOP-BFM)",
    Scheme.ALL_RELAPSE: "ALL MRD (paediatric relapse)",
    Scheme.CLL: "iwCLL 2018 MRD",
    Scheme.AML_MFC: "ELN 2021 MRD (MFC)",
}

SCHEME_SOURCE: dict[Scheme, Source] = {
    Scheme.ADULT_ALL: Source(
        "Adult ALL MRD consensus terminology (Hematology ASH Educ Program 2021, Table 1)",
        "https://www.ncbi.nlm.nih.gov/pmc/articles/PMC8824253/",
    ),
    Scheme.COG: Source(
        "Borowitz MJ et al. Blood 2008;111:5477-5485 (COG); COG AALL08B1 stratification",
        "https://pubmed.ncbi.nlm.nih.gov/?term=Borowitz+2008+Blood+111+5477",
    ),
    Scheme.AIEOP_BFM: Source(
        "Conter V et al. Blood 2010;115:3206-3214 (AIEOP-BFM ALL 2000); AIEOP-BFM ALL 2009 stratification",
        "https://pubmed.ncbi.nlm.nih.gov/?term=Conter+2010+Blood+115+3206",
    ),
    Scheme.ALL_RELAPSE: Source(
        "International consensus definition of relapse in paediatric ALL (Blood; ashpublications table 10495469)",
        "https://ashpublications.org/view-large/10495469",
    ),
    Scheme.CLL: Source(
        "Hallek M et al. Blood 2018;131:2745-2760 (iwCLL 2018)",
        "https://doi.org/10.1182/blood-2017-09-806398",
    ),
    Scheme.AML_MFC: Source(
        "Heuser M et al. Blood 2021;138:2753-2767 (ELN MRD 2021)",
        "https://pubmed.ncbi.nlm.nih.gov/?term=Heuser+2021+Blood+138+2753",
    ),
}

CIT_ADULT = "Adult ALL MRD terminology (PMC8824253 Table 1); criteria.md §9"
CIT_COG = "Borowitz 2008 / COG AALL08B1; criteria.md §9"
CIT_AIEOP_2000 = "Conter 2010 (AIEOP-BFM ALL 2000); criteria.md §9"
CIT_AIEOP_2009 = "AIEOP-BFM ALL 2009 (view-large 7546576); criteria.md §9, §12 item 13"
CIT_RELAPSE = "Paediatric ALL relapse consensus (view-large 10495469); criteria.md §9"
CIT_CLL = "Hallek 2018 (iwCLL uMRD4); criteria.md §9"
CIT_AML = "Heuser 2021 (ELN MRD, MFC >= 0.1 %); criteria.md §9"
CIT_SENS = "criteria.md §9 [I] (a negative must carry its sensitivity), §12 item 6"


# ---------------------------------------------------------------------------
# Generic MRD result and helpers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MrdResult:
    """One MRD result as a FHIR mapper provides it.

    date:          specimen date
    method:        assay family (:class:`Method`)
    detected:      True if MRD was detected (positive), False if not detected
    level:         MRD level as a fraction (10^-4 = 0.01 %) when detected and quantified; None otherwise
    sensitivity:   assay sensitivity / LOD as a fraction (e.g. 1E-5), None if the report gives none
    sample:        bone marrow or peripheral blood
    timepoint:     protocol label, e.g. "day 8", "day 15", "day 29", "end of induction", "day 33", "day 78"
    loq:           limit of quantification as a fraction; for a positive-not-quantifiable result (detected, level
                   None) the level is known to be < loq
    markers:       number of PCR markers (AIEOP-BFM needs 2 for an MRD-SR negative); None if not reported
    ref:           FHIR reference of the Observation (copied into Evidence.refs)
    """

    date: date
    method: Method
    detected: bool
    level: Decimal | None = None
    sensitivity: Decimal | None = None
    sample: Sample = Sample.BM
    timepoint: str | None = None
    loq: Decimal | None = None
    markers: int | None = None
    ref: str | None = None

    def __post_init__(self) -> None:
        for name in ("level", "sensitivity", "loq"):
            v = getattr(self, name)
            if v is not None:
                if not isinstance(v, Decimal):
                    object.__setattr__(self, name, D(v))
                if getattr(self, name) < 0:
                    raise ValueError(f"{name} must not be negative")
        if not self.detected and self.level is not None and self.level != 0:
            raise ValueError("a not-detected result cannot carry a positive level")


def pct_to_fraction(pct: Decimal | int | str) -> Decimal:
    """0.01 (%) -> 0.0001 (fraction), exact."""
    return D(pct) / 100


def fraction_text(x: Decimal) -> str:
    """A fraction for card text: '0.01 % (1E-4)'."""
    pct = x * 100
    return f"{fmt(pct, 6)} % ({x.normalize():E})"


def sensitivity_of(result: MrdResult) -> tuple[Decimal | None, bool]:
    """(sensitivity fraction, assumed?) - the reported LOD, else the method's typical one (assumed=True)."""
    if result.sensitivity is not None:
        return result.sensitivity, False
    typical = TYPICAL_SENSITIVITY.get(result.method)
    return (typical, True) if typical is not None else (None, False)


def negative_at(result: MrdResult, required_sensitivity: Decimal) -> bool:
    """True when the result is not detected AND its (reported or typical) sensitivity reaches the requirement.

    "Reaches" means LOD <= required fraction (1E-6 reaches 1E-5; 1E-4 does not).  Use :func:`sensitivity_of`
    to find out whether the typical sensitivity was assumed.
    """
    if result.detected:
        return False
    sens, _ = sensitivity_of(result)
    return sens is not None and sens <= D(required_sensitivity)


Comparison = Literal["at_or_above", "below", "unknown"]


def compare_level(result: MrdResult, threshold: Decimal) -> Comparison:
    """Exact comparison of a result with a threshold; >= threshold is 'at_or_above' (positive).

    Detected and quantified: level >= threshold.  Detected, not quantified: 'below' only if loq <= threshold.
    Not detected: 'below' if the sensitivity (reported or typical) is <= threshold, else 'unknown'.
    """
    t = D(threshold)
    if result.detected:
        if result.level is not None:
            return "at_or_above" if result.level >= t else "below"
        if result.loq is not None and result.loq <= t:
            return "below"
        return "unknown"
    sens, _ = sensitivity_of(result)
    if sens is not None and sens <= t:
        return "below"
    return "unknown"


def aml_mfc_positive(level_fraction: Decimal) -> bool:
    """ELN MRD 2021: MFC-MRD is positive at >= 0.1 % (>= 1E-3); exactly 0.1 % is positive."""
    return D(level_fraction) >= AML_MFC_THRESHOLD


def cll_umrd4(result: MrdResult) -> bool | None:
    """iwCLL 2018 uMRD4 (< 10^-4): True / False, or None when the result cannot tell (e.g. insensitive negative)."""
    c = compare_level(result, CLL_UMRD4_THRESHOLD)
    return None if c == "unknown" else c == "below"


# ---------------------------------------------------------------------------
# Engine inputs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MrdInputs:
    """Inputs of :func:`assess`.

    scheme:       which disease criteria to apply
    results:      the MRD series (any order; results after ``as_of`` are ignored)
    protocol:     AIEOP-BFM protocol version named in the record ("2000" / "2009"), if any
    other_tests:  ALL relapse only: other tests on the relapse marrow (flow, PCR, NGS, FISH, cytogenetics) with levels
    b_lineage:    AIEOP-BFM 2009 only: the day-33/day-78 HR rule applies to B-lineage ALL
    """

    scheme: Scheme
    results: tuple[MrdResult, ...]
    protocol: str | None = None
    other_tests: tuple[MrdResult, ...] = ()
    b_lineage: bool = True


@dataclass
class _Work:
    category: str = "NE"
    label: str = "not evaluable"
    outcome: Outcome = Outcome.NOT_EVALUABLE
    confirmed: bool = True
    values: dict[str, KeyValue] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ev(self, rule: str, text: str, citation: str, *results: MrdResult | None) -> None:
        refs = tuple(r.ref for r in results if r is not None and r.ref)
        self.evidence.append(Evidence(rule=rule, text=text, citation=citation, refs=refs))

    def set(self, category: str, label: str, outcome: Outcome) -> None:
        self.category, self.label, self.outcome = category, label, outcome

    def ne(self, missing: str) -> None:
        self.set("NE", "not evaluable", Outcome.NOT_EVALUABLE)
        self.missing.append(missing)


def _describe(result: MrdResult) -> str:
    where = f" {result.timepoint}" if result.timepoint else ""
    src = f"{result.method.value} {result.sample.value}{where} {result.date.isoformat()}"
    if result.detected:
        if result.level is not None:
            return f"{src}: detected at {fraction_text(result.level)}"
        bound = f" (< LOQ {fraction_text(result.loq)})" if result.loq is not None else ""
        return f"{src}: detected, not quantifiable{bound}"
    sens, assumed = sensitivity_of(result)
    s = "unknown sensitivity" if sens is None else f"sensitivity {fraction_text(sens)}" + (
        " (typical for the method, assumed)" if assumed else ""
    )
    return f"{src}: not detected, {s}"


def _record(w: _Work, result: MrdResult, prefix: str = "") -> None:
    """Key numbers of one result into values (prefix e.g. 'day78_')."""
    sens, assumed = sensitivity_of(result)
    w.values[f"{prefix}mrd_detected"] = result.detected
    w.values[f"{prefix}mrd_level_fraction"] = result.level if result.detected else None
    w.values[f"{prefix}mrd_level_pct"] = result.level * 100 if (result.detected and result.level is not None) else None
    w.values[f"{prefix}sensitivity_fraction"] = sens
    w.values[f"{prefix}sensitivity_assumed"] = assumed
    if not prefix:
        w.values["method"] = result.method.value
        w.values["sample"] = result.sample.value
        w.values["timepoint"] = result.timepoint
    if assumed and not result.detected:  # the sensitivity is only used to judge a negative
        note = (
            f"{result.date.isoformat()} {result.method.value} result reports no sensitivity; the method's typical "
            f"sensitivity {fraction_text(sens)} was assumed (criteria.md §9, §12 item 6) - confirm with the lab."
        )
        if note not in w.notes:
            w.notes.append(note)


_DAY_RE = re.compile(r"\bday\s*[- ]?\s*(\d+)\b", re.IGNORECASE)


def timepoint_day(label: str | None) -> int | None:
    """'day 29' -> 29; 'end of induction'/'EOI' -> 29 (COG); 'TP1' -> 33; 'TP2' -> 78 (AIEOP-BFM); else None."""
    if not label:
        return None
    m = _DAY_RE.search(label)
    if m:
        return int(m.group(1))
    low = label.lower()
    if "end of induction" in low or re.search(r"\beoi\b", low):
        return 29
    if re.search(r"\btp\s*1\b", low):
        return 33
    if re.search(r"\btp\s*2\b", low):
        return 78
    return None


def _latest(results: list[MrdResult], pred) -> MrdResult | None:
    chosen = [r for r in results if pred(r)]
    return max(chosen, key=lambda r: r.date) if chosen else None


# ---------------------------------------------------------------------------
# Schemes
# ---------------------------------------------------------------------------


def _adult_all(w: _Work, results: list[MrdResult], earlier: list[MrdResult]) -> None:
    r = max(results, key=lambda x: x.date)
    _record(w, r)
    w.values["threshold_fraction"] = ADULT_ALL_FAILURE_THRESHOLD
    w.values["required_sensitivity_fraction"] = ADULT_ALL_REQUIRED_SENSITIVITY
    c = compare_level(r, ADULT_ALL_FAILURE_THRESHOLD)
    if not r.detected:
        if negative_at(r, ADULT_ALL_REQUIRED_SENSITIVITY):
            w.set("MRD-CR", "MRD-negative complete remission (sensitivity >= 10^-4)", Outcome.COMPLETE)
            w.ev("adult_all.mrd_cr", f"{_describe(r)}; MRD-CR needs a negative at sensitivity <= 1E-4", CIT_ADULT, r)
        else:
            w.set("MRD intermediate", "MRD intermediate (negative with insufficient sensitivity)",
                  Outcome.INDETERMINATE)
            w.ev("adult_all.intermediate.insensitive",
                 f"{_describe(r)}; a negative counts only at sensitivity <= 1E-4", CIT_ADULT, r)
        return
    if c == "at_or_above":
        w.set("MRD failure", "MRD failure (MRD-positive >= 0.01 %)", Outcome.NO_RESPONSE)
        w.ev("adult_all.failure", f"{_describe(r)}; >= 0.01 % (1E-4) is MRD failure", CIT_ADULT, r)
        prior_cr = [e for e in earlier if negative_at(e, ADULT_ALL_REQUIRED_SENSITIVITY)]
        if prior_cr:
            w.outcome = Outcome.RELAPSE
            p = max(prior_cr, key=lambda x: x.date)
            w.ev("adult_all.conversion",
                 f"Earlier MRD-CR on {p.date.isoformat()} converted to MRD-positive >= 0.01 % (MRD relapse)",
                 CIT_ADULT, p, r)
            w.values["converted_from_mrd_cr"] = True
    elif c == "below":
        w.set("MRD intermediate", "MRD intermediate (MRD-positive < 0.01 %)", Outcome.INDETERMINATE)
        w.ev("adult_all.intermediate.low_positive", f"{_describe(r)}; positive < 0.01 % is MRD intermediate",
             CIT_ADULT, r)
    else:
        w.ne("quantification limit of the positive, not-quantifiable MRD result (is it < 0.01 %?)")


def _cog(w: _Work, results: list[MrdResult]) -> None:
    eoi = _latest(results, lambda r: timepoint_day(r.timepoint) == 29)
    d8 = _latest(results, lambda r: timepoint_day(r.timepoint) == 8)
    w.values["threshold_fraction"] = COG_EOI_THRESHOLD
    if d8 is not None:
        _record(w, d8, "day8_pb_")
        if d8.sample is not Sample.PB:
            w.notes.append("COG day-8 MRD is defined on peripheral blood; this day-8 result is from bone marrow.")
        c_hi = compare_level(d8, COG_DAY8_HIGH_THRESHOLD)
        c_lo = compare_level(d8, COG_DAY8_LOW_THRESHOLD)
        if c_hi == "at_or_above":
            d8cat = ("Day-8 PB MRD >=1%", "day-8 blood MRD at least 1 %", Outcome.NO_RESPONSE)
        elif c_lo == "at_or_above":
            d8cat = ("Day-8 PB MRD 0.01-<1%", "day-8 blood MRD 0.01 % to below 1 %", Outcome.STABLE)
        elif c_lo == "below":
            d8cat = ("Day-8 PB MRD <0.01%", "day-8 blood MRD below 0.01 %", Outcome.COMPLETE)
        else:
            d8cat = None
        if d8cat:
            w.ev("cog.day8", f"{_describe(d8)}; day-8 cut-offs 0.01 % and 1 % -> {d8cat[0]}", CIT_COG, d8)
    else:
        d8cat = None
    if eoi is None:
        if d8cat is not None:
            w.set(*d8cat)
            w.notes.append("No end-of-induction (day 29) marrow MRD yet; category is the day-8 blood result.")
        else:
            w.ne("end-of-induction (day 29) bone-marrow MRD result")
        return
    _record(w, eoi)
    if eoi.sample is not Sample.BM:
        w.ne("end-of-induction MRD on bone marrow (the result given is from peripheral blood)")
        return
    c = compare_level(eoi, COG_EOI_THRESHOLD)
    if c == "at_or_above":
        w.set("EOI MRD-positive (>=0.01%)", "end-of-induction MRD-positive (at least 0.01 %)", Outcome.NO_RESPONSE)
        w.ev("cog.eoi.positive", f"{_describe(eoi)}; >= 0.01 % (1E-4) is MRD-positive", CIT_COG, eoi)
    elif c == "below":
        w.set("EOI MRD-negative (<0.01%)", "end-of-induction MRD-negative (below 0.01 %)", Outcome.COMPLETE)
        w.ev("cog.eoi.negative", f"{_describe(eoi)}; < 0.01 % (1E-4) is MRD-negative", CIT_COG, eoi)
    else:
        w.ne("end-of-induction MRD result with sensitivity of at least 0.01 % (1E-4)")
        w.ev("cog.eoi.insensitive", f"{_describe(eoi)}; cannot show < 0.01 %", CIT_SENS, eoi)


def _aieop(w: _Work, results: list[MrdResult], protocol: str, b_lineage: bool) -> None:
    w.values["protocol"] = f"AIEOP-BFM ALL {protocol}"
    w.notes.append(
        f"AIEOP-BFM protocol version applied: ALL {protocol} (MRD-HR day-78 cut-off "
        f"{'10^-3' if protocol == '2000' else '5x10^-4'}; criteria.md §12 item 13). Non-MRD high-risk factors "
        "(e.g. prednisone response, genetics) are not assessed here."
    )
    pcr = [r for r in results if r.method in (Method.PCR, Method.NGS)]
    d15 = _latest(results, lambda r: timepoint_day(r.timepoint) == 15 and r.method in (Method.FLOW, Method.NGF))
    d33 = _latest(pcr, lambda r: timepoint_day(r.timepoint) == 33)
    d78 = _latest(pcr, lambda r: timepoint_day(r.timepoint) == 78)
    for r, p in ((d15, "day15_fcm_"), (d33, "day33_"), (d78, "day78_")):
        if r is not None:
            _record(w, r, p)
    cit = CIT_AIEOP_2000 if protocol == "2000" else CIT_AIEOP_2009
    tag = f"AIEOP-BFM ALL {protocol}"

    def sr_negative(r: MrdResult | None) -> bool | None:
        """True: negative at 10^-4 with enough markers; False: positive; None: cannot tell."""
        if r is None:
            return None
        if r.detected:
            return False
        if not negative_at(r, AIEOP_REQUIRED_SENSITIVITY):
            return None
        if r.markers is not None and r.markers < AIEOP_REQUIRED_MARKERS:
            return None
        return True

    def hr(cat: str, text: str, *rs: MrdResult | None) -> None:
        w.set(f"MRD-HR ({tag}: {cat})", f"MRD high risk ({tag})", Outcome.NO_RESPONSE)
        w.ev(f"aieop{protocol}.hr", text, cit, *rs)

    hr_d78 = AIEOP_2000_HR_DAY78 if protocol == "2000" else AIEOP_2009_HR_DAY78
    hr_d78_txt = "10^-3" if protocol == "2000" else "5x10^-4"
    w.values["threshold_fraction"] = hr_d78

    if protocol == "2009" and d15 is not None and compare_level(d15, AIEOP_2009_HR_DAY15_FCM) == "at_or_above":
        hr("day-15 FCM >=10%", f"{_describe(d15)}; day-15 FCM >= 10 % is MRD-HR", d15)
        return
    c78 = compare_level(d78, hr_d78) if d78 is not None else None
    if c78 == "at_or_above":
        hr(f"day-78 >={hr_d78_txt}", f"{_describe(d78)}; day-78 >= {hr_d78_txt} is MRD-HR", d78)
        return
    if (protocol == "2009" and b_lineage and d33 is not None and d78 is not None and d78.detected and c78 == "below"
            and compare_level(d33, AIEOP_2009_HR_DAY33) == "at_or_above"):
        hr("day-33 >=5x10^-4, day-78 positive <5x10^-4",
           f"{_describe(d33)} and {_describe(d78)}; B-ALL with day-33 >= 5x10^-4 and day-78 positive < 5x10^-4 "
           "is MRD-HR", d33, d78)
        return
    if protocol == "2009" and d33 is None and d78 is None and d15 is not None:
        c15 = compare_level(d15, AIEOP_2009_SR_DAY15_FCM)
        if c15 == "below":
            w.set(f"MRD-SR ({tag}: day-15 FCM <0.1%, PCR unavailable)", f"MRD standard risk ({tag})",
                  Outcome.COMPLETE)
            w.ev("aieop2009.sr.fcm", f"{_describe(d15)}; without PCR-MRD, day-15 FCM < 0.1 % is MRD-SR", cit, d15)
            w.notes.append("PCR-MRD at day 33 / day 78 not available; ALL 2009 FCM-based SR rule used.")
            return
        if c15 == "at_or_above":
            w.set(f"MRD-IR ({tag}: day-15 FCM 0.1-<10%, PCR unavailable)", f"MRD intermediate risk ({tag})",
                  Outcome.STABLE)
            w.ev("aieop2009.ir.fcm", f"{_describe(d15)}; without PCR-MRD, day-15 FCM 0.1 % to < 10 % is not SR/HR",
                 cit, d15)
            return
    n33, n78 = sr_negative(d33), sr_negative(d78)
    if n33 is True and n78 is True:
        w.set(f"MRD-SR ({tag}: negative day 33 and day 78)", f"MRD standard risk ({tag})", Outcome.COMPLETE)
        w.ev(f"aieop{protocol}.sr", f"{_describe(d33)}; {_describe(d78)}; negative at both at sensitivity <= 1E-4",
             cit, d33, d78)
        if d33.markers is None or d78.markers is None:
            w.notes.append("Number of PCR markers not reported; MRD-SR requires 2 markers with sensitivity >= 10^-4.")
        return
    if c78 == "below" and (n33 is False or n78 is False):
        w.set(f"MRD-IR ({tag}: day-78 <{hr_d78_txt})", f"MRD intermediate risk ({tag})", Outcome.STABLE)
        pos = [r for r in (d33, d78) if r is not None and r.detected]
        w.ev(f"aieop{protocol}.ir",
             "; ".join(_describe(r) for r in pos) + f"; MRD-positive but day-78 < {hr_d78_txt} is MRD-IR", cit, *pos)
        return
    if d78 is None:
        w.ne("day-78 PCR-MRD result")
    if d33 is None:
        w.ne("day-33 PCR-MRD result")
    for r, n in ((d33, n33), (d78, n78)):
        if r is not None and n is None:
            w.ne(f"{r.timepoint or r.date.isoformat()} PCR-MRD negative with 2 markers at sensitivity >= 10^-4")
    if not w.missing:
        w.ne("PCR-MRD results sufficient for AIEOP-BFM stratification")


def _relapse(w: _Work, results: list[MrdResult], other_tests: list[MrdResult]) -> None:
    bm = [r for r in results if r.sample is Sample.BM]
    if not bm:
        w.ne("bone-marrow MRD level")
        return
    r = max(bm, key=lambda x: x.date)
    _record(w, r)
    w.values["threshold_fraction"] = RELAPSE_DEFINITE
    if r.detected and r.level is None:
        w.ne("quantified bone-marrow MRD level")
        return
    if not r.detected:
        if negative_at(r, RELAPSE_CONFIRM_LEVEL):
            w.set("no relapse (BM MRD-negative)", "no relapse (bone-marrow MRD not detected)", Outcome.COMPLETE)
            w.ev("relapse.none.negative", f"{_describe(r)}; no relapse", CIT_RELAPSE, r)
        else:
            w.ne("bone-marrow MRD result with known sensitivity")
        return
    lvl = r.level
    same_sample = [t for t in other_tests if t.detected and t.level is not None and t.level >= RELAPSE_CONFIRM_LEVEL]
    earlier_bm = [e for e in bm if e.date < r.date and e.detected and e.level is not None
                  and e.level >= RELAPSE_CONFIRM_LEVEL]
    w.values["other_tests_at_least_1pct"] = len(same_sample)
    w.values["confirmatory_marrow"] = bool(earlier_bm)
    if lvl >= RELAPSE_DEFINITE:
        w.set("relapse", "relapse (bone-marrow MRD at least 25 %)", Outcome.RELAPSE)
        w.ev("relapse.definite", f"{_describe(r)}; >= 25 % is relapse", CIT_RELAPSE, r)
    elif lvl >= RELAPSE_BAND_5:
        if len(same_sample) >= RELAPSE_OTHER_TESTS_BAND_5:
            w.set("relapse", "relapse (5 % to < 25 %, confirmed by another test >= 1 %)", Outcome.RELAPSE)
            w.ev("relapse.band5.confirmed", f"{_describe(r)}; 5 % to < 25 % with {len(same_sample)} other test(s) "
                 ">= 1 % (needs >= 1)", CIT_RELAPSE, r, *same_sample)
        else:
            w.set("unconfirmed relapse", "suspected relapse (5 % to < 25 %; needs another test >= 1 %)",
                  Outcome.UNCONFIRMED_PROGRESSION)
            w.confirmed = False
            w.ev("relapse.band5.unconfirmed", f"{_describe(r)}; 5 % to < 25 % needs >= 1 other test >= 1 %, "
                 f"found {len(same_sample)}", CIT_RELAPSE, r)
    elif lvl >= RELAPSE_BAND_1:
        if len(same_sample) >= RELAPSE_OTHER_TESTS_BAND_1 or earlier_bm:
            why = (f"{len(same_sample)} other tests >= 1 %" if len(same_sample) >= RELAPSE_OTHER_TESTS_BAND_1
                   else f"confirmatory marrow (earlier marrow {earlier_bm[-1].date.isoformat()} also >= 1 %)")
            w.set("relapse", "relapse (1 % to < 5 %, confirmed)", Outcome.RELAPSE)
            w.ev("relapse.band1.confirmed", f"{_describe(r)}; 1 % to < 5 % confirmed by {why}", CIT_RELAPSE,
                 r, *same_sample, *earlier_bm)
        else:
            w.set("unconfirmed relapse",
                  "suspected relapse (1 % to < 5 %; needs 2 other tests >= 1 % or a confirmatory marrow)",
                  Outcome.UNCONFIRMED_PROGRESSION)
            w.confirmed = False
            w.ev("relapse.band1.unconfirmed", f"{_describe(r)}; 1 % to < 5 % needs >= 2 other tests >= 1 % or a "
                 f"confirmatory marrow, found {len(same_sample)} test(s) and no confirmatory marrow", CIT_RELAPSE, r)
    else:
        w.set("no relapse (BM MRD <1%)", "no relapse (bone-marrow MRD detectable below 1 %)", Outcome.STABLE)
        w.ev("relapse.none.low", f"{_describe(r)}; < 1 % does not meet the relapse definition", CIT_RELAPSE, r)
    if w.category == "relapse" or w.category == "unconfirmed relapse":
        w.notes.append("Other tests are counted as given (the mapper supplies tests of other methods on the "
                       "relapse marrow); a confirmatory marrow is an earlier marrow in the series also >= 1 % [I].")


def _cll(w: _Work, results: list[MrdResult]) -> None:
    r = max(results, key=lambda x: x.date)
    _record(w, r)
    w.values["threshold_fraction"] = CLL_UMRD4_THRESHOLD
    u = cll_umrd4(r)
    if u is True:
        w.set("uMRD4", "undetectable MRD at 10^-4 (uMRD4)", Outcome.COMPLETE)
        w.ev("cll.umrd4", f"{_describe(r)}; < 1E-4 is uMRD4", CIT_CLL, r)
    elif u is False:
        w.set("MRD detectable (>=10^-4)", "MRD detectable at 10^-4 or above", Outcome.STABLE)
        w.ev("cll.detectable", f"{_describe(r)}; >= 1E-4 (exactly 1E-4 included) is detectable MRD", CIT_CLL, r)
    else:
        w.ne("MRD result with sensitivity of at least 10^-4 (1 CLL cell in 10 000 leukocytes)")
        w.ev("cll.insensitive", f"{_describe(r)}; cannot show < 1E-4", CIT_SENS, r)


def _aml(w: _Work, results: list[MrdResult]) -> None:
    flow = [r for r in results if r.method in (Method.FLOW, Method.NGF)]
    if not flow:
        w.ne("flow-cytometry (MFC) MRD result")
        return
    r = max(flow, key=lambda x: x.date)
    _record(w, r)
    w.values["threshold_fraction"] = AML_MFC_THRESHOLD
    c = compare_level(r, AML_MFC_THRESHOLD)
    if c == "at_or_above":
        w.set("MRD-positive (MFC >=0.1%)", "MFC-MRD positive (at least 0.1 %)", Outcome.STABLE)
        w.ev("aml.mfc.positive", f"{_describe(r)}; MFC >= 0.1 % is MRD-positive", CIT_AML, r)
    elif c == "below":
        w.set("MRD-negative (MFC <0.1%)", "MFC-MRD negative (below 0.1 %)", Outcome.COMPLETE)
        w.ev("aml.mfc.negative", f"{_describe(r)}; MFC < 0.1 % is below the positivity threshold", CIT_AML, r)
        if r.detected:
            w.notes.append("Residual cells detected below the 0.1 % MFC threshold (ELN 2021 reports these as "
                           "below threshold, not positive).")
    else:
        w.ne("MFC-MRD result with sensitivity of at least 0.1 %")


def _classify(inputs: MrdInputs, results: list[MrdResult], protocol: str, earlier: list[MrdResult]) -> _Work:
    w = _Work()
    s = inputs.scheme
    if not results:
        w.ne("MRD result")
        return w
    if s is Scheme.ADULT_ALL:
        _adult_all(w, results, earlier)
    elif s is Scheme.COG:
        _cog(w, results)
    elif s is Scheme.AIEOP_BFM:
        _aieop(w, results, protocol, inputs.b_lineage)
    elif s is Scheme.ALL_RELAPSE:
        last = max(results, key=lambda x: x.date).date
        _relapse(w, results, [t for t in inputs.other_tests if t.date <= last])
    elif s is Scheme.CLL:
        _cll(w, results)
    elif s is Scheme.AML_MFC:
        _aml(w, results)
    else:  # pragma: no cover - enum is closed
        raise ValueError(f"unknown scheme {s!r}")
    return w


def assess(inputs: MrdInputs, as_of: date, *, protocol: str | None = None) -> Assessment:
    """Assess the MRD series under ``inputs.scheme`` as of ``as_of``.

    protocol: AIEOP-BFM protocol version "2000" or "2009" [I] (criteria.md §12 item 13).  Precedence: this
    keyword, then ``inputs.protocol`` (named in the record), then :data:`DEFAULT_AIEOP_BFM_PROTOCOL`.
    """
    chosen = protocol or inputs.protocol or DEFAULT_AIEOP_BFM_PROTOCOL
    chosen = chosen.replace("AIEOP-BFM", "").replace("ALL", "").strip()
    if chosen not in ("2000", "2009"):
        raise ValueError(f"AIEOP-BFM protocol must be '2000' or '2009', got {protocol or inputs.protocol!r}")
    used = sorted((r for r in inputs.results if r.date <= as_of), key=lambda r: r.date)
    later = [r for r in inputs.results if r.date > as_of]

    history: list[TimepointResult] = []
    for d in sorted({r.date for r in used}):
        upto = [r for r in used if r.date <= d]
        earlier = [r for r in used if r.date < d]
        hw = _classify(inputs, upto, chosen, earlier)
        history.append(TimepointResult(date=d, category=hw.category, outcome=hw.outcome, values=dict(hw.values)))

    final = _classify(inputs, used, chosen, [r for r in used if used and r.date < used[-1].date])
    notes = list(final.notes)
    if later:
        notes.append(f"{len(later)} MRD result(s) dated after {as_of.isoformat()} were not used.")
    if final.category != "NE" and inputs.scheme is not Scheme.ALL_RELAPSE:
        notes.append("No confirmation interval is defined for this MRD category (confirmed = True by definition).")
    return Assessment(
        criteria=SCHEME_CRITERIA[inputs.scheme],
        category=final.category,
        label=final.label,
        outcome=final.outcome,
        assessment_date=used[-1].date if used else None,
        confirmed=final.confirmed if final.category != "NE" else False,
        source=SCHEME_SOURCE[inputs.scheme],
        values=dict(final.values),
        evidence=tuple(final.evidence),
        history=tuple(history),
        missing=tuple(dict.fromkeys(final.missing)),
        notes=tuple(dict.fromkeys(notes)),
    )
