"""ATA 2015 response to therapy in differentiated thyroid cancer (DTC).

Three frameworks, chosen from the initial surgery:

* **Total thyroidectomy + RAI remnant ablation** - Haugen BR et al., Thyroid 2016;26:1-133, Table 11
  (criteria.md §7.1).
* **Total thyroidectomy without RAI** and **lobectomy** - Momesso DP et al., J Clin Endocrinol Metab
  2016;101:2692-2700 (criteria.md §7.2, §12 item 8).  These thresholds are not in Haugen Table 11;
  the assessment then reports ``criteria = CRITERIA_NO_RAI`` and ``source = SOURCE_NO_RAI``.

Categories (exact strings): ``"excellent"``, ``"biochemical incomplete"``, ``"structural incomplete"``,
``"indeterminate"``; ``"not evaluable"`` when data are missing.

Decision order (criteria.md §7.1 evaluation order [I]), applied at every dated assessment:

1. Imaging is required (every category is defined with an imaging statement).  The latest result of
   **each modality** (neck US, diagnostic RAI whole-body scan, cross-sectional CT/MRI/FDG-PET) up to the
   assessment date is used: a negative neck US does not cancel a lung nodule on an earlier CT.
2. Structural or functional disease on any modality -> **structural incomplete** (any Tg, +/- TgAb).
3. TgAb is required (Table 11 Tg thresholds apply only in the absence of TgAb).
4. TgAb positive: Tg (immunometric) is unreliable because TgAb interference *lowers* measured Tg.
   Classification then follows the TgAb trend: rising (or de novo appearance) -> **biochemical
   incomplete**; stable / declining / not yet assessable -> **indeterminate**.  [I] Because interference
   only lowers Tg, a Tg that is nevertheless in the biochemical-incomplete range still counts
   (keyword ``elevated_tg_counts_with_tgab``, default True; set False to use the TgAb trend alone).
5. TgAb negative: Tg decides.  Biochemical range (or, in the Momesso frameworks, a rising Tg at
   similar TSH, or a lobectomy Tg above 30) -> **biochemical incomplete**; excellent range and all
   imaging negative -> **excellent**; everything in between (Tg in the indeterminate range, non-specific
   imaging, faint thyroid-bed uptake, undetectable Tg on an assay whose detection limit is above the
   excellent cut-off) -> **indeterminate**.

Interpretation choices [I] (all configurable, see :func:`assess`):

* **Boundary at suppressed Tg 1.0 / stimulated Tg 10 ng/mL (Table 11 framework).**  Default
  ``biochemical_boundary="ge"``: a value exactly at 1.0 / 10 ng/mL is biochemical incomplete.  Cited to
  the Table 11 reproduction at PMC7578621 ("suppressed Tg >=1 ng/mL, stimulated Tg >=10 ng/mL"); it is
  the only reading consistent with Table 11's own indeterminate row ("detectable but <1 / <10"), so the
  categories partition the Tg axis without a gap.  ``"gt"`` follows Haugen 2016 Table 12 footnote
  (">1 / >10", PMC4739132) and puts the boundary value in indeterminate.  Vignette ATA-05 accepts both
  (criteria.md §7.1, §12 item 7).  The Momesso frameworks use their own ranges ("0.2-5" indeterminate,
  ">5" biochemical), so the boundary value is indeterminate there.
* **Suppressed + stimulated Tg in the same work-up** (within ``TG_PAIRING_DAYS``): either in the
  biochemical range -> biochemical; otherwise the stimulated value (the more sensitive test) decides
  between excellent and indeterminate.  Otherwise the most recent Tg is used.
* **"Rising" TgAb**: latest value >= +50 % above the lowest earlier value on the same assay
  (``TGAB_RISE_PCT``), or de novo appearance (earlier negative, now positive, same assay).  "Declining":
  <= -50 % from the first value on the same assay (``TGAB_DECLINE_PCT``) or became negative.  The 50 %
  figure follows Reverter JL et al., J Thyroid Res 2020:8312628 (increase / decrease of more than 50 %)
  and Rosario PW et al., Endocr Relat Cancer 2021;28:R111 (reduction > 50 %); the boundary is included
  here so that a halving counts as declining and a 1.5-fold rise counts as rising.  Assays must be
  constant (criteria.md §1); values from another assay are not compared.
* **"Rising" Tg** (Momesso "rising Tg at similar TSH"; the paper gives no number): latest detectable
  non-stimulated Tg >= +50 % (``TG_RISE_PCT``) *and* >= 0.2 ng/mL (``TG_RISE_MIN_ABS_NG_ML``) above the
  lowest earlier value on the same assay.  "Similar TSH": both TSH values known and within a factor of
  2 (``TSH_SIMILAR_MAX_FOLD``); when TSH is unknown for either value the rise still counts (a note says
  so) unless ``rising_tg_requires_tsh=True``.  In the Table 11 framework a rising Tg is a note only.
* **Lobectomy "stable Tg <30"**: a single Tg value cannot show stability; by default it is accepted
  (with a note) because a one-off Tg <30 ng/mL with negative US is what Momesso call excellent in
  practice; ``lobectomy_requires_tg_series=True`` makes it indeterminate instead.  Stimulated Tg is not
  interpretable after lobectomy and is ignored.  Tg exactly 30 ng/mL is neither "<30" nor ">30" and
  is indeterminate.

Outcome mapping (what a clinician expects on a card):

* excellent -> ``COMPLETE`` (no evidence of disease).
* indeterminate -> ``INDETERMINATE`` (cannot be called disease or no disease; watchful follow-up).
* biochemical incomplete -> ``STABLE``: persistent biochemical disease is not progression - most such
  patients are observed and ~30 % become NED spontaneously (Table 11 outcome column).
* structural incomplete -> ``STABLE`` (persistent structural disease), except when it appears after an
  earlier **excellent** response (in the supplied history, or ``prior_excellent_response=True``): then
  ``RELAPSE`` - a structural recurrence (ATA 2025 "clinically recurrent disease").  A biochemical
  incomplete response after an excellent one stays ``STABLE`` but gets a "biochemical recurrence" note.

Dynamic risk stratification has no confirmation rule: every assessment is ``confirmed=True``.

Recommended next Tg interval (``values["next_Tg_interval_months"]``, criteria.md §7.3 / §13):
"12-24" after an excellent response in ATA low/intermediate-risk patients (Rec 62C; also used when the
initial risk is not supplied, with a note), "6-12" after indeterminate or incomplete responses and for
ATA high-risk patients regardless of response (Rec 62E).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Literal

from .base import (
    Assessment,
    D,
    Evidence,
    KeyValue,
    Outcome,
    Source,
    TimepointResult,
    fmt,
    fmt_pct,
    pct_change,
)

CRITERIA = "ATA 2015 DTC response to therapy"
CRITERIA_NO_RAI = "ATA 2015 DTC response to therapy (no-RAI framework)"

SOURCE = Source(
    label="Haugen BR et al. 2015 American Thyroid Association management guidelines for adult patients "
    "with thyroid nodules and differentiated thyroid cancer. Thyroid 2016;26:1-133 (Table 11)",
    url="https://doi.org/10.1089/thy.2015.0020",
)
SOURCE_NO_RAI = Source(
    label="Momesso DP et al. Dynamic risk stratification in patients with differentiated thyroid cancer "
    "treated without radioactive iodine. J Clin Endocrinol Metab 2016;101:2692-2700",
    url="https://pubmed.ncbi.nlm.nih.gov/?term=Momesso+J+Clin+Endocrinol+Metab+2016+101+2692",
)

EXCELLENT = "excellent"
BIOCHEMICAL_INCOMPLETE = "biochemical incomplete"
STRUCTURAL_INCOMPLETE = "structural incomplete"
INDETERMINATE = "indeterminate"
NOT_EVALUABLE = "not evaluable"

CATEGORIES = (EXCELLENT, BIOCHEMICAL_INCOMPLETE, STRUCTURAL_INCOMPLETE, INDETERMINATE)

_CITE_T11 = "Haugen 2016 Table 11 (criteria.md §7.1)"
_CITE_T12 = "Haugen 2016 Table 12 footnote (criteria.md §7.1, §12 item 7)"
_CITE_MOM = "Momesso 2016 (criteria.md §7.2)"
_CITE_TGAB = "Reverter 2020 J Thyroid Res 8312628; Rosario 2021 Endocr Relat Cancer 28:R111 [I]"
_CITE_INTERVAL = "ATA 2015 Rec 62C/62E (criteria.md §7.3)"

# --- Haugen 2016 Table 11: total thyroidectomy + RAI remnant ablation (criteria.md §7.1) -------------
# Excellent: suppressed Tg < 0.2 ng/mL or TSH-stimulated Tg < 1 ng/mL (Table 11, [V] PMC7578621 T1).
RAI_SUPPRESSED_EXCELLENT_BELOW_NG_ML = Decimal("0.2")
RAI_STIMULATED_EXCELLENT_BELOW_NG_ML = Decimal("1")
# Biochemical incomplete: suppressed Tg >=1 / stimulated Tg >=10 ng/mL (Table 11 reproduction PMC7578621);
# ">1 / >10" in Haugen Table 12 footnote (PMC4739132) - the comparison is the `biochemical_boundary` option.
RAI_SUPPRESSED_BIOCHEMICAL_NG_ML = Decimal("1")
RAI_STIMULATED_BIOCHEMICAL_NG_ML = Decimal("10")

# --- Momesso 2016: total thyroidectomy without RAI (criteria.md §7.2) -------------------------------
# Excellent: suppressed Tg < 0.2 or stimulated Tg < 2 ng/mL; indeterminate 0.2-5 / 2-10; biochemical >5 / >10.
# [P/V-secondary in criteria.md §7.2; re-check: Momesso 2016 table not found in stored sources]
NO_RAI_SUPPRESSED_EXCELLENT_BELOW_NG_ML = Decimal("0.2")
NO_RAI_STIMULATED_EXCELLENT_BELOW_NG_ML = Decimal("2")
NO_RAI_SUPPRESSED_BIOCHEMICAL_ABOVE_NG_ML = Decimal("5")
NO_RAI_STIMULATED_BIOCHEMICAL_ABOVE_NG_ML = Decimal("10")

# --- Momesso 2016: lobectomy (criteria.md §7.2) ------------------------------------------------------
# Excellent: stable suppressed Tg < 30 ng/mL; biochemical incomplete: suppressed Tg > 30 ng/mL.
LOBECTOMY_EXCELLENT_BELOW_NG_ML = Decimal("30")
LOBECTOMY_BIOCHEMICAL_ABOVE_NG_ML = Decimal("30")

# --- Trend definitions [I] ---------------------------------------------------------------------------
# TgAb rising: >= +50 % from the nadir on the same assay; declining: <= -50 % from the first value.
# Reverter JL et al. J Thyroid Res 2020;2020:8312628 (">50 %" increase/decrease patterns);
# Rosario PW et al. Endocr Relat Cancer 2021;28:R111 (reduction >50 %). Boundary included [I].
TGAB_RISE_PCT = Decimal("50")
TGAB_DECLINE_PCT = Decimal("-50")
# Tg rising (Momesso "rising Tg at similar TSH", no number given) [I]: >= +50 % and >= 0.2 ng/mL above
# the nadir of non-stimulated Tg on the same assay.  0.2 ng/mL = the excellent cut-off / functional
# sensitivity level of second-generation assays (Spencer, PMC4154792), so changes inside the
# undetectable range are not called rising.
TG_RISE_PCT = Decimal("50")
TG_RISE_MIN_ABS_NG_ML = Decimal("0.2")
# "Similar TSH" [I]: the two TSH values differ by no more than 2-fold.
TSH_SIMILAR_MAX_FOLD = Decimal("2")
# Suppressed and stimulated Tg within this many days belong to the same work-up [I] (an rhTSH test takes
# 5 days: basal Tg day 1, stimulated Tg day 5; withdrawal about 3-4 weeks).
TG_PAIRING_DAYS = 30

# --- Follow-up interval (criteria.md §7.3, §13) -------------------------------------------------------
NEXT_TG_INTERVAL_EXCELLENT = "12-24"  # Rec 62C: low/intermediate risk with excellent response
NEXT_TG_INTERVAL_OTHER = "6-12"  # Rec 62E: indeterminate/incomplete response, or ATA high risk


class Surgery(str, Enum):
    TOTAL_THYROIDECTOMY_RAI = "total thyroidectomy + RAI remnant ablation"
    TOTAL_THYROIDECTOMY_NO_RAI = "total thyroidectomy without RAI"
    LOBECTOMY = "lobectomy"


class TgCondition(str, Enum):
    """How the Tg was drawn.  SUPPRESSED means non-stimulated (on levothyroxine, or endogenous TSH after
    lobectomy) - the guideline's "suppressed Tg"."""

    SUPPRESSED = "suppressed"
    STIMULATED_RHTSH = "rhTSH-stimulated"
    STIMULATED_WITHDRAWAL = "withdrawal-stimulated"

    @property
    def stimulated(self) -> bool:
        return self is not TgCondition.SUPPRESSED


class ImagingModality(str, Enum):
    NECK_US = "neck ultrasound"
    WBS = "diagnostic RAI whole-body scan"
    CROSS_SECTIONAL = "cross-sectional imaging (CT/MRI/FDG-PET)"


class ImagingResult(str, Enum):
    NEGATIVE = "negative"
    NONSPECIFIC = "non-specific findings"
    FAINT_THYROID_BED_UPTAKE = "faint thyroid-bed uptake"  # RAI scan; indeterminate per Table 11
    DISEASE = "structural or functional evidence of disease"


class AtaRisk(str, Enum):
    LOW = "low"
    INTERMEDIATE = "intermediate"
    HIGH = "high"


@dataclass(frozen=True)
class TgValue:
    """One serum thyroglobulin result.

    value_ng_mL: the number reported; when ``below_detection_limit`` the lab reported "<value" and
    value_ng_mL is that limit (LoD / functional sensitivity).
    tsh_mIU_L: TSH drawn with this Tg, if reported together (else the TSH series is searched by date).
    """

    date: date
    value_ng_mL: Decimal
    condition: TgCondition
    below_detection_limit: bool = False
    tsh_mIU_L: Decimal | None = None
    assay: str | None = None
    ref: str | None = None


@dataclass(frozen=True)
class TgAbValue:
    """One anti-thyroglobulin antibody result.

    Give the quantitative value (IU/mL, with ``assay``) and/or the lab's qualitative interpretation
    (``positive``: True/False, e.g. from Observation.interpretation).  Without ``positive``, a value is
    positive when it is above ``upper_reference_limit_IU_mL`` (the assay's cut-off).
    """

    date: date
    value_IU_mL: Decimal | None = None
    positive: bool | None = None
    assay: str | None = None
    upper_reference_limit_IU_mL: Decimal | None = None
    below_detection_limit: bool = False
    ref: str | None = None


@dataclass(frozen=True)
class ImagingFinding:
    date: date
    modality: ImagingModality
    result: ImagingResult
    description: str = ""
    ref: str | None = None


@dataclass(frozen=True)
class TshValue:
    date: date
    value_mIU_L: Decimal
    ref: str | None = None


@dataclass(frozen=True)
class AtaInputs:
    """Everything the engine reads.

    prior_excellent_response: an excellent response was documented before the supplied data (e.g. in a
    previous assessment); used to recognise a structural recurrence.
    """

    surgery: Surgery
    tg: tuple[TgValue, ...] = ()
    tgab: tuple[TgAbValue, ...] = ()
    imaging: tuple[ImagingFinding, ...] = ()
    tsh: tuple[TshValue, ...] = ()
    initial_risk: AtaRisk | None = None
    prior_excellent_response: bool = False


# ---------------------------------------------------------------------------------------------------
# internals
# ---------------------------------------------------------------------------------------------------

_BAND_EXCELLENT = "excellent"
_BAND_INDETERMINATE = "indeterminate"
_BAND_BIOCHEMICAL = "biochemical"


@dataclass
class _Options:
    biochemical_boundary: str
    elevated_tg_counts_with_tgab: bool
    rising_tg_requires_tsh: bool
    lobectomy_requires_tg_series: bool


@dataclass
class _Tp:
    """Working state for one dated assessment."""

    category: str = NOT_EVALUABLE
    evidence: list[Evidence] = field(default_factory=list)
    values: dict[str, KeyValue] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ev(self, rule: str, text: str, citation: str, *refs: str | None) -> None:
        self.evidence.append(Evidence(rule=rule, text=text, citation=citation, refs=tuple(r for r in refs if r)))


def _ng(v: Decimal) -> str:
    return fmt(v, 3)


def _tg_str(t: TgValue) -> str:
    lt = "<" if t.below_detection_limit else ""
    return f"{t.condition.value} Tg {lt}{_ng(t.value_ng_mL)} ng/mL on {t.date.isoformat()}"


def _framework(surgery: Surgery) -> str:
    return {
        Surgery.TOTAL_THYROIDECTOMY_RAI: "total thyroidectomy + RAI (Haugen 2016 Table 11)",
        Surgery.TOTAL_THYROIDECTOMY_NO_RAI: "total thyroidectomy without RAI (Momesso 2016)",
        Surgery.LOBECTOMY: "lobectomy (Momesso 2016)",
    }[surgery]


def _tg_band(t: TgValue, surgery: Surgery, opts: _Options) -> tuple[str, str, str]:
    """Band of one Tg value: (band, sentence, citation)."""
    v = D(t.value_ng_mL)
    stim = t.condition.stimulated
    if surgery is Surgery.TOTAL_THYROIDECTOMY_RAI:
        exc = RAI_STIMULATED_EXCELLENT_BELOW_NG_ML if stim else RAI_SUPPRESSED_EXCELLENT_BELOW_NG_ML
        bio = RAI_STIMULATED_BIOCHEMICAL_NG_ML if stim else RAI_SUPPRESSED_BIOCHEMICAL_NG_ML
        inclusive = opts.biochemical_boundary == "ge"
        cite = _CITE_T11 if inclusive else _CITE_T12
    elif surgery is Surgery.TOTAL_THYROIDECTOMY_NO_RAI:
        exc = NO_RAI_STIMULATED_EXCELLENT_BELOW_NG_ML if stim else NO_RAI_SUPPRESSED_EXCELLENT_BELOW_NG_ML
        bio = NO_RAI_STIMULATED_BIOCHEMICAL_ABOVE_NG_ML if stim else NO_RAI_SUPPRESSED_BIOCHEMICAL_ABOVE_NG_ML
        inclusive = False
        cite = _CITE_MOM
    else:
        exc, bio, inclusive, cite = LOBECTOMY_EXCELLENT_BELOW_NG_ML, LOBECTOMY_BIOCHEMICAL_ABOVE_NG_ML, False, _CITE_MOM
    ge = "\u2265" if inclusive else ">"
    desc = _tg_str(t)
    if t.below_detection_limit:
        # the true value is below the reported limit
        if v <= exc:
            return _BAND_EXCELLENT, f"{desc}: undetectable below a limit <= {_ng(exc)} ng/mL (excellent needs < {_ng(exc)})", cite
        return (
            _BAND_INDETERMINATE,
            f"{desc}: undetectable, but the detection limit {_ng(v)} ng/mL is not below the excellent cut-off "
            f"{_ng(exc)} ng/mL, so an excellent response cannot be shown",
            cite,
        )
    if (v >= bio) if inclusive else (v > bio):
        return _BAND_BIOCHEMICAL, f"{desc} is {ge} {_ng(bio)} ng/mL (biochemical incomplete needs {ge} {_ng(bio)})", cite
    if v < exc:
        return _BAND_EXCELLENT, f"{desc} is < {_ng(exc)} ng/mL (excellent needs < {_ng(exc)})", cite
    upper = f"< {_ng(bio)}" if inclusive else f"<= {_ng(bio)}"
    return (
        _BAND_INDETERMINATE,
        f"{desc} is >= {_ng(exc)} and {upper} ng/mL (indeterminate range: detectable, not excellent, not biochemical)",
        cite,
    )


def _tsh_for(t: TgValue, inputs: AtaInputs) -> Decimal | None:
    if t.tsh_mIU_L is not None:
        return D(t.tsh_mIU_L)
    same_day = [x for x in inputs.tsh if x.date == t.date]
    return D(same_day[-1].value_mIU_L) if same_day else None


def _tsh_similar(a: Decimal, b: Decimal) -> bool:
    lo, hi = min(a, b), max(a, b)
    if lo <= 0:
        return hi <= 0
    return hi <= lo * TSH_SIMILAR_MAX_FOLD


def _tg_rising(tp: _Tp, inputs: AtaInputs, d: date, opts: _Options, count: bool) -> str | None:
    """Trend of non-stimulated Tg up to d: "rising", "stable", "declining" or None (not assessable).

    Adds evidence (when count is True the rise is a classification rule, else a note)."""
    series = sorted((t for t in inputs.tg if t.date <= d and not t.condition.stimulated), key=lambda t: t.date)
    if len(series) < 2:
        return None
    latest = series[-1]
    earlier = [t for t in series[:-1] if t.assay == latest.assay]
    if not earlier:
        tp.notes.append("Tg trend not assessed: earlier Tg values were measured on a different assay.")
        return None
    nadir = min(earlier, key=lambda t: D(t.value_ng_mL))
    v, n = D(latest.value_ng_mL), D(nadir.value_ng_mL)
    if latest.below_detection_limit:
        return "declining" if v < n else "stable"
    rise_abs = v - n
    rising = rise_abs >= TG_RISE_MIN_ABS_NG_ML and (n <= 0 or rise_abs * 100 >= TG_RISE_PCT * n)
    if not rising:
        return "declining" if v < n else "stable"
    pct = fmt_pct(pct_change(v, n)) if n > 0 else "from 0"
    tsh_a, tsh_b = _tsh_for(nadir, inputs), _tsh_for(latest, inputs)
    if tsh_a is not None and tsh_b is not None and not _tsh_similar(tsh_a, tsh_b):
        tp.notes.append(
            f"Tg rose {pct} but TSH differed more than {fmt(TSH_SIMILAR_MAX_FOLD)}-fold "
            f"({fmt(tsh_a, 2)} vs {fmt(tsh_b, 2)} mIU/L): not counted as rising Tg at similar TSH."
        )
        return "stable"
    if tsh_a is None or tsh_b is None:
        if opts.rising_tg_requires_tsh:
            tp.notes.append(f"Tg rose {pct} but TSH is not available for both values: not counted (rising_tg_requires_tsh).")
            return "stable"
        tp.notes.append(f"Tg rose {pct}; TSH not available for both values, similar TSH assumed [I].")
    text = (
        f"Non-stimulated Tg rose from {'<' if nadir.below_detection_limit else ''}{_ng(n)} ng/mL ({nadir.date.isoformat()}) "
        f"to {_ng(v)} ng/mL ({latest.date.isoformat()}), {pct} and +{_ng(rise_abs)} ng/mL "
        f"(rising needs >= +{fmt(TG_RISE_PCT)} % and >= +{_ng(TG_RISE_MIN_ABS_NG_ML)} ng/mL)"
    )
    if count:
        tp.ev("ata.tg.rising", text + " -> rising Tg at similar TSH", _CITE_MOM + " [I threshold]", nadir.ref, latest.ref)
    else:
        tp.notes.append(text + "; Table 11 has no rising-Tg rule, so this does not change the category.")
    return "rising"


def _tgab_positive(a: TgAbValue) -> bool | None:
    if a.positive is not None:
        return a.positive
    if a.below_detection_limit:
        return False
    if a.value_IU_mL is not None and a.upper_reference_limit_IU_mL is not None:
        return D(a.value_IU_mL) > D(a.upper_reference_limit_IU_mL)
    return None


def _tgab_str(a: TgAbValue) -> str:
    parts = []
    if a.value_IU_mL is not None:
        parts.append(f"{'<' if a.below_detection_limit else ''}{fmt(D(a.value_IU_mL), 2)} IU/mL")
    pos = _tgab_positive(a)
    if pos is not None:
        parts.append("positive" if pos else "negative")
    s = "TgAb " + " ".join(parts) + f" on {a.date.isoformat()}"
    if a.assay:
        s += f" (assay {a.assay})"
    return s


def _tgab_trend(series: list[TgAbValue], latest: TgAbValue) -> tuple[str | None, Evidence | None]:
    """Trend of TgAb up to the latest value (same assay only). Returns (trend, evidence)."""
    earlier = [a for a in series if a is not latest and a.date <= latest.date and a.assay == latest.assay]
    if not earlier:
        return None, None
    latest_pos = _tgab_positive(latest)
    # de novo appearance / disappearance
    if latest_pos:
        negs = [a for a in earlier if _tgab_positive(a) is False]
        if negs and not any(_tgab_positive(a) for a in earlier if a.date > negs[-1].date):
            last_neg = negs[-1]
            return "rising", Evidence(
                "ata.tgab.de_novo",
                f"TgAb newly positive: {_tgab_str(last_neg)} -> {_tgab_str(latest)} (de novo appearance counts as rising)",
                _CITE_TGAB,
                tuple(r for r in (last_neg.ref, latest.ref) if r),
            )
    elif latest_pos is False and any(_tgab_positive(a) for a in earlier):
        first_pos = next(a for a in earlier if _tgab_positive(a))
        return "declining", Evidence(
            "ata.tgab.disappeared",
            f"TgAb became negative: {_tgab_str(first_pos)} -> {_tgab_str(latest)}",
            _CITE_TGAB,
            tuple(r for r in (first_pos.ref, latest.ref) if r),
        )
    quant = [a for a in earlier if a.value_IU_mL is not None]
    if latest.value_IU_mL is None or not quant:
        return None, None
    v = D(latest.value_IU_mL)
    nadir = min(quant, key=lambda a: D(a.value_IU_mL))
    first = quant[0]
    n, f = D(nadir.value_IU_mL), D(first.value_IU_mL)
    if not latest.below_detection_limit and ((n <= 0 and v > 0) or (n > 0 and (v - n) * 100 >= TGAB_RISE_PCT * n)):
        pct = fmt_pct(pct_change(v, n)) if n > 0 else "from 0"
        return "rising", Evidence(
            "ata.tgab.rising",
            f"TgAb {fmt(v, 2)} IU/mL ({latest.date.isoformat()}) is {pct} from the nadir {fmt(n, 2)} IU/mL "
            f"({nadir.date.isoformat()}) on the same assay (rising needs >= +{fmt(TGAB_RISE_PCT)} %)",
            _CITE_TGAB,
            tuple(r for r in (nadir.ref, latest.ref) if r),
        )
    if f > 0 and (v - f) * 100 <= TGAB_DECLINE_PCT * f:
        return "declining", Evidence(
            "ata.tgab.declining",
            f"TgAb {fmt(v, 2)} IU/mL ({latest.date.isoformat()}) is {fmt_pct(pct_change(v, f))} from the first value "
            f"{fmt(f, 2)} IU/mL ({first.date.isoformat()}) on the same assay (declining needs <= {fmt_pct(TGAB_DECLINE_PCT)})",
            _CITE_TGAB,
            tuple(r for r in (first.ref, latest.ref) if r),
        )
    ref_txt = f"nadir {fmt(n, 2)}" if n != f else f"first value {fmt(f, 2)}"
    return "stable", Evidence(
        "ata.tgab.stable",
        f"TgAb {fmt(v, 2)} IU/mL ({latest.date.isoformat()}) vs {ref_txt} IU/mL on the same assay: neither >= "
        f"+{fmt(TGAB_RISE_PCT)} % from nadir nor <= {fmt_pct(TGAB_DECLINE_PCT)} from first value (stable)",
        _CITE_TGAB,
        tuple(r for r in (first.ref, nadir.ref, latest.ref) if r),
    )


def _select_tg(tp: _Tp, inputs: AtaInputs, d: date) -> list[TgValue]:
    """The Tg values of the current work-up (1 or 2 values), most recent last."""
    usable = [t for t in inputs.tg if t.date <= d]
    if inputs.surgery is Surgery.LOBECTOMY:
        if any(t.condition.stimulated for t in usable):
            tp.notes.append("Stimulated Tg is not interpretable after lobectomy (thyroid lobe in place) and was ignored.")
        usable = [t for t in usable if not t.condition.stimulated]
    if not usable:
        return []
    # stable ordering: date, then stimulated after suppressed on the same date
    usable.sort(key=lambda t: (t.date, t.condition.stimulated))
    latest = usable[-1]
    other = [t for t in usable if t.condition.stimulated != latest.condition.stimulated
             and abs((latest.date - t.date).days) <= TG_PAIRING_DAYS]
    return ([other[-1]] if other else []) + [latest]


def _imaging_state(inputs: AtaInputs, d: date) -> list[ImagingFinding]:
    latest: dict[ImagingModality, ImagingFinding] = {}
    for f in sorted((f for f in inputs.imaging if f.date <= d), key=lambda f: f.date):
        latest[f.modality] = f
    return list(latest.values())


def _img_str(f: ImagingFinding) -> str:
    s = f"{f.modality.value} {f.date.isoformat()}: {f.result.value}"
    return s + (f" ({f.description})" if f.description else "")


def _classify(inputs: AtaInputs, d: date, opts: _Options) -> _Tp:
    tp = _Tp()
    surgery = inputs.surgery
    tp.values["framework"] = _framework(surgery)
    if surgery is Surgery.TOTAL_THYROIDECTOMY_RAI:
        tp.values["Tg_boundary"] = "\u2265" if opts.biochemical_boundary == "ge" else ">"

    # TSH for context
    tshs = sorted((x for x in inputs.tsh if x.date <= d), key=lambda x: x.date)
    if tshs:
        tp.values["TSH_mIU_L"] = D(tshs[-1].value_mIU_L)
        tp.values["TSH_date"] = tshs[-1].date

    # ---- imaging ----
    imaging = _imaging_state(inputs, d)
    for f in imaging:
        tp.values[f"imaging_{f.modality.name}"] = f.result.value
    if not imaging:
        tp.missing.append("imaging (neck ultrasound, diagnostic whole-body scan or cross-sectional imaging)")
    disease = [f for f in imaging if f.result is ImagingResult.DISEASE]
    equivocal = [f for f in imaging if f.result in (ImagingResult.NONSPECIFIC, ImagingResult.FAINT_THYROID_BED_UPTAKE)]

    # ---- Tg (collected for values even when not used) ----
    work_up = _select_tg(tp, inputs, d)
    bands = [(t, *_tg_band(t, surgery, opts)) for t in work_up]
    governing: TgValue | None = None
    tg_band: str | None = None
    if bands:
        bio = [b for b in bands if b[1] == _BAND_BIOCHEMICAL]
        stim = [b for b in bands if b[0].condition.stimulated]
        chosen = bio[0] if bio else (stim[0] if stim else bands[-1])
        governing, tg_band = chosen[0], chosen[1]
        tp.values["Tg_ng_mL"] = D(governing.value_ng_mL)
        tp.values["Tg_condition"] = governing.condition.value
        tp.values["Tg_below_detection_limit"] = governing.below_detection_limit
        tp.values["Tg_date"] = governing.date
        for t, _, _, _ in bands:
            key = "Tg_stimulated_ng_mL" if t.condition.stimulated else "Tg_suppressed_ng_mL"
            tp.values[key] = D(t.value_ng_mL)
        tsh_g = _tsh_for(governing, inputs)
        if tsh_g is not None:
            tp.values["Tg_TSH_mIU_L"] = tsh_g
    momesso = surgery is not Surgery.TOTAL_THYROIDECTOMY_RAI

    # ---- TgAb ----
    tgab_series = sorted((a for a in inputs.tgab if a.date <= d), key=lambda a: a.date)
    tgab_latest = tgab_series[-1] if tgab_series else None
    tgab_pos = _tgab_positive(tgab_latest) if tgab_latest else None
    tgab_trend: str | None = None
    tgab_ev: Evidence | None = None
    if tgab_latest is not None:
        if tgab_latest.value_IU_mL is not None:
            tp.values["TgAb_IU_mL"] = D(tgab_latest.value_IU_mL)
        tp.values["TgAb_positive"] = tgab_pos
        tp.values["TgAb_date"] = tgab_latest.date
        tgab_trend, tgab_ev = _tgab_trend(tgab_series, tgab_latest)
        tp.values["TgAb_trend"] = tgab_trend

    # ---- 1. structural ----
    if disease:
        tp.category = STRUCTURAL_INCOMPLETE
        for f in disease:
            tp.ev(
                "ata.structural",
                f"{_img_str(f)} -> structural/functional evidence of disease (structural incomplete, any Tg, +/- TgAb)",
                _CITE_T11 if not momesso else _CITE_MOM,
                f.ref,
            )
        tp.missing.clear()
        return tp
    if not imaging:
        return tp

    # ---- 2. TgAb needed ----
    if tgab_latest is None:
        tp.missing.append("anti-thyroglobulin antibodies (TgAb) - Tg can only be interpreted when TgAb are absent")
        return tp
    if tgab_pos is None:
        tp.missing.append("TgAb interpretation (positive/negative, or the assay cut-off)")
        return tp

    cite_main = _CITE_MOM if momesso else _CITE_T11

    if tgab_pos:
        tp.ev(
            "ata.tgab.positive",
            f"{_tgab_str(tgab_latest)}: Tg is unreliable (TgAb interference lowers immunometric Tg); classified by TgAb trend",
            cite_main,
            tgab_latest.ref,
        )
        if tgab_ev is not None:
            tp.evidence.append(tgab_ev)
        if opts.elevated_tg_counts_with_tgab and tg_band == _BAND_BIOCHEMICAL and governing is not None:
            text = next(b[2] for b in bands if b[0] is governing)
            cite = next(b[3] for b in bands if b[0] is governing)
            tp.ev("ata.tg.biochemical", text + "; TgAb can only lower measured Tg, so the elevated Tg stands [I]", cite, governing.ref)
            tp.category = BIOCHEMICAL_INCOMPLETE
            return tp
        if tgab_trend == "rising":
            tp.category = BIOCHEMICAL_INCOMPLETE
            tp.ev("ata.biochemical.tgab_rising", "Rising TgAb without structural/functional disease -> biochemical incomplete", cite_main)
            return tp
        tp.category = INDETERMINATE
        if tgab_trend is None:
            tp.notes.append(
                "TgAb trend not assessable (one value, or no earlier value on the same assay): treated as not rising; "
                "repeat TgAb on the same assay."
            )
        tp.ev(
            "ata.indeterminate.tgab",
            f"TgAb positive, trend {tgab_trend or 'not assessable'}, no structural/functional disease -> indeterminate",
            cite_main,
        )
        if equivocal:
            for f in equivocal:
                tp.ev("ata.indeterminate.imaging", f"{_img_str(f)} -> non-specific imaging (indeterminate)", cite_main, f.ref)
        return tp

    # ---- 3. TgAb negative: Tg decides ----
    tp.ev("ata.tgab.negative", f"{_tgab_str(tgab_latest)}: Tg interpretable", cite_main, tgab_latest.ref)
    if tgab_ev is not None:
        tp.evidence.append(tgab_ev)
    if governing is None:
        tp.missing.append(
            "non-stimulated (suppressed) thyroglobulin" if surgery is Surgery.LOBECTOMY
            else "thyroglobulin (suppressed or TSH-stimulated)"
        )
        return tp
    for t, band, text, cite in bands:
        tp.ev(f"ata.tg.{band}", text, cite, t.ref)
    tg_trend = _tg_rising(tp, inputs, d, opts, count=momesso)
    if tg_trend is not None:
        tp.values["Tg_trend"] = tg_trend
    if tg_band == _BAND_BIOCHEMICAL:
        tp.category = BIOCHEMICAL_INCOMPLETE
        return tp
    if momesso and tg_trend == "rising":
        tp.category = BIOCHEMICAL_INCOMPLETE
        return tp
    if equivocal:
        for f in equivocal:
            tp.ev("ata.indeterminate.imaging", f"{_img_str(f)} -> non-specific imaging (indeterminate)", cite_main, f.ref)
        tp.category = INDETERMINATE
        return tp
    if tg_band == _BAND_EXCELLENT:
        if surgery is Surgery.LOBECTOMY and tg_trend is None:
            if opts.lobectomy_requires_tg_series:
                tp.ev(
                    "ata.indeterminate.lobectomy_single_tg",
                    "Lobectomy excellent response needs a stable Tg; only one comparable value -> indeterminate",
                    _CITE_MOM + " [I]",
                )
                tp.category = INDETERMINATE
                return tp
            tp.notes.append("Lobectomy: Tg stability cannot be judged from a single value; accepted as stable [I] - repeat Tg.")
        imgs = "; ".join(_img_str(f) for f in imaging)
        tp.ev("ata.excellent", f"Imaging negative ({imgs}), TgAb negative and Tg in the excellent range -> excellent", cite_main,
              *(f.ref for f in imaging))
        tp.category = EXCELLENT
        return tp
    tp.category = INDETERMINATE
    tp.ev("ata.indeterminate.tg", "Tg in the indeterminate range with negative imaging -> indeterminate", cite_main)
    return tp


_LABELS = {
    EXCELLENT: "excellent response",
    BIOCHEMICAL_INCOMPLETE: "biochemical incomplete response",
    STRUCTURAL_INCOMPLETE: "structural incomplete response",
    INDETERMINATE: "indeterminate response",
    NOT_EVALUABLE: "not evaluable (insufficient data)",
}
_OUTCOMES = {
    EXCELLENT: Outcome.COMPLETE,
    BIOCHEMICAL_INCOMPLETE: Outcome.STABLE,
    STRUCTURAL_INCOMPLETE: Outcome.STABLE,
    INDETERMINATE: Outcome.INDETERMINATE,
    NOT_EVALUABLE: Outcome.NOT_EVALUABLE,
}
_TP_KEYS = ("Tg_ng_mL", "Tg_condition", "TgAb_IU_mL", "TgAb_positive", "TgAb_trend")


def assess(
    inputs: AtaInputs,
    as_of: date,
    *,
    biochemical_boundary: Literal["ge", "gt"] = "ge",
    elevated_tg_counts_with_tgab: bool = True,
    rising_tg_requires_tsh: bool = False,
    lobectomy_requires_tg_series: bool = False,
) -> Assessment:
    """Classify the response to therapy at every dated result up to ``as_of``; the last one is current.

    biochemical_boundary: "ge" (default, suppressed Tg >= 1 / stimulated >= 10 ng/mL is biochemical
        incomplete, Table 11 reproduction PMC7578621) or "gt" (Haugen Table 12 footnote, > 1 / > 10).
    elevated_tg_counts_with_tgab: with positive TgAb, a Tg in the biochemical range still gives
        biochemical incomplete (default True) [I].
    rising_tg_requires_tsh: Momesso "rising Tg at similar TSH" only counts when TSH is known for both
        values (default False: unknown TSH is assumed similar, with a note) [I].
    lobectomy_requires_tg_series: lobectomy "stable Tg < 30" needs at least two comparable values
        (default False: a single value is accepted, with a note) [I].
    """
    if biochemical_boundary not in ("ge", "gt"):
        raise ValueError("biochemical_boundary must be 'ge' or 'gt'")
    opts = _Options(biochemical_boundary, elevated_tg_counts_with_tgab, rising_tg_requires_tsh, lobectomy_requires_tg_series)
    momesso = inputs.surgery is not Surgery.TOTAL_THYROIDECTOMY_RAI
    criteria = CRITERIA_NO_RAI if momesso else CRITERIA
    source = SOURCE_NO_RAI if momesso else SOURCE

    dates = sorted(
        {t.date for t in inputs.tg} | {a.date for a in inputs.tgab} | {f.date for f in inputs.imaging}
    )
    later = [x for x in dates if x > as_of]
    dates = [x for x in dates if x <= as_of]

    notes: list[str] = []
    if momesso:
        notes.append(
            "No-RAI / lobectomy framework: thresholds from Momesso 2016, not Haugen 2016 Table 11 "
            "(criteria.md §7.2, §12 item 8)."
        )
    else:
        notes.append(
            "Boundary: suppressed Tg 1.0 / stimulated Tg 10 ng/mL counts as "
            + ("biochemical incomplete (\u2265, Table 11 reproduction PMC7578621)." if biochemical_boundary == "ge"
               else "indeterminate (>, Haugen 2016 Table 12 footnote).")
        )
    if later:
        notes.append(f"{len(later)} result date(s) after {as_of.isoformat()} ignored.")

    if not dates:
        return Assessment(
            criteria=criteria,
            category=NOT_EVALUABLE,
            label=_LABELS[NOT_EVALUABLE],
            outcome=Outcome.NOT_EVALUABLE,
            assessment_date=None,
            confirmed=True,
            source=source,
            values={"framework": _framework(inputs.surgery)},
            missing=("thyroglobulin, TgAb and imaging results on or before the assessment date",),
            notes=tuple(notes),
        )

    history: list[TimepointResult] = []
    seen_excellent = inputs.prior_excellent_response
    tp: _Tp = _Tp()
    outcome = Outcome.NOT_EVALUABLE
    recurrence_note: str | None = None
    for d in dates:
        tp = _classify(inputs, d, opts)
        outcome = _OUTCOMES[tp.category]
        recurrence_note = None
        if tp.category == STRUCTURAL_INCOMPLETE and seen_excellent:
            outcome = Outcome.RELAPSE
            recurrence_note = "Structural recurrence: structural incomplete response after an earlier excellent response."
        elif tp.category == BIOCHEMICAL_INCOMPLETE and seen_excellent:
            recurrence_note = (
                "Biochemical recurrence after an earlier excellent response (outcome kept as persistent, "
                "not relapse, until structural disease is found)."
            )
        if tp.category == EXCELLENT:
            seen_excellent = True
        history.append(
            TimepointResult(
                date=d,
                category=tp.category,
                outcome=outcome,
                values={k: tp.values[k] for k in _TP_KEYS if k in tp.values},
            )
        )

    values = dict(tp.values)
    if inputs.initial_risk is not None:
        values["ATA_initial_risk"] = inputs.initial_risk.value
    values["structural_recurrence"] = outcome is Outcome.RELAPSE
    evidence = list(tp.evidence)
    if tp.category == NOT_EVALUABLE:
        values["next_Tg_interval_months"] = None
    else:
        if tp.category == EXCELLENT and inputs.initial_risk is not AtaRisk.HIGH:
            interval = NEXT_TG_INTERVAL_EXCELLENT
            why = "excellent response in an ATA low/intermediate-risk patient (Rec 62C)"
            if inputs.initial_risk is None:
                notes.append("Initial ATA risk not supplied: 12-24-month Tg interval assumes low/intermediate risk; "
                             "high-risk patients keep Tg every 6-12 months (Rec 62E).")
        elif tp.category == EXCELLENT:
            interval = NEXT_TG_INTERVAL_OTHER
            why = "ATA high-risk patient, regardless of response (Rec 62E)"
        else:
            interval = NEXT_TG_INTERVAL_OTHER
            why = f"{tp.category} response (Rec 62E)"
        values["next_Tg_interval_months"] = interval
        evidence.append(Evidence("ata.followup.tg_interval", f"Next Tg in {interval} months: {why}", _CITE_INTERVAL))
    if recurrence_note:
        notes.append(recurrence_note)
    notes.extend(tp.notes)

    label = _LABELS[tp.category]
    if outcome is Outcome.RELAPSE:
        label += " - structural recurrence after excellent response"
    return Assessment(
        criteria=criteria,
        category=tp.category,
        label=label,
        outcome=outcome,
        assessment_date=dates[-1],
        confirmed=True,
        source=source,
        values=values,
        evidence=tuple(evidence),
        history=tuple(history),
        missing=tuple(tp.missing),
        notes=tuple(notes),
    )
