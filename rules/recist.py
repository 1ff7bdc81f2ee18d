"""RECIST 1.1 (Eisenhauer EA et al., Eur J Cancer 2009;45:228-247).

Time-point response from target sums, non-target status and new lesions (Tables 1 and 2),
best overall response with optional confirmation (Table 3), and baseline target selection
for records that carry measurements without a target/non-target role.

Conventions this engine applies (shared/reference/criteria.md §2; choices marked [I]):

* Sum of diameters: longest diameter of non-nodal targets plus short axis of nodal targets (§4.2).
* Nadir: the smallest sum on study including baseline, over the time points before the one being
  classified (§4.3.1; EORTC RECIST FAQ "definition of SD").
* A target reported "too small to measure" counts 5 mm; a measured value below 5 mm counts as measured;
  a disappeared non-nodal target counts 0 mm (§4.3.2 special notes; RECIST WG Q&A "Lesions less than 5 mm").
* Split lesions: the mapper adds the fragments' diameters; coalesced lesions: the merged mass carries
  the diameter and the absorbed lesion 0 mm (§4.3.2) [I: usual data convention].
* Missing target measurement: NE, unless the measured targets alone already prove PD (§4.3.2 / Table 1).
* **Continuing PR** [I]: once a PR has been assigned (and confirmed where confirmation is required), a later
  time point keeps PR until PD criteria are met against the nadir, even when the sum is no longer 30 % below
  baseline (RECIST Working Group FAQ "Managing PR when TP measurements change slightly over time";
  criteria.md §2.4). The strict per-time-point reading would say SD; vignette RECIST-03 accepts both.
  Pass ``continuing_pr=False`` for the strict reading. Where confirmation is required, an unconfirmed PR does
  not continue (Table 3: PR then SD = SD).
* Reappearance after CR: when the previous time point was an overall CR, a non-nodal target back above 0 mm or a
  nodal target back to >= 10 mm short axis is PD (RECIST WG FAQ "Does a new lesion always result in PD?";
  criteria.md §2.6).
* Confirmation: a CR/PR is *confirmed* when a later assessment >= 28 days after the criteria were first met
  shows the same or better response with no PD between (§4.4.3 / Table 3). RECIST itself requires it only in
  non-randomised trials with response as the primary endpoint (``confirmation_required``); the card always
  reports whether the response has been sustained >= 4 weeks.
* SD counts as best overall response only when met at least ``min_sd_days`` after the start of treatment
  (default 42 days = 6 weeks, the lower end of "generally not less than 6-8 weeks", §4.4.3).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Iterable, Literal, Sequence

from rules.base import (
    D,
    Assessment,
    Evidence,
    EvidenceLog,
    Outcome,
    Source,
    TimepointResult,
    fmt,
    fmt_pct,
    frozen_builder,
    pct_change,
)

CRITERIA = "RECIST 1.1"
SOURCE = Source(
    label="RECIST 1.1 (Eisenhauer EA et al., Eur J Cancer 2009;45:228-247)",
    url="https://doi.org/10.1016/j.ejca.2008.10.026",
)
CITE = "Eisenhauer 2009"

# --- thresholds (criteria.md §2) -------------------------------------------------------------
PR_DECREASE_PCT = Decimal(-30)       # PR: sum decreased >= 30 % vs baseline (§4.3.1) [V]
PD_INCREASE_PCT = Decimal(20)        # PD: sum increased >= 20 % vs nadir (§4.3.1) [V]
PD_ABSOLUTE_MM = Decimal(5)          # ... AND an absolute increase >= 5 mm (§4.3.1) [V]
NODE_NORMAL_MM = Decimal(10)         # CR: every nodal target short axis < 10 mm (§4.3.1) [V]
NODE_MEASURABLE_MM = Decimal(15)     # measurable node: short axis >= 15 mm (§3.1) [V]
LESION_MEASURABLE_MM = Decimal(10)   # measurable non-nodal lesion: LD >= 10 mm on CT (§3.1) [V]
TOO_SMALL_MM = Decimal(5)            # "too small to measure" default (§4.3.2; RECIST WG Q&A) [V]
MAX_TARGETS = 5                      # up to 5 targets in total (§4.2) [V]
MAX_TARGETS_PER_ORGAN = 2            # ... and 2 per organ; all nodes together are one organ (§4.2; EORTC Q&A) [V]
CONFIRMATION_DAYS = 28               # CR/PR confirmed no less than 4 weeks later (§4.4.3) [V]
DEFAULT_MIN_SD_DAYS = 42             # protocol minimum for SD, "generally not less than 6-8 weeks" (§4.4.3) [V; 6 w chosen]

NonTargetStatus = Literal["CR", "non-CR/non-PD", "PD", "NE"]
NewLesion = Literal["no", "yes", "equivocal"]

CATEGORY_LABELS = {
    "CR": "complete response",
    "PR": "partial response",
    "SD": "stable disease",
    "PD": "progressive disease",
    "NE": "not evaluable",
    "non-CR/non-PD": "non-CR/non-PD (non-target disease only)",
}
OUTCOMES = {
    "CR": Outcome.COMPLETE,
    "PR": Outcome.PARTIAL,
    "SD": Outcome.STABLE,
    "non-CR/non-PD": Outcome.STABLE,
    "PD": Outcome.PROGRESSION,
    "NE": Outcome.NOT_EVALUABLE,
}
_RANK = {"CR": 5, "PR": 4, "SD": 3, "non-CR/non-PD": 3, "PD": 1, "NE": 0}


@dataclass(frozen=True)
class TargetMeasurement:
    """One target lesion at one time point.

    diameter_mm: long axis (non-nodal) or short axis (nodal), None when the lesion was not assessed.
    too_small:   reported present but too small to measure (counts 5 mm when no diameter is given).
    """

    lesion_id: str
    nodal: bool
    diameter_mm: Decimal | None
    too_small: bool = False
    site: str | None = None
    ref: str | None = None


@dataclass(frozen=True)
class Timepoint:
    """One imaging time point. The first time point of ``RecistInputs.timepoints`` is the baseline.

    non_target:   status of the non-target lesions as a whole; None when the patient has none.
    new_lesion:   "yes" (unequivocal new lesion), "equivocal" or "no".
    reported_overall: an overall response stated by the radiologist with no measurements behind it;
                  used only when no targets are given for this time point.
    """

    date: date
    targets: tuple[TargetMeasurement, ...] = ()
    non_target: NonTargetStatus | None = None
    new_lesion: NewLesion = "no"
    reported_overall: str | None = None
    refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecistInputs:
    timepoints: tuple[Timepoint, ...]
    confirmation_required: bool = False
    treatment_start: date | None = None
    min_sd_days: int = DEFAULT_MIN_SD_DAYS
    targets_auto_selected: bool = False


# Positional constructors for the mapper, which builds one per lesion and time point (rules.base.frozen_builder)
new_target_measurement = frozen_builder(TargetMeasurement)
new_timepoint = frozen_builder(Timepoint)
new_recist_inputs = frozen_builder(RecistInputs)
_new_timepoint_result = frozen_builder(TimepointResult)
_new_assessment = frozen_builder(Assessment)
_ZERO = Decimal(0)


@dataclass(frozen=True)
class BaselineLesion:
    """A lesion measured at baseline, for automatic target selection."""

    lesion_id: str
    nodal: bool
    diameter_mm: Decimal          # LD for non-nodal, short axis for nodal
    organ: str | None = None


@dataclass(frozen=True)
class TargetSelection:
    targets: tuple[str, ...]
    non_targets: tuple[str, ...]
    not_disease: tuple[str, ...]   # nodes < 10 mm short axis
    reasons: tuple[str, ...]


new_baseline_lesion = frozen_builder(BaselineLesion)
_new_target_selection = frozen_builder(TargetSelection)

PAIRED_ORGANS = {"lung": "lungs", "lungs": "lungs", "kidney": "kidneys", "kidneys": "kidneys", "ovary": "ovaries",
                 "ovaries": "ovaries", "adrenal": "adrenals", "breast": "breasts"}


def _organ_key(lesion: BaselineLesion) -> str:
    if lesion.nodal:
        return "lymph nodes"  # all nodes together count as one organ (EORTC Q&A "Two target lesions")
    organ = (lesion.organ or f"unknown:{lesion.lesion_id}").strip().lower()
    first = organ.split()[0] if organ.split() else organ
    return PAIRED_ORGANS.get(first, PAIRED_ORGANS.get(organ, organ))


def select_targets(lesions: Sequence[BaselineLesion]) -> TargetSelection:
    """Choose targets at baseline as RECIST 1.1 §4.2 does, for records with no role coding.

    Measurable lesions (non-nodal LD >= 10 mm, nodes SA >= 15 mm) are ranked by size; the largest are taken,
    at most 5 in all and 2 per organ (all nodes one organ, paired organs one organ). The rest of the
    disease is non-target; nodes with SA < 10 mm are normal and not disease.
    """
    measurable: list[BaselineLesion] = []
    non_targets: list[str] = []
    normal: list[str] = []
    reasons: list[str] = []
    for les in lesions:
        d = D(les.diameter_mm)
        if les.nodal:
            if d < NODE_NORMAL_MM:
                normal.append(les.lesion_id)
            elif d < NODE_MEASURABLE_MM:
                non_targets.append(les.lesion_id)
                reasons.append(f"{les.lesion_id}: node short axis {fmt(d)} mm is pathological but < 15 mm, non-target")
            else:
                measurable.append(les)
        elif d >= LESION_MEASURABLE_MM:
            measurable.append(les)
        else:
            non_targets.append(les.lesion_id)
            reasons.append(f"{les.lesion_id}: {fmt(d)} mm < 10 mm, non-measurable, non-target")
    measurable.sort(key=lambda l: (-D(l.diameter_mm), l.lesion_id))
    chosen: list[str] = []
    per_organ: dict[str, int] = {}
    for les in measurable:
        key = _organ_key(les)
        if len(chosen) < MAX_TARGETS and per_organ.get(key, 0) < MAX_TARGETS_PER_ORGAN:
            chosen.append(les.lesion_id)
            per_organ[key] = per_organ.get(key, 0) + 1
        else:
            non_targets.append(les.lesion_id)
            reasons.append(f"{les.lesion_id}: measurable but over the limit of 5 targets / 2 per organ, non-target")
    return _new_target_selection(tuple(chosen), tuple(non_targets), tuple(normal), tuple(reasons))


# --- time-point evaluation ------------------------------------------------------------------

@dataclass
class _TP:
    date: date
    target_response: str | None
    non_target: str | None
    new_lesion: str
    overall: str
    target_sum: Decimal | None
    available_sum: Decimal | None
    reported: bool = False
    values: dict = field(default_factory=dict)


def _contribution(t: TargetMeasurement) -> Decimal | None:
    if t.diameter_mm is not None:
        return D(t.diameter_mm)
    if t.too_small:
        return TOO_SMALL_MM
    return None


def _is_pd(current: Decimal, nadir: Decimal) -> bool:
    # PD needs both: >= 20 % over nadir (cross-multiplied) and >= 5 mm absolute.
    increase = current - nadir
    return increase >= PD_ABSOLUTE_MM and increase * 100 >= PD_INCREASE_PCT * nadir


def _overall(target: str | None, non_target: str | None, new_lesion: str) -> str:
    """RECIST 1.1 Table 1 (targets present) and Table 2 (non-target disease only)."""
    if new_lesion == "yes" or target == "PD" or non_target == "PD":
        return "PD"
    if target is None:  # Table 2
        if non_target == "CR":
            return "CR"
        if non_target == "NE" or non_target is None:
            return "NE"
        return "non-CR/non-PD"
    if target == "NE":
        return "NE"
    if target == "CR":
        if non_target in (None, "CR"):
            return "CR"
        return "PR"  # CR + non-CR/non-PD or not evaluated -> PR (Table 1)
    if target == "PR":
        return "PR"
    return "SD"


def assess(inputs: RecistInputs, as_of: date, *, continuing_pr: bool = True) -> Assessment:
    """Time-point responses for every follow-up time point, best overall response and confirmation."""
    ev = EvidenceLog()
    tps = sorted((tp for tp in inputs.timepoints if tp.date <= as_of), key=lambda t: t.date)
    missing: list[str] = []
    if not tps:
        return _not_evaluable(["no imaging time points"], ev)

    baseline = tps[0]
    base_targets = {t.lesion_id: t for t in baseline.targets}
    has_targets = bool(base_targets)
    baseline_sum: Decimal | None = None
    if has_targets:
        contributions = [_contribution(t) for t in baseline.targets]
        if any(c is None for c in contributions):
            return _not_evaluable(["a baseline target lesion has no measurement"], ev)
        baseline_sum = sum(contributions, _ZERO)
        parts = " + ".join(
            f"{t.lesion_id} {fmt(c)} mm{' (short axis)' if t.nodal else ''}" for t, c in zip(baseline.targets, contributions)
        )
        ev.add("recist.baseline.sum", f"Baseline {baseline.date.isoformat()}: sum of diameters {fmt(baseline_sum)} mm ({parts}).",
               f"{CITE} §4.2", _refs(baseline))
        if inputs.targets_auto_selected:
            ev.add("recist.targets.auto", "Target lesions were selected automatically at baseline (largest measurable, "
                   "at most 5 in all and 2 per organ); the rest are non-target.", f"{CITE} §4.2")
        if baseline_sum == 0:
            return _not_evaluable(["baseline target sum is 0 mm"], ev)
    elif baseline.non_target is None and not any(tp.reported_overall for tp in tps[1:]):
        missing.append("no measurable (target) or non-target disease recorded at baseline")

    results: list[_TP] = []
    evaluable_sums: list[tuple[date, Decimal]] = [(baseline.date, baseline_sum)] if baseline_sum is not None else []
    nadir_sum = baseline_sum  # min() of evaluable_sums so far (the first of equal sums), kept as they are added
    pr_assigned = False  # a PR has been assigned (and confirmed where confirmation is required): it can continue
    cr_assigned = False
    run_start: date | None = None  # first date of the current unbroken run of CR/PR time points
    # Per time point only what its evidence sentence shows is computed: the machine-readable values (percent
    # changes...) are read from the current (last) time point alone, and the nadir wording only for PD/SD/continuing
    # PR. The numbers that repeat (baseline sum, nadir) are formatted once. tests/test_eval_fast_forms.py compares
    # this engine with the plain one (every value computed at every time point) on random inputs.
    last = len(tps) - 1
    base_txt = fmt(baseline_sum) if baseline_sum is not None else ""
    pr_limit = (100 + PR_DECREASE_PCT) * baseline_sum if baseline_sum is not None else None
    nadir_fmt: tuple[Decimal | None, str] = (baseline_sum, base_txt)  # (nadir, fmt(nadir)) last formatted
    for i in range(1, last + 1):
        tp = tps[i]
        when = tp.date.isoformat()
        refs = _refs(tp)
        if not tp.targets and tp.reported_overall:
            overall = tp.reported_overall
            results.append(_TP(tp.date, None, tp.non_target, tp.new_lesion, overall, None, None, reported=True))
            ev.add("recist.timepoint.reported", f"{when}: overall response {overall} as reported "
                   "(no measurements in the record).", f"{CITE} Table 1", refs)
            run_start = _track_response(results[-1], run_start, inputs.confirmation_required)
            pr_assigned = pr_assigned or (run_start is not None and overall == "PR" and _counts(tp.date, run_start, inputs))
            cr_assigned = cr_assigned or (run_start is not None and overall == "CR" and _counts(tp.date, run_start, inputs))
            continue
        target_resp: str | None = None
        tsum: Decimal | None = None
        avail: Decimal | None = None
        values: dict = {}
        partial = False
        if has_targets:
            by_id = {t.lesion_id: t for t in tp.targets}
            contribs: dict[str, Decimal | None] = {}
            for lid in base_targets:
                m = by_id.get(lid)
                if m is None:
                    contribs[lid] = None
                    continue
                dm = m.diameter_mm  # _contribution(m), inlined
                contribs[lid] = dm if type(dm) is Decimal else (
                    D(dm) if dm is not None else (TOO_SMALL_MM if m.too_small else None))
            known = [c for c in contribs.values() if c is not None]
            avail = sum(known, _ZERO)
            nadir = nadir_sum
            if i == last:
                values["nadir_sum_mm"] = nadir
                values["baseline_sum_mm"] = baseline_sum
            if nadir_fmt[0] is not nadir:
                nadir_fmt = (nadir, fmt(nadir))
            nadir_txt_ = nadir_fmt[1]
            if len(known) != len(contribs):
                partial = True
                absent = [lid for lid, c in contribs.items() if c is None]
                if i == last:
                    values["available_sum_mm"] = avail
                if _is_pd(avail, nadir):
                    target_resp = "PD"
                    ev.add("recist.target.pd_partial", f"{when}: {', '.join(absent)} not assessed, but the "
                           f"measured targets alone sum to {fmt(avail)} mm, already {fmt_pct(pct_change(avail, nadir))} and "
                           f"+{fmt(avail - nadir)} mm over the nadir {nadir_txt_} mm: PD is established (PD needs >= +20 % "
                           "and >= +5 mm).", f"{CITE} §4.3.2, Table 1", refs)
                    tsum = avail
                else:
                    target_resp = "NE"
                    ev.add("recist.target.ne", f"{when}: {', '.join(absent)} not assessed; the measured "
                           f"targets sum to {fmt(avail)} mm and the missing lesion(s) could change the category: "
                           "target response not evaluable.", f"{CITE} §4.3.2, Table 1", refs)
            else:
                tsum = avail
                from_base = from_nadir = None
                if i == last:
                    from_base = pct_change(tsum, baseline_sum)
                    values.update(target_sum_mm=tsum, pct_change_from_baseline=from_base,
                                  absolute_change_from_nadir_mm=tsum - nadir)
                    if nadir > 0:
                        values["pct_change_from_nadir"] = from_nadir = pct_change(tsum, nadir)
                nodal_ok = True
                for lid, c in contribs.items():
                    if not (c < NODE_NORMAL_MM if base_targets[lid].nodal else c == 0):
                        nodal_ok = False
                        break
                tsum_txt = fmt(tsum)
                back = [lid for lid, c in contribs.items()
                        if (c >= NODE_NORMAL_MM if base_targets[lid].nodal else c > 0)] \
                    if results and results[-1].overall == "CR" else []
                if back:
                    target_resp = "PD"
                    ev.add("recist.target.reappeared", f"{when}: overall CR at the previous assessment and "
                           f"{', '.join(back)} has reappeared: PD (after a CR any reappearance is PD).",
                           "RECIST Working Group FAQ 'Does a new lesion always result in PD?'; criteria.md §2.6", refs)
                elif _is_pd(tsum, nadir):
                    target_resp = "PD"
                    ev.add("recist.target.pd", f"{when}: sum {tsum_txt} mm is "
                           f"{_nadir_text(tsum, nadir, nadir_txt_, from_nadir)}: PD "
                           "(needs >= +20 % and >= +5 mm over the nadir).", f"{CITE} §4.3.1", refs)
                elif nodal_ok:
                    target_resp = "CR"
                    ev.add("recist.target.cr", f"{when}: all non-nodal targets 0 mm and every nodal target "
                           "short axis < 10 mm: target CR.", f"{CITE} §4.3.1", refs)
                elif tsum * 100 <= pr_limit:
                    target_resp = "PR"
                    if from_base is None:
                        from_base = pct_change(tsum, baseline_sum)
                    ev.add("recist.target.pr", f"{when}: sum {tsum_txt} mm is {fmt_pct(from_base)} from "
                           f"baseline {base_txt} mm: PR (needs <= −30 %).", f"{CITE} §4.3.1", refs)
                elif continuing_pr and (pr_assigned or cr_assigned):
                    target_resp = "PR"
                    if from_base is None:
                        from_base = pct_change(tsum, baseline_sum)
                    ev.add("recist.target.pr_continuing", f"{when}: sum {tsum_txt} mm is {fmt_pct(from_base)} "
                           f"from baseline and {_nadir_text(tsum, nadir, nadir_txt_, from_nadir)}, not PD: the earlier "
                           "PR continues until PD criteria are met (strict time-point reading: SD).",
                           "RECIST Working Group FAQ; criteria.md §2.4", refs)
                else:
                    target_resp = "SD"
                    if from_base is None:
                        from_base = pct_change(tsum, baseline_sum)
                    ev.add("recist.target.sd", f"{when}: sum {tsum_txt} mm is {fmt_pct(from_base)} from "
                           f"baseline (PR needs <= −30 %) and {_nadir_text(tsum, nadir, nadir_txt_, from_nadir)} "
                           "(PD needs >= +20 % and >= +5 mm): SD.", f"{CITE} §4.3.1; EORTC FAQ", refs)
        nt = tp.non_target
        if nt == "PD":
            ev.add("recist.nontarget.pd", f"{when}: unequivocal progression of non-target disease: PD.",
                   f"{CITE} §4.3.3", refs)
        if tp.new_lesion == "yes":
            ev.add("recist.new_lesion", f"{when}: unequivocal new lesion: PD.", f"{CITE} §4.3.5", refs)
        elif tp.new_lesion == "equivocal":
            ev.add("recist.new_lesion.equivocal", f"{when}: equivocal new lesion: not PD now; if a later scan "
                   "confirms it, PD is dated to this scan.", f"{CITE} §4.3.5", refs)
        overall = _overall(target_resp, nt, tp.new_lesion)
        if target_resp == "CR" and overall == "PR":
            ev.add("recist.overall.cr_nt", f"{when}: targets CR but non-target disease "
                   f"{'not evaluated' if nt == 'NE' else 'persists'}: overall PR.", f"{CITE} Table 1")
        results.append(_TP(tp.date, target_resp, nt, tp.new_lesion, overall, tsum, avail, values=values))
        if tsum is not None and target_resp != "NE" and not partial:
            evaluable_sums.append((tp.date, tsum))  # only complete sums can become the nadir
            if nadir_sum is None or tsum < nadir_sum:
                nadir_sum = tsum
        run_start = _track_response(results[-1], run_start, inputs.confirmation_required)
        pr_assigned = pr_assigned or (run_start is not None and overall == "PR" and _counts(tp.date, run_start, inputs))
        cr_assigned = cr_assigned or (run_start is not None and overall == "CR" and _counts(tp.date, run_start, inputs))

    if not results:
        return Assessment(
            criteria=CRITERIA, category="NE", label="not evaluable: baseline only", outcome=Outcome.NOT_EVALUABLE,
            assessment_date=baseline.date, confirmed=False, source=SOURCE,
            values={"baseline_sum_mm": baseline_sum} if baseline_sum is not None else {},
            evidence=ev.items(), missing=tuple(missing) + ("no follow-up imaging after baseline",),
        )

    current = results[-1]
    confirmed, first_met = _confirmation(results)
    start = inputs.treatment_start or baseline.date
    bor = _best_overall(results, start, inputs.min_sd_days, inputs.confirmation_required)
    values = dict(current.values)
    values["best_overall_response"] = bor
    values["timepoint_date"] = current.date
    if current.target_response:
        values["target_response"] = current.target_response
    if current.non_target:
        values["non_target_response"] = current.non_target
    values["new_lesion"] = current.new_lesion
    if first_met:
        values["response_first_met"] = first_met
    if current.overall in ("CR", "PR"):
        if confirmed:
            ev.add("recist.confirmed", f"{current.overall if current.overall != 'PR' else 'Response'} first met "
                   f"{first_met.isoformat()} and still met {current.date.isoformat()} (>= 28 days): confirmed.",
                   f"{CITE} §4.4.3")
        else:
            due = (first_met or current.date) + timedelta(days=CONFIRMATION_DAYS)
            values["confirm_on_or_after"] = due
            ev.add("recist.unconfirmed", f"Response first met {(first_met or current.date).isoformat()}: not yet "
                   f"confirmed; confirm on a scan on or after {due.isoformat()} (>= 4 weeks).", f"{CITE} §4.4.3")
    ev.add("recist.bor", f"Best overall response so far: {bor}"
           f"{' (confirmation required)' if inputs.confirmation_required else ''}.", f"{CITE} §4.4, Table 3")
    if current.overall == "PD":
        cat_confirmed = True
    elif current.overall in ("SD", "non-CR/non-PD"):
        cat_confirmed = (current.date - start).days >= inputs.min_sd_days
    elif current.overall == "NE":
        cat_confirmed = False
    else:
        cat_confirmed = confirmed
    history = (_new_timepoint_result(baseline.date, "baseline", Outcome.NOT_EVALUABLE,
                                     {"target_sum_mm": baseline_sum} if baseline_sum is not None else {}),) + tuple(
        _new_timepoint_result(r.date, r.overall, OUTCOMES.get(r.overall, Outcome.NOT_EVALUABLE),
                              {"target_sum_mm": r.target_sum} if r.target_sum is not None else {})
        for r in results
    )
    evidence = ev.items()
    return _new_assessment(  # Assessment(...) with every field given (rules.base.frozen_builder)
        criteria=CRITERIA,
        category=current.overall,
        label=CATEGORY_LABELS.get(current.overall, current.overall),
        outcome=OUTCOMES.get(current.overall, Outcome.NOT_EVALUABLE),
        assessment_date=current.date,
        confirmed=cat_confirmed,
        source=SOURCE,
        values=values,
        evidence=evidence,
        history=history,
        missing=tuple(missing) + (("a target lesion was not assessed",) if current.overall == "NE" and
                                  current.target_response == "NE" else ()),
        notes=_notes(evidence, continuing_pr),
    )


def _track_response(r: _TP, run_start: date | None, confirmation_required: bool) -> date | None:
    """The first date of the unbroken run of CR/PR time points that ``r`` continues (None when ``r`` breaks it)."""
    if r.overall not in ("CR", "PR"):
        return None
    return run_start or r.date


def _counts(when: date, run_start: date, inputs: RecistInputs) -> bool:
    """A CR/PR at ``when`` is assigned for the continuing-PR convention: at once when confirmation is not required,
    else only once it has been sustained >= 28 days (criteria.md §2.4 note: "a PR once assigned (and confirmed,
    where confirmation is required) stays PR"; §2.9 Table 3: PR then SD is SD)."""
    return not inputs.confirmation_required or (when - run_start).days >= CONFIRMATION_DAYS


def _nadir_text(tsum: Decimal, nadir: Decimal, nadir_txt: str, from_nadir: Decimal | None) -> str:
    """The change against the nadir in words (``from_nadir``: pct_change(tsum, nadir), when already computed)."""
    if nadir > 0:
        return (f"{fmt_pct(from_nadir if from_nadir is not None else pct_change(tsum, nadir))}, "
                f"{'+' if tsum >= nadir else '−'}{fmt(abs(tsum - nadir))} mm vs nadir {nadir_txt} mm")
    return f"+{fmt(tsum)} mm over a nadir of 0 mm"


def _notes(evidence: tuple[Evidence, ...], continuing_pr: bool) -> tuple[str, ...]:
    if continuing_pr and any(e.rule == "recist.target.pr_continuing" for e in evidence):
        return ("PR is kept until PD criteria are met (RECIST Working Group FAQ); a strict time-point reading "
                "would call this visit SD.",)
    return ()


def _refs(tp: Timepoint) -> tuple[str, ...]:
    refs = list(tp.refs)
    for t in tp.targets:
        if t.ref:
            refs.append(t.ref)
    return tuple(dict.fromkeys(refs))


def _confirmation(results: list[_TP]) -> tuple[bool, date | None]:
    """Whether the current CR/PR has been sustained >= 28 days (no PD/NE-break in between)."""
    current = results[-1]
    if current.overall not in ("CR", "PR"):
        return False, None
    first = current.date
    for r in reversed(results[:-1]):
        if r.overall in ("CR", "PR"):
            first = r.date
        else:
            break
    if current.overall == "CR":
        first_cr = current.date
        for r in reversed(results[:-1]):
            if r.overall == "CR":
                first_cr = r.date
            else:
                break
        if (current.date - first_cr).days >= CONFIRMATION_DAYS:
            return True, first_cr
        # a CR following a confirmed-duration PR confirms the response (Table 3: PR then CR = PR)
    return (current.date - first).days >= CONFIRMATION_DAYS, first


def _best_overall(results: list[_TP], start: date, min_sd_days: int, confirmation_required: bool) -> str:
    """Best overall response (RECIST 1.1 §4.4.3 and Table 3)."""
    def sd_ok(r: _TP) -> bool:
        return (r.date - start).days >= min_sd_days

    best = None
    for i, r in enumerate(results):
        cat = r.overall
        if cat in ("CR", "PR") and confirmation_required:
            later = [x for x in results[i + 1:] if (x.date - r.date).days >= CONFIRMATION_DAYS]
            nxt = later[0] if later else None
            if nxt is not None and cat == "CR" and nxt.overall == "CR":
                cat = "CR"
            elif nxt is not None and nxt.overall in ("CR", "PR") and cat in ("PR", "CR"):
                cat = "PR"
            else:
                cat = "SD" if sd_ok(r) else None
        elif cat in ("SD", "non-CR/non-PD"):
            cat = cat if sd_ok(r) else None
        elif cat == "NE":
            cat = None
        if cat is not None and (best is None or _RANK[cat] > _RANK[best]):
            best = cat
    if best is not None:
        return best
    if any(r.overall == "PD" for r in results):
        return "PD"
    return "NE"


def _not_evaluable(reasons: Iterable[str], ev: EvidenceLog) -> Assessment:
    reasons = tuple(reasons)
    return Assessment(
        criteria=CRITERIA, category="NE", label="not evaluable", outcome=Outcome.NOT_EVALUABLE,
        assessment_date=None, confirmed=False, source=SOURCE, evidence=ev.items(), missing=reasons,
    )
