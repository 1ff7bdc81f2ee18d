"""Lugano 2014 response classification for Hodgkin and non-Hodgkin lymphoma, with the Deauville 5PS.

Primary source: Cheson BD et al., J Clin Oncol 2014;32:3059-3068 (Table 3), with the companion PET paper
Barrington SF et al., J Clin Oncol 2014;32:3048-3058 (Deauville five-point scale). Thresholds below follow
criteria.md §4.1-§4.3 (verified [V] against reproductions of Cheson 2014 Table 3); every one is a named module
constant with its locator. Clinical cut-offs are code: changing one is a reviewed diff that touches its citation.

Two entry points, dispatched by :func:`assess` on the input type:

* :func:`assess_pet` -- PET-CT based response (FDG-avid histologies): CMR, PMR, NMR, PMD (plus ``ct_equivalent``
  CR/PR/SD/PD in ``values``).
* :func:`assess_ct` -- CT-based response (non-avid histologies or no PET): CR, PR, SD, PD.

Both return ``NE`` (Outcome.NOT_EVALUABLE) with ``missing`` filled when the data cannot support a category and no
progression rule fires. Progression rules are checked first: progression shown by any one rule is PD/PMD even if
other data are missing (as in Cheson 2014 Table 3, "PD requires at least one of the following").

Interpretation choices ([I] in criteria.md; each is a field of :class:`LuganoOptions`):

1. ``pd_increment_inclusive`` (default True): the single-lesion PD increment "increase in LDi or SDi from nadir
   0.5 cm (lesions <=2 cm) / 1.0 cm (>2 cm)" counts an increase of exactly 5/10 mm (criteria.md §4.3 note and
   §12 item 9; Cheson 2014 Table 3 writes the increment without an inequality sign). The "<=2 cm / >2 cm" size
   class is the lesion's LDi at its PPD nadir (criteria.md §4.3 [I]).
2. ``suv_significant_change_pct`` (default 25 %): Lugano does not quantify a "significant change in FDG uptake"
   (Cheson 2014 Table 3 PMR/NMR/PMD rows). When the Deauville score is unchanged, the SUVmax change is used with
   the EORTC PET threshold (Young H et al., Eur J Cancer 1999;35:1773-1782: >25 % change after more than one
   cycle). Order of evidence for "uptake vs baseline": the reader's stated comparison (``uptake_vs_baseline``) >
   a change of Deauville score > the SUVmax change > the same Deauville score with no SUVmax (= no change).
3. ``deauville3_is_cmr`` (default True): score 3 is CMR in routine practice; some de-escalation trials treat it
   as inadequate response (criteria.md §4.1; Barrington 2014). When False, score 3 is assessed like 4-5.
4. ``spleen_reference`` (default "nadir"): spleen PD compares the current length with the smallest length on
   study including baseline (criteria.md §0 convention 4, nadir). Cheson's worked example (15 cm spleen must
   exceed 16 cm) and vignette LUGANO-11 are the same under either choice.
5. ``new_splenomegaly_requires_2cm`` (default True): Cheson 2014 lists both "no prior splenomegaly: increase of
   at least 2 cm from baseline" and "new or recurrent splenomegaly". Default: a spleen that was normal at the
   reference needs the 2 cm increase (the numeric rule); a spleen that was enlarged at baseline, regressed to
   normal and is now enlarged again is recurrent splenomegaly (PD) regardless of the increment.
6. ``assume_unreported_marrow_uninvolved`` (default True): CT-based CR needs a normal marrow. A marrow involved at
   baseline must be shown normal again (vignette LUGANO-09: not re-biopsied -> PR at best); a marrow not involved
   at its last assessment needs no repeat. When marrow status was never reported, the default treats it as not
   involved and says so in the notes; set False to withhold CR instead.
7. PET-CT marrow: when no separate marrow statement is given, the highest Deauville score (assigned over all
   sites of a whole-body scan, marrow included) governs; a note says so.
8. Recurrence after CMR/CR: Lugano has no separate relapse threshold (criteria.md §4.3 last line); the PD/PMD
   rules apply and the evidence notes the relapse. For PET, a Deauville 4-5 lymphoma site after an earlier CMR is
   recurrent FDG-avid disease (PMD) even if uptake is not higher than at baseline.
9. Lugano needs no confirmatory scan (criteria.md §11): ``confirmed`` is True for every evaluable category.
10. LYRIC (Cheson BD et al., Blood 2016;128:2489; criteria.md §12b) adds an "indeterminate response" (IR) for
    immunomodulatory therapy. It is not implemented; when ``immunomodulatory_therapy`` is set and the result is
    PD/PMD a note says LYRIC IR should be considered.

Units: all lengths in mm, products in mm^2 (criteria.md §1: Lugano writes cm, the engine uses mm; the mapper
converts spleen lengths given in cm). Standard library only; no I/O, no logging, no clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Final, Literal

from .base import (
    Assessment,
    D,
    EvidenceLog,
    KeyValue,
    Number,
    Outcome,
    Source,
    TimepointResult,
    change_at_least,
    change_at_most,
    fmt,
    fmt_pct,
    pct_change,
)

__all__ = [
    "CRITERIA",
    "CRITERIA_CT",
    "CRITERIA_PET",
    "SOURCE",
    "CtAssessment",
    "CtMarrow",
    "GivenNadir",
    "LesionKind",
    "LesionMeasurement",
    "LuganoCtInputs",
    "LuganoInputError",
    "LuganoOptions",
    "LuganoPetInputs",
    "NewLesion",
    "NonMeasured",
    "PetFinding",
    "PetMarrow",
    "PetScan",
    "UptakeChange",
    "assess",
    "assess_ct",
    "assess_pet",
]

CRITERIA: Final = "Lugano 2014"
CRITERIA_PET: Final = "Lugano 2014 (PET-CT)"
CRITERIA_CT: Final = "Lugano 2014 (CT-based)"
SOURCE: Final = Source(
    label="Cheson BD et al. Recommendations for initial evaluation, staging, and response assessment of Hodgkin "
    "and non-Hodgkin lymphoma: the Lugano classification. J Clin Oncol 2014;32:3059-3068",
    url="https://doi.org/10.1200/JCO.2013.54.8800",
)

_CIT_5PS: Final = "Barrington 2014 (Deauville 5PS); Cheson 2014 Table 3 footnote; criteria.md §4.1"
_CIT_PET: Final = "Cheson 2014 Table 3 (PET-CT based response); criteria.md §4.2"
_CIT_CT: Final = "Cheson 2014 Table 3 (CT-based response); criteria.md §4.3"

# ---------------------------------------------------------------------------
# Thresholds (each cites its source and section)
# ---------------------------------------------------------------------------

# Deauville 5PS: 1-3 = CMR "with or without a residual mass" (Cheson 2014 Table 3 CMR row; criteria.md §4.2).
DEAUVILLE_CMR_MAX: Final = 3
# Scores 4 and 5 are positive (criteria.md §4.1); X = new uptake unlikely to be lymphoma (Cheson 2014 Table 3 fn).
DEAUVILLE_MIN: Final = 1
DEAUVILLE_MAX: Final = 5
DEAUVILLE_X: Final = "X"
# [I] Significant SUVmax change, percent (EORTC PET criteria, Young 1999; Lugano leaves it unquantified).
SUV_SIGNIFICANT_CHANGE_PCT: Final = Decimal(25)

# CT-based (Cheson 2014 Table 3; criteria.md §4.3).
MAX_TARGET_LESIONS: Final = 6                        # "up to 6 of the largest" target nodes/lesions
MEASURABLE_NODE_LDI_ABOVE_MM: Final = Decimal(15)    # measurable node: LDi >1.5 cm
MEASURABLE_EXTRANODAL_LDI_ABOVE_MM: Final = Decimal(10)  # measurable extranodal lesion: LDi >1.0 cm
CR_NODE_LDI_MAX_MM: Final = Decimal(15)              # CR: target nodes regress to LDi <=1.5 cm
PR_SPD_CHANGE_MAX_PCT: Final = Decimal(-50)          # PR: >=50 % decrease in SPD from baseline (inclusive)
TOO_SMALL_DEFAULT_MM: Final = Decimal(5)             # too small to measure: 5 mm x 5 mm default
NORMAL_SPLEEN_LENGTH_MM: Final = Decimal(130)        # normal spleen <=13 cm vertical length
PR_SPLEEN_EXCESS_FRACTION: Final = Decimal("0.5")    # PR: spleen regressed >50 % of its length beyond normal
PD_LESION_LDI_ABOVE_MM: Final = Decimal(15)          # PD single lesion: LDi >1.5 cm
PD_LESION_PPD_INCREASE_PCT: Final = Decimal(50)      # ... AND PPD increase >=50 % from the lesion's nadir
PD_SMALL_LESION_NADIR_LDI_MAX_MM: Final = Decimal(20)  # ... size class: lesions <=2 cm (at nadir [I])
PD_INCREMENT_SMALL_MM: Final = Decimal(5)            # ... AND LDi or SDi +0.5 cm for lesions <=2 cm
PD_INCREMENT_LARGE_MM: Final = Decimal(10)           # ... or +1.0 cm for lesions >2 cm
PD_SPLEEN_FRACTION_OF_PRIOR_EXCESS: Final = Decimal("0.5")  # splenomegaly: increase >50 % of prior excess
PD_SPLEEN_INCREASE_NO_SPLENOMEGALY_MM: Final = Decimal(20)  # no prior splenomegaly: increase >=2 cm
PD_NEW_NODE_ABOVE_MM: Final = Decimal(15)            # new node >1.5 cm in any axis
PD_NEW_EXTRANODAL_ABOVE_MM: Final = Decimal(10)      # new extranodal site >1.0 cm in any axis


class LuganoInputError(ValueError):
    """Inputs that break an invariant (negative size, unknown score, >6 targets): a mapping error."""


@dataclass(frozen=True)
class LuganoOptions:
    """Interpretation choices (see the module docstring, items 1-6)."""

    pd_increment_inclusive: bool = True
    suv_significant_change_pct: Decimal = SUV_SIGNIFICANT_CHANGE_PCT
    deauville3_is_cmr: bool = True
    spleen_reference: Literal["nadir", "baseline"] = "nadir"
    new_splenomegaly_requires_2cm: bool = True
    assume_unreported_marrow_uninvolved: bool = True


DEFAULT_OPTIONS: Final = LuganoOptions()

_LABELS: Final[dict[str, str]] = {
    "CMR": "complete metabolic response",
    "PMR": "partial metabolic response",
    "NMR": "no metabolic response",
    "PMD": "progressive metabolic disease",
    "CR": "complete response",
    "PR": "partial response",
    "SD": "stable disease",
    "PD": "progressive disease",
    "NE": "not evaluable",
}
_OUTCOMES: Final[dict[str, Outcome]] = {
    "CMR": Outcome.COMPLETE,
    "CR": Outcome.COMPLETE,
    "PMR": Outcome.PARTIAL,
    "PR": Outcome.PARTIAL,
    "NMR": Outcome.STABLE,
    "SD": Outcome.STABLE,
    "PMD": Outcome.PROGRESSION,
    "PD": Outcome.PROGRESSION,
    "NE": Outcome.NOT_EVALUABLE,
}
CT_EQUIVALENT: Final[dict[str, str]] = {"CMR": "CR", "PMR": "PR", "NMR": "SD", "PMD": "PD", "NE": "NE"}
_PET_RANK: Final[dict[str, int]] = {"CMR": 0, "PMR": 1, "NMR": 2, "PMD": 3}


def _refs(*refs: str | None) -> tuple[str, ...]:
    return tuple(r for r in refs if r)


def _mm(value: Number | None) -> Decimal | None:
    if value is None:
        return None
    v = D(value)
    if v < 0:
        raise LuganoInputError(f"negative length {v} mm")
    return v


@dataclass
class _Step:
    """The result of one time point while the engine works (internal)."""

    category: str
    evidence: EvidenceLog = field(default_factory=EvidenceLog)
    values: dict[str, KeyValue] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _finish(criteria: str, steps: list[tuple[date, _Step]], extra_notes: list[str],
            immunomodulatory: bool, complete_cats: tuple[str, ...], pd_cat: str) -> Assessment:
    """Build the Assessment from the dated steps (last = current)."""
    if not steps:
        return Assessment(criteria=criteria, category="NE", label=_LABELS["NE"], outcome=Outcome.NOT_EVALUABLE,
                          assessment_date=None, confirmed=False, source=SOURCE,
                          missing=("a response assessment after baseline on or before the assessment date",),
                          notes=tuple(extra_notes))
    history = tuple(TimepointResult(date=d, category=s.category, outcome=_OUTCOMES[s.category],
                                    values=dict(s.values)) for d, s in steps)
    current_date, cur = steps[-1]
    notes = list(extra_notes) + cur.notes
    if cur.category == pd_cat and any(s.category in complete_cats for _, s in steps[:-1]):
        earlier = next(d for d, s in steps[:-1] if s.category in complete_cats)
        cur.evidence.add("lugano.relapse", f"{pd_cat} after {complete_cats[0]} on {earlier.isoformat()}: relapse. "
                         "Lugano has no separate relapse threshold; the progression rules apply.",
                         "criteria.md §4.3 (relapse after CR = PD criteria); §11")
    if cur.category == pd_cat and immunomodulatory:
        notes.append("Immunomodulatory therapy: under LYRIC (Cheson BD et al., Blood 2016;128:2489) this "
                     "progression may be an indeterminate response (IR, flare/pseudoprogression); LYRIC is not "
                     "implemented here (criteria.md §12b).")
    if cur.category in complete_cats:
        notes.append("Routine surveillance imaging after complete response is discouraged for curable lymphomas "
                     "(Lugano 2014; ASH Choosing Wisely; criteria.md §13).")
    confirmed = cur.category != "NE"
    if confirmed:
        cur.evidence.add("lugano.confirmation", "Lugano 2014 requires no confirmatory scan: the category stands "
                         "as assessed (end-of-treatment imaging defines remission).", "criteria.md §11")
    return Assessment(criteria=criteria, category=cur.category, label=_LABELS[cur.category],
                      outcome=_OUTCOMES[cur.category], assessment_date=current_date, confirmed=confirmed,
                      source=SOURCE, values=dict(cur.values), evidence=cur.evidence.items(), history=history,
                      missing=tuple(cur.missing), notes=tuple(dict.fromkeys(notes)))


# ===========================================================================
# PET-CT
# ===========================================================================


class PetMarrow(StrEnum):
    """Bone-marrow FDG finding on PET-CT (Cheson 2014 Table 3, bone marrow column)."""

    NO_FDG_AVID_DISEASE = "no_fdg_avid_disease"  # CMR: no evidence of FDG-avid disease in marrow
    DIFFUSE_REACTIVE = "diffuse_reactive"        # diffuse uptake compatible with reactive change (G-CSF, chemo)
    RESIDUAL_REDUCED = "residual_reduced"        # PMR: residual uptake > normal marrow but reduced vs baseline
    UNCHANGED = "unchanged"                      # NMR: no change from baseline
    NEW_OR_RECURRENT = "new_or_recurrent"        # PMD: new or recurrent FDG-avid foci


class UptakeChange(StrEnum):
    """FDG uptake of lymphoma sites compared with baseline."""

    REDUCED = "reduced"
    UNCHANGED = "unchanged"
    INCREASED = "increased"


@dataclass(frozen=True)
class PetFinding:
    """One site on a PET-CT report.

    deauville: 1-5 or "X" (new uptake unlikely to be lymphoma, never counted as lymphoma).
    new: the site was not involved at baseline.
    le_surrounding_normal_tissue: Waldeyer's ring / extranodal site with high physiological uptake, or marrow/
        spleen activation, whose uptake is not above surrounding normal tissue: CMR may be inferred there
        (Cheson 2014 Table 3 CMR row), so its score is not counted.
    """

    site: str
    deauville: int | str
    new: bool = False
    le_surrounding_normal_tissue: bool = False
    ref: str | None = None


@dataclass(frozen=True)
class PetScan:
    """One PET-CT assessment.

    highest_deauville_score: the reader's highest score over lymphoma sites (X excluded); the engine also takes
        the maximum with the numeric ``findings``.
    suv_max: highest SUVmax of lymphoma sites.
    new_fdg_avid_lesions: new FDG-avid foci consistent with lymphoma (True -> PMD).
    uptake_vs_baseline: the reader's stated comparison with baseline, if any.
    deauville_as_reported: the score was taken from report text ("as reported"), not a coded observation.
    residual_mass_mm: LDi x SDi of a residual mass, shown in the evidence (it does not prevent CMR).
    date: required for follow-up scans; may be None for a baseline given without date.
    """

    date: date | None
    highest_deauville_score: int | None = None
    suv_max: Decimal | None = None
    findings: tuple[PetFinding, ...] = ()
    new_fdg_avid_lesions: bool | None = None
    bone_marrow: PetMarrow | None = None
    uptake_vs_baseline: UptakeChange | None = None
    deauville_as_reported: bool = False
    timepoint: str | None = None
    residual_mass_mm: tuple[Decimal, Decimal] | None = None
    ref: str | None = None


@dataclass(frozen=True)
class LuganoPetInputs:
    """Baseline (optional) and follow-up PET-CT scans; the latest on or before ``as_of`` is classified."""

    scans: tuple[PetScan, ...]
    baseline: PetScan | None = None
    histology: str | None = None
    immunomodulatory_therapy: bool = False


def _score(value: int | str) -> int | str:
    if isinstance(value, str):
        v = value.strip().upper()
        if v == DEAUVILLE_X:
            return DEAUVILLE_X
        if v.isdigit():
            value = int(v)
        else:
            raise LuganoInputError(f"unknown Deauville score {value!r}")
    if isinstance(value, bool) or not DEAUVILLE_MIN <= value <= DEAUVILLE_MAX:
        raise LuganoInputError(f"Deauville score must be 1-5 or X, got {value!r}")
    return value


def _lymphoma_score(scan: PetScan) -> tuple[int | None, list[PetFinding], list[PetFinding]]:
    """Highest Deauville score over lymphoma sites, plus the X findings and the physiological-uptake findings."""
    scores: list[int] = []
    if scan.highest_deauville_score is not None:
        s = _score(scan.highest_deauville_score)
        if s == DEAUVILLE_X:
            raise LuganoInputError("highest_deauville_score is over lymphoma sites and cannot be X")
        scores.append(int(s))
    x_findings: list[PetFinding] = []
    physiological: list[PetFinding] = []
    for f in scan.findings:
        s = _score(f.deauville)
        if s == DEAUVILLE_X:
            x_findings.append(f)
        elif f.le_surrounding_normal_tissue:
            physiological.append(f)
        else:
            scores.append(int(s))
    return (max(scores) if scores else None), x_findings, physiological


def _uptake_change(scan: PetScan, cur_ds: int, baseline: PetScan | None, opts: LuganoOptions,
                   step: _Step, refs: tuple[str, ...]) -> UptakeChange | None:
    """Compare lymphoma-site uptake with baseline (module docstring item 2)."""
    if scan.uptake_vs_baseline is not None:
        change = UptakeChange(scan.uptake_vs_baseline)
        step.evidence.add("lugano.pet.uptake.reported", f"Uptake compared with baseline: {change.value} (as stated "
                          "by the reader).", _CIT_PET, refs)
        return change
    if baseline is None:
        return None
    base_ds, _, _ = _lymphoma_score(baseline)
    base_refs = refs + _refs(baseline.ref)
    if base_ds is not None and base_ds != cur_ds:
        change = UptakeChange.REDUCED if cur_ds < base_ds else UptakeChange.INCREASED
        step.evidence.add("lugano.pet.uptake.deauville", f"Deauville score {base_ds} at baseline -> {cur_ds} now: "
                          f"uptake {change.value}.", _CIT_5PS, base_refs)
        return change
    if scan.suv_max is not None and baseline.suv_max is not None and D(baseline.suv_max) > 0:
        cur, base = D(scan.suv_max), D(baseline.suv_max)
        thr = D(opts.suv_significant_change_pct)
        pct = pct_change(cur, base)
        step.values["pct_change_SUVmax"] = pct
        if change_at_most(cur, base, -thr):
            change, cmp_ = UptakeChange.REDUCED, f"<= -{fmt(thr)} %"
        elif change_at_least(cur, base, thr):
            change, cmp_ = UptakeChange.INCREASED, f">= +{fmt(thr)} %"
        else:
            change, cmp_ = UptakeChange.UNCHANGED, f"within +/-{fmt(thr)} %"
        step.evidence.add("lugano.pet.uptake.suvmax",
                          f"SUVmax {fmt(base, 2)} at baseline -> {fmt(cur, 2)} now ({fmt_pct(pct)}, {cmp_}): uptake "
                          f"{change.value} (significant change taken as {fmt(thr)} %, an interpretation: Lugano "
                          "does not quantify it).", "EORTC PET criteria (Young 1999) [I]; " + _CIT_PET, base_refs)
        return change
    if base_ds is not None:
        step.evidence.add("lugano.pet.uptake.deauville", f"Deauville score {base_ds} at baseline and {cur_ds} now, "
                          "no SUVmax to compare: no significant change in uptake shown.", _CIT_5PS, base_refs)
        return UptakeChange.UNCHANGED
    return None


def _assess_scan(scan: PetScan, baseline: PetScan | None, prior: list[str], opts: LuganoOptions) -> _Step:
    step = _Step(category="NE")
    refs = _refs(scan.ref)
    ds, x_findings, physiological = _lymphoma_score(scan)
    cmr_max = DEAUVILLE_CMR_MAX if opts.deauville3_is_cmr else DEAUVILLE_CMR_MAX - 1
    components: list[str] = []
    if scan.timepoint:
        step.values["timepoint"] = scan.timepoint
    step.values["deauville_as_reported"] = scan.deauville_as_reported
    if scan.suv_max is not None:
        step.values["SUVmax_current"] = D(scan.suv_max)
    if baseline is not None:
        base_ds, _, _ = _lymphoma_score(baseline)
        if base_ds is not None:
            step.values["baseline_highest_deauville_score"] = base_ds
        if baseline.suv_max is not None:
            step.values["SUVmax_baseline"] = D(baseline.suv_max)

    for f in x_findings:
        step.evidence.add("lugano.pet.score_x", f"{f.site}: Deauville X (new uptake unlikely to be related to "
                          "lymphoma) is not counted as lymphoma.", _CIT_5PS, _refs(f.ref) or refs)
    for f in physiological:
        step.evidence.add("lugano.pet.physiological", f"{f.site}: score {f.deauville} but uptake not above "
                          "surrounding normal tissue (high physiological uptake or activation): CMR may be inferred "
                          "at this site.", _CIT_PET, _refs(f.ref) or refs)

    # New FDG-avid foci consistent with lymphoma -> PMD (Cheson 2014 Table 3 PMD row, new lesions column).
    new_sites = [f for f in scan.findings if f.new and _score(f.deauville) != DEAUVILLE_X
                 and not f.le_surrounding_normal_tissue and int(_score(f.deauville)) > DEAUVILLE_CMR_MAX]
    for f in new_sites:
        step.evidence.add("lugano.pet.pmd.new_lesion", f"New FDG-avid focus at {f.site} (Deauville {f.deauville}) "
                          "consistent with lymphoma: progressive metabolic disease.", _CIT_PET, _refs(f.ref) or refs)
        components.append("PMD")
    if scan.new_fdg_avid_lesions:
        step.evidence.add("lugano.pet.pmd.new_lesion", "New FDG-avid foci consistent with lymphoma reported: "
                          "progressive metabolic disease.", _CIT_PET, refs)
        components.append("PMD")
    elif scan.new_fdg_avid_lesions is False and not new_sites:
        step.evidence.add("lugano.pet.no_new_lesions", "No new FDG-avid lesions.", _CIT_PET, refs)

    # Bone marrow column.
    if scan.bone_marrow is None:
        step.notes.append("Bone marrow uptake not reported separately; the highest Deauville score (over all sites "
                          "of the whole-body scan) is taken to cover marrow.")
    else:
        marrow = PetMarrow(scan.bone_marrow)
        step.values["bone_marrow_fdg"] = marrow.value
        cat, text = {
            PetMarrow.NO_FDG_AVID_DISEASE: ("CMR", "no evidence of FDG-avid disease in marrow"),
            PetMarrow.DIFFUSE_REACTIVE: ("CMR", "diffuse uptake compatible with reactive change (e.g. after "
                                         "G-CSF/chemotherapy) is allowed for CMR"),
            PetMarrow.RESIDUAL_REDUCED: ("PMR", "residual uptake above normal marrow but reduced compared with "
                                         "baseline: partial metabolic response"),
            PetMarrow.UNCHANGED: ("NMR", "no change in marrow uptake from baseline: no metabolic response"),
            PetMarrow.NEW_OR_RECURRENT: ("PMD", "new or recurrent FDG-avid marrow foci: progressive metabolic "
                                         "disease"),
        }[marrow]
        step.evidence.add(f"lugano.pet.marrow.{marrow.value}", f"Bone marrow: {text}.", _CIT_PET, refs)
        components.append(cat)

    # Lymph nodes and extralymphatic sites.
    if ds is None:
        if not components or max(_PET_RANK[c] for c in components) < _PET_RANK["PMD"]:
            step.missing.append("Deauville score of the lymphoma sites on the current PET-CT")
    else:
        step.values["highest_deauville_score"] = ds
        tag = " (as reported)" if scan.deauville_as_reported else ""
        if ds <= cmr_max:
            mass = (f"; residual mass {fmt(D(scan.residual_mass_mm[0]))}x{fmt(D(scan.residual_mass_mm[1]))} mm "
                    "does not prevent CMR" if scan.residual_mass_mm else ", with or without a residual mass")
            step.evidence.add("lugano.pet.cmr", f"Highest Deauville score at lymphoma sites {ds}{tag} (CMR needs "
                              f"<= {cmr_max}){mass}.", _CIT_PET + "; " + _CIT_5PS, refs)
            components.append("CMR")
            if ds == DEAUVILLE_CMR_MAX:
                step.notes.append("Deauville 3 is CMR in routine practice; some de-escalation trials regard it as "
                                  "inadequate response (criteria.md §4.1).")
        elif "CMR" in prior:
            step.evidence.add("lugano.pet.pmd.recurrence", f"Deauville {ds}{tag} at a lymphoma site after an earlier "
                              "complete metabolic response: recurrent FDG-avid disease.", _CIT_PET, refs)
            components.append("PMD")
        else:
            change = _uptake_change(scan, ds, baseline, opts, step, refs)
            if change is None:
                step.missing.append("baseline PET-CT uptake (Deauville score or SUVmax) to compare with the "
                                    f"current Deauville {ds}")
            else:
                step.values["uptake_change_vs_baseline"] = change.value
                cat = {UptakeChange.REDUCED: "PMR", UptakeChange.UNCHANGED: "NMR",
                       UptakeChange.INCREASED: "PMD"}[change]
                words = {"PMR": "reduced uptake compared with baseline: partial metabolic response",
                         "NMR": "no significant change in uptake from baseline: no metabolic response",
                         "PMD": "increased uptake compared with baseline: progressive metabolic disease"}[cat]
                step.evidence.add(f"lugano.pet.{cat.lower()}", f"Deauville {ds}{tag} (score 4-5) with {words}.",
                                  _CIT_PET, refs)
                components.append(cat)

    if components and (not step.missing or max(_PET_RANK[c] for c in components) == _PET_RANK["PMD"]):
        step.category = max(components, key=lambda c: _PET_RANK[c])
        step.missing.clear()
    step.values["ct_equivalent"] = CT_EQUIVALENT[step.category]
    if step.category == "PMR" and scan.timepoint:
        phase = ("residual disease" if "end" in scan.timepoint.lower()
                 else "responding disease" if "interim" in scan.timepoint.lower() else "")
        if phase:
            step.notes.append(f"PMR at {scan.timepoint} indicates {phase} (Cheson 2014 Table 3).")
    return step


def assess_pet(inputs: LuganoPetInputs, as_of: date, *, options: LuganoOptions = DEFAULT_OPTIONS) -> Assessment:
    """Classify the latest PET-CT on or before ``as_of`` (CMR/PMR/NMR/PMD, or NE)."""
    for s in inputs.scans:
        if s.date is None:
            raise LuganoInputError("every follow-up PET-CT needs a date")
    scans = sorted((s for s in inputs.scans if s.date is not None and s.date <= as_of), key=lambda s: s.date or as_of)
    if inputs.baseline is not None and inputs.baseline.date is not None:
        scans = [s for s in scans if s.date is not None and s.date > inputs.baseline.date]
    notes: list[str] = []
    if len(scans) < len(inputs.scans):
        notes.append("Scans dated after the assessment date (or not after baseline) were not used.")
    steps: list[tuple[date, _Step]] = []
    prior: list[str] = []
    for s in scans:
        if s.date is None:  # filtered above; keeps the type checker informed
            continue
        step = _assess_scan(s, inputs.baseline, prior, options)
        steps.append((s.date, step))
        prior.append(step.category)
    return _finish(CRITERIA_PET, steps, notes, inputs.immunomodulatory_therapy, ("CMR",), "PMD")


# ===========================================================================
# CT-based
# ===========================================================================


class LesionKind(StrEnum):
    NODAL = "nodal"
    EXTRANODAL = "extranodal"


class CtMarrow(StrEnum):
    """Bone marrow by biopsy/morphology."""

    INVOLVED = "involved"
    NOT_INVOLVED = "not_involved"
    INDETERMINATE = "indeterminate"  # morphology indeterminate: CR needs IHC negative


class NonMeasured(StrEnum):
    """Non-measured (non-target) lesions at one assessment."""

    ABSENT = "absent"
    PRESENT = "present"        # present, not changed
    REGRESSED = "regressed"
    INCREASED = "increased"    # unequivocal progression -> PD


@dataclass(frozen=True)
class LesionMeasurement:
    """A target lesion at one assessment: LDi x SDi in mm.

    Disappeared: ``ldi_mm = sdi_mm = 0``. Present but too small to measure: ``too_small_to_measure=True``
    (counted as 5 x 5 mm). Not measured at this assessment: ``ldi_mm``/``sdi_mm`` None.
    """

    lesion_id: str
    ldi_mm: Decimal | None
    sdi_mm: Decimal | None
    too_small_to_measure: bool = False
    kind: LesionKind = LesionKind.NODAL
    ref: str | None = None


@dataclass(frozen=True)
class GivenNadir:
    """A lesion nadir stated directly (e.g. in a report); used with the series to find the nadir."""

    lesion_id: str
    ldi_mm: Decimal
    sdi_mm: Decimal
    date: date | None = None
    ref: str | None = None


@dataclass(frozen=True)
class NewLesion:
    """A lesion not present at baseline. ``attributable_to_lymphoma``: True unequivocal, False another cause
    (e.g. infection; ignored), None equivocal."""

    kind: LesionKind
    ldi_mm: Decimal | None = None
    sdi_mm: Decimal | None = None
    attributable_to_lymphoma: bool | None = None
    site: str = ""
    ref: str | None = None


@dataclass(frozen=True)
class CtAssessment:
    """One CT assessment (the one at ``baseline_date``, or the earliest, is the baseline).

    new_lesions_reported: a report states new lesions consistent with lymphoma (True -> PD) or none (False).
    reported_spd_mm2 / reported_spd_pct_change: sums stated in a report when per-lesion sizes are not given.
    """

    date: date
    lesions: tuple[LesionMeasurement, ...] = ()
    spleen_length_mm: Decimal | None = None
    bone_marrow: CtMarrow | None = None
    non_measured: NonMeasured | None = None
    new_lesions: tuple[NewLesion, ...] = ()
    new_lesions_reported: bool | None = None
    regrowth_of_resolved_lesions: bool = False
    new_or_recurrent_splenomegaly: bool = False
    reported_spd_mm2: Decimal | None = None
    reported_spd_pct_change: Decimal | None = None
    ref: str | None = None


@dataclass(frozen=True)
class LuganoCtInputs:
    assessments: tuple[CtAssessment, ...]
    baseline_date: date | None = None
    given_nadirs: tuple[GivenNadir, ...] = ()
    spleen_nadir_mm: Decimal | None = None
    normal_spleen_length_mm: Decimal = NORMAL_SPLEEN_LENGTH_MM
    histology: str | None = None
    immunomodulatory_therapy: bool = False


Dims = tuple[Decimal, Decimal]


def _dims(m: LesionMeasurement | None) -> Dims | None:
    """LDi x SDi used for the PPD: 5 x 5 mm when too small to measure, None when not measured."""
    if m is None:
        return None
    if m.too_small_to_measure:
        return (TOO_SMALL_DEFAULT_MM, TOO_SMALL_DEFAULT_MM)
    ldi, sdi = _mm(m.ldi_mm), _mm(m.sdi_mm)
    if ldi is None or sdi is None:
        return None
    return (ldi, sdi)


def _ppd(d: Dims) -> Decimal:
    return d[0] * d[1]


def _dims_text(d: Dims) -> str:
    return f"{fmt(d[0])}x{fmt(d[1])} mm"


def _measurement(a: CtAssessment, lesion_id: str) -> LesionMeasurement | None:
    return next((m for m in a.lesions if m.lesion_id == lesion_id), None)


@dataclass(frozen=True)
class _Nadir:
    dims: Dims
    date: date | None
    ref: str | None


def _lesion_nadir(lesion_id: str, history: list[CtAssessment], given: tuple[GivenNadir, ...],
                  current: date) -> _Nadir | None:
    """Smallest-PPD measurement of one lesion before ``current`` (baseline included), given nadirs included."""
    candidates: list[_Nadir] = []
    for a in history:
        d = _dims(_measurement(a, lesion_id))
        if d is not None:
            m = _measurement(a, lesion_id)
            candidates.append(_Nadir(d, a.date, (m.ref if m else None) or a.ref))
    for g in given:
        if g.lesion_id == lesion_id and (g.date is None or g.date < current):
            candidates.append(_Nadir((D(g.ldi_mm), D(g.sdi_mm)), g.date, g.ref))
    if not candidates:
        return None
    return min(candidates, key=lambda n: _ppd(n.dims))


def _spd_of(a: CtAssessment, baseline: CtAssessment) -> Decimal | None:
    """SPD of the baseline target set at assessment ``a`` (None if any target was not measured)."""
    if not baseline.lesions:
        return D(a.reported_spd_mm2) if a.reported_spd_mm2 is not None else None
    total = Decimal(0)
    for bm in baseline.lesions:
        d = _dims(_measurement(a, bm.lesion_id))
        if d is None:
            return None
        total += _ppd(d)
    return total


class _CtContext:
    """One CT time point and everything it is classified against (history = baseline + earlier follow-ups)."""

    def __init__(self, inputs: LuganoCtInputs, history: list[CtAssessment], current: CtAssessment,
                 opts: LuganoOptions) -> None:
        self.inputs, self.history, self.current, self.opts = inputs, history, current, opts
        self.baseline = history[0]
        self.normal = D(inputs.normal_spleen_length_mm)
        self.step = _Step(category="NE")
        self.pd_rules: list[str] = []
        self.cr_blocks: list[str] = []
        self.pr_blocks: list[str] = []
        self.incomplete: list[str] = []
        self.refs = _refs(current.ref)

    def pd(self, rule: str, text: str, refs: tuple[str, ...] = ()) -> None:
        self.pd_rules.append(rule)
        self.step.evidence.add(f"lugano.ct.pd.{rule}", text, _CIT_CT, refs or self.refs)

    def last_known_marrow(self) -> CtMarrow | None:
        for a in reversed(self.history):
            if a.bone_marrow is not None:
                return CtMarrow(a.bone_marrow)
        return None

    def last_known_non_measured(self) -> NonMeasured | None:
        for a in reversed(self.history):
            if a.non_measured is not None:
                return NonMeasured(a.non_measured)
        return None


def _ct_targets(c: _CtContext) -> tuple[Decimal | None, Decimal | None]:
    """Per-lesion PPD against its nadir, the single-lesion PD rule and CR size rules; returns SPDs."""
    step, cur, base, opts = c.step, c.current, c.baseline, c.opts
    ids = [m.lesion_id for m in base.lesions]
    if len(ids) > MAX_TARGET_LESIONS:
        raise LuganoInputError(f"{len(ids)} target lesions at baseline; Lugano allows up to {MAX_TARGET_LESIONS}")
    if len(set(ids)) != len(ids):
        raise LuganoInputError("duplicate target lesion ids at baseline")
    if not ids:
        return None, None
    step.values["target_lesion_count"] = len(ids)
    spd_base: Decimal | None = Decimal(0)
    spd_cur: Decimal | None = Decimal(0)
    any_single_pd = False
    size_blocks_before = len(c.cr_blocks)
    for bm in base.lesions:
        lid = bm.lesion_id
        bd = _dims(bm)
        if bd is None:
            c.incomplete.append(f"baseline LDi x SDi of target lesion {lid}")
            spd_base = None
        else:
            if spd_base is not None:
                spd_base += _ppd(bd)
            step.values[f"PPD_{lid}_baseline_mm2"] = _ppd(bd)
            limit = (MEASURABLE_NODE_LDI_ABOVE_MM if bm.kind == LesionKind.NODAL
                     else MEASURABLE_EXTRANODAL_LDI_ABOVE_MM)
            if not bd[0] > limit:
                step.notes.append(f"Target {lid}: LDi {fmt(bd[0])} mm at baseline is not measurable by Lugano "
                                  f"(needs > {fmt(limit)} mm).")
        m = _measurement(cur, lid)
        cd = _dims(m)
        lrefs = _refs(m.ref if m else None, cur.ref)
        if cd is None:
            c.incomplete.append(f"LDi x SDi of target lesion {lid} on {cur.date.isoformat()}")
            spd_cur = None
            continue
        if spd_cur is not None:
            spd_cur += _ppd(cd)
        step.values[f"PPD_{lid}_current_mm2"] = _ppd(cd)
        step.values[f"LDi_{lid}_current_mm"] = cd[0]
        # CR: target nodes regress to LDi <= 15 mm; extralymphatic disease gone (Cheson 2014 Table 3 CR row).
        if bm.kind == LesionKind.NODAL:
            if not cd[0] <= CR_NODE_LDI_MAX_MM:
                c.cr_blocks.append(f"target node {lid} LDi {fmt(cd[0])} mm > {fmt(CR_NODE_LDI_MAX_MM)} mm")
        elif _ppd(cd) != 0:
            c.cr_blocks.append(f"extranodal target {lid} still present ({_dims_text(cd)})")
        nadir = _lesion_nadir(lid, c.history, c.inputs.given_nadirs, cur.date)
        if nadir is None:
            continue
        nppd, cppd = _ppd(nadir.dims), _ppd(cd)
        step.values[f"PPD_{lid}_nadir_mm2"] = nppd
        nd_txt = f"nadir {_dims_text(nadir.dims)}" + (f" on {nadir.date.isoformat()}" if nadir.date else " (given)")
        nrefs = lrefs + _refs(nadir.ref)
        if nppd == 0:
            # Regrowth of a previously resolved lesion (Cheson 2014 Table 3 PD row).
            if cppd > 0:
                c.pd("regrowth", f"Target {lid} had resolved ({nd_txt}) and is visible again ({_dims_text(cd)}): "
                     "regrowth of a previously resolved lesion.", nrefs)
                any_single_pd = True
            continue
        pct = pct_change(cppd, nppd)
        step.values[f"pct_change_PPD_{lid}_from_nadir"] = pct
        ldi_ok = cd[0] > PD_LESION_LDI_ABOVE_MM
        ppd_ok = change_at_least(cppd, nppd, PD_LESION_PPD_INCREASE_PCT)
        small = nadir.dims[0] <= PD_SMALL_LESION_NADIR_LDI_MAX_MM
        inc = PD_INCREMENT_SMALL_MM if small else PD_INCREMENT_LARGE_MM
        grow = max(cd[0] - nadir.dims[0], cd[1] - nadir.dims[1])
        dim_ok = grow >= inc if opts.pd_increment_inclusive else grow > inc
        op = ">=" if opts.pd_increment_inclusive else ">"
        text = (f"Target {lid}: PPD {fmt(nppd)} -> {fmt(cppd)} mm2 ({fmt_pct(pct)} from {nd_txt}; PD needs >= "
                f"+{fmt(PD_LESION_PPD_INCREASE_PCT)} %: {'met' if ppd_ok else 'not met'}); LDi {fmt(cd[0])} mm "
                f"(PD needs > {fmt(PD_LESION_LDI_ABOVE_MM)} mm: {'met' if ldi_ok else 'not met'}); largest LDi/SDi "
                f"increase from nadir {fmt(grow)} mm (PD needs {op} {fmt(inc)} mm for a lesion "
                f"{'<=' if small else '>'} {fmt(PD_SMALL_LESION_NADIR_LDI_MAX_MM)} mm at nadir: "
                f"{'met' if dim_ok else 'not met'})")
        if ldi_ok and ppd_ok and dim_ok:
            c.pd("single_lesion", text + ": single-lesion PD rule met.", nrefs)
            any_single_pd = True
        else:
            step.evidence.add("lugano.ct.lesion_ppd", text + ": single-lesion PD rule not met.", _CIT_CT, nrefs)
    step.values["individual_node_PD"] = any_single_pd
    if spd_cur is not None and len(c.cr_blocks) == size_blocks_before:
        step.evidence.add("lugano.ct.cr.targets", f"All target nodes LDi <= {fmt(CR_NODE_LDI_MAX_MM)} mm and "
                          "extranodal targets resolved.", _CIT_CT, c.refs)
    return spd_base, spd_cur


def _ct_spleen(c: _CtContext) -> None:
    """Spleen PD rules and the spleen conditions of CR and PR (Cheson 2014 Table 3, organ enlargement)."""
    step, opts, normal = c.step, c.opts, c.normal
    cur = _mm(c.current.spleen_length_mm)
    base = _mm(c.baseline.spleen_length_mm)
    lengths = [v for a in c.history if (v := _mm(a.spleen_length_mm)) is not None]
    given = _mm(c.inputs.spleen_nadir_mm)
    if given is not None:
        lengths.append(given)
    ref = base if opts.spleen_reference == "baseline" else (min(lengths) if lengths else None)
    rname = opts.spleen_reference
    for key, v in (("baseline", base), ("reference", ref), ("current", cur)):
        if v is not None:
            step.values[f"spleen_length_{key}_mm"] = v
    if c.current.new_or_recurrent_splenomegaly:
        c.pd("spleen", "New or recurrent splenomegaly reported.")
    if cur is not None and ref is not None:
        inc = cur - ref
        if ref > normal:
            # Prior splenomegaly: increase by > 50 % of the extent of its prior increase beyond normal.
            need = (ref - normal) * PD_SPLEEN_FRACTION_OF_PRIOR_EXCESS
            head = (f"Spleen {fmt(ref)} mm ({rname}; splenomegaly, normal <= {fmt(normal)} mm) -> {fmt(cur)} mm: "
                    f"increase {fmt(inc)} mm")
            if inc > need:
                c.pd("spleen", f"{head} > {fmt(need)} mm (50 % of its prior increase beyond normal).")
            else:
                step.evidence.add("lugano.ct.spleen", f"{head}; PD needs > {fmt(need)} mm (50 % of its prior "
                                  "increase beyond normal): not met.", _CIT_CT, c.refs)
        elif base is not None and base > normal and cur > normal:
            c.pd("spleen", f"Recurrent splenomegaly: spleen {fmt(base)} mm at baseline, {fmt(ref)} mm at {rname} "
                 f"(normal), now {fmt(cur)} mm > {fmt(normal)} mm.")
        elif inc >= PD_SPLEEN_INCREASE_NO_SPLENOMEGALY_MM:
            new = " (new splenomegaly)" if cur > normal else ""
            c.pd("spleen", f"No prior splenomegaly: spleen {fmt(ref)} mm ({rname}) -> {fmt(cur)} mm, increase "
                 f"{fmt(inc)} mm >= {fmt(PD_SPLEEN_INCREASE_NO_SPLENOMEGALY_MM)} mm{new}.")
        elif cur > normal and not opts.new_splenomegaly_requires_2cm:
            c.pd("spleen", f"New splenomegaly: spleen {fmt(ref)} -> {fmt(cur)} mm > normal {fmt(normal)} mm.")
        else:
            extra = (f"; above normal {fmt(normal)} mm, but new splenomegaly is taken to need the "
                     f"{fmt(PD_SPLEEN_INCREASE_NO_SPLENOMEGALY_MM)} mm increase (interpretation)"
                     if cur > normal else "")
            step.evidence.add("lugano.ct.spleen", f"Spleen {fmt(ref)} mm ({rname}, not enlarged) -> {fmt(cur)} mm: "
                              f"increase {fmt(inc)} mm, PD needs >= {fmt(PD_SPLEEN_INCREASE_NO_SPLENOMEGALY_MM)} "
                              f"mm: not met{extra}.", _CIT_CT, c.refs)
    # CR: enlarged organs regress to normal.
    last = next((v for a in reversed(c.history) if (v := _mm(a.spleen_length_mm)) is not None), None)
    if cur is not None:
        if cur > normal:
            c.cr_blocks.append(f"spleen {fmt(cur)} mm above normal {fmt(normal)} mm")
    elif last is not None and last > normal:
        c.cr_blocks.append("spleen enlarged at the last measurement and not re-measured")
    elif last is None:
        step.notes.append("Spleen length never reported; taken as not enlarged.")
    # PR: spleen regressed by > 50 % of its length beyond normal (e.g. 17 cm must fall below 15 cm).
    if base is not None and base > normal:
        limit = normal + (base - normal) * PR_SPLEEN_EXCESS_FRACTION
        if cur is None:
            c.pr_blocks.append("spleen enlarged at baseline and not re-measured")
        elif not cur < limit:
            c.pr_blocks.append(f"spleen {fmt(cur)} mm has not regressed by > 50 % of its length beyond normal "
                               f"(baseline {fmt(base)} mm; needs < {fmt(limit)} mm)")
        else:
            step.evidence.add("lugano.ct.spleen.pr", f"Spleen {fmt(base)} -> {fmt(cur)} mm: below {fmt(limit)} mm, "
                              f"regressed by > 50 % of its length beyond normal {fmt(normal)} mm.", _CIT_CT, c.refs)


def _ct_new_lesions(c: _CtContext) -> None:
    """New nodes > 15 mm, new extranodal sites > 10 mm, any lesion unequivocally lymphoma, regrowth."""
    cur = c.current
    for n in cur.new_lesions:
        kind = LesionKind(n.kind)
        axes = [v for v in (_mm(n.ldi_mm), _mm(n.sdi_mm)) if v is not None]
        axis = max(axes) if axes else None
        nrefs = _refs(n.ref, cur.ref)
        site = f" ({n.site})" if n.site else ""
        size = f"{fmt(axis)} mm in its largest axis" if axis is not None else "size not given"
        if n.attributable_to_lymphoma is False:
            c.step.evidence.add("lugano.ct.new_lesion.other_cause", f"New {kind.value} finding{site} attributed to "
                                "another cause: not counted.", _CIT_CT, nrefs)
        elif kind == LesionKind.NODAL and axis is not None and axis > PD_NEW_NODE_ABOVE_MM:
            c.pd("new_node", f"New node{site}: {size} > {fmt(PD_NEW_NODE_ABOVE_MM)} mm.", nrefs)
        elif kind == LesionKind.EXTRANODAL and axis is not None and axis > PD_NEW_EXTRANODAL_ABOVE_MM:
            c.pd("new_extranodal", f"New extranodal site{site}: {size} > {fmt(PD_NEW_EXTRANODAL_ABOVE_MM)} mm.",
                 nrefs)
        elif n.attributable_to_lymphoma:
            c.pd("new_attributable", f"New {kind.value} lesion{site} ({size}) unequivocally attributable to "
                 "lymphoma: PD at any size.", nrefs)
        elif kind == LesionKind.NODAL:
            # Nodes with LDi <= 15 mm are normal-sized by Lugano (criteria.md §4.3): not a new lesion.
            c.step.evidence.add("lugano.ct.new_lesion.normal_node", f"New node{site} ({size}; PD needs > "
                                f"{fmt(PD_NEW_NODE_ABOVE_MM)} mm or unequivocal lymphoma): normal-sized, not PD.",
                                _CIT_CT, nrefs)
        else:
            # Extranodal < 10 mm must be unequivocal and attributable to lymphoma for PD (Cheson 2014 Table 3);
            # an equivocal finding is not PD, but CR (no extralymphatic disease) is withheld.
            c.cr_blocks.append(f"equivocal new extranodal finding{site}")
            c.step.evidence.add("lugano.ct.new_lesion.equivocal", f"New extranodal finding{site} ({size}; PD needs > "
                                f"{fmt(PD_NEW_EXTRANODAL_ABOVE_MM)} mm or unequivocal lymphoma): not PD; CR withheld "
                                "while it is unexplained.", _CIT_CT, nrefs)
    if cur.new_lesions_reported:
        c.pd("new_lesion", "New lesion(s) consistent with lymphoma reported.")
    elif cur.new_lesions_reported is False and not cur.new_lesions:
        c.step.evidence.add("lugano.ct.no_new_lesions", "No new lesions.", _CIT_CT, c.refs)
    if cur.regrowth_of_resolved_lesions:
        c.pd("regrowth", "Regrowth of previously resolved lesion(s) reported.")


def _ct_marrow(c: _CtContext) -> None:
    """New or recurrent marrow involvement = PD; CR needs a normal marrow (IHC negative if indeterminate)."""
    cur, step = c.current, c.step
    last = c.last_known_marrow()
    now = CtMarrow(cur.bone_marrow) if cur.bone_marrow is not None else None
    if now is not None:
        step.values["bone_marrow"] = now.value
    if now == CtMarrow.INVOLVED:
        if last == CtMarrow.NOT_INVOLVED:
            kind = "recurrent" if c.baseline.bone_marrow == CtMarrow.INVOLVED else "new"
            c.pd("marrow", f"Bone marrow involved, not involved at the previous assessment: {kind} marrow "
                 "involvement.")
        else:
            c.cr_blocks.append("bone marrow involved")
            if last is None:
                step.notes.append("Marrow involved now; earlier status unknown, so new involvement is not shown.")
    elif now == CtMarrow.INDETERMINATE:
        c.cr_blocks.append("bone marrow morphology indeterminate (CR needs IHC negative)")
    elif now == CtMarrow.NOT_INVOLVED:
        step.evidence.add("lugano.ct.marrow", "Bone marrow not involved.", _CIT_CT, c.refs)
    elif last == CtMarrow.INVOLVED:
        c.cr_blocks.append("bone marrow involved at baseline and not re-assessed")
    elif last == CtMarrow.INDETERMINATE:
        c.cr_blocks.append("bone marrow indeterminate and not re-assessed")
    elif last is None:
        if c.opts.assume_unreported_marrow_uninvolved:
            step.notes.append("Bone marrow status never reported; taken as not involved (interpretation).")
        else:
            c.cr_blocks.append("bone marrow status not reported")


def _ct_non_measured(c: _CtContext) -> None:
    """Unequivocal progression of non-measured lesions = PD; CR needs them absent."""
    now = NonMeasured(c.current.non_measured) if c.current.non_measured is not None else None
    if now is not None:
        c.step.values["non_measured_lesions"] = now.value
    if now == NonMeasured.INCREASED:
        c.pd("non_measured", "Unequivocal progression of pre-existing non-measured lesions.")
    elif now in (NonMeasured.PRESENT, NonMeasured.REGRESSED):
        c.cr_blocks.append(f"non-measured lesions {now.value}")
    elif now is None and c.last_known_non_measured() not in (None, NonMeasured.ABSENT):
        c.cr_blocks.append("non-measured lesions present earlier and not re-assessed")


def _assess_ct_point(inputs: LuganoCtInputs, history: list[CtAssessment], current: CtAssessment,
                     opts: LuganoOptions) -> _Step:
    """Classify one CT follow-up. Order: PD (any rule) > NE (incomplete) > CR > PR > SD."""
    c = _CtContext(inputs, history, current, opts)
    step, base = c.step, c.baseline
    spd_base, spd_cur = _ct_targets(c)
    if not base.lesions:
        # Only sums stated in reports: the single-lesion PD rule and CR sizes cannot be checked.
        spd_base = D(base.reported_spd_mm2) if base.reported_spd_mm2 is not None else None
        spd_cur = D(current.reported_spd_mm2) if current.reported_spd_mm2 is not None else None
        c.cr_blocks.append("per-lesion target sizes not given")
    pr_met: bool | None = None
    pct = Decimal(0)
    if spd_base is not None and spd_cur is not None and spd_base > 0:
        step.values["SPD_baseline_mm2"] = spd_base
        step.values["SPD_current_mm2"] = spd_cur
        pct = pct_change(spd_cur, spd_base)
        step.values["pct_change_SPD"] = pct
        nadirs = [s for a in history if (s := _spd_of(a, base)) is not None]
        if nadirs:
            step.values["SPD_nadir_mm2"] = min(nadirs)
            if min(nadirs) > 0:
                step.values["pct_change_SPD_from_nadir"] = pct_change(spd_cur, min(nadirs))
        pr_met = change_at_most(spd_cur, spd_base, PR_SPD_CHANGE_MAX_PCT)
        step.evidence.add("lugano.ct.spd", f"SPD {fmt(spd_base)} mm2 at baseline -> {fmt(spd_cur)} mm2 now "
                          f"({fmt_pct(pct, 2)}; PR needs <= {fmt(PR_SPD_CHANGE_MAX_PCT)} %).", _CIT_CT, c.refs)
    elif not base.lesions and current.reported_spd_pct_change is not None:
        pct = D(current.reported_spd_pct_change)
        step.values["pct_change_SPD"] = pct
        pr_met = pct <= PR_SPD_CHANGE_MAX_PCT
        step.evidence.add("lugano.ct.spd", f"SPD change from baseline {fmt_pct(pct, 2)} as reported (PR needs <= "
                          f"{fmt(PR_SPD_CHANGE_MAX_PCT)} %); per-lesion sizes not given, so the single-lesion PD "
                          "rule could not be checked.", _CIT_CT, c.refs)
    elif not c.incomplete:
        c.incomplete.append("target lesion measurements (LDi x SDi) or the SPD at baseline and now")
    _ct_spleen(c)
    _ct_new_lesions(c)
    _ct_marrow(c)
    _ct_non_measured(c)

    step.values["pd_rules"] = ",".join(dict.fromkeys(c.pd_rules))
    if c.pd_rules:
        step.category = "PD"
        return step
    if c.incomplete or pr_met is None:
        step.missing.extend(c.incomplete)
        return step
    pct_txt = fmt_pct(pct, 2)
    if not c.cr_blocks:
        step.category = "CR"
        step.evidence.add("lugano.ct.cr", "Complete response: target nodes LDi <= 15 mm, extranodal disease gone, "
                          "non-measured lesions absent, spleen normal, marrow not involved, no new lesions.",
                          _CIT_CT, c.refs)
        return step
    if pr_met and not c.pr_blocks:
        step.category = "PR"
        step.evidence.add("lugano.ct.pr", f"Partial response: SPD {pct_txt} from baseline (<= "
                          f"{fmt(PR_SPD_CHANGE_MAX_PCT)} %); not CR: {'; '.join(c.cr_blocks)}.", _CIT_CT, c.refs)
        return step
    step.category = "SD"
    why = f"SPD {pct_txt} from baseline" + ("" if pr_met else f" (PR needs <= {fmt(PR_SPD_CHANGE_MAX_PCT)} %)")
    if pr_met:
        why += f"; PR not assignable: {'; '.join(c.pr_blocks)}"
    step.evidence.add("lugano.ct.sd", f"Stable disease: {why}; no PD criterion met.", _CIT_CT, c.refs)
    return step


def assess_ct(inputs: LuganoCtInputs, as_of: date, *, options: LuganoOptions = DEFAULT_OPTIONS) -> Assessment:
    """Classify the latest CT assessment on or before ``as_of`` (CR/PR/SD/PD, or NE); history for each follow-up."""
    usable = sorted((a for a in inputs.assessments if a.date <= as_of), key=lambda a: a.date)
    notes: list[str] = []
    if len(usable) < len(inputs.assessments):
        notes.append("Assessments dated after the assessment date were not used.")
    if inputs.baseline_date is not None:
        base = next((a for a in usable if a.date == inputs.baseline_date), None)
    else:
        base = usable[0] if usable else None
    if base is None:
        return Assessment(criteria=CRITERIA_CT, category="NE", label=_LABELS["NE"], outcome=Outcome.NOT_EVALUABLE,
                          assessment_date=None, confirmed=False, source=SOURCE,
                          missing=("baseline CT assessment on or before the assessment date",), notes=tuple(notes))
    follow = [a for a in usable if a.date > base.date]
    steps = [(a.date, _assess_ct_point(inputs, [base] + follow[:i], a, options)) for i, a in enumerate(follow)]
    return _finish(CRITERIA_CT, steps, notes, inputs.immunomodulatory_therapy, ("CR",), "PD")


def assess(inputs: LuganoPetInputs | LuganoCtInputs, as_of: date, *,
           options: LuganoOptions = DEFAULT_OPTIONS) -> Assessment:
    """Lugano 2014: PET-CT based (CMR/PMR/NMR/PMD) or CT-based (CR/PR/SD/PD), chosen by the type of ``inputs``."""
    if isinstance(inputs, LuganoPetInputs):
        return assess_pet(inputs, as_of, options=options)
    if isinstance(inputs, LuganoCtInputs):
        return assess_ct(inputs, as_of, options=options)
    raise TypeError(f"unsupported Lugano inputs: {type(inputs).__name__}")
