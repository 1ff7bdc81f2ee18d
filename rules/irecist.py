"""iRECIST (Seymour L et al., Lancet Oncol 2017;18:e143-e152): response to immunotherapy.

Per time point the RECIST 1.1 rules apply unchanged with the prefix "i" (criteria.md §3):
target PR = sum of diameters (SoD) <= -30 % vs baseline, PD = >= +20 % AND >= +5 mm vs the nadir (smallest
SoD on study incl. baseline), CR = all non-nodal targets 0 mm and nodal targets < 10 mm; non-target and
new-lesion rules as RECIST 1.1 Table 1/2.  RECIST 1.1 PD is *unconfirmed* progression (iUPD).  At the
following assessment (recommended 4-8 weeks later) iUPD is

* confirmed (iCPD) by any of: target SoD >= +5 mm over the SoD at the iUPD (cumulative, so +4 then +2
  confirms); any further increase of the non-target disease that drove iUPD; new-lesion-target (NLT) sum
  >= +5 mm over its value at the iUPD; any increase of a new-lesion-non-target (NLNT); a further new
  lesion; RECIST 1.1 PD newly met in a lesion category that had not progressed (Seymour 2017 Table 2;
  recist.eortc.org iRECIST FAQ);
* reset when the time point reads iCR / iPR / iSD / non-iCR/non-iUPD by the RECIST rules (a new iUPD
  then needs RECIST 1.1 PD again);
* otherwise it remains iUPD (NE keeps it pending).

New lesions are never added to the target SoD.  They are NLT when measurable (>= 10 mm, nodes >= 15 mm short
axis) up to 5 in total and 2 per organ (all nodes one organ), otherwise NLNT; an explicit category from the
reader wins.

Interpretation choices [I] (documented on the card as notes):

* Strict time-point reading: PR is judged against baseline at every time point (a later -20 % visit is iSD,
  not continuing iPR) - criteria.md §2.4 note, vignette RECIST-03 accepts both.
* The iUPD reference for cumulative increases is the first iUPD of the current block (vignette iRECIST-03:
  62 -> 66 -> 68 mm confirms with +6 mm).
* Confirmation window: an assessment less than 4 weeks after the last iUPD cannot confirm it (it may still
  reset it); one later than 8 weeks still confirms, with a note (Seymour 2017: next assessment 4-8 weeks).
* NLNT "any increase": the reader's ``increased`` flag, or a measured size larger than at the iUPD.
* iCPD is final: later time points stay iCPD.
* Date of progression = the first iUPD of the block that was confirmed (criteria.md §3, admiralonco).
* iCR/iPR are confirmed by a repeat iCR (iCR) or iPR/iCR (iPR) >= 28 days later, as RECIST 1.1; iBOR uses
  confirmation only when ``confirmation_required`` (non-randomised trials with response endpoint).
* The baseline (first time point) gets no category; ``history`` holds the follow-up time points.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Optional

from ._imaging import (
    CIT_RECIST_CONFIRM,
    CIT_RECIST_TABLE1,
    CIT_RECIST_TARGET,
    NT_CR,
    NT_NE,
    NT_NN,
    NT_PD,
    RECIST_NODE_NORMAL_SA_MM,
    RECIST_TOO_SMALL_DEFAULT_MM,
    classify_sum,
    dec,
    mm,
    non_target_at,
    overall_response,
    progression_established,
    response_confirmed,
)
from .base import Assessment, EvidenceLog, Outcome, Source, TimepointResult

CRITERIA = "iRECIST"
SOURCE = Source(
    label="Seymour L et al. iRECIST: guidelines for response criteria for use in trials testing "
          "immunotherapeutics. Lancet Oncol 2017;18:e143-e152",
    url="https://www.ncbi.nlm.nih.gov/pmc/articles/PMC5648544/",
)

# --- thresholds -------------------------------------------------------------------------------------
ICPD_TARGET_INCREASE_MM = Decimal(5)
"""iCPD: target SoD further increased >= 5 mm over the iUPD value (Seymour 2017 Table 2; criteria.md §3)."""
ICPD_NLT_INCREASE_MM = Decimal(5)
"""iCPD: new-lesion-target sum increased >= 5 mm (Seymour 2017 Table 2 / new lesions section; criteria.md §3)."""
NLT_MIN_NON_NODAL_MM = Decimal(10)
"""A new lesion can be NLT when its longest diameter is >= 10 mm (RECIST 1.1 measurability, Seymour 2017)."""
NLT_MIN_NODAL_SA_MM = Decimal(15)
"""A new lymph node can be NLT when its short axis is >= 15 mm (RECIST 1.1 measurability, Seymour 2017)."""
NLT_MAX_TOTAL = 5
"""At most 5 NLT in total (Seymour 2017 new lesions; criteria.md §3)."""
NLT_MAX_PER_ORGAN = 2
"""At most 2 NLT per organ (Seymour 2017 new lesions; criteria.md §3)."""
CONFIRM_MIN_DAYS = 28
"""iUPD is confirmed at the next assessment no less than 4 weeks later (Seymour 2017; PMC5994498 T2; criteria.md §3)."""
CONFIRM_MAX_DAYS = 56
"""... and no more than 8 weeks later (Seymour 2017; PMC5994498 T2; criteria.md §3)."""

CIT_T2 = "Seymour 2017 (iRECIST) Table 2"
CIT_NEW = "Seymour 2017 (iRECIST), new lesions; Table 2"
CIT_ADD = "recist.eortc.org iRECIST FAQ (sequential increases are additive)"
CIT_WINDOW = "Seymour 2017 (iRECIST); PMC5994498 Table 2 (confirm 4-8 weeks after iUPD)"
CIT_PFS = "Seymour 2017 (iRECIST) date of progression; criteria.md §3"
CIT_BOR = "Seymour 2017 (iRECIST) Table 3 (iBOR)"

# --- categories -------------------------------------------------------------------------------------
ICR, IPR, ISD, INN, IUPD, ICPD, NE = "iCR", "iPR", "iSD", "non-iCR/non-iUPD", "iUPD", "iCPD", "NE"
LABELS = {
    ICR: "immune complete response",
    IPR: "immune partial response",
    ISD: "immune stable disease",
    INN: "immune non-complete response / non-progressive disease (non-target disease only)",
    IUPD: "immune unconfirmed progressive disease",
    ICPD: "immune confirmed progressive disease",
    NE: "not evaluable",
}
OUTCOMES = {
    ICR: Outcome.COMPLETE,
    IPR: Outcome.PARTIAL,
    ISD: Outcome.STABLE,
    INN: Outcome.STABLE,
    IUPD: Outcome.UNCONFIRMED_PROGRESSION,
    ICPD: Outcome.PROGRESSION,
    NE: Outcome.NOT_EVALUABLE,
}

_NT_SYNONYMS = {
    "cr": NT_CR, "icr": NT_CR, "absent": NT_CR, "complete response": NT_CR,
    "non-cr/non-pd": NT_NN, "non-icr/non-iupd": NT_NN, "present": NT_NN, "non-cr non-pd": NT_NN,
    "stable": NT_NN, "sd": NT_NN, "present (non-cr/non-pd)": NT_NN,
    "pd": NT_PD, "iupd": NT_PD, "unequivocal progression": NT_PD, "progression": NT_PD,
    "further increase": NT_PD, "icpd": NT_PD,
    "ne": NT_NE, "not evaluated": NT_NE, "not assessed": NT_NE, "not evaluable": NT_NE,
    "none": None, "": None, "no non-target disease": None,
}


def normalise_non_target(value: Optional[str]) -> Optional[str]:
    """Map a reader's non-target wording onto CR / non-CR/non-PD / PD / NE; None = no non-target disease.

    Unknown wording raises ValueError (the mapper must decide, the engine never guesses).
    """
    if value is None:
        return None
    key = value.strip().lower()
    if key in _NT_SYNONYMS:
        return _NT_SYNONYMS[key]
    raise ValueError(f"unknown non-target status {value!r}")


# --- inputs -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetLesion:
    """One target lesion at one time point: longest diameter (non-nodal) or short axis (nodal), mm.

    size_mm None = not assessed; too_small_to_measure = present but too small (counts as 5 mm, RECIST §4.3.2).
    """

    lesion_id: str
    size_mm: Optional[Decimal]
    nodal: bool = False
    too_small_to_measure: bool = False
    ref: Optional[str] = None


@dataclass(frozen=True)
class NewLesion:
    """A new lesion seen at a time point (repeat it, same lesion_id, at later time points).

    category: "NLT" / "NLNT" as read by the radiologist, or None to derive it (measurable and within
    5 total / 2 per organ -> NLT).  increased: the reader reports an increase (used for NLNT).
    """

    lesion_id: str
    size_mm: Optional[Decimal] = None
    site: Optional[str] = None
    nodal: bool = False
    category: Optional[str] = None
    increased: bool = False
    ref: Optional[str] = None


@dataclass(frozen=True)
class IRecistTimepoint:
    """One dated imaging assessment.

    Target disease: ``target_lesions`` (summed here) or the shortcut ``target_sum_mm`` (used when no lesions
    are given).  non_target: CR / non-CR/non-PD / PD / NE (synonyms accepted) or None when there is no
    non-target disease.  non_target_further_increase: the reader reports a further increase of non-target
    disease (used after iUPD).
    """

    date: date
    target_lesions: tuple[TargetLesion, ...] = ()
    target_sum_mm: Optional[Decimal] = None
    non_target: Optional[str] = None
    non_target_further_increase: bool = False
    new_lesions: tuple[NewLesion, ...] = ()
    ref: Optional[str] = None


@dataclass(frozen=True)
class IRecistInputs:
    """All assessments of one patient; the first (earliest) is the baseline."""

    timepoints: tuple[IRecistTimepoint, ...]
    confirmation_required: bool = False
    min_sd_days: Optional[int] = None  # protocol minimum interval from baseline for iSD to count as iBOR


# --- internals --------------------------------------------------------------------------------------
_NLT_WORDS = {"nlt", "new lesion target", "target", "new lesion - target"}
_NLNT_WORDS = {"nlnt", "new lesion non-target", "non-target", "new lesion - non-target", "new lesion nontarget"}


@dataclass
class _Target:
    status: str                      # CR PR SD PD NE none
    sum_mm: Optional[Decimal]
    text: str
    values: dict
    missing: list


@dataclass
class _Block:
    """An iUPD waiting for confirmation."""

    first_date: date
    last_iupd_date: date
    target_ref: Optional[Decimal]
    target_progressed: bool
    nt_progressed: bool
    new_progressed: bool
    nlt_ref: Optional[Decimal]
    new_sizes_ref: dict


def _lesion_size(lesion: TargetLesion) -> Optional[Decimal]:
    if lesion.too_small_to_measure and lesion.size_mm is None:
        return RECIST_TOO_SMALL_DEFAULT_MM
    return dec(lesion.size_mm)


def _target_sum(tp: IRecistTimepoint, baseline_ids: tuple[str, ...]) -> tuple[Optional[Decimal], Decimal, list[str]]:
    """(full sum or None, sum of measured lesions, missing lesion ids)."""
    if tp.target_lesions:
        by_id = {lesion.lesion_id: lesion for lesion in tp.target_lesions}
        ids = baseline_ids or tuple(by_id)
        total, missing = Decimal(0), []
        for lid in ids:
            lesion = by_id.get(lid)
            size = None if lesion is None else _lesion_size(lesion)
            if size is None:
                missing.append(lid)
            else:
                total += size
        return (None if missing else total), total, missing
    if tp.target_sum_mm is not None:
        return dec(tp.target_sum_mm), dec(tp.target_sum_mm), []
    return None, Decimal(0), ["target sum"]


def _complete(tp: IRecistTimepoint, total: Decimal) -> bool:
    if tp.target_lesions:
        for lesion in tp.target_lesions:
            size = _lesion_size(lesion)
            if size is None:
                return False
            if lesion.nodal and not size < RECIST_NODE_NORMAL_SA_MM:
                return False
            if not lesion.nodal and size != 0:
                return False
        return True
    return total == 0


_I = {"CR": ICR, "PR": IPR, "SD": ISD, "NN": INN, "PD": IUPD, "NE": NE}


def _organ(lesion: NewLesion) -> str:
    return "lymph nodes" if lesion.nodal else (lesion.site or "unspecified organ").strip().lower()


def _classify_new(timepoints: list[IRecistTimepoint], notes: list[str]) -> dict[str, str]:
    """NLT / NLNT per new-lesion id, fixed at first appearance (earlier first, larger first)."""
    cats: dict[str, str] = {}
    per_organ: dict[str, int] = {}
    total = 0
    for tp in timepoints:
        fresh = [nl for nl in tp.new_lesions if nl.lesion_id not in cats]
        fresh.sort(key=lambda nl: -(dec(nl.size_mm) or Decimal(0)))
        for nl in fresh:
            word = (nl.category or "").strip().lower()
            organ = _organ(nl)
            if word in _NLT_WORDS:
                cat = "NLT"
            elif word in _NLNT_WORDS:
                cat = "NLNT"
            else:
                size = dec(nl.size_mm)
                minimum = NLT_MIN_NODAL_SA_MM if nl.nodal else NLT_MIN_NON_NODAL_MM
                measurable = size is not None and size >= minimum
                room = total < NLT_MAX_TOTAL and per_organ.get(organ, 0) < NLT_MAX_PER_ORGAN
                cat = "NLT" if measurable and room else "NLNT"
                if measurable and not room:
                    notes.append(f"New lesion {nl.lesion_id} is measurable but NLT limits "
                                 f"({NLT_MAX_TOTAL} total, {NLT_MAX_PER_ORGAN} per organ) are reached: NLNT.")
            if cat == "NLT":
                total += 1
                per_organ[organ] = per_organ.get(organ, 0) + 1
            cats[nl.lesion_id] = cat
    return cats


def _nlt_sum(tp: IRecistTimepoint, nlt_ids: list[str]) -> Optional[Decimal]:
    """Sum of the NLT sizes at this time point; None if one of them has no measurement."""
    sizes = {nl.lesion_id: dec(nl.size_mm) for nl in tp.new_lesions}
    total = Decimal(0)
    for lid in nlt_ids:
        if sizes.get(lid) is None:
            return None
        total += sizes[lid]
    return total


# --- engine -----------------------------------------------------------------------------------------
def assess(inputs: IRecistInputs, as_of: date) -> Assessment:
    """iRECIST category at the latest assessment on or before ``as_of`` (see module docstring)."""
    log = EvidenceLog()
    notes: list[str] = []
    tps = sorted((tp for tp in inputs.timepoints if tp.date <= as_of), key=lambda tp: tp.date)

    def not_evaluable(reason: str) -> Assessment:
        return Assessment(criteria=CRITERIA, category=NE, label=LABELS[NE], outcome=Outcome.NOT_EVALUABLE,
                          assessment_date=tps[-1].date if tps else None, confirmed=False, source=SOURCE,
                          missing=(reason,), evidence=log.items())

    if not tps:
        return not_evaluable("no baseline imaging assessment on or before the assessment date")
    if len(tps) < 2:
        return not_evaluable("no follow-up imaging assessment after baseline")

    base = tps[0]
    baseline_ids = tuple(lesion.lesion_id for lesion in base.target_lesions)
    base_sum, _, base_missing = _target_sum(base, ())
    if base.target_lesions and base_missing:
        return not_evaluable("baseline measurement missing for target lesion(s) " + ", ".join(base_missing))
    if base_sum is None and base.non_target is None:
        return not_evaluable("no baseline target or non-target disease recorded")
    has_targets = base_sum is not None and base_sum > 0
    try:
        base_nt = normalise_non_target(base.non_target)
    except ValueError:
        # at baseline non-target disease is only recorded as present: a description means "present"
        base_nt = NT_NN
        notes.append(f"Baseline non-target description {base.non_target!r} read as non-target disease present.")
    if not has_targets and base_nt is None:
        return not_evaluable("no measurable or non-target disease at baseline")
    log.add("irecist.baseline",
            (f"Baseline {base.date}: target sum {mm(base_sum)}" if has_targets else
             f"Baseline {base.date}: no target lesions (non-target disease only)"),
            CIT_RECIST_TARGET, _refs(base))

    nl_cats = _classify_new(tps[1:], notes)
    nadir = base_sum if has_targets else None
    block: Optional[_Block] = None
    confirmed_cpd: Optional[date] = None
    seen_new: set[str] = set()
    history: list[TimepointResult] = []
    series: list[tuple[date, str]] = []
    missing_last: list[str] = []
    values: dict = {}

    for tp in tps[1:]:
        tv: dict = {}
        missing_here: list[str] = []
        refs = _refs(tp)
        # ---- target lesions
        if has_targets:
            full, partial, miss = _target_sum(tp, baseline_ids)
            tv["baseline_sum_mm"] = base_sum
            tv["nadir_sum_mm"] = nadir
            if full is not None:
                reading = classify_sum(full, base_sum, nadir, complete=_complete(tp, full), label="Target sum")
                target = reading.category
                tv.update(target_sum_mm=full, pct_change_from_baseline=reading.pct_from_baseline,
                          pct_change_from_nadir=reading.pct_from_nadir,
                          absolute_change_from_nadir_mm=reading.abs_from_nadir_mm)
                log.add(f"irecist.target.{target.lower()}", f"{tp.date}: {reading.text}", CIT_RECIST_TARGET, refs)
            elif miss != ["target sum"] and progression_established(partial, nadir):
                target, full = "PD", None
                tv["available_sum_mm"] = partial
                log.add("irecist.target.pd_partial",
                        f"{tp.date}: measured targets already sum to {mm(partial)} vs nadir {mm(nadir)} "
                        f"(PD whatever the unmeasured {', '.join(miss)})", CIT_RECIST_TARGET, refs)
            else:
                target = "NE"
                if miss == ["target sum"]:
                    missing_here.append(f"target lesions not measured on {tp.date}")
                else:
                    tv["available_sum_mm"] = partial
                    missing_here.append(f"target lesion(s) {', '.join(miss)} not measured on {tp.date}")
                log.add("irecist.target.ne", f"{tp.date}: target response not evaluable ({missing_here[-1]})",
                        CIT_RECIST_TARGET, refs)
        else:
            target, full = "none", None
        # ---- non-target
        nt = non_target_at(tp.non_target, normalise_non_target, base_nt is not None, tp.date, missing_here)
        if nt is not None:
            log.add(f"irecist.nontarget.{'pd' if nt == NT_PD else nt.lower().replace('/', '_').replace('-', '')}",
                    f"{tp.date}: non-target disease {nt}", "Eisenhauer 2009 (RECIST 1.1) §4.3.3", refs)
        # ---- new lesions
        here_ids = [nl.lesion_id for nl in tp.new_lesions]
        fresh_ids = [lid for lid in here_ids if lid not in seen_new]
        new_present = bool(tp.new_lesions)
        nlt_ids = [lid for lid in here_ids if nl_cats.get(lid) == "NLT"]
        nlt_sum = _nlt_sum(tp, nlt_ids) if nlt_ids else None
        if new_present:
            tv["new_lesion_count"] = len(here_ids)
            if nlt_sum is not None:
                tv["new_lesion_target_sum_mm"] = nlt_sum
            desc = ", ".join(
                f"{nl.lesion_id} ({nl_cats[nl.lesion_id]}"
                + (f", {mm(dec(nl.size_mm))}" if nl.size_mm is not None else "") + ")"
                for nl in tp.new_lesions)
            log.add("irecist.new_lesions", f"{tp.date}: new lesion(s) {desc}; not added to the target sum",
                    CIT_NEW, _refs(tp, *tp.new_lesions))

        recist = overall_response(target, nt, new_present)
        category = _I[recist]
        log.add("irecist.timepoint", f"{tp.date}: RECIST 1.1 time-point reading {category} (target {target}, "
                f"non-target {nt or 'none'}, new lesions {'yes' if new_present else 'no'})", CIT_RECIST_TABLE1, refs)

        # ---- iRECIST state machine
        if confirmed_cpd is not None:
            category = ICPD
            log.add("irecist.icpd.final", f"{tp.date}: progression already confirmed (iCPD)", CIT_T2, refs)
        elif block is None:
            if recist == "PD":
                block = _Block(first_date=tp.date, last_iupd_date=tp.date, target_ref=full,
                               target_progressed=target == "PD", nt_progressed=nt == NT_PD,
                               new_progressed=new_present, nlt_ref=nlt_sum,
                               new_sizes_ref={nl.lesion_id: dec(nl.size_mm) for nl in tp.new_lesions})
                why = [w for w, on in (("target lesions", target == "PD"), ("non-target disease", nt == NT_PD),
                                       ("new lesion(s)", new_present)) if on]
                log.add("irecist.iupd", f"{tp.date}: RECIST 1.1 progression by {', '.join(why)} -> iUPD "
                        f"(to be confirmed {CONFIRM_MIN_DAYS // 7}-{CONFIRM_MAX_DAYS // 7} weeks later)", CIT_T2, refs)
        else:
            category, confirmed_now = _follow_block(block, tp, target, full, nt, nlt_ids, nlt_sum, fresh_ids,
                                                    recist, tv, log, notes, refs)
            if confirmed_now:
                confirmed_cpd = block.first_date
                tv["progression_date_for_PFS"] = block.first_date
                log.add("irecist.progression_date",
                        f"Progression dated to the first iUPD of the confirmed block: {block.first_date}",
                        CIT_PFS, refs)
            elif category == IUPD:
                block.last_iupd_date = tp.date
            elif category != NE:
                log.add("irecist.reset", f"{tp.date}: {category} after iUPD resets it; a new iUPD needs "
                        "RECIST 1.1 progression again", CIT_T2, refs)
                block = None
        if category == NE and not missing_here:
            missing_here.append(f"response not evaluable on {tp.date}")
        if block is not None and category == IUPD:
            tv["iUPD_date"] = block.first_date
            tv["confirm_iUPD_not_before"] = block.last_iupd_date + timedelta(days=CONFIRM_MIN_DAYS)
            tv["confirm_iUPD_by"] = block.last_iupd_date + timedelta(days=CONFIRM_MAX_DAYS)
        if confirmed_cpd is not None:
            tv["progression_date_for_PFS"] = confirmed_cpd

        # ---- bookkeeping for the next time point
        if full is not None and nadir is not None and full < nadir:
            nadir = full
        seen_new.update(here_ids)
        series.append((tp.date, category))
        history.append(TimepointResult(date=tp.date, category=category, outcome=OUTCOMES[category],
                                       values=dict(tv)))
        missing_last = missing_here
        values = tv

    last_date, category = series[-1]
    confirmed = _confirmed(category, series)
    if category in (ICR, IPR):
        log.add(f"irecist.{category.lower()}.confirmation",
                f"{category} {'confirmed' if confirmed else 'not yet confirmed'} by a repeat assessment "
                f">= {CONFIRM_MIN_DAYS} days later", CIT_RECIST_CONFIRM)
    values = dict(values)
    values["iBOR"] = _ibor(series, base.date, inputs, log)
    notes.append("Time points are read strictly (iPR vs baseline, iUPD vs nadir); iCPD is final.")
    return Assessment(
        criteria=CRITERIA, category=category, label=LABELS[category], outcome=OUTCOMES[category],
        assessment_date=last_date, confirmed=confirmed, source=SOURCE, values=values, evidence=log.items(),
        history=tuple(history), missing=tuple(missing_last) if category == NE else (), notes=tuple(notes),
    )


def _refs(*items: object) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        for ref in [getattr(item, "ref", None)] + [getattr(x, "ref", None) for x in getattr(item, "target_lesions", ())]:
            if ref and ref not in out:
                out.append(ref)
    return tuple(out)


def _follow_block(block: _Block, tp: IRecistTimepoint, target: str, full: Optional[Decimal], nt: Optional[str],
                  nlt_ids: list[str], nlt_sum: Optional[Decimal], fresh_ids: list[str], recist: str, tv: dict,
                  log: EvidenceLog, notes: list[str], refs: tuple[str, ...]) -> tuple[str, bool]:
    """Category of a time point that follows an unconfirmed iUPD: (category, iCPD confirmed now)."""
    reasons: list[str] = []
    # target lesions
    if full is not None and block.target_ref is not None:
        rise = full - block.target_ref
        tv["cumulative_increase_since_iUPD_mm"] = rise
        if block.target_progressed and rise >= ICPD_TARGET_INCREASE_MM:
            reasons.append(f"target sum {mm(full)} is +{mm(rise)} over {mm(block.target_ref)} at the iUPD "
                           f"(iCPD needs >= +{mm(ICPD_TARGET_INCREASE_MM)}, cumulative)")
        elif block.target_progressed:
            log.add("irecist.icpd.target_not_met",
                    f"{tp.date}: target sum {mm(full)} is {'+' if rise >= 0 else ''}{mm(rise)} vs {mm(block.target_ref)} "
                    f"at the iUPD (iCPD needs >= +{mm(ICPD_TARGET_INCREASE_MM)}, cumulative)", CIT_ADD, refs)
    if target == "PD" and not block.target_progressed:
        reasons.append("target lesions now meet RECIST 1.1 progression (not progressed at the iUPD)")
    # non-target disease
    if block.nt_progressed and tp.non_target_further_increase:
        reasons.append("further increase of the non-target disease that drove iUPD")
    if nt == NT_PD and not block.nt_progressed:
        reasons.append("non-target disease now unequivocally progressing (not progressed at the iUPD)")
    # new lesions
    if fresh_ids:
        reasons.append(f"another new lesion: {', '.join(fresh_ids)}")
    if nlt_sum is not None and block.nlt_ref is not None:
        change = nlt_sum - block.nlt_ref
        tv["new_lesion_target_sum_change_mm"] = change
        if change >= ICPD_NLT_INCREASE_MM:
            reasons.append(f"new-lesion-target sum {mm(nlt_sum)} is +{mm(change)} over {mm(block.nlt_ref)} at "
                           f"the iUPD (iCPD needs >= +{mm(ICPD_NLT_INCREASE_MM)})")
        else:
            log.add("irecist.icpd.nlt_not_met",
                    f"{tp.date}: new-lesion-target sum {mm(nlt_sum)} is {'+' if change >= 0 else ''}{mm(change)} vs "
                    f"{mm(block.nlt_ref)} at the iUPD (iCPD needs >= +{mm(ICPD_NLT_INCREASE_MM)})", CIT_NEW, refs)
    for nl in tp.new_lesions:
        if nl.lesion_id in nlt_ids or nl.lesion_id in fresh_ids:
            continue
        before = block.new_sizes_ref.get(nl.lesion_id)
        size = dec(nl.size_mm)
        if nl.increased or (before is not None and size is not None and size > before):
            detail = f" ({mm(before)} -> {mm(size)})" if before is not None and size is not None else ""
            reasons.append(f"new lesion non-target {nl.lesion_id} increased{detail}")

    days = (tp.date - block.last_iupd_date).days
    if reasons and days < CONFIRM_MIN_DAYS:
        notes.append(f"{tp.date} is {days} days after the iUPD of {block.last_iupd_date}: too early to confirm "
                     f"(needs >= {CONFIRM_MIN_DAYS} days); iUPD kept.")
        log.add("irecist.window.early", f"{tp.date}: {'; '.join(reasons)}, but only {days} days after iUPD "
                f"(confirmation needs >= {CONFIRM_MIN_DAYS} days)", CIT_WINDOW, refs)
        return IUPD, False
    if reasons:
        if days > CONFIRM_MAX_DAYS:
            notes.append(f"iCPD on {tp.date} was confirmed {days} days after the iUPD (recommended window "
                         f"{CONFIRM_MIN_DAYS}-{CONFIRM_MAX_DAYS} days).")
        log.add("irecist.icpd", f"{tp.date}: iUPD confirmed -> iCPD: " + "; ".join(reasons), CIT_T2, refs)
        if any("cumulative" in r for r in reasons):
            log.add("irecist.icpd.additive", "Increases after iUPD are added up from the iUPD value", CIT_ADD, refs)
        return ICPD, True
    if recist in ("CR", "PR", "SD", "NN"):
        return _I[recist], False
    if recist == "NE":
        log.add("irecist.iupd.pending", f"{tp.date}: not evaluable; iUPD still awaits confirmation", CIT_T2, refs)
        return NE, False
    log.add("irecist.iupd.remains", f"{tp.date}: neither confirmation nor reset criteria met -> remains iUPD",
            CIT_T2, refs)
    return IUPD, False


def _confirmed(category: str, series: list[tuple[date, str]]) -> bool:
    if category in (ICPD, ISD, INN):
        return True
    if category in (ICR, IPR):
        return response_confirmed(series, {ICR: (ICR,), IPR: (IPR, ICR)}, CONFIRM_MIN_DAYS)
    return False


def _ibor(series: list[tuple[date, str]], baseline: date, inputs: IRecistInputs, log: EvidenceLog) -> str:
    """Best overall response: best of iCR > iPR > iSD > non-iCR/non-iUPD; else iCPD, iUPD, NE (Seymour Table 3).

    With ``confirmation_required`` an iCR/iPR counts only at the time point that confirms it (an iCR confirming
    an earlier iPR gives iPR); unconfirmed responses count as iSD (RECIST 1.1 Table 3).  With ``min_sd_days``
    an iSD earlier than that many days after baseline does not count.
    """
    rank = [ICR, IPR, ISD, INN]
    best: Optional[str] = None
    for i, (when, cat) in enumerate(series):
        if cat in (ICR, IPR) and inputs.confirmation_required:
            prefix = series[: i + 1]
            if cat == ICR and _confirmed(ICR, prefix):
                pass
            elif _confirmed(IPR, prefix[:-1] + [(when, IPR)]):
                cat = IPR
            else:
                cat = ISD
        if cat in (ISD, INN) and inputs.min_sd_days is not None and (when - baseline).days < inputs.min_sd_days:
            continue
        if cat in rank and (best is None or rank.index(cat) < rank.index(best)):
            best = cat
    if best is None:
        cats = {c for _, c in series}
        best = ICPD if ICPD in cats else IUPD if IUPD in cats else NE
    log.add("irecist.ibor", f"Best overall response iBOR = {best}", CIT_BOR)
    return best
