"""Breast cancer pathologic response after neoadjuvant therapy: pCR and Residual Cancer Burden (RCB).

pCR (criteria.md §8.1)
    Two definitions are always reported:

    * ``pCR_ypT0is_ypN0`` - no residual **invasive** carcinoma in breast and nodes; residual DCIS allowed
      (FDA 2014/2020 guidance; Cortazar P et al., Lancet 2014;384:164 - CTNeoBC).  This is the default
      definition behind ``category``.
    * ``pCR_ypT0_ypN0`` - no invasive **and** no in-situ carcinoma (von Minckwitz G et al., J Clin Oncol
      2012;30:1796); select it with ``pcr_definition="ypT0 ypN0"``.

    Edge rules: ypT1mi is residual invasive cancer; ypN0(i+) (isolated tumour cells) and ypN1mi
    (micrometastasis) are **not** pCR (Bossuyt V et al., Ann Oncol 2015;26:1280 (BIG-NABCG); Provenzano
    2015) - ITCs are configurable (``itc_is_pcr``, default False) because criteria.md §12 item 14 lists it.
    ypN0(mol+) (tumour cells found by RT-PCR only) is treated like ITCs - residual tumour cells, not pCR -
    [I] (``mol_positive_is_pcr``, default False).  Residual lymphovascular invasion only is not pCR [P].
    Not operated because of progression on neoadjuvant therapy is not pCR [I] (criteria.md §8.1).

RCB (Symmans WF et al., J Clin Oncol 2007;25:4414-4422; criteria.md §8.2)
    ``RCB = 1.4 (f_inv * d_prim)^0.17 + [4 (1 - 0.75^LN) d_met]^0.17`` with ``d_prim = sqrt(d1 d2)`` and
    ``f_inv = (1 - %CIS/100) (%CA/100)``.  The fractional power is computed in ``Decimal`` as
    ``exp(0.17 ln x)`` at ``RCB_PRECISION`` (50) significant digits; a zero base gives a zero term.  The
    class is decided on the exact index; ``RCB_index`` is the index rounded to 3 decimals (as the MDACC
    calculator reports it; more where 3 would show a number of another class, :func:`rcb_display`) and
    ``RCB_index_exact`` the full-precision value.  Classes: RCB-0 = 0,
    RCB-I <= 1.36, RCB-II <= 3.28, RCB-III > 3.28 - inclusive upper bounds per Symmans 2007 (default);
    ``inclusive_rcb_boundaries=False`` gives the "<" reading of one public implementation (criteria.md
    §8.2, §12 item 14).  Without RCB measurements, a pCR (ypT0/is ypN0) is RCB-0 by definition (Symmans
    2007); residual disease without measurements has no RCB (a note says so, the pCR category stands).

Outcome mapping [I]
    * pCR -> ``COMPLETE``.
    * not pCR -> ``STABLE``: the pathology tells us residual cancer was resected, not how it changed from
      baseline, so neither PARTIAL (a remission) nor PROGRESSION is justified; the RCB class carries the
      prognostic gradation (RCB-I has a prognosis close to pCR, RCB-III poor; Symmans 2007).
    * not operated because of progression -> category "not pCR", outcome ``PROGRESSION``.

A single pathology assessment: no confirmation is defined, so ``confirmed=True``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext
from typing import Literal

from .base import Assessment, D, Evidence, KeyValue, Outcome, Source, TimepointResult, display_places, fmt, rounded

CRITERIA = "Breast pCR"
CRITERIA_RCB = "Breast RCB (Symmans 2007)"

SOURCE = Source(
    label="Cortazar P et al. Pathological complete response and long-term clinical benefit in breast cancer: "
    "the CTNeoBC pooled analysis. Lancet 2014;384:164-172",
    url="https://doi.org/10.1016/S0140-6736(13)62422-8",
)
SOURCE_RCB = Source(
    label="Symmans WF et al. Measurement of residual breast cancer burden to predict survival after "
    "neoadjuvant chemotherapy. J Clin Oncol 2007;25:4414-4422",
    url="https://doi.org/10.1200/JCO.2007.10.6823",
)

PCR = "pCR"
NOT_PCR = "not pCR"
NOT_EVALUABLE = "not evaluable"

DEF_YPT0IS_YPN0 = "ypT0/is ypN0"
DEF_YPT0_YPN0 = "ypT0 ypN0"

_CITE_PCR = "FDA 2014/2020; Cortazar 2014 (criteria.md §8.1)"
_CITE_PCR_STRICT = "von Minckwitz 2012 (criteria.md §8.1)"
_CITE_EDGE = "Bossuyt 2015 (BIG-NABCG); Provenzano 2015 (criteria.md §8.1)"
_CITE_RCB = "Symmans 2007 (criteria.md §8.2)"

# --- RCB formula, Symmans 2007 (criteria.md §8.2) ------------------------------------------------------
RCB_BREAST_COEFFICIENT = Decimal("1.4")  # 1.4 * (f_inv * d_prim)^0.17
RCB_EXPONENT = Decimal("0.17")  # both terms are raised to 0.17
RCB_NODAL_COEFFICIENT = Decimal("4")  # [4 * (1 - 0.75^LN) * d_met]^0.17
RCB_NODAL_BASE = Decimal("0.75")
# RCB classes, Symmans 2007: RCB-I 0 < RCB <= 1.36, RCB-II 1.36 < RCB <= 3.28, RCB-III > 3.28 [P].  Re-check: the
# Symmans 2007 text was not found in stored sources; the inclusive cut-offs match three independent public RCB
# implementations (find_string "rcb <= 1.36") and a public RCB calculator page; qiprofile uses "<" (§12 item 14).
RCB_I_UPPER = Decimal("1.36")
RCB_II_UPPER = Decimal("3.28")
# Working precision for exp/ln (significant digits; >= 28 required).
RCB_PRECISION = 50
# Reported index is rounded to this many decimals (MDACC calculator display).
RCB_DISPLAY_PLACES = 3


@dataclass(frozen=True)
class RcbMeasurements:
    """Symmans 2007 inputs from the surgical specimen (canonical units: mm, percent, count)."""

    tumor_bed_d1_mm: Decimal
    tumor_bed_d2_mm: Decimal
    cancer_cellularity_pct: Decimal  # %CA: % of tumour-bed area with carcinoma (invasive + in situ)
    in_situ_pct_of_cancer: Decimal  # %CIS: % of that carcinoma that is in situ
    positive_lymph_nodes: int  # LN
    largest_nodal_metastasis_mm: Decimal  # d_met
    ref: str | None = None


@dataclass(frozen=True)
class BreastPathologyInputs:
    """Surgical pathology after neoadjuvant therapy.

    ypT / ypN: AJCC strings as reported ("ypT0", "ypTis", "ypT1mi", "ypT1c", "ypN0", "ypN0(i+)",
    "ypN0(mol+)", "ypN1mi", "ypN2a", "ypNX", optional "(sn)" / free text after the code).
    residual_dcis: residual in-situ carcinoma in the breast when reported separately (ypTis implies it).
    residual_lvi: residual lymphovascular invasion.
    """

    surgery_date: date | None
    ypT: str | None = None
    ypN: str | None = None
    residual_dcis: bool | None = None
    residual_lvi: bool | None = None
    rcb: RcbMeasurements | None = None
    not_operated_due_to_progression: bool = False
    progression_date: date | None = None
    ref: str | None = None


@dataclass(frozen=True)
class ParsedYpT:
    code: str  # "X", "0", "is", "1mi", "1", "1a", ... "4d"
    invasive: bool | None  # None when ypTX
    in_situ: bool


@dataclass(frozen=True)
class ParsedYpN:
    code: str  # "X", "0", "1mi", "1", "1a", ... "3c"
    itc: bool  # (i+)
    mol: bool  # (mol+)
    macro_or_micro: bool | None  # nodal metastasis >0.2 mm (N1mi or higher); None when ypNX


_T_RE = re.compile(r"^\s*(?:y\s*)?(?:p\s*|c\s*)?T\s*(is|x|0|1\s*mi|[1-4]\s*[a-d]?)(?![0-9a-z])", re.IGNORECASE)
_N_RE = re.compile(r"^\s*(?:y\s*)?(?:p\s*|c\s*)?N\s*(x|0|1\s*mi|[1-3]\s*[a-c]?)(?![0-9])", re.IGNORECASE)
_ITC_RE = re.compile(r"\(\s*i\s*\+\s*\)", re.IGNORECASE)
_MOL_RE = re.compile(r"\(\s*mol\s*\+\s*\)", re.IGNORECASE)


def parse_ypt(text: str) -> ParsedYpT:
    """Parse an AJCC (y)pT string; raises ValueError when it is not recognised."""
    m = _T_RE.match(text or "")
    if not m:
        raise ValueError(f"unrecognised ypT: {text!r}")
    code = re.sub(r"\s+", "", m.group(1)).lower()
    code = code.upper() if code == "x" else code
    if code == "X":
        return ParsedYpT("X", None, False)
    if code == "is":
        return ParsedYpT("is", False, True)
    if code == "0":
        return ParsedYpT("0", False, False)
    return ParsedYpT(code, True, False)


def parse_ypn(text: str) -> ParsedYpN:
    """Parse an AJCC (y)pN string; raises ValueError when it is not recognised."""
    m = _N_RE.match(text or "")
    if not m:
        raise ValueError(f"unrecognised ypN: {text!r}")
    code = re.sub(r"\s+", "", m.group(1)).lower()
    if code == "x":
        return ParsedYpN("X", False, False, None)
    rest = text[m.end():]
    if code == "0":
        return ParsedYpN("0", bool(_ITC_RE.search(rest)), bool(_MOL_RE.search(rest)), False)
    return ParsedYpN(code, False, False, True)


def split_yptn(text: str) -> tuple[str | None, str | None]:
    """Split a combined "ypT1a ypN0(sn)" string into its ypT and ypN parts (None when absent)."""
    t = re.search(r"(?:y\s*)?(?:p\s*)?T\s*(?:is|x|0|1\s*mi|[1-4]\s*[a-d]?)(?![0-9a-z])", text, re.IGNORECASE)
    n = re.search(r"(?:y\s*)?(?:p\s*)?N\s*(?:x|0|1\s*mi|[1-3]\s*[a-c]?)(?:\s*\([^)]*\))*", text, re.IGNORECASE)
    return (t.group(0).strip() if t else None, n.group(0).strip() if n else None)


@dataclass(frozen=True)
class RcbResult:
    index: Decimal  # full precision
    rcb_class: str
    d_prim_mm: Decimal
    f_inv: Decimal
    breast_term: Decimal
    nodal_term: Decimal


def _pow(x: Decimal, y: Decimal) -> Decimal:
    """x ** y for x >= 0 via exp(y ln x) in the current context; 0 ** y = 0 (criteria.md §8.2)."""
    if x <= 0:
        return Decimal(0)
    return (y * x.ln()).exp()


def rcb_class(index: Decimal, *, inclusive: bool = True) -> str:
    """RCB class from the exact index (Symmans 2007; inclusive upper bounds by default)."""
    if index == 0:
        return "RCB-0"
    if (index <= RCB_I_UPPER) if inclusive else (index < RCB_I_UPPER):
        return "RCB-I"
    if (index <= RCB_II_UPPER) if inclusive else (index < RCB_II_UPPER):
        return "RCB-II"
    return "RCB-III"


def rcb_display(index: Decimal, *, inclusive: bool = True, most: int = 12) -> tuple[Decimal, int]:
    """(the index as a card shows it, its decimals): RCB_DISPLAY_PLACES decimals, or more where that rounding would
    show a number of another class than the exact index's (1.3602 is RCB-II: shown as 1.3602, never as 1.360 next
    to "RCB-I <= 1.36"; 0.0004 is RCB-I: never 0.000)."""
    cls = rcb_class(index, inclusive=inclusive)
    places = display_places(index, RCB_DISPLAY_PLACES, lambda r: rcb_class(r, inclusive=inclusive) == cls, most)
    return rounded(index, places), places


def validate_rcb(m: RcbMeasurements) -> list[str]:
    """Plain-language problems with RCB measurements (empty list when usable)."""
    problems = []
    for name, v in (("tumour-bed dimension d1", m.tumor_bed_d1_mm), ("tumour-bed dimension d2", m.tumor_bed_d2_mm),
                    ("largest nodal metastasis", m.largest_nodal_metastasis_mm)):
        if D(v) < 0:
            problems.append(f"{name} must not be negative (got {v})")
    for name, v in (("cancer cellularity %", m.cancer_cellularity_pct), ("in-situ % of cancer", m.in_situ_pct_of_cancer)):
        if not (0 <= D(v) <= 100):
            problems.append(f"{name} must be 0-100 (got {v})")
    if not isinstance(m.positive_lymph_nodes, int) or isinstance(m.positive_lymph_nodes, bool) or m.positive_lymph_nodes < 0:
        problems.append(f"number of positive lymph nodes must be a whole number >= 0 (got {m.positive_lymph_nodes})")
    return problems


def compute_rcb(m: RcbMeasurements, *, inclusive: bool = True) -> RcbResult:
    """Residual Cancer Burden index (Symmans 2007), exact Decimal arithmetic at RCB_PRECISION digits."""
    problems = validate_rcb(m)
    if problems:
        raise ValueError("; ".join(problems))
    with localcontext() as ctx:
        ctx.prec = RCB_PRECISION
        d1, d2 = D(m.tumor_bed_d1_mm), D(m.tumor_bed_d2_mm)
        ca, cis = D(m.cancer_cellularity_pct), D(m.in_situ_pct_of_cancer)
        ln, dmet = m.positive_lymph_nodes, D(m.largest_nodal_metastasis_mm)
        d_prim = (d1 * d2).sqrt()
        f_inv = (1 - cis / 100) * (ca / 100)
        breast = RCB_BREAST_COEFFICIENT * _pow(f_inv * d_prim, RCB_EXPONENT)
        nodal = _pow(RCB_NODAL_COEFFICIENT * (1 - RCB_NODAL_BASE ** ln) * dmet, RCB_EXPONENT)
        index = breast + nodal
    return RcbResult(index, rcb_class(index, inclusive=inclusive), d_prim, f_inv, breast, nodal)


def assess(
    inputs: BreastPathologyInputs,
    as_of: date,
    *,
    pcr_definition: Literal["ypT0/is ypN0", "ypT0 ypN0"] = DEF_YPT0IS_YPN0,
    itc_is_pcr: bool = False,
    mol_positive_is_pcr: bool = False,
    inclusive_rcb_boundaries: bool = True,
) -> Assessment:
    """pCR (both definitions) and RCB for one surgical specimen.

    pcr_definition: which definition sets ``category`` (default ypT0/is ypN0, FDA/CTNeoBC).
    itc_is_pcr / mol_positive_is_pcr: count ypN0(i+) / ypN0(mol+) as node-negative (default False).
    inclusive_rcb_boundaries: RCB-I <= 1.36 and RCB-II <= 3.28 (default, Symmans 2007) or "<".
    """
    if pcr_definition not in (DEF_YPT0IS_YPN0, DEF_YPT0_YPN0):
        raise ValueError(f"pcr_definition must be {DEF_YPT0IS_YPN0!r} or {DEF_YPT0_YPN0!r}")
    criteria = CRITERIA_RCB if inputs.rcb is not None else CRITERIA
    source = SOURCE_RCB if inputs.rcb is not None else SOURCE
    evidence: list[Evidence] = []
    notes: list[str] = [f"pCR definition for the category: {pcr_definition}; both definitions are reported."]
    missing: list[str] = []
    values: dict[str, KeyValue] = {"pCR_definition": pcr_definition}
    refs = tuple(r for r in (inputs.ref,) if r)

    def ev(rule: str, text: str, citation: str, extra: tuple[str, ...] = ()) -> None:
        evidence.append(Evidence(rule, text, citation, refs + extra))

    def ne(when: date | None) -> Assessment:
        return Assessment(
            criteria=criteria, category=NOT_EVALUABLE, label="not evaluable (insufficient data)",
            outcome=Outcome.NOT_EVALUABLE, assessment_date=when, confirmed=True, source=source,
            values=values, evidence=tuple(evidence), missing=tuple(missing), notes=tuple(notes),
        )

    # ---- not operated because of progression ----
    if inputs.not_operated_due_to_progression:
        when = inputs.progression_date
        if when is not None and when > as_of:
            missing.append(f"progression documented after {as_of.isoformat()}")
            return ne(None)
        values.update({"pCR_ypT0is_ypN0": False, "pCR_ypT0_ypN0": False, "RCB_index": None, "RCB_class": None})
        ev("breast.no_surgery_progression",
           "Not operated because of progression on neoadjuvant therapy -> not pCR by either definition", "criteria.md §8.1 [I]")
        notes.append("RCB not applicable: no surgical specimen.")
        history = (TimepointResult(when, NOT_PCR, Outcome.PROGRESSION, {"pCR_ypT0is_ypN0": False}),) if when else ()
        return Assessment(
            criteria=criteria, category=NOT_PCR,
            label="not a pathologic complete response (progression before surgery)",
            outcome=Outcome.PROGRESSION, assessment_date=when, confirmed=True, source=source,
            values=values, evidence=tuple(evidence), history=history, notes=tuple(notes),
        )

    if inputs.surgery_date is not None and inputs.surgery_date > as_of:
        missing.append(f"surgical pathology on or before {as_of.isoformat()} (surgery dated {inputs.surgery_date.isoformat()})")
        return ne(None)
    if inputs.surgery_date is None:
        notes.append("Surgery date not supplied: no time point recorded.")

    # ---- RCB (computed first: it can stand in for missing ypT/ypN) ----
    rcb: RcbResult | None = None
    rcb_ref: tuple[str, ...] = ()
    if inputs.rcb is not None:
        rcb_ref = tuple(r for r in (inputs.rcb.ref,) if r)
        problems = validate_rcb(inputs.rcb)
        if problems:
            notes.append("RCB not calculated: " + "; ".join(problems) + ".")
        else:
            rcb = compute_rcb(inputs.rcb, inclusive=inclusive_rcb_boundaries)

    # ---- parse ypT / ypN ----
    t: ParsedYpT | None = None
    n: ParsedYpN | None = None
    if inputs.ypT:
        try:
            t = parse_ypt(inputs.ypT)
        except ValueError:
            missing.append(f"ypT category in a recognised form (got {inputs.ypT!r})")
    if inputs.ypN:
        try:
            n = parse_ypn(inputs.ypN)
        except ValueError:
            missing.append(f"ypN category in a recognised form (got {inputs.ypN!r})")
    if t is not None and t.code == "X":
        missing.append("primary tumour site assessment (ypTX)")
    if n is not None and n.code == "X":
        missing.append("regional lymph node assessment (ypNX)")

    # breast status
    m = inputs.rcb
    if t is not None and t.code != "X":
        breast_invasive = bool(t.invasive)
        breast_in_situ = t.in_situ or inputs.residual_dcis is True
        values["ypT"] = "ypT" + t.code
        if t.invasive:
            ev("breast.ypt.invasive", f"ypT{t.code}: residual invasive carcinoma in the breast -> not pCR", _CITE_PCR)
        elif breast_in_situ:
            ev("breast.ypt.in_situ",
               f"ypT{t.code}{' with residual DCIS' if t.code == '0' else ''}: in-situ carcinoma only, no invasive "
               "carcinoma -> pCR by ypT0/is, not by ypT0", _CITE_PCR_STRICT)
        else:
            ev("breast.ypt.none", "ypT0: no residual invasive or in-situ carcinoma in the breast", _CITE_PCR)
        if rcb is not None and (rcb.breast_term > 0) != breast_invasive:
            notes.append(
                f"ypT{t.code} and the RCB breast term ({fmt(rcb.breast_term, 3)}) disagree about residual invasive "
                "carcinoma; pCR follows ypT, check the pathology report."
            )
    elif t is None and not inputs.ypT and rcb is not None and m is not None:
        breast_invasive = rcb.breast_term > 0
        breast_in_situ = inputs.residual_dcis is True or (D(m.cancer_cellularity_pct) > 0 and D(m.in_situ_pct_of_cancer) > 0)
        ev("breast.rcb.breast", f"ypT not reported; RCB f_inv x d_prim = {fmt(rcb.f_inv * rcb.d_prim_mm, 3)} -> "
           f"{'residual' if breast_invasive else 'no residual'} invasive carcinoma in the breast", _CITE_RCB, rcb_ref)
    else:
        breast_invasive = breast_in_situ = None  # type: ignore[assignment]
        if not inputs.ypT:
            missing.append("ypT category (residual disease in the breast)")

    # nodal status
    if n is not None and n.code != "X":
        values["ypN"] = "ypN" + n.code + ("(i+)" if n.itc else "") + ("(mol+)" if n.mol else "")
        node_positive = bool(n.macro_or_micro)
        if n.macro_or_micro:
            kind = "micrometastasis" if n.code == "1mi" else "nodal metastasis"
            ev("breast.ypn.positive", f"ypN{n.code}: residual {kind} in regional nodes -> not pCR", _CITE_EDGE)
        if n.itc:
            if itc_is_pcr:
                notes.append("ypN0(i+) counted as node-negative (itc_is_pcr=True) [I].")
            else:
                node_positive = True
                ev("breast.ypn.itc", "ypN0(i+): isolated tumour cells in a node are residual disease -> not pCR", _CITE_EDGE)
        if n.mol:
            if mol_positive_is_pcr:
                notes.append("ypN0(mol+) counted as node-negative (mol_positive_is_pcr=True) [I].")
            else:
                node_positive = True
                ev("breast.ypn.mol", "ypN0(mol+): tumour cells detected molecularly in a node -> not pCR [I]", _CITE_EDGE)
        if not node_positive and not n.macro_or_micro:
            ev("breast.ypn.negative", f"{values['ypN']}: no residual tumour in regional nodes", _CITE_PCR)
        if rcb is not None and m is not None and (m.positive_lymph_nodes > 0) != bool(n.macro_or_micro):
            notes.append(
                f"ypN{n.code} and the RCB node count ({m.positive_lymph_nodes}) disagree; pCR follows ypN, check the report."
            )
    elif n is None and not inputs.ypN and rcb is not None and m is not None:
        node_positive = m.positive_lymph_nodes > 0
        ev("breast.rcb.nodes", f"ypN not reported; RCB positive nodes = {m.positive_lymph_nodes}", _CITE_RCB, rcb_ref)
        notes.append("Nodal status taken from the RCB node count; isolated tumour cells cannot be excluded.")
    else:
        node_positive = None  # type: ignore[assignment]
        if not inputs.ypN:
            missing.append("ypN category (regional lymph nodes)")

    if inputs.residual_lvi:
        ev("breast.lvi", "Residual lymphovascular invasion -> not pCR", "criteria.md §8.1 [P]")

    if missing or breast_invasive is None or node_positive is None:
        return ne(inputs.surgery_date)

    pcr_is = not breast_invasive and not node_positive and not inputs.residual_lvi
    pcr_strict = pcr_is and not breast_in_situ
    values["pCR_ypT0is_ypN0"] = pcr_is
    values["pCR_ypT0_ypN0"] = pcr_strict
    is_pcr = pcr_is if pcr_definition == DEF_YPT0IS_YPN0 else pcr_strict
    category = PCR if is_pcr else NOT_PCR
    ev("breast.pcr.ypT0is_ypN0", f"ypT0/is ypN0 pCR: {'yes' if pcr_is else 'no'}", _CITE_PCR)
    ev("breast.pcr.ypT0_ypN0", f"ypT0 ypN0 pCR: {'yes' if pcr_strict else 'no'}", _CITE_PCR_STRICT)

    # ---- RCB values ----
    if rcb is not None:
        shown, places = rcb_display(rcb.index, inclusive=inclusive_rcb_boundaries)
        values["RCB_index"] = shown
        values["RCB_index_exact"] = rcb.index
        values["RCB_class"] = rcb.rcb_class
        values["RCB_d_prim_mm"] = rounded(rcb.d_prim_mm, 3)
        values["RCB_f_inv"] = rcb.f_inv
        lo = "<=" if inclusive_rcb_boundaries else "<"
        assert m is not None
        ev(
            "breast.rcb",
            f"RCB = 1.4 x ({fmt(rcb.f_inv, 4)} x {fmt(rcb.d_prim_mm, 3)} mm)^0.17 + [4 x (1 - 0.75^{m.positive_lymph_nodes}) x "
            f"{fmt(D(m.largest_nodal_metastasis_mm), 2)} mm]^0.17 = {fmt(rcb.breast_term, 3)} + {fmt(rcb.nodal_term, 3)} = "
            f"{fmt(rcb.index, places)} -> {rcb.rcb_class} (RCB-0 = 0, RCB-I {lo} {fmt(RCB_I_UPPER, 2)}, "
            f"RCB-II {lo} {fmt(RCB_II_UPPER, 2)}, RCB-III above)",
            _CITE_RCB,
            rcb_ref,
        )
        if inclusive_rcb_boundaries:
            notes.append("RCB class boundaries inclusive (RCB-I <= 1.36, RCB-II <= 3.28; Symmans 2007).")
        else:
            notes.append("RCB class boundaries exclusive (RCB-I < 1.36, RCB-II < 3.28) [I].")
        if rcb.index == 0 and not pcr_is:
            notes.append("RCB index 0 but not pCR (e.g. isolated tumour cells or LVI): the RCB form does not count them.")
        if m.positive_lymph_nodes > 0 and D(m.largest_nodal_metastasis_mm) == 0:
            notes.append("Positive nodes with a 0 mm largest metastasis: nodal RCB term is 0; check the report.")
    elif pcr_is:
        values["RCB_index"] = Decimal("0.000")
        values["RCB_index_exact"] = Decimal(0)
        values["RCB_class"] = "RCB-0"
        ev("breast.rcb.zero", "No residual invasive carcinoma in breast or nodes -> RCB index 0, RCB-0 (= pCR)", _CITE_RCB)
    else:
        values["RCB_index"] = None
        values["RCB_class"] = None
        if inputs.rcb is None:
            notes.append("RCB not calculated: tumour-bed dimensions, cellularity, in-situ %, positive nodes and largest "
                         "nodal metastasis are needed.")

    if is_pcr:
        label = f"pathologic complete response ({pcr_definition})"
        outcome = Outcome.COMPLETE
    else:
        cls = values.get("RCB_class")
        label = "residual disease, not a pathologic complete response" + (f" ({cls})" if cls else "")
        outcome = Outcome.STABLE
        if pcr_is and not pcr_strict:
            label = "residual DCIS only: not pCR under ypT0 ypN0"
    when = inputs.surgery_date
    tp_values = {k: values[k] for k in ("pCR_ypT0is_ypN0", "pCR_ypT0_ypN0", "RCB_index", "RCB_class") if k in values}
    history = (TimepointResult(when, category, outcome, tp_values),) if when else ()
    return Assessment(
        criteria=criteria, category=category, label=label, outcome=outcome, assessment_date=when, confirmed=True,
        source=source, values=values, evidence=tuple(evidence), history=history, notes=tuple(notes),
    )
