"""IMWG 2016 response criteria for multiple myeloma (standard response categories).

Kumar S et al. International Myeloma Working Group consensus criteria for response and minimal residual
disease assessment in multiple myeloma. Lancet Oncol 2016;17:e328-e346 (reference: criteria.md §6.1-6.3, §11,
§12 items 5 and 10, §12b). The MRD categories (criteria.md §6.4, §9) are in :mod:`rules.imwg_mrd`.

Categories (``Assessment.category``) and their :class:`~rules.base.Outcome`:

==================  =======================================  ==========================================
category            label                                    outcome
==================  =======================================  ==========================================
``sCR``             stringent complete response              COMPLETE
``CR``              complete response                        COMPLETE
``VGPR``            very good partial response               PARTIAL
``PR``              partial response                         PARTIAL
``MR``              minimal response                         MINOR
``SD``              stable disease                           STABLE
``PD``              progressive disease                      PROGRESSION (UNCONFIRMED_PROGRESSION while
                                                             only one assessment shows it)
``relapse from CR`` relapse from complete response (DFS)     RELAPSE
``NE``              not evaluable                            NOT_EVALUABLE
==================  =======================================  ==========================================

How the engine works
--------------------
* The measurable parameter is chosen from the baseline (§6.1): serum M >= 1 g/dL and/or urine M >= 200 mg/24 h;
  else involved FLC >= 10 mg/dL with an abnormal kappa/lambda ratio (then dFLC = involved - uninvolved FLC is the
  response parameter); else bone-marrow plasma cells (BMPC) >= 30 %.  ``IMWGInputs.measurable_by`` overrides it
  (for records where the baseline is not available but the measurable parameter is documented).
* Every dated assessment gets a time-point level.  When several parameters are used the level is the **lowest**
  level reached by any parameter; when a critical data point for a level is missing the level is downgraded to
  the next lower level (admiralonco IMWG vignette summarising Kumar 2016; criteria.md §6.2 assessment rules).
* Confirmation (§6.2, §11): the biochemical parameters (serum/urine M, IFE, FLC) must meet the level on **two
  consecutive assessments** -- no minimum interval, but a different sample (two results with the same
  ``sample_id``, or on the same day without distinct sample ids, are not independent).  Bone-marrow and imaging
  results need no confirmation and are carried forward from their own date.  Assessments on or after
  ``new_therapy_start`` are not used: confirmation must precede new therapy.
* PD is measured from the **lowest confirmed value** (§6.2 PD notes): for serum M, urine M and dFLC the
  candidates are the baseline, an optional ``confirmed_nadir`` from the record, and for every pair of
  consecutive measurements the higher of the two (a value is confirmed only when the next one is as low); for
  BMPC and plasmacytoma SPD (no confirmation needed) the plain minimum.  Biochemical PD needs two consecutive
  assessments; the progression date is the first of them (vignette IMWG-09).  Marrow and imaging PD (new
  lesions, SPD growth) count at once.
* The patient stays in the last confirmed category until PD or a better response is confirmed (vignette
  IMWG-11); ``previous_confirmed_category`` seeds that state from the record.  From CR/sCR, reappearance of
  M-protein (IFE or electrophoresis, confirmed) or BMPC >= 5 % without PD is "relapse from CR" (§6.3).
* ``Assessment.values`` are taken from the assessment at which the current category was first met (the first
  of the confirming pair, the progression date for PD) -- the convention of the vignettes -- and the latest
  assessment's numbers are repeated with a ``latest_`` prefix.  Percentages in ``values`` are rounded to 0.01
  for display; every decision uses the exact values (cross-multiplied, no division).

Interpretation choices ([I] in criteria.md), all explicit
---------------------------------------------------------
* Serum-M PD absolute increase: ``>= 0.5 g/dL`` (Kumar 2016; criteria.md §6.2 [I], §12 item 10; vignette
  IMWG-11).  ``assess(..., serum_pd_absolute_inclusive=False)`` gives the ``> 0.5`` reading of PMC9954856.
* dFLC PD absolute increase: ``> 10 mg/dL`` (= > 100 mg/L), not the ``> 10 mg/L`` misprint (§6.2 [I]).
* MR: the 2016 wording (plasmacytoma SPD reduction >= 50 % for MR as for PR; vignette IMWG-15).  MR is defined
  only for serum/urine M-protein disease; FLC-only or BMPC-only disease goes from PR straight to SD.
* A reduction between 49 % and 50 % (e.g. 49.5 %) is MR (the table's "<= 49 %" is read as "< 50 %").
* "Downgraded to the next lower level" is applied literally: a missing critical data point lowers the level the
  other parameters reach by one step (e.g. serum PR but measurable urine not re-measured -> MR; IFE negative
  but no marrow -> VGPR; CR without FLC ratio or marrow IHC -> CR rather than sCR).
* VGPR and CR also require the plasmacytoma (if present at baseline) to reach the PR/CR level ("lowest level
  reached by any parameter").
* Urine that was 0 mg/24 h at baseline and is not re-measured does not limit PR/MR/VGPR (vignette IMWG-17);
  urine measurable at baseline (>= 200 mg/24 h) must be re-measured.  Urine that was present but < 200 at
  baseline and is not re-measured limits the level to PR (VGPR needs urine < 100 documented).
* sCR marrow IHC: kappa/lambda <= 4 for a kappa clone, >= 1/2 (0.5) for a lambda clone; when the clone's light
  chain is unknown both bounds are required (0.5 <= ratio <= 4; vignette IMWG-05).  The clone's light chain is
  ``involved_FLC`` or, failing that, the side of an abnormal baseline FLC ratio.
* Normal FLC ratio 0.26-1.65 inclusive (criteria.md §6.2 sCR [V]).
* Biochemical PD needs PD on two consecutive assessments (any biochemical parameter each time).
* Circulating plasma cells PD (only when they are the only measure of disease): >= 50 % increase from nadir and
  a count >= 200 cells/uL [I: "minimum of 200 cells per uL" read as the count after the increase].
* Clinical relapse (CRAB features) is not a response category and is not assessed here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, localcontext
from typing import Iterable, Mapping, Sequence, Union

from .base import (
    Assessment,
    D,
    Evidence,
    Outcome,
    Source,
    TimepointResult,
    fmt,
    fmt_pct,
    pct_change,
    rounded,
)

CRITERIA = "IMWG 2016"
SOURCE = Source(
    label="Kumar S et al. IMWG consensus criteria for response and minimal residual disease assessment in "
    "multiple myeloma. Lancet Oncol 2016;17:e328-e346",
    url="https://doi.org/10.1016/S1470-2045(16)30206-6",
)

CIT = "Kumar 2016 (IMWG)"

# ---------------------------------------------------------------------------
# Thresholds (criteria.md §6; Kumar 2016 Table "IMWG response criteria").  [P] = from Kumar 2016 as reproduced
# in criteria.md, not re-checked against the PDF; [V] = verified reproduction named in criteria.md.
# ---------------------------------------------------------------------------
# §6.1 measurable disease [P; V for FLC]; checked: CIBMTR Forms Manual, multiple myeloma response criteria (serum
# >= 1 g/dL, urine >= 200 mg/24 h; FLC there written "> 10 mg/dL", Kumar 2016 and droracle ">= 10"); BMPC >= 30 %:
# Durie 2006 Table 5 (nature.com 2404284 T5) and ash-sap view-large 3937963 PR rows
MEASURABLE_SERUM_M_G_DL = Decimal("1")        # serum M-protein >= 1 g/dL
MEASURABLE_URINE_M_MG_24H = Decimal("200")    # urine M-protein >= 200 mg/24 h
MEASURABLE_IFLC_MG_DL = Decimal("10")         # involved FLC >= 10 mg/dL (>= 100 mg/L) with abnormal ratio
MEASURABLE_BMPC_PCT = Decimal("30")           # BMPC >= 30 % usable for PR when nothing else is measurable
# §6.2 sCR: normal FLC ratio 0.26-1.65 inclusive [V: droracle]
FLC_RATIO_NORMAL_LOW = Decimal("0.26")
FLC_RATIO_NORMAL_HIGH = Decimal("1.65")
# §6.2 sCR marrow IHC: kappa/lambda <= 4:1 (kappa clone) or >= 1:2 (lambda clone), >= 100 PCs counted
# (checked: CIBMTR Forms Manual PCL and MM response criteria, sCR: ratio <= 4:1 / >= 1:2 after >= 100 plasma cells)
IHC_KAPPA_CLONE_MAX_RATIO = Decimal("4")
IHC_LAMBDA_CLONE_MIN_RATIO = Decimal("0.5")
IHC_MIN_PCS_COUNTED = 100
# §6.2 CR: < 5 % plasma cells in the marrow aspirate (checked: nature.com 2404284 T5; PMC9954856 T1)
CR_BMPC_LT_PCT = Decimal("5")
# §6.2 VGPR: >= 90 % serum M reduction plus urine < 100 mg/24 h; FLC-only >= 90 % dFLC decrease
# (checked: nature.com 2404284 T5, ash-sap view-large 3937963; the FLC-only 90 % row was not found there [P])
VGPR_SERUM_REDUCTION_PCT = Decimal("90")
VGPR_URINE_LT_MG_24H = Decimal("100")
VGPR_DFLC_REDUCTION_PCT = Decimal("90")
# §6.2 PR: >= 50 % serum; urine >= 90 % or to < 200 mg/24 h; dFLC >= 50 %; BMPC >= 50 %; SPD >= 50 %
# (checked: nature.com 2404284 T5 and ash-sap view-large 3937963, PR rows)
PR_SERUM_REDUCTION_PCT = Decimal("50")
PR_URINE_REDUCTION_PCT = Decimal("90")
PR_URINE_LT_MG_24H = Decimal("200")
PR_DFLC_REDUCTION_PCT = Decimal("50")
PR_BMPC_REDUCTION_PCT = Decimal("50")
PR_PLASMACYTOMA_SPD_REDUCTION_PCT = Decimal("50")
# §6.2 MR: 25-49 % serum, 50-89 % urine, SPD >= 50 % (2016 wording; checked: PMC9954856 T1 "adapted from Kumar
# 2016"; the 2011 table at ash-sap view-large 3937963 has SPD 25-49 %)
MR_SERUM_REDUCTION_PCT = Decimal("25")
MR_URINE_REDUCTION_PCT = Decimal("50")
MR_PLASMACYTOMA_SPD_REDUCTION_PCT = Decimal("50")
# §6.2 PD: >= 25 % increase from the lowest confirmed value plus an absolute minimum [[I] noted]; checked: PMC9954856
# T1 (25 %, serum, >= 1 g/dL when nadir >= 5, urine >= 200, dFLC > 10 mg/dL), Farydak IMWG summary (BMPC >= 10 %).
# The plasmacytoma-lesion and circulating-plasma-cell rows were not found in a stored reproduction [P].
PD_PCT_INCREASE = Decimal("25")
PD_SERUM_ABS_G_DL = Decimal("0.5")            # ">= 0.5 g/dL" (Kumar 2016; [I] vs "> 0.5" in PMC9954856)
PD_URINE_ABS_MG_24H = Decimal("200")          # ">= 200 mg/24 h"
PD_DFLC_ABS_GT_MG_DL = Decimal("10")          # "> 10 mg/dL" (not the "> 10 mg/L" misprint, §6.2 [I])
PD_BMPC_ABS_PCT = Decimal("10")               # ">= 10 %" absolute
PD_HIGH_NADIR_SERUM_G_DL = Decimal("5")       # if the lowest M-component was >= 5 g/dL ...
PD_HIGH_NADIR_ABS_G_DL = Decimal("1")         # ... a serum M increase >= 1 g/dL is PD on its own
PD_PLASMACYTOMA_SPD_PCT = Decimal("50")       # >= 50 % increase from nadir in SPD of > 1 lesion
PD_LESION_LD_PCT = Decimal("50")              # >= 50 % increase in longest diameter of a previous lesion ...
PD_LESION_SHORT_AXIS_GT_MM = Decimal("10")    # ... > 1 cm in short axis
PD_CPC_PCT = Decimal("50")                    # >= 50 % increase in circulating plasma cells ...
PD_CPC_MIN_PER_UL = Decimal("200")            # ... minimum 200 cells/uL ([I] count after the increase)
# §6.3 relapse from CR: >= 5 % plasma cells in the marrow [V: droracle; checked: Farydak IMWG summary "relapse from
# CR has the 5 % cut-off"]
RELAPSE_CR_BMPC_PCT = Decimal("5")

# Response levels, worst to best.
LEVELS = ("SD", "MR", "PR", "VGPR", "CR", "sCR")
RANK = {name: i for i, name in enumerate(LEVELS)}

LABELS = {
    "sCR": "stringent complete response",
    "CR": "complete response",
    "VGPR": "very good partial response",
    "PR": "partial response",
    "MR": "minimal response",
    "SD": "stable disease",
    "PD": "progressive disease",
    "relapse from CR": "relapse from complete response",
    "NE": "not evaluable",
}
OUTCOMES = {
    "sCR": Outcome.COMPLETE,
    "CR": Outcome.COMPLETE,
    "VGPR": Outcome.PARTIAL,
    "PR": Outcome.PARTIAL,
    "MR": Outcome.MINOR,
    "SD": Outcome.STABLE,
    "PD": Outcome.PROGRESSION,
    "relapse from CR": Outcome.RELAPSE,
    "NE": Outcome.NOT_EVALUABLE,
}

MEASURABLE_SERUM = "serum"
MEASURABLE_URINE = "urine"
MEASURABLE_SERUM_URINE = "serum and urine"
MEASURABLE_FLC = "FLC only"
MEASURABLE_BMPC = "BMPC only"
MEASURABLE_CPC = "circulating plasma cells only"
MEASURABLE_NONE = "none"

Num = Union[Decimal, int, str]


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Plasmacytoma:
    """One soft-tissue plasmacytoma on imaging (bidimensional, mm)."""

    longest_mm: Decimal
    perpendicular_mm: Decimal
    lesion_id: str | None = None
    ref: str | None = None

    @property
    def product_mm2(self) -> Decimal:
        return D(self.longest_mm) * D(self.perpendicular_mm)


@dataclass(frozen=True)
class MyelomaAssessment:
    """The results of one dated assessment (one sample set), canonical units (criteria.md §1).

    ``None`` = not done / not reported.  Serum/urine M-protein 0 means "not detectable on electrophoresis".
    IFE values: ``"negative"`` or ``"positive"`` (synonyms such as "not detected"/"detected" accepted).
    ``plasmacytomas``: ``None`` = no imaging at this date, ``()`` = imaging showed none.
    ``refs``: FHIR references per field name (e.g. ``{"serum_M_g_dL": "Observation/12"}``); ``ref`` applies
    to every field (e.g. a DiagnosticReport).
    """

    date: date
    serum_M_g_dL: Decimal | None = None
    urine_M_mg_24h: Decimal | None = None
    serum_IFE: str | None = None
    urine_IFE: str | None = None
    kappa_FLC_mg_dL: Decimal | None = None
    lambda_FLC_mg_dL: Decimal | None = None
    FLC_ratio: Decimal | None = None
    BMPC_pct: Decimal | None = None
    BM_IHC_kappa_lambda_ratio: Decimal | None = None
    BM_IHC_PCs_counted: int | None = None
    plasmacytomas: tuple[Plasmacytoma, ...] | None = None
    new_lesions: bool | None = None
    bone_lesion_progression: bool | None = None
    circulating_PC_per_uL: Decimal | None = None
    sample_id: str | None = None
    ref: str | None = None
    refs: Mapping[str, str] | tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ConfirmedNadir:
    """A previously confirmed lowest value from the record (optional shortcut; units as above)."""

    date: date | None = None
    serum_M_g_dL: Decimal | None = None
    urine_M_mg_24h: Decimal | None = None
    dFLC_mg_dL: Decimal | None = None
    BMPC_pct: Decimal | None = None
    plasmacytoma_SPD_mm2: Decimal | None = None
    circulating_PC_per_uL: Decimal | None = None
    ref: str | None = None


@dataclass(frozen=True)
class IMWGInputs:
    """Everything the engine uses.

    assessments:                 dated post-baseline assessments (any order)
    baseline:                    the last assessment before therapy (measurable disease is chosen from it)
    confirmed_nadir:             lowest confirmed values already established in the record
    previous_confirmed_category: category confirmed before these assessments (e.g. "PR")
    previous_confirmed_date:     date it was confirmed (for the history)
    new_therapy_start:           start of a new line of therapy; assessments on/after it are not used
    measurable_by:               override: "serum", "urine", "serum and urine", "FLC only", "BMPC only",
                                 "circulating plasma cells only"
    involved_FLC:                "kappa" or "lambda" (clone light chain); else from the baseline ratio
    """

    assessments: tuple[MyelomaAssessment, ...] = ()
    baseline: MyelomaAssessment | None = None
    confirmed_nadir: ConfirmedNadir | None = None
    previous_confirmed_category: str | None = None
    previous_confirmed_date: date | None = None
    new_therapy_start: date | None = None
    measurable_by: str | None = None
    involved_FLC: str | None = None


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _d(v: Num | None) -> Decimal | None:
    return None if v is None else D(v)


def _refs(a: MyelomaAssessment | None, *names: str) -> tuple[str, ...]:
    if a is None:
        return ()
    m = dict(a.refs) if a.refs else {}
    out: list[str] = []
    if a.ref:
        out.append(a.ref)
    for n in names:
        r = m.get(n)
        if r and r not in out:
            out.append(r)
    if "plasmacytomas" in names and a.plasmacytomas:
        for p in a.plasmacytomas:
            if p.ref and p.ref not in out:
                out.append(p.ref)
    return tuple(out)


def _ife(v: str | None) -> str | None:
    """Normalise an IFE result to 'negative' / 'positive' / None."""
    if v is None:
        return None
    s = v.strip().lower()
    if s in ("negative", "neg", "not detected", "no monoclonal protein detected", "absent", "-"):
        return "negative"
    if s.startswith("neg") or s.startswith("not detected") or s.startswith("no "):
        return "negative"
    if s in ("positive", "pos", "detected", "present", "+") or s.startswith("pos") or "detected" in s:
        return "positive"
    return None


def _at_most(cur: Decimal, ref: Decimal, pct: Decimal) -> bool:
    """(cur-ref)/ref*100 <= pct, cross-multiplied (ref > 0)."""
    return (cur - ref) * 100 <= pct * ref


def _increase_at_least(cur: Decimal, nadir: Decimal, pct: Decimal) -> bool:
    """cur >= nadir * (1 + pct/100), cross-multiplied; true for any cur >= 0 when the nadir is 0."""
    return (cur - nadir) * 100 >= pct * nadir


def _pct(cur: Decimal, ref: Decimal) -> Decimal | None:
    if ref == 0:
        return None
    return pct_change(cur, ref)


def _r2(v: Decimal | None) -> Decimal | None:
    return None if v is None else rounded(v, 2)


def _sub(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 50
        return a - b


def _spd(a: MyelomaAssessment | None) -> Decimal | None:
    if a is None or a.plasmacytomas is None:
        return None
    total = Decimal(0)
    for p in a.plasmacytomas:
        total += p.product_mm2
    return total


def _flc_ratio(a: MyelomaAssessment) -> tuple[Decimal, Decimal] | None:
    """FLC ratio as a fraction (numerator, denominator) so comparisons stay exact."""
    if a.kappa_FLC_mg_dL is not None and a.lambda_FLC_mg_dL is not None and D(a.lambda_FLC_mg_dL) > 0:
        return D(a.kappa_FLC_mg_dL), D(a.lambda_FLC_mg_dL)
    if a.FLC_ratio is not None:
        return D(a.FLC_ratio), Decimal(1)
    return None


def _ratio_normal(fr: tuple[Decimal, Decimal]) -> bool:
    num, den = fr
    return FLC_RATIO_NORMAL_LOW * den <= num <= FLC_RATIO_NORMAL_HIGH * den


def _ratio_text(fr: tuple[Decimal, Decimal]) -> str:
    num, den = fr
    with localcontext() as ctx:
        ctx.prec = 50
        return fmt(num / den, 2)


def _next_lower(level: str) -> str:
    return LEVELS[max(0, RANK[level] - 1)]


def _min_level(levels: Iterable[str]) -> str:
    return min(levels, key=lambda x: RANK[x])


def _independent(a: MyelomaAssessment, b: MyelomaAssessment) -> bool:
    """Two assessments confirm each other only when they come from different samples."""
    if a.sample_id and b.sample_id:
        return a.sample_id != b.sample_id
    return a.date != b.date


# ---------------------------------------------------------------------------
# Context (baseline-derived facts)
# ---------------------------------------------------------------------------


@dataclass
class _Ctx:
    measurable: str
    baseline: MyelomaAssessment | None
    involved: str | None
    base_serum: Decimal | None
    base_urine: Decimal | None
    base_dflc: Decimal | None
    base_bmpc: Decimal | None
    base_spd: Decimal | None
    base_cpc: Decimal | None
    nadir_input: ConfirmedNadir | None
    serum_pd_inclusive: bool

    @property
    def serum_measurable(self) -> bool:
        return self.measurable in (MEASURABLE_SERUM, MEASURABLE_SERUM_URINE)

    @property
    def urine_measurable(self) -> bool:
        return self.measurable in (MEASURABLE_URINE, MEASURABLE_SERUM_URINE)

    def dflc(self, a: MyelomaAssessment | None) -> Decimal | None:
        if a is None or self.involved is None:
            return None
        if a.kappa_FLC_mg_dL is None or a.lambda_FLC_mg_dL is None:
            return None
        k, lam = D(a.kappa_FLC_mg_dL), D(a.lambda_FLC_mg_dL)
        return _sub(k, lam) if self.involved == "kappa" else _sub(lam, k)


def _involved_from(a: MyelomaAssessment | None) -> str | None:
    if a is None:
        return None
    fr = _flc_ratio(a)
    if fr is None:
        return None
    num, den = fr
    if num > FLC_RATIO_NORMAL_HIGH * den:
        return "kappa"
    if num < FLC_RATIO_NORMAL_LOW * den:
        return "lambda"
    return None


def _normalise_measurable(s: str) -> str:
    t = s.strip().lower()
    if "flc" in t or "free light" in t:
        return MEASURABLE_FLC
    if "bmpc" in t or "marrow" in t:
        return MEASURABLE_BMPC
    if "circulating" in t:
        return MEASURABLE_CPC
    if "serum" in t and "urine" in t:
        return MEASURABLE_SERUM_URINE
    if "serum" in t:
        return MEASURABLE_SERUM
    if "urine" in t:
        return MEASURABLE_URINE
    if t in ("none", "not measurable"):
        return MEASURABLE_NONE
    raise ValueError(f"unknown measurable_by {s!r}")


def _choose_measurable(inputs: IMWGInputs, series: Sequence[MyelomaAssessment], ev: list[Evidence],
                       notes: list[str]) -> tuple[str | None, str | None]:
    """Return (measurable, involved light chain)."""
    b = inputs.baseline
    involved = None
    if inputs.involved_FLC:
        involved = inputs.involved_FLC.strip().lower()
        if involved not in ("kappa", "lambda"):
            raise ValueError("involved_FLC must be 'kappa' or 'lambda'")
    elif b is not None:
        involved = _involved_from(b)
    if inputs.measurable_by:
        m = _normalise_measurable(inputs.measurable_by)
        ev.append(Evidence("imwg.measurable.recorded", f"Measurable disease taken from the record: {m}.",
                           f"{CIT}; criteria.md §6.1"))
    elif b is not None:
        s, u = _d(b.serum_M_g_dL), _d(b.urine_M_mg_24h)
        s_ok = s is not None and s >= MEASURABLE_SERUM_M_G_DL
        u_ok = u is not None and u >= MEASURABLE_URINE_M_MG_24H
        fr = _flc_ratio(b)
        if s_ok and u_ok:
            m = MEASURABLE_SERUM_URINE
        elif s_ok:
            m = MEASURABLE_SERUM
        elif u_ok:
            m = MEASURABLE_URINE
        else:
            ifl = None
            if involved == "kappa" and b.kappa_FLC_mg_dL is not None:
                ifl = D(b.kappa_FLC_mg_dL)
            elif involved == "lambda" and b.lambda_FLC_mg_dL is not None:
                ifl = D(b.lambda_FLC_mg_dL)
            abnormal = fr is not None and not _ratio_normal(fr)
            if ifl is not None and ifl >= MEASURABLE_IFLC_MG_DL and abnormal:
                m = MEASURABLE_FLC
            elif b.BMPC_pct is not None and D(b.BMPC_pct) >= MEASURABLE_BMPC_PCT:
                m = MEASURABLE_BMPC
            elif b.circulating_PC_per_uL is not None and D(b.circulating_PC_per_uL) > 0:
                m = MEASURABLE_CPC
            else:
                m = MEASURABLE_NONE
        parts = []
        parts.append(f"serum M {fmt(s, 2)} g/dL" if s is not None else "serum M not reported")
        parts.append(f"urine M {fmt(u, 0)} mg/24 h" if u is not None else "urine M not reported")
        if m == MEASURABLE_FLC:
            ifl_txt = fmt(D(b.kappa_FLC_mg_dL if involved == "kappa" else b.lambda_FLC_mg_dL), 2)
            parts.append(f"involved {involved} FLC {ifl_txt} mg/dL (>= {fmt(MEASURABLE_IFLC_MG_DL)}) "
                         f"with abnormal ratio {_ratio_text(fr) if fr else '?'}")
        if m == MEASURABLE_BMPC:
            parts.append(f"BMPC {fmt(D(b.BMPC_pct))} % (>= {fmt(MEASURABLE_BMPC_PCT)} %)")
        ev.append(Evidence(
            "imwg.measurable",
            f"Baseline {b.date.isoformat()}: " + ", ".join(parts) + f" -> measurable disease: {m} "
            f"(serum >= {fmt(MEASURABLE_SERUM_M_G_DL)} g/dL, urine >= {fmt(MEASURABLE_URINE_M_MG_24H)} mg/24 h, "
            f"else involved FLC >= {fmt(MEASURABLE_IFLC_MG_DL)} mg/dL with abnormal ratio, else BMPC >= "
            f"{fmt(MEASURABLE_BMPC_PCT)} %).",
            f"{CIT}; criteria.md §6.1",
            _refs(b, "serum_M_g_dL", "urine_M_mg_24h", "kappa_FLC_mg_dL", "lambda_FLC_mg_dL", "FLC_ratio",
                  "BMPC_pct"),
        ))
    else:
        m = None  # unknown: PD from serum/urine still applies; infer FLC/BMPC only when that is all there is
        nad = inputs.confirmed_nadir
        has_m = any(a.serum_M_g_dL is not None or a.urine_M_mg_24h is not None for a in series) or (
            nad is not None and (nad.serum_M_g_dL is not None or nad.urine_M_mg_24h is not None))
        has_flc = any(a.kappa_FLC_mg_dL is not None for a in series) or (nad is not None and nad.dFLC_mg_dL is not None)
        if not has_m and has_flc:
            m = MEASURABLE_FLC
            notes.append("No baseline: FLC taken as the only measurable parameter because no serum or urine "
                         "M-protein is reported.")
    if m == MEASURABLE_FLC and involved is None:
        # infer the involved chain from the record (the larger light chain)
        for a in list(series):
            if a.kappa_FLC_mg_dL is not None and a.lambda_FLC_mg_dL is not None:
                involved = "kappa" if D(a.kappa_FLC_mg_dL) >= D(a.lambda_FLC_mg_dL) else "lambda"
                notes.append(f"Involved light chain taken as {involved} (the larger FLC on "
                             f"{a.date.isoformat()}); record involved_FLC to make this explicit.")
                break
    return m, involved


# ---------------------------------------------------------------------------
# Time-point response level
# ---------------------------------------------------------------------------


def _level(bio: MyelomaAssessment, marrow: MyelomaAssessment | None, imaging: MyelomaAssessment | None,
           ctx: _Ctx, ev: list[Evidence] | None = None) -> tuple[str | None, list[str]]:
    """Response level reached at one assessment (biochemistry from ``bio``, marrow/imaging carried forward).

    Returns (level or None when nothing is assessable, downgrade notes)."""
    d = bio.date.isoformat()
    notes: list[str] = []

    def add(rule: str, text: str, citation: str, refs: tuple[str, ...]) -> None:
        if ev is not None:
            ev.append(Evidence(rule, f"{d}: {text}", citation, refs))

    # ---- M-protein / FLC / BMPC parameter levels (up to VGPR) ----
    param_levels: list[str] = []
    missing_critical: list[str] = []
    s, u = _d(bio.serum_M_g_dL), _d(bio.urine_M_mg_24h)
    if ctx.measurable in (MEASURABLE_SERUM, MEASURABLE_SERUM_URINE, MEASURABLE_URINE):
        if ctx.serum_measurable:
            bs = ctx.base_serum
            assert bs is not None and bs > 0
            if s is None:
                missing_critical.append("serum M-protein")
            else:
                pc = pct_change(s, bs)
                if s == 0 or _at_most(s, bs, -VGPR_SERUM_REDUCTION_PCT):
                    lv = "VGPR"
                elif _at_most(s, bs, -PR_SERUM_REDUCTION_PCT):
                    lv = "PR"
                elif _at_most(s, bs, -MR_SERUM_REDUCTION_PCT):
                    lv = "MR"
                else:
                    lv = "SD"
                param_levels.append(lv)
                add("imwg.serum_M", f"serum M {fmt(s, 2)} g/dL vs baseline {fmt(bs, 2)} g/dL = {fmt_pct(pc, 2)} "
                    f"-> {lv} level (VGPR <= -{fmt(VGPR_SERUM_REDUCTION_PCT)} % or not detectable, PR <= "
                    f"-{fmt(PR_SERUM_REDUCTION_PCT)} %, MR <= -{fmt(MR_SERUM_REDUCTION_PCT)} %)",
                    f"{CIT}; criteria.md §6.2", _refs(bio, "serum_M_g_dL") + _refs(ctx.baseline, "serum_M_g_dL"))
        bu = ctx.base_urine
        if u is not None:
            if u < VGPR_URINE_LT_MG_24H:
                lv = "VGPR"
            elif u < PR_URINE_LT_MG_24H or (bu is not None and bu > 0 and _at_most(u, bu, -PR_URINE_REDUCTION_PCT)):
                lv = "PR"
            elif ctx.urine_measurable and bu is not None and _at_most(u, bu, -MR_URINE_REDUCTION_PCT):
                lv = "MR"
            else:
                lv = "SD"
            param_levels.append(lv)
            pc_txt = f" = {fmt_pct(pct_change(u, bu), 2)} vs baseline {fmt(bu, 0)} mg/24 h" if bu else ""
            add("imwg.urine_M", f"urine M {fmt(u, 0)} mg/24 h{pc_txt} -> {lv} level (VGPR < "
                f"{fmt(VGPR_URINE_LT_MG_24H)} mg/24 h; PR < {fmt(PR_URINE_LT_MG_24H)} mg/24 h or <= "
                f"-{fmt(PR_URINE_REDUCTION_PCT)} %; MR <= -{fmt(MR_URINE_REDUCTION_PCT)} %)",
                f"{CIT}; criteria.md §6.2", _refs(bio, "urine_M_mg_24h") + _refs(ctx.baseline, "urine_M_mg_24h"))
        elif ctx.urine_measurable:
            missing_critical.append("24-h urine M-protein")
        elif bu is None or bu > 0:
            param_levels.append("PR")
            notes.append(f"{d}: urine M-protein not reported -> level capped at PR (VGPR needs urine < "
                         f"{fmt(VGPR_URINE_LT_MG_24H)} mg/24 h documented).")
    elif ctx.measurable == MEASURABLE_FLC:
        df, bd = ctx.dflc(bio), ctx.base_dflc
        if df is None or bd is None or bd <= 0:
            missing_critical.append("kappa and lambda FLC" if df is None else "baseline dFLC")
        else:
            pc = pct_change(df, bd)
            if _at_most(df, bd, -VGPR_DFLC_REDUCTION_PCT):
                lv = "VGPR"
            elif _at_most(df, bd, -PR_DFLC_REDUCTION_PCT):
                lv = "PR"
            else:
                lv = "SD"  # MR is not defined for FLC-only disease
            param_levels.append(lv)
            add("imwg.dFLC", f"dFLC {fmt(df, 2)} mg/dL ({ctx.involved} involved) vs baseline {fmt(bd, 2)} mg/dL "
                f"= {fmt_pct(pc, 2)} -> {lv} level (VGPR <= -{fmt(VGPR_DFLC_REDUCTION_PCT)} %, PR <= "
                f"-{fmt(PR_DFLC_REDUCTION_PCT)} %; no MR for FLC-only disease)", f"{CIT}; criteria.md §6.2",
                _refs(bio, "kappa_FLC_mg_dL", "lambda_FLC_mg_dL")
                + _refs(ctx.baseline, "kappa_FLC_mg_dL", "lambda_FLC_mg_dL"))
    elif ctx.measurable == MEASURABLE_BMPC:
        bb = ctx.base_bmpc
        bm = _d(marrow.BMPC_pct) if marrow is not None else None
        if bm is None or bb is None or bb <= 0:
            missing_critical.append("bone-marrow plasma cells")
        else:
            lv = "PR" if _at_most(bm, bb, -PR_BMPC_REDUCTION_PCT) else "SD"
            param_levels.append(lv)
            add("imwg.BMPC", f"BMPC {fmt(bm)} % vs baseline {fmt(bb)} % = {fmt_pct(pct_change(bm, bb), 2)} -> "
                f"{lv} level (PR <= -{fmt(PR_BMPC_REDUCTION_PCT)} %, baseline >= {fmt(MEASURABLE_BMPC_PCT)} %)",
                f"{CIT}; criteria.md §6.2", _refs(marrow, "BMPC_pct") + _refs(ctx.baseline, "BMPC_pct"))
    elif ctx.measurable not in (MEASURABLE_CPC,):
        # no baseline: only the "not detectable on electrophoresis" VGPR route can be read without one
        if s is not None and u is not None and s == 0 and u == 0:
            param_levels.append("VGPR")
            add("imwg.vgpr.electrophoresis_negative", "serum and urine M-protein not detectable on "
                "electrophoresis -> VGPR level", f"{CIT}; criteria.md §6.2",
                _refs(bio, "serum_M_g_dL", "urine_M_mg_24h"))

    m_level: str | None
    if param_levels:
        m_level = _min_level(param_levels)
        if missing_critical:
            lower = _next_lower(m_level)
            notes.append(f"{d}: {', '.join(missing_critical)} missing -> {m_level} downgraded to {lower}.")
            m_level = lower
    else:
        m_level = None

    # ---- CR / sCR ----
    sife, uife = _ife(bio.serum_IFE), _ife(bio.urine_IFE)
    cr_level: str | None = None
    bm = _d(marrow.BMPC_pct) if marrow is not None else None
    if sife == "negative":
        cr_ok = True
        cr_missing: list[str] = []
        reasons = ["serum IFE negative"]
        if uife == "negative":
            reasons.append("urine IFE negative")
        elif uife is None:
            cr_missing.append("urine immunofixation")
        else:
            cr_ok = False
        fr = _flc_ratio(bio)
        if ctx.measurable == MEASURABLE_FLC:
            if fr is None:
                cr_missing.append("FLC ratio")
            elif not _ratio_normal(fr):
                cr_ok = False
            else:
                reasons.append(f"FLC ratio {_ratio_text(fr)} normal")
        if bm is None:
            cr_missing.append("bone-marrow plasma cells")
        elif bm < CR_BMPC_LT_PCT:
            reasons.append(f"BMPC {fmt(bm)} % < {fmt(CR_BMPC_LT_PCT)} %")
        else:
            cr_ok = False
        if cr_ok:
            if cr_missing:
                cr_level = "VGPR"
                notes.append(f"{d}: {', '.join(cr_missing)} missing -> CR downgraded to VGPR.")
            else:
                # sCR: normal FLC ratio and no clonal PCs by marrow IHC
                scr_missing: list[str] = []
                scr_ok = True
                if fr is None:
                    scr_missing.append("FLC ratio")
                elif not _ratio_normal(fr):
                    scr_ok = False
                ihc = _d(marrow.BM_IHC_kappa_lambda_ratio) if marrow is not None else None
                if ihc is None:
                    scr_missing.append("marrow IHC kappa/lambda ratio")
                else:
                    if ctx.involved == "kappa":
                        poly = ihc <= IHC_KAPPA_CLONE_MAX_RATIO
                    elif ctx.involved == "lambda":
                        poly = ihc >= IHC_LAMBDA_CLONE_MIN_RATIO
                    else:
                        poly = IHC_LAMBDA_CLONE_MIN_RATIO <= ihc <= IHC_KAPPA_CLONE_MAX_RATIO
                    if marrow is not None and marrow.BM_IHC_PCs_counted is not None and \
                            marrow.BM_IHC_PCs_counted < IHC_MIN_PCS_COUNTED:
                        scr_missing.append(f"marrow IHC on >= {IHC_MIN_PCS_COUNTED} plasma cells")
                    if not poly:
                        scr_ok = False
                if scr_ok and not scr_missing:
                    cr_level = "sCR"
                    add("imwg.scr", "CR (" + "; ".join(reasons) + f") plus FLC ratio {_ratio_text(fr)} within "
                        f"{fmt(FLC_RATIO_NORMAL_LOW, 2)}-{fmt(FLC_RATIO_NORMAL_HIGH, 2)} and marrow IHC kappa/lambda "
                        f"{fmt(ihc, 2)} polyclonal (<= {fmt(IHC_KAPPA_CLONE_MAX_RATIO)} kappa clone, >= "
                        f"{fmt(IHC_LAMBDA_CLONE_MIN_RATIO)} lambda clone) -> sCR level", f"{CIT}; criteria.md §6.2",
                        _refs(bio, "serum_IFE", "urine_IFE", "FLC_ratio", "kappa_FLC_mg_dL", "lambda_FLC_mg_dL")
                        + _refs(marrow, "BMPC_pct", "BM_IHC_kappa_lambda_ratio"))
                else:
                    cr_level = "CR"
                    if scr_missing and scr_ok:
                        notes.append(f"{d}: {', '.join(scr_missing)} missing -> sCR not assessable, CR.")
                    add("imwg.cr", "; ".join(reasons) + " -> CR level", f"{CIT}; criteria.md §6.2",
                        _refs(bio, "serum_IFE", "urine_IFE", "FLC_ratio") + _refs(marrow, "BMPC_pct"))

    # ---- plasmacytoma ----
    p_level: str | None = None
    bspd = ctx.base_spd
    if bspd is not None and bspd > 0:
        cspd = _spd(imaging)
        if cspd is None:
            notes.append(f"{d}: plasmacytoma present at baseline but not re-imaged -> response downgraded one level.")
            p_level = "missing"
        else:
            pc = pct_change(cspd, bspd)
            if cspd == 0:
                p_level = "sCR"
            elif _at_most(cspd, bspd, -PR_PLASMACYTOMA_SPD_REDUCTION_PCT):
                p_level = "VGPR"  # meets the PR/MR requirement; does not limit VGPR
            else:
                p_level = "SD"
            add("imwg.plasmacytoma", f"plasmacytoma SPD {fmt(cspd, 0)} mm2 vs baseline {fmt(bspd, 0)} mm2 = "
                f"{fmt_pct(pc, 2)} ({'disappeared' if cspd == 0 else ('meets' if p_level != 'SD' else 'fails')} "
                f"the >= {fmt(PR_PLASMACYTOMA_SPD_REDUCTION_PCT)} % reduction required for PR and MR; CR needs "
                f"disappearance)", f"{CIT}; criteria.md §6.2", _refs(imaging, "plasmacytomas")
                + _refs(ctx.baseline, "plasmacytomas"))
    elif imaging is not None and imaging.plasmacytomas:
        # plasmacytoma on imaging but none documented at baseline: CR needs disappearance
        p_level = "VGPR"
        notes.append(f"{d}: soft-tissue plasmacytoma on imaging -> CR not reached.")

    # ---- combine: lowest level reached by any parameter ----
    if cr_level is not None and (cr_level in ("CR", "sCR")):
        level: str | None = cr_level
    elif cr_level == "VGPR":
        level = "VGPR"  # CR downgraded for a missing critical data point
    else:
        level = m_level
        if level is not None and RANK[level] > RANK["VGPR"]:
            level = "VGPR"
    if level is None:
        return None, notes
    if p_level == "missing":
        lower = _next_lower(level)
        level = lower
    elif p_level is not None:
        level = _min_level([level, p_level])
    return level, notes


# ---------------------------------------------------------------------------
# PD and relapse from CR
# ---------------------------------------------------------------------------


@dataclass
class _PD:
    biochemical: list[str] = field(default_factory=list)   # needs confirmation
    immediate: list[str] = field(default_factory=list)     # marrow / imaging: no confirmation
    evidence: list[Evidence] = field(default_factory=list)
    values: dict = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.biochemical or self.immediate)


def _confirmed_nadir(values: list[tuple[date, Decimal, MyelomaAssessment | None]], base: Decimal | None,
                     shortcut: Decimal | None, before: date, paired: bool) -> Decimal | None:
    """Lowest confirmed value before ``before``.  ``values`` in date order."""
    cands: list[Decimal] = []
    if base is not None:
        cands.append(base)
    if shortcut is not None:
        cands.append(shortcut)
    prior = [(dt, v, a) for dt, v, a in values if dt < before]
    if paired:
        for (d1, v1, a1), (d2, v2, a2) in zip(prior, prior[1:]):
            if a1 is not None and a2 is not None and not _independent(a1, a2):
                continue
            cands.append(max(v1, v2))
    else:
        cands.extend(v for _, v, _ in prior)
    return min(cands) if cands else None


def _series_of(series: Sequence[MyelomaAssessment], getter) -> list[tuple[date, Decimal, MyelomaAssessment]]:
    out = []
    for a in series:
        v = getter(a)
        if v is not None:
            out.append((a.date, D(v), a))
    return out


def _pd(tp: MyelomaAssessment, series: Sequence[MyelomaAssessment], ctx: _Ctx) -> _PD:
    res = _PD()
    d = tp.date.isoformat()
    nad = ctx.nadir_input
    cit = f"{CIT}; criteria.md §6.2 PD"

    # serum M
    s = _d(tp.serum_M_g_dL)
    if s is not None:
        n = _confirmed_nadir(_series_of(series, lambda a: a.serum_M_g_dL), ctx.base_serum,
                             _d(nad.serum_M_g_dL) if nad else None, tp.date, True)
        if n is not None:
            inc = _sub(s, n)
            pc = _pct(s, n)
            res.values["nadir_serum_M_g_dL"] = n
            if inc >= 0:
                res.values.update(absolute_increase_g_dL=inc, pct_increase_serum_M=_r2(pc))
            abs_ok = inc >= PD_SERUM_ABS_G_DL if ctx.serum_pd_inclusive else inc > PD_SERUM_ABS_G_DL
            pct_ok = _increase_at_least(s, n, PD_PCT_INCREASE)
            high = n >= PD_HIGH_NADIR_SERUM_G_DL and inc >= PD_HIGH_NADIR_ABS_G_DL
            op = ">=" if ctx.serum_pd_inclusive else ">"
            pc_txt = fmt_pct(pc, 2) if pc is not None else "n/a (nadir 0)"
            if (abs_ok and pct_ok) or high:
                res.biochemical.append("serum M")
                why = (f"nadir >= {fmt(PD_HIGH_NADIR_SERUM_G_DL)} g/dL and increase >= "
                       f"{fmt(PD_HIGH_NADIR_ABS_G_DL)} g/dL is PD on its own" if high and not (abs_ok and pct_ok)
                       else f"PD needs >= +{fmt(PD_PCT_INCREASE)} % and {op} {fmt(PD_SERUM_ABS_G_DL)} g/dL")
                res.evidence.append(Evidence("imwg.pd.serum_M", f"{d}: serum M {fmt(s, 2)} g/dL vs lowest confirmed "
                                             f"{fmt(n, 2)} g/dL: +{fmt(inc, 2)} g/dL ({pc_txt}); {why} -> PD",
                                             cit, _refs(tp, "serum_M_g_dL") + ((nad.ref,) if nad and nad.ref else ())))
            elif inc > 0:
                res.evidence.append(Evidence("imwg.pd.serum_M.not_met", f"{d}: serum M {fmt(s, 2)} g/dL vs lowest "
                                             f"confirmed {fmt(n, 2)} g/dL: +{fmt(inc, 2)} g/dL ({pc_txt}); PD needs "
                                             f">= +{fmt(PD_PCT_INCREASE)} % and {op} {fmt(PD_SERUM_ABS_G_DL)} g/dL "
                                             f"(or >= +{fmt(PD_HIGH_NADIR_ABS_G_DL)} g/dL from a nadir >= "
                                             f"{fmt(PD_HIGH_NADIR_SERUM_G_DL)} g/dL) -> not PD", cit,
                                             _refs(tp, "serum_M_g_dL") + ((nad.ref,) if nad and nad.ref else ())))
    # urine M
    u = _d(tp.urine_M_mg_24h)
    if u is not None:
        n = _confirmed_nadir(_series_of(series, lambda a: a.urine_M_mg_24h), ctx.base_urine,
                             _d(nad.urine_M_mg_24h) if nad else None, tp.date, True)
        if n is not None:
            inc = _sub(u, n)
            pc = _pct(u, n)
            res.values["nadir_urine_M_mg_24h"] = n
            if inc >= 0:
                res.values.update(absolute_increase_mg_24h=inc, pct_increase_urine_M=_r2(pc))
            if inc >= PD_URINE_ABS_MG_24H and _increase_at_least(u, n, PD_PCT_INCREASE):
                res.biochemical.append("urine M")
                res.evidence.append(Evidence("imwg.pd.urine_M", f"{d}: urine M {fmt(u, 0)} mg/24 h vs lowest confirmed "
                                             f"{fmt(n, 0)} mg/24 h: +{fmt(inc, 0)} mg/24 h "
                                             f"({fmt_pct(pc, 2) if pc is not None else 'nadir 0'}); PD needs >= "
                                             f"+{fmt(PD_PCT_INCREASE)} % and >= {fmt(PD_URINE_ABS_MG_24H)} mg/24 h -> PD",
                                             cit, _refs(tp, "urine_M_mg_24h")))
    # dFLC (only when serum and urine are not measurable)
    if ctx.measurable == MEASURABLE_FLC:
        df = ctx.dflc(tp)
        if df is not None:
            n = _confirmed_nadir(_series_of(series, ctx.dflc), ctx.base_dflc,
                                 _d(nad.dFLC_mg_dL) if nad else None, tp.date, True)
            if n is not None:
                inc = _sub(df, n)
                pc = _pct(df, n)
                res.values["nadir_dFLC_mg_dL"] = n
                if inc >= 0:
                    res.values.update(absolute_increase_mg_dL=inc, pct_increase_dFLC=_r2(pc))
                met = inc > PD_DFLC_ABS_GT_MG_DL and _increase_at_least(df, n, PD_PCT_INCREASE)
                if met:
                    res.biochemical.append("dFLC")
                res.evidence.append(Evidence(
                    "imwg.pd.dFLC" if met else "imwg.pd.dFLC.not_met",
                    f"{d}: dFLC {fmt(df, 2)} mg/dL vs lowest confirmed {fmt(n, 2)} mg/dL: {'+' if inc >= 0 else ''}"
                    f"{fmt(inc, 2)} mg/dL ({fmt_pct(pc, 2) if pc is not None else 'nadir 0'}); PD needs >= "
                    f"+{fmt(PD_PCT_INCREASE)} % and > {fmt(PD_DFLC_ABS_GT_MG_DL)} mg/dL -> {'PD' if met else 'not PD'}",
                    cit, _refs(tp, "kappa_FLC_mg_dL", "lambda_FLC_mg_dL") + ((nad.ref,) if nad and nad.ref else ())))
    # BMPC (only when serum, urine and FLC are not measurable); marrow needs no confirmation
    if ctx.measurable == MEASURABLE_BMPC and tp.BMPC_pct is not None:
        bm = D(tp.BMPC_pct)
        n = _confirmed_nadir(_series_of(series, lambda a: a.BMPC_pct), ctx.base_bmpc,
                             _d(nad.BMPC_pct) if nad else None, tp.date, False)
        if n is not None:
            inc = _sub(bm, n)
            res.values["nadir_BMPC_pct"] = n
            if inc >= 0:
                res.values.update(absolute_increase_BMPC_pct=inc, pct_increase_BMPC=_r2(_pct(bm, n)))
            if inc >= PD_BMPC_ABS_PCT and _increase_at_least(bm, n, PD_PCT_INCREASE):
                res.immediate.append("BMPC")
                res.evidence.append(Evidence("imwg.pd.BMPC", f"{d}: BMPC {fmt(bm)} % vs nadir {fmt(n)} %: +{fmt(inc)} "
                                             f"percentage points; PD needs >= +{fmt(PD_PCT_INCREASE)} % and >= "
                                             f"{fmt(PD_BMPC_ABS_PCT)} % absolute -> PD (marrow: no confirmation needed)",
                                             cit, _refs(tp, "BMPC_pct")))
    # circulating plasma cells (only measure of disease)
    if ctx.measurable == MEASURABLE_CPC and tp.circulating_PC_per_uL is not None:
        c = D(tp.circulating_PC_per_uL)
        n = _confirmed_nadir(_series_of(series, lambda a: a.circulating_PC_per_uL), ctx.base_cpc,
                             _d(nad.circulating_PC_per_uL) if nad else None, tp.date, True)
        if n is not None and c >= PD_CPC_MIN_PER_UL and _increase_at_least(c, n, PD_CPC_PCT):
            res.biochemical.append("circulating plasma cells")
            res.evidence.append(Evidence("imwg.pd.cpc", f"{d}: circulating plasma cells {fmt(c, 0)}/uL vs nadir "
                                         f"{fmt(n, 0)}/uL (>= +{fmt(PD_CPC_PCT)} % and >= {fmt(PD_CPC_MIN_PER_UL)}/uL) "
                                         f"-> PD", cit, _refs(tp, "circulating_PC_per_uL")))
    # imaging: new lesions, plasmacytoma growth (no confirmation needed)
    if tp.new_lesions:
        res.immediate.append("new lesion")
        res.evidence.append(Evidence("imwg.pd.new_lesion", f"{d}: new soft-tissue plasmacytoma or bone lesion -> PD",
                                     cit, _refs(tp, "new_lesions")))
    if tp.bone_lesion_progression:
        res.immediate.append("bone lesion progression")
        res.evidence.append(Evidence("imwg.pd.bone", f"{d}: definite increase of existing bone lesions -> PD", cit,
                                     _refs(tp, "bone_lesion_progression")))
    if tp.plasmacytomas is not None:
        prev_imgs = [a for a in series if a.plasmacytomas is not None and a.date < tp.date]
        if ctx.baseline is not None and ctx.baseline.plasmacytomas is not None:
            prev_imgs.insert(0, ctx.baseline)
        cspd = _spd(tp)
        spds = [_spd(a) for a in prev_imgs]
        if nad is not None and nad.plasmacytoma_SPD_mm2 is not None:
            spds.append(D(nad.plasmacytoma_SPD_mm2))
        nspd = min(spds) if spds else None
        ids_before = {p.lesion_id for a in prev_imgs for p in (a.plasmacytomas or ()) if p.lesion_id}
        new_ids = [p.lesion_id for p in tp.plasmacytomas if p.lesion_id and ids_before and p.lesion_id not in ids_before]
        if prev_imgs and not ids_before and nspd == 0 and tp.plasmacytomas:
            new_ids = ["(unlabelled)"]
        if new_ids:
            res.immediate.append("new plasmacytoma")
            res.evidence.append(Evidence("imwg.pd.new_plasmacytoma", f"{d}: new plasmacytoma {', '.join(new_ids)} -> PD",
                                         cit, _refs(tp, "plasmacytomas")))
        if nspd is not None and nspd > 0 and cspd is not None and len(tp.plasmacytomas) > 1 and \
                _increase_at_least(cspd, nspd, PD_PLASMACYTOMA_SPD_PCT):
            res.immediate.append("plasmacytoma SPD")
            res.evidence.append(Evidence("imwg.pd.spd", f"{d}: plasmacytoma SPD {fmt(cspd, 0)} mm2 vs nadir "
                                         f"{fmt(nspd, 0)} mm2 ({fmt_pct(pct_change(cspd, nspd), 2)}; PD >= "
                                         f"+{fmt(PD_PLASMACYTOMA_SPD_PCT)} % for > 1 lesion) -> PD", cit,
                                         _refs(tp, "plasmacytomas")))
        # longest diameter of a previous lesion with short axis > 1 cm
        for p in tp.plasmacytomas:
            prior_ld = []
            for a in prev_imgs:
                for q in a.plasmacytomas or ():
                    same = (p.lesion_id and q.lesion_id == p.lesion_id) or (
                        not p.lesion_id and len(tp.plasmacytomas) == 1 and len(a.plasmacytomas or ()) == 1)
                    if same:
                        prior_ld.append(D(q.longest_mm))
            if prior_ld:
                nld = min(prior_ld)
                if nld > 0 and D(p.perpendicular_mm) > PD_LESION_SHORT_AXIS_GT_MM and \
                        _increase_at_least(D(p.longest_mm), nld, PD_LESION_LD_PCT):
                    res.immediate.append("plasmacytoma diameter")
                    res.evidence.append(Evidence("imwg.pd.lesion_ld", f"{d}: plasmacytoma longest diameter "
                                                 f"{fmt(D(p.longest_mm), 0)} mm vs nadir {fmt(nld, 0)} mm (>= "
                                                 f"+{fmt(PD_LESION_LD_PCT)} %, short axis {fmt(D(p.perpendicular_mm), 0)} "
                                                 f"mm > {fmt(PD_LESION_SHORT_AXIS_GT_MM)} mm) -> PD", cit,
                                                 _refs(tp, "plasmacytomas")))
                    break
    return res


def _relapse_from_cr(tp: MyelomaAssessment) -> tuple[bool, bool, list[str]]:
    """(biochemical sign needing confirmation, marrow sign, reasons)."""
    reasons: list[str] = []
    bio = False
    if _ife(tp.serum_IFE) == "positive":
        bio = True
        reasons.append("serum IFE positive")
    if _ife(tp.urine_IFE) == "positive":
        bio = True
        reasons.append("urine IFE positive")
    if tp.serum_M_g_dL is not None and D(tp.serum_M_g_dL) > 0:
        bio = True
        reasons.append(f"serum M {fmt(D(tp.serum_M_g_dL), 2)} g/dL on electrophoresis")
    if tp.urine_M_mg_24h is not None and D(tp.urine_M_mg_24h) > 0:
        bio = True
        reasons.append(f"urine M {fmt(D(tp.urine_M_mg_24h), 0)} mg/24 h on electrophoresis")
    marrow = tp.BMPC_pct is not None and D(tp.BMPC_pct) >= RELAPSE_CR_BMPC_PCT
    if marrow:
        reasons.append(f"BMPC {fmt(D(tp.BMPC_pct))} % (>= {fmt(RELAPSE_CR_BMPC_PCT)} %)")
    return bio, marrow, reasons


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


def _values(a: MyelomaAssessment, marrow: MyelomaAssessment | None, imaging: MyelomaAssessment | None,
            ctx: _Ctx, pd: _PD | None, prefix: str = "") -> dict:
    v: dict = {}
    s, u = _d(a.serum_M_g_dL), _d(a.urine_M_mg_24h)
    if s is not None:
        v["serum_M_g_dL"] = s
        if ctx.base_serum:
            v["pct_change_serum_M"] = _r2(pct_change(s, ctx.base_serum))
    if u is not None:
        v["urine_M_mg_24h"] = u
        if ctx.base_urine:
            v["pct_change_urine_M"] = _r2(pct_change(u, ctx.base_urine))
    if a.kappa_FLC_mg_dL is not None:
        v["kappa_FLC_mg_dL"] = D(a.kappa_FLC_mg_dL)
    if a.lambda_FLC_mg_dL is not None:
        v["lambda_FLC_mg_dL"] = D(a.lambda_FLC_mg_dL)
    fr = _flc_ratio(a)
    if fr is not None:
        with localcontext() as c:
            c.prec = 50
            v["FLC_ratio"] = _r2(fr[0] / fr[1])
    df = ctx.dflc(a)
    if df is not None:
        v["dFLC_mg_dL"] = df
        if ctx.base_dflc:
            v["pct_change_dFLC"] = _r2(pct_change(df, ctx.base_dflc))
    if marrow is not None and marrow.BMPC_pct is not None:
        v["BMPC_pct"] = D(marrow.BMPC_pct)
        if ctx.base_bmpc:
            v["pct_change_BMPC"] = _r2(pct_change(D(marrow.BMPC_pct), ctx.base_bmpc))
    spd = _spd(imaging)
    if spd is not None:
        v["plasmacytoma_SPD_mm2"] = spd
        if ctx.base_spd:
            v["pct_change_plasmacytoma_SPD"] = _r2(pct_change(spd, ctx.base_spd))
    if pd is not None:
        v.update(pd.values)
        # the generic "pct_increase" is the parameter that triggered PD, else the primary parameter
        order = ["serum", "urine", "dFLC", "BMPC"]
        keymap = {"serum": "pct_increase_serum_M", "urine": "pct_increase_urine_M", "dFLC": "pct_increase_dFLC",
                  "BMPC": "pct_increase_BMPC"}
        trig = [k for k in order if any(t.startswith(k) for t in pd.biochemical + pd.immediate)]
        if ctx.measurable == MEASURABLE_FLC:
            order = ["dFLC", "serum", "urine", "BMPC"]
        elif ctx.measurable == MEASURABLE_BMPC:
            order = ["BMPC", "serum", "urine", "dFLC"]
        for k in trig + order:
            if pd.values.get(keymap[k]) is not None:
                v["pct_increase"] = pd.values[keymap[k]]
                break
    if prefix:
        return {prefix + k: val for k, val in v.items()}
    return v


# ---------------------------------------------------------------------------
# Engine
# ---------------------------------------------------------------------------


def _outcome(category: str, confirmed: bool) -> Outcome:
    if category == "PD" and not confirmed:
        return Outcome.UNCONFIRMED_PROGRESSION
    return OUTCOMES[category]


def _normalise_category(c: str) -> str:
    t = c.strip()
    for k in list(LABELS):
        if t.lower() == k.lower():
            return k
    low = t.lower()
    if low.startswith("relapse"):
        return "relapse from CR"
    head = t.split()[0].rstrip(",;(")
    for k in LEVELS + ("PD",):
        if head.lower() == k.lower():
            return k
    raise ValueError(f"unknown IMWG category {c!r}")


def assess(inputs: IMWGInputs, as_of: date, *, serum_pd_absolute_inclusive: bool = True) -> Assessment:
    """Classify IMWG 2016 response from dated assessments (see the module docstring for the rules)."""
    ev: list[Evidence] = []
    notes: list[str] = []
    missing: list[str] = []

    # ---- series used: after baseline, before new therapy, not after as_of ----
    series = sorted(inputs.assessments, key=lambda a: a.date)
    kept = []
    for a in series:
        if a.date > as_of:
            notes.append(f"Assessment {a.date.isoformat()} is after the as-of date and was not used.")
        elif inputs.new_therapy_start is not None and a.date >= inputs.new_therapy_start:
            notes.append(f"Assessment {a.date.isoformat()} is on/after the new therapy started "
                         f"{inputs.new_therapy_start.isoformat()} and was not used (confirmation must precede new "
                         f"therapy).")
        elif inputs.baseline is not None and a.date <= inputs.baseline.date:
            notes.append(f"Assessment {a.date.isoformat()} is not after the baseline and was not used.")
        else:
            kept.append(a)
    series = kept
    if inputs.new_therapy_start is not None and series:
        ev.append(Evidence("imwg.new_therapy", f"New therapy started {inputs.new_therapy_start.isoformat()}; "
                           f"{len(series)} assessment(s) before it are used (confirmation must precede new therapy).",
                           f"{CIT} footnote; criteria.md §6.2"))

    measurable, involved = _choose_measurable(inputs, series, ev, notes)
    b = inputs.baseline
    ctx = _Ctx(
        measurable=measurable or "",
        baseline=b,
        involved=involved,
        base_serum=_d(b.serum_M_g_dL) if b else None,
        base_urine=_d(b.urine_M_mg_24h) if b else None,
        base_dflc=None,
        base_bmpc=_d(b.BMPC_pct) if b else None,
        base_spd=_spd(b),
        base_cpc=_d(b.circulating_PC_per_uL) if b else None,
        nadir_input=inputs.confirmed_nadir,
        serum_pd_inclusive=serum_pd_absolute_inclusive,
    )
    ctx.base_dflc = ctx.dflc(b)
    if not serum_pd_absolute_inclusive:
        notes.append("Serum M PD uses an absolute increase > 0.5 g/dL (PMC9954856 reading); Kumar 2016 says >= 0.5.")

    state = _normalise_category(inputs.previous_confirmed_category) if inputs.previous_confirmed_category else None
    state_onset: int | None = None
    if state is not None:
        ev.append(Evidence("imwg.previous_category", f"Previously confirmed category from the record: {state}"
                           + (f" ({inputs.previous_confirmed_date.isoformat()})" if inputs.previous_confirmed_date
                              else "") + "; it stands until PD or a better response is confirmed.",
                           f"{CIT}; criteria.md §6.2 assessment rules"))

    base_values: dict = {"measurable_by": measurable} if measurable else {}
    if b is not None:
        if ctx.base_serum is not None:
            base_values["baseline_serum_M_g_dL"] = ctx.base_serum
        if ctx.base_urine is not None:
            base_values["baseline_urine_M_mg_24h"] = ctx.base_urine
        if ctx.base_dflc is not None:
            base_values["dFLC_baseline_mg_dL"] = ctx.base_dflc
        if ctx.base_bmpc is not None:
            base_values["baseline_BMPC_pct"] = ctx.base_bmpc
        if ctx.base_spd is not None:
            base_values["baseline_plasmacytoma_SPD_mm2"] = ctx.base_spd
    if involved:
        base_values["involved_FLC"] = involved

    if not series:
        if state is not None:
            return Assessment(CRITERIA, state, LABELS[state], OUTCOMES[state], inputs.previous_confirmed_date, True,
                              SOURCE, base_values, tuple(ev), (), (), tuple(notes))
        missing.append("no response assessment after baseline (before new therapy)")
        return Assessment(CRITERIA, "NE", LABELS["NE"], Outcome.NOT_EVALUABLE, None, False, SOURCE, base_values,
                          tuple(ev), (), tuple(missing), tuple(notes))
    if b is not None and measurable == MEASURABLE_NONE:
        notes.append("No measurable disease at baseline (IMWG §6.1): only CR/sCR, relapse and PD can be assessed.")

    history: list[TimepointResult] = []
    levels: list[str | None] = []
    pds: list[_PD] = []
    marrows: list[MyelomaAssessment | None] = []
    imagings: list[MyelomaAssessment | None] = []
    onset_pd_run: int | None = None
    unconfirmed_msgs: list[str] = []
    last_marrow: MyelomaAssessment | None = None
    last_img: MyelomaAssessment | None = None
    for i, tp in enumerate(series):
        if tp.BMPC_pct is not None or tp.BM_IHC_kappa_lambda_ratio is not None:
            last_marrow = tp
        if tp.plasmacytomas is not None:
            last_img = tp
        marrows.append(last_marrow)
        imagings.append(last_img)
        tp_ev: list[Evidence] = []
        lvl, lvl_notes = _level(tp, last_marrow, last_img, ctx, tp_ev)
        notes.extend(lvl_notes)
        pd = _pd(tp, series, ctx)
        levels.append(lvl)
        pds.append(pd)
        ev.extend(tp_ev)
        ev.extend(pd.evidence)

        prev = series[i - 1] if i > 0 and _independent(series[i - 1], tp) else None
        if i > 0 and prev is None:
            notes.append(f"{tp.date.isoformat()}: same sample as {series[i - 1].date.isoformat()} -> not a "
                         f"confirmation.")
        new_state = None
        new_onset = None
        d = tp.date.isoformat()
        # PD
        if pd.biochemical and (prev is None or not pds[i - 1].biochemical):
            onset_pd_run = i
        if pd.immediate:
            new_state, new_onset = "PD", i
            ev.append(Evidence("imwg.pd.confirmed", f"{d}: PD by {', '.join(pd.immediate)} (marrow/imaging: no "
                               f"confirmation needed).", f"{CIT}; criteria.md §6.2", _refs(tp)))
        elif pd.biochemical and prev is not None and pds[i - 1].biochemical:
            run = onset_pd_run if onset_pd_run is not None else i - 1
            new_state, new_onset = "PD", run
            ev.append(Evidence("imwg.pd.confirmed", f"PD on consecutive assessments {series[run].date.isoformat()} "
                               f"and {d} ({', '.join(pds[i - 1].biochemical)}; {', '.join(pd.biochemical)}); "
                               f"progression date {series[run].date.isoformat()}.",
                               f"{CIT}; criteria.md §6.2 (two consecutive assessments)", _refs(tp)))
        elif state == "PD":
            pass
        elif state in ("CR", "sCR", "relapse from CR"):
            rb, rm, reasons = _relapse_from_cr(tp)
            rb_prev = _relapse_from_cr(series[i - 1])[0] if prev is not None else False
            if state != "relapse from CR" and (rm or (rb and rb_prev)):
                new_state, new_onset = "relapse from CR", (i - 1 if (rb and rb_prev and not rm) else i)
                ev.append(Evidence("imwg.relapse_from_cr", f"{d}: after {state}, " + "; ".join(reasons)
                                   + (" (confirmed on consecutive assessments)" if rb and rb_prev else "")
                                   + " without PD criteria -> relapse from CR (used for DFS only; positive IFE alone "
                                   "is not PD).", f"{CIT}; criteria.md §6.3", _refs(tp)))
            elif rb or rm:
                unconfirmed_msgs.append(f"{d}: " + "; ".join(reasons) + " after CR, awaiting confirmation")
        if new_state is None and state != "PD" and prev is not None:
            lp, _ = _level(prev, last_marrow, last_img, ctx, None)
            if lvl is not None and lp is not None:
                conf = _min_level([lvl, lp])
                better = state is None or (state in RANK and RANK[conf] > RANK[state]) or (
                    state == "relapse from CR" and conf in ("CR", "sCR"))
                if better:
                    new_state, new_onset = conf, i - 1
                    ev.append(Evidence("imwg.confirmed", f"{conf} met on consecutive assessments "
                                       f"{prev.date.isoformat()} ({lp}) and {d} ({lvl}) -> {conf} confirmed.",
                                       f"{CIT}; criteria.md §6.2 (two consecutive assessments, no minimum interval, "
                                       f"different samples, before new therapy)", _refs(prev) + _refs(tp)))
        if new_state is not None and new_state != state:
            state, state_onset = new_state, new_onset
        # time-point result for the timeline
        raw = "PD" if pd.any else lvl
        if state is not None:
            cat_h, conf_h = state, True
        elif raw is not None:
            cat_h, conf_h = raw, False
        else:
            cat_h, conf_h = "NE", False
        hv = {"timepoint_level": raw or "NE", "confirmed": conf_h}
        hv.update(_values(tp, last_marrow, last_img, ctx, pd))
        history.append(TimepointResult(tp.date, cat_h, _outcome(cat_h, conf_h), hv))

    # ---- final ----
    n = len(series) - 1
    last = series[n]
    raw_last = "PD" if pds[n].any else levels[n]
    values = dict(base_values)
    if state is not None:
        category, confirmed = state, True
        k = state_onset if state_onset is not None else n
        if raw_last is not None and raw_last != state and state != "PD":
            if raw_last == "PD" or (raw_last in RANK and state in RANK and RANK[raw_last] > RANK[state]):
                unconfirmed_msgs.append(f"{last.date.isoformat()}: {raw_last} at the latest assessment, awaiting "
                                        f"confirmation by a consecutive assessment")
    elif raw_last is not None:
        category, confirmed = raw_last, False
        k = n
        unconfirmed_msgs.append(f"{last.date.isoformat()}: {raw_last} on a single assessment, not yet confirmed "
                                f"(IMWG needs two consecutive assessments)")
    else:
        category, confirmed, k = "NE", False, n
        if b is None:
            missing.append("baseline M-protein/FLC values (needed for the percentage reductions)")
        elif measurable == MEASURABLE_NONE:
            missing.append("measurable disease at baseline (serum M >= 1 g/dL, urine M >= 200 mg/24 h, involved FLC "
                           ">= 10 mg/dL with abnormal ratio, or BMPC >= 30 %)")
        else:
            missing.append("response parameters at the latest assessment")
    for msg in unconfirmed_msgs:
        notes.append(msg)
    values.update(_values(series[k], marrows[k], imagings[k], ctx, pds[k]))
    values["PD"] = category == "PD"
    values["confirmed"] = confirmed
    values["category_date"] = series[k].date
    if category == "PD":
        values["progression_date"] = series[k].date
    values["latest_assessment_date"] = last.date
    values["latest_timepoint_level"] = raw_last or "NE"
    values.update(_values(last, marrows[n], imagings[n], ctx, pds[n], prefix="latest_"))
    if category == "NE":
        outcome = Outcome.NOT_EVALUABLE
    else:
        outcome = _outcome(category, confirmed)
    ev.append(Evidence("imwg.category", f"Overall: {category} ({LABELS[category]}), "
                       f"{'confirmed' if confirmed else 'not confirmed'}; the lowest level reached by any parameter "
                       f"is used and the last confirmed category stands until PD or a better response is confirmed.",
                       f"{CIT}; criteria.md §6.2"))
    # de-duplicate notes, keep order
    seen: set[str] = set()
    notes_u = tuple(x for x in notes if not (x in seen or seen.add(x)))
    return Assessment(
        criteria=CRITERIA,
        category=category,
        label=LABELS[category],
        outcome=outcome,
        assessment_date=last.date,
        confirmed=confirmed,
        source=SOURCE,
        values=values,
        evidence=tuple(ev),
        history=tuple(history),
        missing=tuple(missing),
        notes=notes_u,
    )
