"""Choi criteria for GIST on imatinib (Choi H et al., J Clin Oncol 2007;25:1753-1759).

Response combines tumour size (sum of longest diameters, SLD, mm) with mean CT attenuation (HU)
(criteria.md §10.6):

* CR: all lesions disappeared, no new lesions;
* PR: SLD decreased >= 10 % **or** mean attenuation decreased >= 15 % (vs baseline); no new lesions; no obvious
  progression of non-measurable disease;
* PD: SLD increased >= 10 % **and** not PR by attenuation; or new lesions; or new intratumoural nodules /
  growth of existing intratumoural nodules;
* SD: none of these, no symptomatic deterioration attributed to tumour progression.

``modified=True`` gives modified Choi (used for renal cell carcinoma): PR needs **both** the size and the
attenuation decrease (criteria.md §10.6); the other rules are unchanged.

Values also carry a RECIST 1.1 reading of the same SLD (``RECIST_1.1_equivalent``: PR <= -30 % vs baseline,
PD >= +20 % and >= +5 mm vs nadir, new lesions / non-measurable progression PD; intratumoural nodules are not
RECIST progression).

Interpretation choices [I]:

* Size increase for PD is measured from the nadir (smallest SLD on study incl. baseline), as RECIST 1.1 does;
  ``size_pd_reference="baseline"`` measures it from baseline.  Decreases (PR) are always vs baseline, and,
  as in RECIST 1.1, a size PD vs the nadir is checked before a size PR vs baseline (only PR by attenuation
  prevents size PD, per Choi's table).
* Mean attenuation of several lesions = plain mean of the lesion means (exact, as a fraction); every lesion must
  have a value, otherwise attenuation is unknown.  A baseline attenuation <= 0 HU gives no percent change.
* Missing data: PR by one criterion alone is certain when the other is missing (standard Choi only); otherwise
  a missing SLD or attenuation that could change the category gives NE (never a guess).
* Modified Choi PD: a >= 10 % size increase is PD whenever modified PR is not met (it cannot be with a size
  increase), i.e. attenuation does not rescue it.
* Obvious progression of non-measurable disease and symptomatic deterioration attributed to tumour progression
  exclude PR/SD in Choi's table; they are read as PD (as in RECIST 1.1).
* Choi 2007 defines no confirmation interval: every category except NE is reported as confirmed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Optional

from ._imaging import CIT_RECIST_TARGET, classify_sum, dec, frac, frac_to_dec, mm, p, pct
from .base import Assessment, EvidenceLog, Outcome, Source, TimepointResult, fmt

CRITERIA = "Choi (GIST)"
SOURCE = Source(
    label="Choi H et al. Correlation of computed tomography and positron emission tomography in patients with "
          "metastatic gastrointestinal stromal tumor treated at a single institution with imatinib mesylate: "
          "proposal of new computed tomography response criteria. J Clin Oncol 2007;25:1753-1759",
    url="https://doi.org/10.1200/JCO.2006.07.3049",
)

# --- thresholds -------------------------------------------------------------------------------------
CHOI_PR_SIZE_PCT = Decimal(-10)
"""PR: SLD decreased >= 10 % vs baseline (Choi 2007 Table; criteria.md §10.6)."""
CHOI_PR_ATTENUATION_PCT = Decimal(-15)
"""PR: mean CT attenuation decreased >= 15 % vs baseline (Choi 2007 Table; criteria.md §10.6)."""
CHOI_PD_SIZE_PCT = Decimal(10)
"""PD: SLD increased >= 10 % (and not PR by attenuation) (Choi 2007 Table; criteria.md §10.6)."""

CIT = "Choi 2007 (J Clin Oncol 25:1753) response criteria table; criteria.md §10.6"
CIT_MOD = "Modified Choi (RCC): PR needs size and attenuation; criteria.md §10.6"

CR, PR, SD, PD, NE = "CR", "PR", "SD", "PD", "NE"
LABELS = {
    CR: "complete response (Choi)",
    PR: "partial response (Choi: size or attenuation)",
    SD: "stable disease (Choi)",
    PD: "progressive disease (Choi)",
    NE: "not evaluable",
}
OUTCOMES = {CR: Outcome.COMPLETE, PR: Outcome.PARTIAL, SD: Outcome.STABLE, PD: Outcome.PROGRESSION,
            NE: Outcome.NOT_EVALUABLE}


# --- inputs -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChoiLesion:
    """One target lesion: longest diameter (mm; 0 = disappeared; None = not measured) and mean attenuation (HU)."""

    lesion_id: str
    size_mm: Optional[Decimal]
    attenuation_hu: Optional[Decimal] = None
    ref: Optional[str] = None


@dataclass(frozen=True)
class ChoiTimepoint:
    """One dated CT (the earliest is the baseline).  ``lesions`` or the shortcuts ``sld_mm`` /
    ``mean_attenuation_hu``.  new_lesions None = not assessed."""

    date: date
    lesions: tuple[ChoiLesion, ...] = ()
    sld_mm: Optional[Decimal] = None
    mean_attenuation_hu: Optional[Decimal] = None
    new_lesions: Optional[bool] = False
    new_intratumoral_nodules: bool = False  # new nodules or growth of existing intratumoural nodules
    non_measurable_progression: bool = False  # obvious progression of non-measurable disease
    symptomatic_deterioration: bool = False  # attributed to tumour progression
    ref: Optional[str] = None


@dataclass(frozen=True)
class ChoiInputs:
    timepoints: tuple[ChoiTimepoint, ...]
    modified: bool = False
    size_pd_reference: str = "nadir"  # or "baseline"


# --- internals --------------------------------------------------------------------------------------
def _refs(tp: ChoiTimepoint) -> tuple[str, ...]:
    out: list[str] = []
    for obj in (tp, *tp.lesions):
        if obj.ref and obj.ref not in out:
            out.append(obj.ref)
    return tuple(out)


def _sld(tp: ChoiTimepoint, ids: tuple[str, ...]) -> tuple[Optional[Decimal], list[str]]:
    if tp.lesions:
        by_id = {lesion.lesion_id: lesion for lesion in tp.lesions}
        total, missing = Decimal(0), []
        for lid in ids or tuple(by_id):
            size = dec(by_id[lid].size_mm) if lid in by_id else None
            if size is None:
                missing.append(lid)
            else:
                total += size
        return (None if missing else total), missing
    return dec(tp.sld_mm), ([] if tp.sld_mm is not None else ["SLD"])


def _attenuation(tp: ChoiTimepoint, ids: tuple[str, ...]) -> Optional[Fraction]:
    """Mean attenuation (exact); lesions that disappeared (0 mm) have no attenuation and are skipped."""
    if tp.mean_attenuation_hu is not None:
        return frac(dec(tp.mean_attenuation_hu))
    if not tp.lesions:
        return None
    by_id = {lesion.lesion_id: lesion for lesion in tp.lesions}
    values: list[Fraction] = []
    for lid in ids or tuple(by_id):
        lesion = by_id.get(lid)
        if lesion is None:
            return None
        if lesion.size_mm is not None and dec(lesion.size_mm) == 0:
            continue
        if lesion.attenuation_hu is None:
            return None
        values.append(frac(dec(lesion.attenuation_hu)))
    return sum(values, Fraction(0)) / len(values) if values else None


def _at_most(cur: Fraction, ref: Fraction, pct_: Decimal) -> bool:
    """Exact: change from ref <= pct_ percent (ref > 0)."""
    return (cur - ref) * 100 <= frac(pct_) * ref


def _at_least(cur: Fraction, ref: Fraction, pct_: Decimal) -> bool:
    return (cur - ref) * 100 >= frac(pct_) * ref


# --- engine -----------------------------------------------------------------------------------------
def assess(inputs: ChoiInputs, as_of: date) -> Assessment:
    """Choi (or modified Choi) category at the latest CT on or before ``as_of`` (see module docstring)."""
    log = EvidenceLog()
    notes: list[str] = []
    tps = sorted((tp for tp in inputs.timepoints if tp.date <= as_of), key=lambda tp: tp.date)
    criteria = "modified Choi" if inputs.modified else CRITERIA

    def not_evaluable(reason: str) -> Assessment:
        return Assessment(criteria=criteria, category=NE, label=LABELS[NE], outcome=Outcome.NOT_EVALUABLE,
                          assessment_date=tps[-1].date if tps else None, confirmed=False, source=SOURCE,
                          missing=(reason,), evidence=log.items())

    if inputs.size_pd_reference not in ("nadir", "baseline"):
        raise ValueError("size_pd_reference must be 'nadir' or 'baseline'")
    if len(tps) < 2:
        return not_evaluable("no baseline and follow-up CT pair on or before the assessment date")
    base = tps[0]
    ids = tuple(lesion.lesion_id for lesion in base.lesions)
    base_sld, miss = _sld(base, ())
    if base_sld is None or base_sld <= 0:
        return not_evaluable("baseline sum of longest diameters missing" + (f" ({', '.join(miss)})" if miss else ""))
    base_hu = _attenuation(base, ())
    if base_hu is None:
        notes.append("Baseline attenuation missing: only the size criteria can be applied.")
    elif base_hu <= 0:
        notes.append(f"Baseline attenuation {fmt(frac_to_dec(base_hu))} HU: no percent change can be computed.")
    log.add("choi.baseline", f"Baseline {base.date}: SLD {mm(base_sld)}"
            + (f", mean attenuation {fmt(frac_to_dec(base_hu))} HU" if base_hu is not None else ""), CIT, _refs(base))
    nadir = base_sld
    history: list[TimepointResult] = []
    values: dict = {}
    missing_last: list[str] = []

    for tp in tps[1:]:
        refs = _refs(tp)
        tv: dict = {"baseline_sld_mm": base_sld, "nadir_sld_mm": nadir}
        missing: list[str] = []
        sld, sld_missing = _sld(tp, ids)
        hu = _attenuation(tp, ids)
        # ---- size
        size_pr = size_pd = None
        if sld is not None:
            ref = nadir if inputs.size_pd_reference == "nadir" else base_sld
            tv.update(sld_mm=sld, pct_change_size=pct(sld, base_sld), pct_change_size_from_nadir=pct(sld, nadir))
            size_pr = _at_most(frac(sld), frac(base_sld), CHOI_PR_SIZE_PCT)
            size_pd = _at_least(frac(sld), frac(ref), CHOI_PD_SIZE_PCT) if ref > 0 else sld > ref
            log.add("choi.size", f"{tp.date}: SLD {mm(sld)} is {p(pct(sld, base_sld))} from baseline {mm(base_sld)} "
                    f"(PR needs <= {fmt(CHOI_PR_SIZE_PCT)} %) and {p(pct(sld, ref))} from the "
                    f"{inputs.size_pd_reference} {mm(ref)} (PD needs >= +{fmt(CHOI_PD_SIZE_PCT)} %)", CIT, refs)
        else:
            missing.append(f"lesion size(s) {', '.join(sld_missing)} not measured on {tp.date}")
        # ---- attenuation
        att_pr = None
        if hu is not None and base_hu is not None and base_hu > 0:
            hu_pct = frac_to_dec((hu - base_hu) * 100 / base_hu)
            tv.update(baseline_attenuation_hu=frac_to_dec(base_hu), attenuation_hu=frac_to_dec(hu),
                      pct_change_attenuation=hu_pct)
            att_pr = _at_most(hu, base_hu, CHOI_PR_ATTENUATION_PCT)
            log.add("choi.attenuation", f"{tp.date}: mean attenuation {fmt(frac_to_dec(hu))} HU is {p(hu_pct)} from "
                    f"baseline {fmt(frac_to_dec(base_hu))} HU (PR needs <= {fmt(CHOI_PR_ATTENUATION_PCT)} %)",
                    CIT, refs)
        elif sld is None or sld > 0:
            missing.append(f"mean attenuation (HU) not available on {tp.date}")
        # ---- decision
        events = [w for w, on in (("new lesion(s)", bool(tp.new_lesions)),
                                  ("new or growing intratumoural nodules", tp.new_intratumoral_nodules),
                                  ("obvious progression of non-measurable disease", tp.non_measurable_progression),
                                  ("symptomatic deterioration attributed to progression", tp.symptomatic_deterioration))
                  if on]
        # PR in force; "protect" = what stops a >= 10 % size increase from being PD (standard: PR by attenuation;
        # modified: modified PR, which a size increase from baseline can never meet).
        if inputs.modified:
            pr = False if (size_pr is False or att_pr is False) else (None if size_pr is None or att_pr is None
                                                                      else True)
            protect = pr
        else:
            pr = True if (size_pr or att_pr) else (None if size_pr is None or att_pr is None else False)
            protect = att_pr
        if events:
            category = PD
            log.add("choi.pd.event", f"{tp.date}: " + "; ".join(events) + " -> PD", CIT, refs)
        elif sld is not None and sld == 0:
            if tp.new_lesions is None:
                category = NE
                missing.append(f"new lesions not assessed on {tp.date} (needed for CR)")
            else:
                category = CR
                log.add("choi.cr", f"{tp.date}: all lesions disappeared, no new lesions -> CR", CIT, refs)
        elif size_pd and protect is False:
            category = PD
            log.add("choi.pd.size", f"{tp.date}: SLD >= +{fmt(CHOI_PD_SIZE_PCT)} % and not PR"
                    + (" (modified Choi PR needs a size decrease)" if inputs.modified else " by attenuation")
                    + " -> PD", CIT_MOD if inputs.modified else CIT, refs)
        elif size_pd and protect is None:
            category = NE
        elif pr:
            category = PR
            why = " and ".join(w for w, on in (("size", size_pr), ("attenuation", att_pr)) if on)
            log.add("choi.pr", f"{tp.date}: PR by {why}" + (" (modified Choi needs both)" if inputs.modified else
                    " (either suffices)"), CIT_MOD if inputs.modified else CIT, refs)
        elif pr is False and size_pd is False:
            category = SD
            log.add("choi.sd", f"{tp.date}: neither PR nor PD -> SD", CIT, refs)
        else:
            category = NE
        if category != NE:
            missing = []
        elif not missing:
            missing.append(f"response not evaluable on {tp.date}")
        # ---- RECIST 1.1 equivalent
        if sld is not None:
            reading = classify_sum(sld, base_sld, nadir, complete=sld == 0, label="SLD")
            rec = PD if (tp.new_lesions or tp.non_measurable_progression) else reading.category
            tv["RECIST_1.1_equivalent"] = rec
            log.add("choi.recist_equivalent", f"{tp.date}: RECIST 1.1 on the same SLD: {reading.text} -> {rec}",
                    CIT_RECIST_TARGET, refs)
            nadir = min(nadir, sld)
        history.append(TimepointResult(tp.date, category, OUTCOMES[category], dict(tv)))
        values, missing_last = tv, missing

    last = history[-1]
    if last.category != NE:
        notes.append("Choi 2007 defines no confirmation interval; the category is reported as confirmed.")
    if inputs.modified:
        notes.append("Modified Choi: PR needs both >= 10 % size and >= 15 % attenuation decrease.")
    return Assessment(
        criteria=criteria, category=last.category, label=LABELS[last.category], outcome=last.outcome,
        assessment_date=last.date, confirmed=last.category != NE, source=SOURCE, values=values,
        evidence=log.items(), history=tuple(history), missing=tuple(missing_last), notes=tuple(notes),
    )
