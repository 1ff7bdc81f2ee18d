"""ELN 2022 response criteria for acute myeloid leukaemia (AML).

Source: Döhner H et al. Diagnosis and management of AML in adults: 2022 recommendations from an international
expert panel on behalf of the ELN. Blood 2022;140:1345-1377 (response table), with the MRD definitions of
Heuser M et al. 2021 update on MRD in AML (ELN MRD Working Party), Blood 2021;138:2753-2767.
Reference: remission-cds ``criteria.md`` §5.1-5.4, §9 (AML row), §11 (ELN row), §12 items 3, 11, 12.

What the engine does
--------------------
Every dated bone-marrow examination is a response assessment.  Blood counts, peripheral-blood (PB) blasts and MRD
results are matched to it by date (nearest within ``COUNT_WINDOW_DAYS`` / ``MRD_WINDOW_DAYS``; ties prefer the sample
on or before the marrow).  The categories are assigned in the ELN hierarchy
CR > CRh > CRi > MLFS > PR > no response (§5.1 [I]); CR/CRh/CRi carry the ``_MRD-`` suffix when an evaluable MRD
result taken with the marrow is negative by the ELN MRD 2021 threshold.  At the response landmark (2 intensive
courses, a given landmark date, or 180 days after starting less-intensive therapy) an assessment without CR, CRh
or CRi ever having been reached is ``refractory`` (§5.3).

Once CR/CRh/CRi (with or without MRD) has been reached - computed here or given as a prior category - later data
are checked for relapse (§5.3):

* haematological relapse: marrow blasts >= 5 %, development of extramedullary disease (EMD), or blasts in >= 2 PB
  samples >= 7 days apart.  A single PB sample with blasts (or a second one < 7 days later) is
  ``suspected relapse`` (repeat PB/BM required; Outcome.UNCONFIRMED_PROGRESSION, confirmed=False; vignette ELN-11);
* MRD relapse: conversion from an evaluable MRD-negative result to MRD positivity (any technique), or a rise of
  >= 1 log10 between two positive qPCR samples in a patient with low-level MRD (MRD-LL); either must be confirmed on
  the next consecutive sample from the same tissue source.  The first, unconfirmed positive sample is
  ``suspected MRD relapse`` (confirmed=False).

Interpretation choices ([I] in criteria.md; all configurable)
------------------------------------------------------------
* CRi vs MLFS (criteria.md §5.1, §12 item 11): ELN 2022 does not say whether both lineages may be unrecovered in
  CRi.  Default (``CRI_ALLOWS_BOTH_LINEAGES_LOW = False``, matching vignette ELN-07): CRi = exactly one of
  ANC < 1.0 or platelets < 100 x10^9/L with CRh not met; both below and CRh not met => MLFS.  Keyword
  ``cri_allows_both_lineages_low=True`` gives the inclusive protocol reading (both low => CRi).  MLFS is then still
  reached when the blast criteria are met on an adequate marrow but blood counts are not available (MLFS requires no
  count recovery).
* CRh: assigned whenever its counts are met (``use_crh=True``); ELN: "if CRh is used, CRi should only include
  patients not meeting CRh".
* Marrow adequacy (MLFS row): adequate = (spicules not absent and >= 200 nucleated cells counted) or biopsy
  cellularity >= 10 %.  An explicitly inadequate/aplastic marrow with blasts < 5 % is non-evaluable; MLFS needs
  documented adequacy; CR/CRh/CRi are accepted with unreported adequacy (counts have recovered), with a note.
* PB blasts: unknown status with marrow blasts < 5 % makes the assessment non-evaluable (CR family needs "absent").
  Marrow blasts < 5 % with circulating blasts or EMD (not in remission) is "no response" (PR needs 5-25 %).
* EMD: no EMD record at all is taken as "absent" with a note (EMD is usually recorded only when present); a
  documented "present" finding is carried forward until a later finding says absent.
* MRD negativity counts only with an adequate sensitivity: MFC and NGS positive >= 0.1 % (fraction 0.001); a
  negative (not detected) result must report an LOD <= 0.1 %; qPCR positive = detected (Cq < 40 in >= 2 of 3
  replicates when replicates are given), negative requires LOD <= 0.1 % as well ([I]: the 0.1 % bound for qPCR is this
  engine's choice; Heuser 2021 expects far more sensitive qPCR assays).  MFC/NGS detected below 0.1 % count as
  MRD-negative by the ELN threshold.  MRD-LL (qPCR) = positive below 2 % (NPM1 example, criteria.md §5.2) unless the
  record says otherwise.
* Thresholds marked [P] in criteria.md (relapse wording, MRD thresholds, 180-day landmark; §12 item 12) are used as
  written there, pending re-check against the papers.
* Transfusion independence is not a CR requirement in ELN 2022 (§5.4); counts shortly after transfusion/G-CSF may
  overstate recovery - reported as a note when the count record says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Iterable, Sequence

from rules.base import (
    D,
    Assessment,
    Evidence,
    Outcome,
    Source,
    TimepointResult,
    change_at_most,
    fmt,
    fmt_near,
)

CRITERIA = "ELN 2022 AML"
SOURCE = Source(
    label="Döhner H et al. Diagnosis and management of AML in adults: 2022 ELN recommendations. "
    "Blood 2022;140:1345-1377",
    url="https://doi.org/10.1182/blood.2022016867",
)

CIT_TABLE = "Döhner 2022 (ELN 2022) response table; criteria.md §5.1"
CIT_RELAPSE = "Döhner 2022 (ELN 2022) response table, relapse rows; criteria.md §5.3"
CIT_MRD = "Heuser 2021 (ELN MRD 2021); criteria.md §5.2, §9"

# ---------------------------------------------------------------------------
# Thresholds (criteria.md §5; units per §1: counts in 10^9/L, blasts in %, MRD as a fraction)
# ---------------------------------------------------------------------------

# CR: BM blasts < 5 % (strict: exactly 5 % is not CR) [V: ELN 2022 table, criteria.md §5.1]
CR_BLASTS_BELOW_PCT = Decimal(5)
# CR: ANC >= 1.0 x10^9/L (1000/µL) [V: ELN 2022 table, criteria.md §5.1 / §1]
CR_MIN_ANC_10E9_PER_L = Decimal("1.0")
# CR: platelets >= 100 x10^9/L (100 000/µL) [V: ELN 2022 table, criteria.md §5.1 / §1]
CR_MIN_PLATELETS_10E9_PER_L = Decimal(100)
# CRh: ANC >= 0.5 x10^9/L (inclusive) [V: ELN 2022 table, criteria.md §5.1]
CRH_MIN_ANC_10E9_PER_L = Decimal("0.5")
# CRh: platelets >= 50 x10^9/L (inclusive) [V: ELN 2022 table, criteria.md §5.1]
CRH_MIN_PLATELETS_10E9_PER_L = Decimal(50)
# PR: BM blasts decreased to 5-25 % (both ends inclusive) [V: ELN 2022 table, criteria.md §5.1]
PR_MIN_BLASTS_PCT = Decimal(5)
PR_MAX_BLASTS_PCT = Decimal(25)
# PR: decrease of >= 50 % from pretreatment BM blasts [V: ELN 2022 table, criteria.md §5.1]
PR_MIN_REDUCTION_PCT = Decimal(50)
# MLFS marrow adequacy: >= 200 nucleated cells counted or biopsy cellularity >= 10 % [V: ELN 2022 table, §5.1]
MLFS_MIN_NUCLEATED_CELLS = 200
MLFS_MIN_CELLULARITY_PCT = Decimal(10)
# Haematological relapse: BM blasts >= 5 % [P: ELN 2022 relapse row; ELN 2010 wording V; criteria.md §5.3]
RELAPSE_MIN_BLASTS_PCT = Decimal(5)
# the thresholds a marrow blast count is written beside in the evidence (fmt_near)
_BLAST_LINES = (CR_BLASTS_BELOW_PCT, PR_MIN_BLASTS_PCT, PR_MAX_BLASTS_PCT, RELAPSE_MIN_BLASTS_PCT)
# Haematological relapse by PB blasts: >= 2 samples >= 1 week apart [P: ELN 2022, criteria.md §5.3; used as written;
# re-check: the relapse rows of the ELN 2022 table were not found in stored sources (view-large 10723166 stops at the
# MRD rows); ELN 2010 (view-large 8220999) says only "reappearance of blasts in the blood"]
PB_RELAPSE_MIN_SAMPLES = 2
PB_RELAPSE_MIN_INTERVAL_DAYS = 7
# Refractory: no CR/CRh/CRi after 2 courses of intensive induction [V: view-large 12166960, criteria.md §5.3]
REFRACTORY_INTENSIVE_COURSES = 2
# Refractory landmark for less-intensive therapy: 180 days after start [P: ELN 2022 example, criteria.md §5.3
# and §12 item 12 - used as written; re-check: the refractory row with the 180-day example was not found in stored
# sources (view-large 10723166 shows "response landmark" without a number)]
LESS_INTENSIVE_LANDMARK_DAYS = 180
# MRD: MFC positive >= 0.1 % of CD45+ cells (fraction 0.001) [P: Heuser 2021, criteria.md §5.2 / §9; re-check:
# Heuser threshold table not found; a later ELN MRD monitoring table reproduction (find_string "second consecutive
# sample") also uses MFC >= 0.1 %, qPCR "Ct < 40 in >= 2/3 replicates", a >= 1 log10 rise and confirmation on a
# second consecutive sample - consistent, not the 2021 text]
MFC_MRD_POSITIVE_FRACTION = Decimal("0.001")
# MRD: NGS positive VAF >= 0.1 % (fraction 0.001) [P: Heuser 2021, criteria.md §5.2 / §9]
NGS_MRD_POSITIVE_FRACTION = Decimal("0.001")
# MRD: qPCR positive = Cq < 40 in >= 2 of 3 replicates [P: Heuser 2021, criteria.md §5.2 / §9]
QPCR_MIN_POSITIVE_REPLICATES = 2
# MRD negativity needs a reported LOD at or below 0.1 % (fraction 0.001) [I: criteria.md §9 note; ELN threshold
# of MFC used for every method, see module docstring]
MRD_MAX_ADEQUATE_LOD_FRACTION = Decimal("0.001")
# MRD-LL (qPCR low-level MRD): positive below 2 % (NPM1 example) [P: Heuser 2021, criteria.md §5.2]
QPCR_MRD_LL_BELOW_FRACTION = Decimal("0.02")
# MRD relapse: >= 1 log10 rise between two positive qPCR samples (factor 10) [P: Heuser 2021, criteria.md §5.3]
MRD_LOG10_RISE_FACTOR = Decimal(10)
# Matching windows [I]: counts / PB blasts / MRD within 7 days of the marrow examination
COUNT_WINDOW_DAYS = 7
MRD_WINDOW_DAYS = 7
# CRi vs MLFS [I] criteria.md §5.1 / §12 item 11; default = vignette ELN-07 (both lineages low => MLFS)
CRI_ALLOWS_BOTH_LINEAGES_LOW = False

# ---------------------------------------------------------------------------
# Categories
# ---------------------------------------------------------------------------

CR = "CR"
CR_MRD_NEG = "CR_MRD-"
CRH = "CRh"
CRH_MRD_NEG = "CRh_MRD-"
CRI = "CRi"
CRI_MRD_NEG = "CRi_MRD-"
MLFS = "MLFS"
PR = "PR"
NO_RESPONSE = "no response"
REFRACTORY = "refractory"
NOT_EVALUABLE = "non-evaluable"
HEM_RELAPSE = "hematologic relapse"
SUSPECTED_RELAPSE = "suspected relapse"
MRD_RELAPSE = "MRD relapse"
SUSPECTED_MRD_RELAPSE = "suspected MRD relapse"

OUTCOMES: dict[str, Outcome] = {
    CR: Outcome.COMPLETE,
    CR_MRD_NEG: Outcome.COMPLETE,
    CRH: Outcome.PARTIAL,
    CRH_MRD_NEG: Outcome.PARTIAL,
    CRI: Outcome.PARTIAL,
    CRI_MRD_NEG: Outcome.PARTIAL,
    MLFS: Outcome.PARTIAL,
    PR: Outcome.PARTIAL,
    NO_RESPONSE: Outcome.NO_RESPONSE,
    REFRACTORY: Outcome.NO_RESPONSE,
    NOT_EVALUABLE: Outcome.NOT_EVALUABLE,
    HEM_RELAPSE: Outcome.RELAPSE,
    SUSPECTED_RELAPSE: Outcome.UNCONFIRMED_PROGRESSION,
    MRD_RELAPSE: Outcome.RELAPSE,
    SUSPECTED_MRD_RELAPSE: Outcome.UNCONFIRMED_PROGRESSION,
}

LABELS: dict[str, str] = {
    CR: "complete remission (MRD not negative or not assessed)",
    CR_MRD_NEG: "complete remission without measurable residual disease",
    CRH: "complete remission with partial hematologic recovery",
    CRH_MRD_NEG: "complete remission with partial hematologic recovery, MRD-negative",
    CRI: "complete remission with incomplete hematologic recovery",
    CRI_MRD_NEG: "complete remission with incomplete hematologic recovery, MRD-negative",
    MLFS: "morphologic leukemia-free state",
    PR: "partial remission",
    NO_RESPONSE: "no response",
    REFRACTORY: "refractory disease (no CR/CRh/CRi at the response landmark)",
    NOT_EVALUABLE: "non-evaluable (inadequate or missing bone marrow evaluation)",
    HEM_RELAPSE: "hematologic relapse",
    SUSPECTED_RELAPSE: "suspected relapse - repeat PB/BM required",
    MRD_RELAPSE: "MRD relapse (confirmed)",
    SUSPECTED_MRD_RELAPSE: "suspected MRD relapse - confirm on a second consecutive sample",
}

# CR, CRh or CRi (with or without MRD): the remissions after which relapse is defined (§5.3)
CR_FAMILY = frozenset({CR, CR_MRD_NEG, CRH, CRH_MRD_NEG, CRI, CRI_MRD_NEG})
_MRD_NEG_OF = {CR: CR_MRD_NEG, CRH: CRH_MRD_NEG, CRI: CRI_MRD_NEG}

_PRIOR_ALIASES = {
    "cr_mrd+": CR,
    "crmrd-": CR_MRD_NEG,
    "cr mrd-": CR_MRD_NEG,
    "crh mrd-": CRH_MRD_NEG,
    "cri mrd-": CRI_MRD_NEG,
    "hematological relapse": HEM_RELAPSE,
    "haematological relapse": HEM_RELAPSE,
    "not evaluable": NOT_EVALUABLE,
    "ne": NOT_EVALUABLE,
    "refractory disease": REFRACTORY,
    "nr": NO_RESPONSE,
}


def normalise_category(text: str) -> str:
    """Map a recorded category string onto this module's category strings (ValueError if unknown)."""
    t = " ".join(text.strip().split())
    for cat in OUTCOMES:
        if t.lower() == cat.lower():
            return cat
    key = t.lower()
    if key in _PRIOR_ALIASES:
        return _PRIOR_ALIASES[key]
    if key.startswith("suspected relapse"):
        return SUSPECTED_RELAPSE
    raise ValueError(f"unknown ELN 2022 category: {text!r}")


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MarrowExam:
    """One bone-marrow examination (morphology).

    blasts_pct: morphologic marrow blasts in % (None = not reported).
    spicules_present / nucleated_cells_counted / biopsy_cellularity_pct: adequacy of the sample.
    technically_suboptimal: the report calls the sample inadequate (dry tap, haemodilute, clotted ...).
    """

    date: date
    blasts_pct: Decimal | None
    spicules_present: bool | None = None
    nucleated_cells_counted: int | None = None
    biopsy_cellularity_pct: Decimal | None = None
    technically_suboptimal: bool = False
    ref: str | None = None


@dataclass(frozen=True)
class BloodCount:
    """A dated blood count: ANC and/or platelets in 10^9/L (use :func:`count_to_10e9_per_L` for other units).

    after_transfusion_or_gcsf: the count was drawn shortly after a platelet transfusion or G-CSF (annotation only).
    """

    date: date
    anc_10e9_per_L: Decimal | None = None
    platelets_10e9_per_L: Decimal | None = None
    after_transfusion_or_gcsf: bool = False
    anc_ref: str | None = None
    platelets_ref: str | None = None


@dataclass(frozen=True)
class PeripheralBlasts:
    """Blasts in a peripheral-blood sample: ``present`` (coded) and/or ``pct`` (% of leukocytes; > 0 = present)."""

    date: date
    present: bool | None = None
    pct: Decimal | None = None
    ref: str | None = None

    @property
    def blasts_present(self) -> bool | None:
        if self.pct is not None:
            return D(self.pct) > 0
        return self.present


@dataclass(frozen=True)
class ExtramedullaryFinding:
    """Extramedullary disease (myeloid sarcoma, CNS, skin ...) documented present or absent on a date."""

    date: date
    present: bool
    site: str | None = None
    ref: str | None = None


@dataclass(frozen=True)
class MRDResult:
    """One MRD measurement.

    method: "MFC", "qPCR" or "NGS" (aliases: flow, PCR, RT-qPCR).
    detected: the coded result (True = detected/positive, False = not detected); None if only a value is given.
    value_fraction: quantitative level as a fraction (MFC % of CD45+ / 100, NGS VAF / 100, qPCR normalised
        copy-number ratio / 100); 1e-4 = 0.01 %.
    lod_fraction: limit of detection / sensitivity of the assay as a fraction (needed for a negative result).
    replicates_positive / replicates_tested: qPCR replicates with Cq < 40.
    low_level: qPCR MRD-LL as reported; None = derive (positive and below 2 %).
    tissue: "BM" or "PB" (confirmation must come from the same tissue source).
    """

    date: date
    method: str
    detected: bool | None = None
    value_fraction: Decimal | None = None
    lod_fraction: Decimal | None = None
    replicates_positive: int | None = None
    replicates_tested: int | None = None
    low_level: bool | None = None
    tissue: str | None = None
    marker: str | None = None
    ref: str | None = None


@dataclass(frozen=True)
class PriorCategory:
    """An ELN category already recorded (e.g. from an earlier assessment), used as history."""

    date: date
    category: str
    ref: str | None = None


@dataclass(frozen=True)
class TherapyContext:
    """Treatment facts for the refractory landmark (§5.3).

    intensive_course_starts: start dates of intensive induction courses (courses given before a marrow date).
    intensive_courses_completed: number of intensive courses given before the latest marrow (used when the start
        dates are not known; applies to the latest marrow examination only).
    less_intensive_start: start of less-intensive therapy (landmark = start + 180 days).
    landmark_date: a protocol-defined landmark date (overrides nothing; any reached landmark counts).
    """

    intensive_course_starts: tuple[date, ...] = ()
    intensive_courses_completed: int | None = None
    less_intensive_start: date | None = None
    landmark_date: date | None = None


@dataclass(frozen=True)
class ELNInputs:
    """Everything the engine uses; all series may be given in any order."""

    marrow: tuple[MarrowExam, ...] = ()
    counts: tuple[BloodCount, ...] = ()
    pb_blasts: tuple[PeripheralBlasts, ...] = ()
    emd: tuple[ExtramedullaryFinding, ...] = ()
    mrd: tuple[MRDResult, ...] = ()
    pretreatment_marrow_blasts_pct: Decimal | None = None
    pretreatment_ref: str | None = None
    prior: tuple[PriorCategory, ...] = ()
    therapy: TherapyContext | None = None
    not_evaluable_reason: str | None = None  # e.g. "early death", "withdrawal before marrow assessment"


_COUNT_UNIT_FACTORS = {
    "10*9/l": Decimal(1),
    "10^9/l": Decimal(1),
    "x10e9/l": Decimal(1),
    "giga/l": Decimal(1),
    "10*3/ul": Decimal(1),
    "10^3/ul": Decimal(1),
    "x10e3/ul": Decimal(1),
    "k/ul": Decimal(1),
    "10*3/mm3": Decimal(1),
    "/ul": Decimal("0.001"),
    "/mm3": Decimal("0.001"),
    "{cells}/ul": Decimal("0.001"),
    "10*6/l": Decimal("0.001"),
}


def count_to_10e9_per_L(value: Decimal | int | str, unit: str) -> Decimal:
    """Convert a blood count to 10^9/L (criteria.md §1; 10*3/uL = 10*9/L 1:1).

    ``10*3/L`` is rejected: it is the seed-001 unit error (wrong by 10^6), criteria.md §1 / §12 item 1.
    """
    u = unit.strip().replace("µ", "u").replace("μ", "u").lower().replace(" ", "")
    if u in ("10*3/l", "10^3/l", "x10e3/l"):
        raise ValueError(f"count unit {unit!r} is 10^3/L (a factor 10^6 too small): see criteria.md §1")
    if u not in _COUNT_UNIT_FACTORS:
        raise ValueError(f"unsupported count unit {unit!r}")
    return D(value) * _COUNT_UNIT_FACTORS[u]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _refs(*refs: str | None) -> tuple[str, ...]:
    out: list[str] = []
    for r in refs:
        if r and r not in out:
            out.append(r)
    return tuple(out)


def _nearest(items: Iterable, on: date, window: int, key=lambda x: True):
    """Item whose date is nearest ``on`` within +-window days (ties: on/before first)."""
    best = None
    best_rank = None
    for it in items:
        if not key(it):
            continue
        delta = (it.date - on).days
        if abs(delta) > window:
            continue
        rank = (abs(delta), 0 if delta <= 0 else 1)
        if best_rank is None or rank < best_rank:
            best, best_rank = it, rank
    return best


def _method(m: str) -> str:
    k = m.strip().lower().replace("-", "").replace(" ", "")
    if k in ("mfc", "flow", "flowcytometry", "mfcmrd", "lait", "laip"):
        return "MFC"
    if k in ("qpcr", "rtqpcr", "pcr", "rqpcr", "ddpcr"):
        return "qPCR"
    if k in ("ngs", "ngsmrd"):
        return "NGS"
    return m


def _anc(value: Decimal) -> str:
    """ANC for display with at least one decimal ("1.0", "0.75")."""
    s = fmt(value, 2)
    return s if "." in s else s + ".0"


def _pct(fraction: Decimal) -> str:
    return fmt(D(fraction) * 100, 4) + " %"


@dataclass
class _MRDStatus:
    status: str  # "negative" | "positive" | "not evaluable"
    text: str
    low_level: bool = False


def mrd_status(r: MRDResult) -> _MRDStatus:
    """Classify one MRD result by the ELN MRD 2021 thresholds (criteria.md §5.2, §9)."""
    method = _method(r.method)
    value = D(r.value_fraction) if r.value_fraction is not None else None
    lod = D(r.lod_fraction) if r.lod_fraction is not None else None

    def negative_needs_lod(prefix: str) -> _MRDStatus:
        if lod is None:
            return _MRDStatus("not evaluable", f"{prefix}; sensitivity/LOD not reported, so MRD negativity cannot be "
                              f"established (ELN needs a sensitivity reaching {_pct(MRD_MAX_ADEQUATE_LOD_FRACTION)})")
        if lod > MRD_MAX_ADEQUATE_LOD_FRACTION:
            return _MRDStatus("not evaluable", f"{prefix}; LOD {_pct(lod)} > {_pct(MRD_MAX_ADEQUATE_LOD_FRACTION)} "
                              "(assay not sensitive enough for ELN MRD negativity)")
        return _MRDStatus("negative", f"{prefix} with LOD {_pct(lod)} <= {_pct(MRD_MAX_ADEQUATE_LOD_FRACTION)}: "
                          "MRD-negative")

    if method in ("MFC", "NGS"):
        thr = MFC_MRD_POSITIVE_FRACTION if method == "MFC" else NGS_MRD_POSITIVE_FRACTION
        what = "MFC MRD" if method == "MFC" else "NGS MRD VAF"
        if value is not None:
            if value >= thr:
                return _MRDStatus("positive", f"{what} {_pct(value)} >= {_pct(thr)} (ELN positivity threshold): "
                                  "MRD-positive")
            if value > 0 or r.detected:
                return _MRDStatus("negative", f"{what} {_pct(value)} < {_pct(thr)} (ELN positivity threshold): "
                                  "MRD-negative by the ELN threshold")
            return negative_needs_lod(f"{what} not detected")
        if r.detected is True:
            return _MRDStatus("not evaluable", f"{what} detected but not quantified; cannot be compared with "
                              f"the {_pct(thr)} threshold")
        if r.detected is False:
            return negative_needs_lod(f"{what} not detected")
        return _MRDStatus("not evaluable", f"{what}: no result")
    if method == "qPCR":
        if r.replicates_positive is not None:
            positive = r.replicates_positive >= QPCR_MIN_POSITIVE_REPLICATES
            rep = (f"qPCR Cq < 40 in {r.replicates_positive} of {r.replicates_tested or '?'} replicates "
                   f"({'>=' if positive else '<'} {QPCR_MIN_POSITIVE_REPLICATES} needed for positivity)")
        elif r.detected is not None:
            positive = r.detected
            rep = f"qPCR {'detected' if positive else 'not detected'}"
        elif value is not None:
            positive = value > 0
            rep = f"qPCR level {_pct(value)}"
        else:
            return _MRDStatus("not evaluable", "qPCR MRD: no result")
        if positive:
            ll = r.low_level
            if ll is None:
                ll = value is not None and value < QPCR_MRD_LL_BELOW_FRACTION
            lvl = f" at {_pct(value)}" if value is not None else ""
            return _MRDStatus("positive", f"{rep}{lvl}: MRD-positive" + (
                f" (low-level, < {_pct(QPCR_MRD_LL_BELOW_FRACTION)})" if ll else ""), low_level=bool(ll))
        return negative_needs_lod(rep)
    return _MRDStatus("not evaluable", f"unknown MRD method {r.method!r}")


@dataclass
class _TP:
    date: date
    category: str
    confirmed: bool = True
    values: dict | None = None
    evidence: list | None = None
    missing: list | None = None
    notes: list | None = None

    def __post_init__(self) -> None:
        self.values = self.values if self.values is not None else {}
        self.evidence = self.evidence if self.evidence is not None else []
        self.missing = self.missing if self.missing is not None else []
        self.notes = self.notes if self.notes is not None else []

    def ev(self, rule: str, text: str, citation: str, refs: Sequence[str | None] = ()) -> None:
        self.evidence.append(Evidence(rule=rule, text=f"{self.date.isoformat()}: {text}", citation=citation,
                                      refs=_refs(*refs)))


def _adequacy(exam: MarrowExam) -> tuple[bool | None, str]:
    cells, cell_pct, spic = exam.nucleated_cells_counted, exam.biopsy_cellularity_pct, exam.spicules_present
    parts = []
    if spic is not None:
        parts.append("spicules present" if spic else "no spicules")
    if cells is not None:
        parts.append(f"{cells} nucleated cells counted ({'>=' if cells >= MLFS_MIN_NUCLEATED_CELLS else '<'} "
                     f"{MLFS_MIN_NUCLEATED_CELLS})")
    if cell_pct is not None:
        parts.append(f"biopsy cellularity {fmt(cell_pct)} % "
                     f"({'>=' if D(cell_pct) >= MLFS_MIN_CELLULARITY_PCT else '<'} {fmt(MLFS_MIN_CELLULARITY_PCT)} %)")
    desc = "; ".join(parts) if parts else "adequacy not reported"
    aspirate_ok = cells is not None and cells >= MLFS_MIN_NUCLEATED_CELLS and spic is not False
    biopsy_ok = cell_pct is not None and D(cell_pct) >= MLFS_MIN_CELLULARITY_PCT
    if aspirate_ok or biopsy_ok:
        return True, desc
    if spic is False or (cells is not None) or (cell_pct is not None):
        return False, desc
    return None, desc


# ---------------------------------------------------------------------------
# Classification of one marrow examination (response categories, §5.1-5.2)
# ---------------------------------------------------------------------------


def _classify_marrow(exam: MarrowExam, inputs: ELNInputs, *, cri_both_low: bool, use_crh: bool,
                     window: int) -> tuple[_TP, dict]:
    tp = _TP(exam.date, NOT_EVALUABLE)
    ctx: dict = {"pb_present": None, "emd_present": None, "mrd": None}
    d = exam.date
    v = tp.values

    # --- companion data -------------------------------------------------
    anc_c = _nearest(inputs.counts, d, window, key=lambda c: c.anc_10e9_per_L is not None)
    plt_c = _nearest(inputs.counts, d, window, key=lambda c: c.platelets_10e9_per_L is not None)
    anc = D(anc_c.anc_10e9_per_L) if anc_c else None
    plt = D(plt_c.platelets_10e9_per_L) if plt_c else None
    anc_ref = anc_c.anc_ref if anc_c else None
    plt_ref = plt_c.platelets_ref if plt_c else None
    for c in {id(x): x for x in (anc_c, plt_c) if x}.values():
        if c.after_transfusion_or_gcsf:
            tp.notes.append(f"Count of {c.date.isoformat()} drawn shortly after transfusion/G-CSF may overstate "
                            "recovery (criteria.md §5.4)")
    if anc is not None:
        v["anc_10e9_per_L"] = anc
        v["ANC_10e9_per_L"] = anc
    if plt is not None:
        v["platelets_10e9_per_L"] = plt
    pb = _nearest(inputs.pb_blasts, d, window, key=lambda p: p.blasts_present is not None)
    pb_present = pb.blasts_present if pb else None
    ctx["pb_present"], ctx["pb"] = pb_present, pb
    if pb is not None and pb.pct is not None:
        v["pb_blasts_pct"] = D(pb.pct)
    emd_list = sorted((e for e in inputs.emd if e.date <= d + timedelta(days=window)), key=lambda e: e.date)
    emd = emd_list[-1] if emd_list else None
    emd_present = emd.present if emd else None
    ctx["emd_present"], ctx["emd"] = emd_present, emd
    mrd = _nearest(inputs.mrd, d, MRD_WINDOW_DAYS)
    ctx["mrd"] = mrd

    # --- evaluability ---------------------------------------------------
    if exam.technically_suboptimal:
        tp.missing.append("adequate bone marrow sample (reported as technically suboptimal)")
        tp.ev("eln.ne.suboptimal", "Bone marrow sample technically suboptimal: response not evaluable",
              CIT_TABLE, [exam.ref])
        return tp, ctx
    if exam.blasts_pct is None:
        tp.missing.append("bone marrow blast percentage")
        tp.ev("eln.ne.no_blasts", "Bone marrow blast percentage not reported: response not evaluable",
              CIT_TABLE, [exam.ref])
        return tp, ctx
    blasts = D(exam.blasts_pct)
    v["bone_marrow_blasts_pct"] = blasts
    pre = D(inputs.pretreatment_marrow_blasts_pct) if inputs.pretreatment_marrow_blasts_pct is not None else None
    reduction_ok: bool | None = None
    if pre is not None and pre > 0:
        v["pretreatment_bone_marrow_blasts_pct"] = pre
        v["pct_reduction_blasts"] = (pre - blasts) * 100 / pre
        v["pct_change_from_pretreatment"] = (blasts - pre) * 100 / pre
        reduction_ok = change_at_most(blasts, pre, -PR_MIN_REDUCTION_PCT)
    adequate, adesc = _adequacy(exam)
    v["marrow_adequate"] = adequate

    if blasts < CR_BLASTS_BELOW_PCT:
        tp.ev("eln.blasts.lt5", f"Marrow blasts {fmt_near(blasts, _BLAST_LINES)} % < {fmt(CR_BLASTS_BELOW_PCT)} % "
              "(CR/CRh/CRi/MLFS require < 5 %)", CIT_TABLE, [exam.ref])
        if adequate is False:
            tp.missing.append("adequate (non-aplastic) bone marrow: spicules with >= 200 nucleated cells, or "
                              "biopsy cellularity >= 10 %")
            tp.ev("eln.ne.inadequate", f"Marrow inadequate/aplastic ({adesc}): blast count < 5 % cannot establish "
                  "remission; not evaluable", CIT_TABLE, [exam.ref])
            return tp, ctx
        if pb_present is True or emd_present is True:
            if pb_present:
                tp.ev("eln.pb.present", "Circulating blasts present (CR/CRh/CRi/MLFS require absence)", CIT_TABLE,
                      [pb.ref if pb else None])
            if emd_present:
                tp.ev("eln.emd.present", "Extramedullary disease present (CR/CRh/CRi/MLFS require absence)",
                      CIT_TABLE, [emd.ref if emd else None])
            tp.category = NO_RESPONSE
            tp.ev("eln.nr", f"Blasts {fmt_near(blasts, _BLAST_LINES)} % are below the PR range "
                  f"({fmt(PR_MIN_BLASTS_PCT)}-{fmt(PR_MAX_BLASTS_PCT)} %) and remission criteria are not met: "
                  "no response", CIT_TABLE, [exam.ref])
            return tp, ctx
        if pb_present is None:
            tp.missing.append("peripheral blood blast status (absence required for CR/CRh/CRi/MLFS)")
            tp.ev("eln.ne.pb_unknown", "Peripheral blood blast status not reported: remission not evaluable",
                  CIT_TABLE, [exam.ref])
            return tp, ctx
        tp.ev("eln.pb.absent", "No circulating blasts", CIT_TABLE, [pb.ref if pb else None])
        if emd_present is None:
            tp.notes.append("No extramedullary disease recorded; taken as absent")
        else:
            tp.ev("eln.emd.absent", "No extramedullary disease", CIT_TABLE, [emd.ref if emd else None])

        anc_cr = anc is not None and anc >= CR_MIN_ANC_10E9_PER_L
        plt_cr = plt is not None and plt >= CR_MIN_PLATELETS_10E9_PER_L
        count_refs = [anc_ref, plt_ref]

        def anc_txt(thr: Decimal) -> str:
            return f"ANC {_anc(anc)} {'>=' if anc >= thr else '<'} {_anc(thr)} x10^9/L"

        def plt_txt(thr: Decimal) -> str:
            return f"platelets {fmt(plt)} {'>=' if plt >= thr else '<'} {fmt(thr)} x10^9/L"

        if anc is None or plt is None:
            miss = [n for n, x in (("ANC", anc), ("platelet count", plt)) if x is None]
            if adequate is True:
                tp.category = MLFS
                tp.ev("eln.mlfs", f"Blast criteria met on an adequate marrow ({adesc}); {' and '.join(miss)} not "
                      "available, so CR/CRh/CRi cannot be assessed: MLFS (no count recovery required)",
                      CIT_TABLE, [exam.ref, *count_refs])
                tp.notes.append(f"{' and '.join(miss)} missing within {window} days of the marrow: "
                                "CR/CRh/CRi not assessable")
                return tp, ctx
            tp.missing.extend(f"{n} within {window} days of the bone marrow examination" for n in miss)
            if adequate is None:
                tp.missing.append("marrow adequacy (needed for MLFS when counts are missing)")
            tp.ev("eln.ne.counts", f"{' and '.join(miss)} not available: response not evaluable",
                  CIT_TABLE, [exam.ref, *count_refs])
            return tp, ctx

        if anc_cr and plt_cr:
            tp.category = CR
            tp.ev("eln.cr", f"{anc_txt(CR_MIN_ANC_10E9_PER_L)} and {plt_txt(CR_MIN_PLATELETS_10E9_PER_L)}: CR",
                  CIT_TABLE, count_refs)
        elif use_crh and anc >= CRH_MIN_ANC_10E9_PER_L and plt >= CRH_MIN_PLATELETS_10E9_PER_L:
            tp.category = CRH
            tp.ev("eln.crh", f"CR counts not met but {anc_txt(CRH_MIN_ANC_10E9_PER_L)} and "
                  f"{plt_txt(CRH_MIN_PLATELETS_10E9_PER_L)}: CRh", CIT_TABLE, count_refs)
        elif anc_cr != plt_cr or cri_both_low:
            tp.category = CRI
            tp.ev("eln.cri", f"{anc_txt(CR_MIN_ANC_10E9_PER_L)}, {plt_txt(CR_MIN_PLATELETS_10E9_PER_L)}"
                  + ("" if not use_crh else " and CRh counts not met")
                  + (" (both lineages low; inclusive CRi reading)" if anc_cr == plt_cr else
                     " (one lineage below CR threshold)") + ": CRi", CIT_TABLE, count_refs)
        else:
            if adequate is not True:
                tp.missing.append("marrow adequacy (spicules with >= 200 nucleated cells, or biopsy cellularity "
                                  ">= 10 %) needed for MLFS")
                tp.ev("eln.ne.mlfs_adequacy", f"Neither lineage recovered ({anc_txt(CR_MIN_ANC_10E9_PER_L)}, "
                      f"{plt_txt(CR_MIN_PLATELETS_10E9_PER_L)}) and marrow adequacy not documented: "
                      "MLFS cannot be assigned", CIT_TABLE, [exam.ref, *count_refs])
                return tp, ctx
            tp.category = MLFS
            tp.ev("eln.mlfs", f"Neither lineage recovered ({anc_txt(CR_MIN_ANC_10E9_PER_L)}, "
                  f"{plt_txt(CR_MIN_PLATELETS_10E9_PER_L)}; CRh not met); adequate marrow ({adesc}): MLFS "
                  "(CRi read as exactly one lineage low, criteria.md §5.1 [I])", CIT_TABLE, [exam.ref, *count_refs])
            return tp, ctx
        if adequate is None:
            tp.notes.append("Marrow adequacy (spicules / cells counted / cellularity) not reported")
        # MRD qualification (§5.2)
        if mrd is not None:
            st = mrd_status(mrd)
            v["mrd_method"] = _method(mrd.method)
            v["mrd_status"] = st.status
            if mrd.value_fraction is not None:
                v["mrd_value_fraction"] = D(mrd.value_fraction)
            if mrd.lod_fraction is not None:
                v["mrd_lod_fraction"] = D(mrd.lod_fraction)
            tp.ev(f"eln.mrd.{st.status.replace(' ', '_')}", st.text, CIT_MRD, [mrd.ref])
            if st.status == "negative":
                tp.category = _MRD_NEG_OF[tp.category]
            elif st.status == "positive":
                tp.notes.append(f"{tp.category} with MRD positivity (ELN: {tp.category}_MRD+)")
            else:
                tp.notes.append(f"MRD result not evaluable for ELN negativity: reported as {tp.category} "
                                "(MRD unknown)")
        else:
            v["mrd_status"] = "not tested"
            tp.notes.append(f"MRD not assessed: reported as {tp.category} (MRD unknown), not {tp.category}_MRD-")
        return tp, ctx

    # blasts >= 5 % ---------------------------------------------------------
    tp.ev("eln.blasts.ge5", f"Marrow blasts {fmt_near(blasts, _BLAST_LINES)} % >= {fmt(CR_BLASTS_BELOW_PCT)} % "
          "(not CR/CRh/CRi/MLFS)", CIT_TABLE, [exam.ref])
    in_range = PR_MIN_BLASTS_PCT <= blasts <= PR_MAX_BLASTS_PCT
    if not in_range:
        tp.category = NO_RESPONSE
        tp.ev("eln.nr", f"Marrow blasts {fmt_near(blasts, _BLAST_LINES)} % > {fmt(PR_MAX_BLASTS_PCT)} % (PR requires 5-25 %): "
              "no response", CIT_TABLE, [exam.ref])
        return tp, ctx
    reasons_no: list[str] = []
    unknown: list[str] = []
    if reduction_ok is None:
        unknown.append("pretreatment bone marrow blast percentage (needed for PR)")
    elif not reduction_ok:
        reasons_no.append(f"blasts fell {fmt(v['pct_reduction_blasts'])} % from {fmt(pre)} % "
                          f"(< {fmt(PR_MIN_REDUCTION_PCT)} % reduction)")
    if anc is None or plt is None:
        unknown.extend(f"{n} within {window} days of the bone marrow examination (needed for PR)"
                       for n, x in (("ANC", anc), ("platelet count", plt)) if x is None)
    if anc is not None and anc < CR_MIN_ANC_10E9_PER_L:
        reasons_no.append(f"ANC {_anc(anc)} < {_anc(CR_MIN_ANC_10E9_PER_L)} x10^9/L")
    if plt is not None and plt < CR_MIN_PLATELETS_10E9_PER_L:
        reasons_no.append(f"platelets {fmt(plt)} < {fmt(CR_MIN_PLATELETS_10E9_PER_L)} x10^9/L")
    if reasons_no:
        tp.category = NO_RESPONSE
        tp.ev("eln.nr", f"Marrow blasts {fmt_near(blasts, _BLAST_LINES)} % within 5-25 % but " + "; ".join(reasons_no)
              + " (PR requires >= 50 % reduction and CR counts): no response",
              CIT_TABLE, [exam.ref, inputs.pretreatment_ref, anc_ref, plt_ref])
        return tp, ctx
    if unknown:
        tp.missing.extend(unknown)
        tp.ev("eln.ne.pr_undetermined", f"Marrow blasts {fmt_near(blasts, _BLAST_LINES)} % within 5-25 % but PR cannot be "
              "decided: " + "; ".join(unknown), CIT_TABLE, [exam.ref])
        return tp, ctx
    tp.category = PR
    tp.ev("eln.pr", f"Marrow blasts {fmt_near(blasts, _BLAST_LINES)} % within {fmt(PR_MIN_BLASTS_PCT)}-{fmt(PR_MAX_BLASTS_PCT)} %, "
          f"reduced {fmt(v['pct_reduction_blasts'])} % from {fmt(pre)} % (>= {fmt(PR_MIN_REDUCTION_PCT)} %), "
          f"ANC {_anc(anc)} >= {_anc(CR_MIN_ANC_10E9_PER_L)} and platelets {fmt(plt)} >= "
          f"{fmt(CR_MIN_PLATELETS_10E9_PER_L)} x10^9/L: PR", CIT_TABLE,
          [exam.ref, inputs.pretreatment_ref, anc_ref, plt_ref])
    return tp, ctx


# ---------------------------------------------------------------------------
# Landmark (§5.3)
# ---------------------------------------------------------------------------


def _landmark(therapy: TherapyContext | None, d: date, is_latest_marrow: bool) -> tuple[bool, str, dict]:
    if therapy is None:
        return False, "", {}
    vals: dict = {}
    courses = None
    if therapy.intensive_course_starts:
        courses = sum(1 for s in therapy.intensive_course_starts if s < d)
    elif is_latest_marrow and therapy.intensive_courses_completed is not None:
        courses = therapy.intensive_courses_completed
    if courses is not None:
        vals["intensive_courses_completed"] = courses
        if courses >= REFRACTORY_INTENSIVE_COURSES:
            return True, (f"{courses} intensive induction courses given (landmark: "
                          f">= {REFRACTORY_INTENSIVE_COURSES} courses)"), vals
    if therapy.less_intensive_start is not None:
        days = (d - therapy.less_intensive_start).days
        vals["days_since_less_intensive_start"] = days
        if days >= LESS_INTENSIVE_LANDMARK_DAYS:
            return True, (f"{days} days since start of less-intensive therapy (landmark: "
                          f">= {LESS_INTENSIVE_LANDMARK_DAYS} days)"), vals
    if therapy.landmark_date is not None and d >= therapy.landmark_date:
        return True, f"assessment on/after the protocol landmark {therapy.landmark_date.isoformat()}", vals
    return False, "", vals


# ---------------------------------------------------------------------------
# Engine
# ---------------------------------------------------------------------------


def assess(
    inputs: ELNInputs,
    as_of: date,
    *,
    cri_allows_both_lineages_low: bool = CRI_ALLOWS_BOTH_LINEAGES_LOW,
    use_crh: bool = True,
    count_window_days: int = COUNT_WINDOW_DAYS,
) -> Assessment:
    """Assess ELN 2022 AML response as of ``as_of`` (data dated after ``as_of`` are ignored)."""

    def upto(xs):
        return tuple(x for x in xs if x.date <= as_of)

    inp = ELNInputs(
        marrow=upto(inputs.marrow), counts=upto(inputs.counts), pb_blasts=upto(inputs.pb_blasts),
        emd=upto(inputs.emd), mrd=upto(inputs.mrd), pretreatment_marrow_blasts_pct=inputs.pretreatment_marrow_blasts_pct,
        pretreatment_ref=inputs.pretreatment_ref, prior=upto(inputs.prior), therapy=inputs.therapy,
        not_evaluable_reason=inputs.not_evaluable_reason,
    )
    marrow_by_date = {m.date: m for m in sorted(inp.marrow, key=lambda m: m.date)}
    latest_marrow = max(marrow_by_date) if marrow_by_date else None
    prior_by_date = {p.date: p for p in sorted(inp.prior, key=lambda p: p.date)}
    dates = sorted(set(marrow_by_date) | set(prior_by_date) | {p.date for p in inp.pb_blasts}
                   | {e.date for e in inp.emd} | {m.date for m in inp.mrd})

    tps: list[_TP] = []
    ever_cr = False
    in_remission = False
    remission_category: str | None = None
    pb_run_start: PeripheralBlasts | None = None
    mrd_last_neg = False
    mrd_pending: tuple[str, MRDResult, Decimal | None] | None = None
    mrd_ll_ref: MRDResult | None = None
    mrd_relapsed = False
    notes: list[str] = []

    def current() -> str | None:
        return tps[-1].category if tps else None

    def enter_remission(cat: str) -> None:
        nonlocal ever_cr, in_remission, remission_category, pb_run_start
        ever_cr = True
        in_remission = True
        remission_category = cat
        pb_run_start = None

    def relapse(tp: _TP) -> None:
        nonlocal in_remission, pb_run_start, mrd_pending, mrd_ll_ref, mrd_last_neg, mrd_relapsed
        tp.category = HEM_RELAPSE
        tp.confirmed = True
        # relapse is decided: drop what was only missing for the response categories (e.g. PR inputs)
        tp.missing.clear()
        tp.evidence[:] = [e for e in tp.evidence if not e.rule.startswith("eln.ne.")]
        in_remission = False
        pb_run_start = None
        mrd_pending = None
        mrd_ll_ref = None
        mrd_last_neg = False
        mrd_relapsed = False

    def pb_signal(tp: _TP, pb: PeripheralBlasts) -> None:
        """PB sample with blasts while in remission: suspected or confirmed haematological relapse."""
        nonlocal pb_run_start
        pct = f" ({fmt(pb.pct)} %)" if pb.pct is not None else ""
        if pb_run_start is None:
            pb_run_start = pb
            tp.category = SUSPECTED_RELAPSE
            tp.confirmed = False
            tp.ev("eln.relapse.pb_single", f"Blasts reappeared in peripheral blood{pct} in 1 sample after "
                  f"{remission_category}; relapse needs >= {PB_RELAPSE_MIN_SAMPLES} samples >= "
                  f"{PB_RELAPSE_MIN_INTERVAL_DAYS} days apart: suspected relapse, repeat PB/BM required",
                  CIT_RELAPSE, [pb.ref])
            return
        days = (pb.date - pb_run_start.date).days
        tp.values["days_between_samples"] = days
        if days >= PB_RELAPSE_MIN_INTERVAL_DAYS:
            tp.ev("eln.relapse.pb_confirmed", f"Blasts in peripheral blood{pct} again {days} days after the first "
                  f"positive sample of {pb_run_start.date.isoformat()} ({days} >= {PB_RELAPSE_MIN_INTERVAL_DAYS} "
                  "days): hematologic relapse", CIT_RELAPSE, [pb_run_start.ref, pb.ref])
            relapse(tp)
        else:
            tp.category = SUSPECTED_RELAPSE
            tp.confirmed = False
            tp.ev("eln.relapse.pb_too_close", f"Blasts in peripheral blood{pct} again only {days} days after the "
                  f"first positive sample ({days} < {PB_RELAPSE_MIN_INTERVAL_DAYS} days): still suspected relapse",
                  CIT_RELAPSE, [pb_run_start.ref, pb.ref])

    def mrd_step(tp: _TP, r: MRDResult) -> bool:
        """Feed one MRD sample (in remission) to the MRD-relapse rule; True if it set the category."""
        nonlocal mrd_last_neg, mrd_pending, mrd_ll_ref, mrd_relapsed
        st = mrd_status(r)
        if st.status == "not evaluable":
            tp.notes.append(f"MRD {r.date.isoformat()}: {st.text}")
            return False
        val = D(r.value_fraction) if r.value_fraction is not None else None
        if mrd_pending is not None:
            kind, trig, ref_val = mrd_pending
            if trig.tissue and r.tissue and trig.tissue.upper() != r.tissue.upper():
                tp.notes.append(f"MRD {r.date.isoformat()} from {r.tissue}, trigger sample from {trig.tissue}: "
                                "not used for confirmation (same tissue source required)")
                return False
            mrd_pending = None
            confirmed = st.status == "positive"
            if confirmed and kind == "rise":
                confirmed = val is not None and ref_val is not None and val >= ref_val * MRD_LOG10_RISE_FACTOR
            if confirmed:
                tp.category = MRD_RELAPSE
                tp.confirmed = True
                tp.values["mrd_value_fraction"] = val
                tp.ev("eln.relapse.mrd_confirmed", f"{st.text}; confirms the {'conversion to MRD positivity' if kind == 'conversion' else '>= 1 log10 MRD rise'} "
                      f"of {trig.date.isoformat()} on the next consecutive sample: MRD relapse", CIT_RELAPSE,
                      [trig.ref, r.ref])
                mrd_relapsed = True
                return True
            tp.category = remission_category or tp.category
            tp.confirmed = True
            tp.ev("eln.relapse.mrd_not_confirmed", f"{st.text}; the MRD signal of {trig.date.isoformat()} is not "
                  "confirmed on the next consecutive sample: no MRD relapse", CIT_RELAPSE, [trig.ref, r.ref])
            if st.status == "negative":
                mrd_last_neg, mrd_ll_ref = True, None
            return True
        if st.status == "negative":
            mrd_last_neg, mrd_ll_ref = True, None
            return False
        # positive
        if mrd_last_neg:
            mrd_pending = ("conversion", r, None)
            tp.category = SUSPECTED_MRD_RELAPSE
            tp.confirmed = False
            tp.ev("eln.relapse.mrd_conversion", f"{st.text} after an MRD-negative result: conversion to MRD "
                  "positivity, must be confirmed on a second consecutive sample from the same tissue",
                  CIT_RELAPSE, [r.ref])
            mrd_last_neg = False
            return True
        if _method(r.method) == "qPCR" and st.low_level and val is not None:
            if mrd_ll_ref is not None and mrd_ll_ref.value_fraction is not None:
                ref_val = D(mrd_ll_ref.value_fraction)
                if ref_val > 0 and val >= ref_val * MRD_LOG10_RISE_FACTOR:
                    mrd_pending = ("rise", r, ref_val)
                    tp.category = SUSPECTED_MRD_RELAPSE
                    tp.confirmed = False
                    tp.values["mrd_fold_rise"] = val / ref_val
                    tp.ev("eln.relapse.mrd_rise", f"qPCR MRD-LL rose from {_pct(ref_val)} "
                          f"({mrd_ll_ref.date.isoformat()}) to {_pct(val)} (x{fmt(val / ref_val, 1)} >= "
                          f"x{fmt(MRD_LOG10_RISE_FACTOR)}, i.e. >= 1 log10): must be confirmed on a second "
                          "consecutive sample", CIT_RELAPSE, [mrd_ll_ref.ref, r.ref])
                    return True
            if mrd_ll_ref is None or (mrd_ll_ref.value_fraction is not None
                                      and val < D(mrd_ll_ref.value_fraction)):
                mrd_ll_ref = r
        elif _method(r.method) == "qPCR" and val is not None and mrd_ll_ref is not None \
                and mrd_ll_ref.value_fraction is not None and D(mrd_ll_ref.value_fraction) > 0 \
                and val >= D(mrd_ll_ref.value_fraction) * MRD_LOG10_RISE_FACTOR:
            # rise out of the low-level range (e.g. NPM1 >= 2 %) from an MRD-LL reference
            ref_val = D(mrd_ll_ref.value_fraction)
            mrd_pending = ("rise", r, ref_val)
            tp.category = SUSPECTED_MRD_RELAPSE
            tp.confirmed = False
            tp.values["mrd_fold_rise"] = val / ref_val
            tp.ev("eln.relapse.mrd_rise", f"qPCR MRD rose from low-level {_pct(ref_val)} "
                  f"({mrd_ll_ref.date.isoformat()}) to {_pct(val)} (x{fmt(val / ref_val, 1)} >= "
                  f"x{fmt(MRD_LOG10_RISE_FACTOR)}): must be confirmed on a second consecutive sample",
                  CIT_RELAPSE, [mrd_ll_ref.ref, r.ref])
            return True
        return False

    for d in dates:
        marrow = marrow_by_date.get(d)
        mrd_today = sorted((m for m in inp.mrd if m.date == d), key=lambda m: m.date)
        if marrow is not None:
            tp, ctx = _classify_marrow(marrow, inp, cri_both_low=cri_allows_both_lineages_low, use_crh=use_crh,
                                       window=count_window_days)
            base = tp.category
            blasts = tp.values.get("bone_marrow_blasts_pct")
            if in_remission:
                if blasts is not None and blasts >= RELAPSE_MIN_BLASTS_PCT:
                    tp.ev("eln.relapse.bm", f"Marrow blasts {fmt_near(blasts, _BLAST_LINES)} % >= {fmt(RELAPSE_MIN_BLASTS_PCT)} % "
                          f"after {remission_category}: hematologic relapse", CIT_RELAPSE, [marrow.ref])
                    relapse(tp)
                elif ctx.get("emd_present") and ctx["emd"].date > (tps[-1].date if tps else date.min):
                    tp.ev("eln.relapse.emd", f"Extramedullary disease developed after {remission_category}"
                          + (f" ({ctx['emd'].site})" if ctx["emd"].site else "") + ": hematologic relapse",
                          CIT_RELAPSE, [ctx["emd"].ref])
                    relapse(tp)
                elif ctx.get("pb_present"):
                    pb = ctx["pb"]
                    if pb_run_start is None or pb.date > pb_run_start.date:
                        pb_signal(tp, pb)
                    else:
                        tp.category = SUSPECTED_RELAPSE
                        tp.confirmed = False
                        tp.ev("eln.relapse.pb_pending", f"Circulating blasts of {pb.date.isoformat()} not yet "
                              "confirmed by a second sample >= 7 days later: suspected relapse", CIT_RELAPSE,
                              [pb.ref])
                elif base in CR_FAMILY:
                    if mrd_relapsed and not base.endswith("_MRD-"):
                        tp.category = MRD_RELAPSE
                        tp.notes.append("Morphologic remission persists but MRD relapse has not been reversed "
                                        "by an MRD-negative result")
                    else:
                        if base.endswith("_MRD-"):
                            mrd_relapsed = False
                        remission_category = base
                    pb_run_start = None
                else:
                    if base in (MLFS, PR, NO_RESPONSE):
                        tp.notes.append(f"{base} after {remission_category} without relapse criteria met")
            else:
                if base in CR_FAMILY:
                    enter_remission(base)
                elif base in (MLFS, PR, NO_RESPONSE) and not ever_cr:
                    reached, why, lvals = _landmark(inp.therapy, d, d == latest_marrow)
                    tp.values.update(lvals)
                    if reached:
                        tp.category = REFRACTORY
                        tp.ev("eln.refractory", f"No CR, CRh or CRi at the response landmark ({why}); "
                              f"best response at this assessment {base}: refractory", CIT_RELAPSE, [marrow.ref])
            # MRD samples of this date: baseline / relapse rule while in remission
            if in_remission and tp.category in CR_FAMILY | {MRD_RELAPSE, SUSPECTED_MRD_RELAPSE}:
                for r in mrd_today:
                    if not mrd_relapsed:
                        mrd_step(tp, r)
            tps.append(tp)
            continue
        prior = prior_by_date.get(d)
        if prior is not None:
            cat = normalise_category(prior.category)
            tp = _TP(d, cat, confirmed=cat not in (SUSPECTED_RELAPSE, SUSPECTED_MRD_RELAPSE))
            tp.ev("eln.prior", f"Recorded prior category {cat}", CIT_TABLE, [prior.ref])
            if cat in CR_FAMILY:
                enter_remission(cat)
                if cat.endswith("_MRD-"):
                    mrd_last_neg = True
            elif cat == HEM_RELAPSE:
                ever_cr = True
                in_remission = False
            elif cat in (MRD_RELAPSE, SUSPECTED_RELAPSE, SUSPECTED_MRD_RELAPSE):
                # still in morphologic remission: later data are checked for (confirmation of) relapse
                ever_cr, in_remission = True, True
                remission_category = remission_category or CR
                mrd_relapsed = cat == MRD_RELAPSE
                if cat == SUSPECTED_RELAPSE:
                    tp.notes.append("Prior suspected relapse: its PB sample is not available for confirmation")
            tps.append(tp)
            continue
        if not in_remission:
            continue
        # Non-marrow date while in remission: EMD, PB blasts, MRD
        tp = _TP(d, current() or remission_category or NOT_EVALUABLE,
                 confirmed=tps[-1].confirmed if tps else True)
        emd_today = [e for e in inp.emd if e.date == d and e.present]
        pb_today = [p for p in inp.pb_blasts if p.date == d and p.blasts_present is not None]
        changed = False
        if emd_today:
            e = emd_today[0]
            tp.ev("eln.relapse.emd", f"Extramedullary disease developed after {remission_category}"
                  + (f" ({e.site})" if e.site else "") + ": hematologic relapse", CIT_RELAPSE, [e.ref])
            relapse(tp)
            changed = True
        elif pb_today:
            p = pb_today[0]
            if p.blasts_present:
                pb_signal(tp, p)
                if p.pct is not None:
                    tp.values["pb_blasts_pct"] = D(p.pct)
                changed = True
            elif pb_run_start is not None:
                pb_run_start = None
                tp.category = remission_category or tp.category
                tp.confirmed = True
                tp.ev("eln.relapse.pb_cleared", f"No circulating blasts on repeat sample after "
                      "suspected relapse: relapse not confirmed", CIT_RELAPSE, [p.ref])
                changed = True
        if in_remission and not mrd_relapsed and tp.category != HEM_RELAPSE:
            for r in mrd_today:
                changed = mrd_step(tp, r) or changed
        if changed:
            tps.append(tp)
        else:
            notes.extend(tp.notes)

    # -------------------------------------------------------------------
    # Result
    # -------------------------------------------------------------------
    if not tps or (inp.not_evaluable_reason and not any(t.category != NOT_EVALUABLE for t in tps)):
        missing = list(tps[-1].missing) if tps else []
        if inp.not_evaluable_reason:
            missing.insert(0, f"bone marrow response assessment ({inp.not_evaluable_reason})")
        if not tps and not inp.not_evaluable_reason:
            missing.append("bone marrow examination (blast percentage) on or before the assessment date")
        evidence = [e for t in tps for e in t.evidence]
        evidence.append(Evidence("eln.ne", "No evaluable bone marrow response assessment: non-evaluable",
                                 CIT_TABLE))
        history = tuple(TimepointResult(t.date, t.category, OUTCOMES[t.category], dict(t.values)) for t in tps)
        return Assessment(
            criteria=CRITERIA, category=NOT_EVALUABLE, label=LABELS[NOT_EVALUABLE], outcome=Outcome.NOT_EVALUABLE,
            assessment_date=tps[-1].date if tps else None, confirmed=True, source=SOURCE,
            values=dict(tps[-1].values) if tps else {}, evidence=tuple(evidence), history=history,
            missing=tuple(missing), notes=tuple(notes),
        )
    if inp.not_evaluable_reason:
        notes.append(f"Recorded: {inp.not_evaluable_reason}")
    last = tps[-1]
    values = dict(last.values)
    values["best_response_cr_crh_cri"] = ever_cr
    all_notes = [n for n in last.notes] + notes
    if cri_allows_both_lineages_low:
        all_notes.append("CRi read inclusively (both lineages may be below CR thresholds), criteria.md §5.1 [I]")
    history = tuple(TimepointResult(t.date, t.category, OUTCOMES[t.category], dict(t.values)) for t in tps)
    return Assessment(
        criteria=CRITERIA,
        category=last.category,
        label=LABELS[last.category],
        outcome=OUTCOMES[last.category],
        assessment_date=last.date,
        confirmed=last.confirmed,
        source=SOURCE,
        values=values,
        evidence=tuple(e for t in tps for e in t.evidence),
        history=history,
        missing=tuple(last.missing),
        notes=tuple(dict.fromkeys(all_notes)),
    )
