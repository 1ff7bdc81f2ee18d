"""mRECIST for hepatocellular carcinoma (Lencioni R, Llovet JM, Semin Liver Dis 2010;30:52-60).

Target lesions are measured on the arterial phase as the longest diameter of the *viable* (arterially
enhancing) tumour; necrotic parts are left out (criteria.md §10.5):

* CR: no intratumoural arterial enhancement left in any target lesion (nodal targets: short axis < 10 mm);
* PR: sum of viable diameters decreased >= 30 % vs the baseline sum;
* PD: sum of viable diameters increased >= 20 % vs the nadir (smallest sum on study incl. baseline) -
  mRECIST has **no** 5-mm absolute rule;
* SD: neither.

Target lesions at baseline: >= 10 mm viable diameter (measurable, arterially enhancing), at most 5 in total and
2 per organ; lymph nodes count as malignant targets when the short axis is >= 20 mm (porta hepatis) or
>= 15 mm (elsewhere).  Non-target disease: CR (no enhancement anywhere), IR/SD (incomplete response / stable:
enhancement persists in >= 1), PD (unequivocal progression).  New lesions -> PD; a new node counts only when it
reaches the malignant short-axis size; a new or growing effusion/ascites counts only with malignant cytology.
Overall response follows the RECIST 1.1 Table 1 pattern (Lencioni 2010 adopts it).

The same series is also read by RECIST 1.1 on the total (conventional) diameters, reported as
``RECIST_1.1_equivalent`` (PR <= -30 % vs baseline, PD >= +20 % and >= +5 mm vs nadir).

Interpretation choices [I]:

* Targets beyond the limits or below the size/enhancement rule at baseline are left out of the sums (a note
  says which); shortcut sums (``viable_sum_mm`` / ``total_sum_mm``) are taken as given.
* A nadir of 0 mm (after CR) has no percent change: any re-enhancement (sum > 0) is PD.
* For the RECIST 1.1 equivalent, the non-target reading is carried over (mRECIST CR -> CR, IR/SD ->
  non-CR/non-PD); this is only an approximation, since mRECIST CR means loss of enhancement, not disappearance.
* CR/PR are confirmed by a repeat CR (CR) or PR/CR (PR) >= 28 days later (RECIST 1.1 rule, adopted by
  Lencioni 2010); SD and PD need no confirmation.
* ``new_lesions=None`` (not assessed) does not block PR/SD but a CR then is NE.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
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
    RECIST_PD_ABS_MM,
    RECIST_PD_PCT,
    RECIST_PR_PCT,
    RESPONSE_CONFIRM_MIN_DAYS,
    SumReading,
    classify_sum,
    dec,
    mm,
    non_target_at,
    overall_response,
    progression_established,
    response_confirmed,
)
from .base import Assessment, EvidenceLog, Outcome, Source, TimepointResult

CRITERIA = "mRECIST (HCC)"
SOURCE = Source(
    label="Lencioni R, Llovet JM. Modified RECIST (mRECIST) assessment for hepatocellular carcinoma. "
          "Semin Liver Dis 2010;30:52-60",
    url="https://doi.org/10.1055/s-0030-1247132",
)

# --- thresholds -------------------------------------------------------------------------------------
MRECIST_PR_PCT = Decimal(-30)
"""PR: >= 30 % decrease of the sum of viable diameters vs baseline (Lencioni 2010; criteria.md §10.5)."""
MRECIST_PD_PCT = Decimal(20)
"""PD: >= 20 % increase of the sum of viable diameters vs nadir, no absolute rule (Lencioni 2010; criteria.md §10.5)."""
MRECIST_TARGET_MIN_MM = Decimal(10)
"""Target lesion: viable (enhancing) longest diameter >= 10 mm at baseline (Lencioni 2010; criteria.md §10.5)."""
MRECIST_MAX_TARGETS = 5
"""At most 5 target lesions in total (Lencioni 2010; criteria.md §10.5)."""
MRECIST_MAX_PER_ORGAN = 2
"""At most 2 target lesions per organ (Lencioni 2010; criteria.md §10.5)."""
PORTA_HEPATIS_NODE_SA_MM = Decimal(20)
"""Porta hepatis lymph node is malignant when its short axis is >= 20 mm (Lencioni 2010 [P]; criteria.md §10.5).
Re-check: Lencioni 2010 text not found in stored sources; an HCC trial-design review copy says nodes are not called
malignant "until growth beyond 2 cm" (consistent)."""
OTHER_NODE_SA_MM = Decimal(15)
"""Other lymph nodes are malignant when the short axis is >= 15 mm (Lencioni 2010 [P]; criteria.md §10.5; re-check:
not found in stored sources)."""

CIT_TARGET = "Lencioni 2010 (mRECIST) target lesion response; criteria.md §10.5"
CIT_SELECT = "Lencioni 2010 (mRECIST) target lesion selection; criteria.md §10.5"
CIT_NT = "Lencioni 2010 (mRECIST) non-target response; criteria.md §10.5"
CIT_NEW = "Lencioni 2010 (mRECIST) new lesions, nodes and effusions [P]; criteria.md §10.5"

CR, PR, SD, NN, PD, NE = "CR", "PR", "SD", "non-CR/non-PD", "PD", "NE"
LABELS = {
    CR: "complete response (no viable enhancing tumour)",
    PR: "partial response (viable tumour)",
    SD: "stable disease",
    NN: "non-complete response / non-progressive disease (non-target disease only)",
    PD: "progressive disease",
    NE: "not evaluable",
}
OUTCOMES = {CR: Outcome.COMPLETE, PR: Outcome.PARTIAL, SD: Outcome.STABLE, NN: Outcome.STABLE,
            PD: Outcome.PROGRESSION, NE: Outcome.NOT_EVALUABLE}
_CAT = {"CR": CR, "PR": PR, "SD": SD, "NN": NN, "PD": PD, "NE": NE}

_NT_SYNONYMS = {
    "cr": NT_CR, "complete response": NT_CR, "no enhancement": NT_CR,
    "ir/sd": NT_NN, "ir": NT_NN, "sd": NT_NN, "incomplete response/stable disease": NT_NN,
    "non-cr/non-pd": NT_NN, "present": NT_NN, "stable": NT_NN,
    "pd": NT_PD, "progression": NT_PD, "unequivocal progression": NT_PD,
    "ne": NT_NE, "not evaluated": NT_NE, "not assessed": NT_NE,
    "none": None, "": None,
}


def normalise_non_target(value: Optional[str]) -> Optional[str]:
    """CR / IR-SD (returned as non-CR/non-PD) / PD / NE; None = no non-target disease. Unknown -> ValueError."""
    if value is None:
        return None
    key = value.strip().lower()
    if key in _NT_SYNONYMS:
        return _NT_SYNONYMS[key]
    raise ValueError(f"unknown non-target status {value!r}")


# --- inputs -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HccTarget:
    """One target lesion at one time point.

    viable_mm: longest diameter of the arterially enhancing (viable) tumour, mm (0 = no enhancement left;
    None = not assessed).  For a nodal target: its short axis.  total_mm: conventional longest diameter
    (RECIST 1.1), optional.  site: organ (for the 2-per-organ rule).
    """

    lesion_id: str
    viable_mm: Optional[Decimal]
    total_mm: Optional[Decimal] = None
    site: Optional[str] = None
    nodal: bool = False
    porta_hepatis: bool = False
    ref: Optional[str] = None


@dataclass(frozen=True)
class NewNode:
    """A new or newly enlarged lymph node (short axis, mm)."""

    lesion_id: str
    short_axis_mm: Decimal
    porta_hepatis: bool = False
    ref: Optional[str] = None


@dataclass(frozen=True)
class MrecistTimepoint:
    """One dated assessment (the earliest is the baseline).

    targets, or the shortcuts viable_sum_mm / total_sum_mm; non_target CR / IR/SD / PD / NE or None (none);
    new_lesions: unequivocal new lesion(s) (None = not assessed); new_nodes; effusion_new_or_increased with
    effusion_cytology_malignant (None = no cytology).
    """

    date: date
    targets: tuple[HccTarget, ...] = ()
    viable_sum_mm: Optional[Decimal] = None
    total_sum_mm: Optional[Decimal] = None
    non_target: Optional[str] = None
    new_lesions: Optional[bool] = False
    new_nodes: tuple[NewNode, ...] = ()
    effusion_new_or_increased: bool = False
    effusion_cytology_malignant: Optional[bool] = None
    ref: Optional[str] = None


@dataclass(frozen=True)
class MrecistInputs:
    timepoints: tuple[MrecistTimepoint, ...]


# --- internals --------------------------------------------------------------------------------------
def _refs(*items: object) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        for obj in (item, *getattr(item, "targets", ()), *getattr(item, "new_nodes", ())):
            ref = getattr(obj, "ref", None)
            if ref and ref not in out:
                out.append(ref)
    return tuple(out)


def _select_targets(base: MrecistTimepoint, notes: list[str], log: EvidenceLog) -> tuple[str, ...]:
    chosen: list[str] = []
    per_organ: dict[str, int] = {}
    for t in base.targets:
        organ = "lymph nodes" if t.nodal else (t.site or "liver").strip().lower()
        size = dec(t.viable_mm)
        if t.nodal:
            minimum = PORTA_HEPATIS_NODE_SA_MM if t.porta_hepatis else OTHER_NODE_SA_MM
            why = f"short axis {mm(size) if size is not None else 'missing'} (target node needs >= {mm(minimum)})"
        else:
            minimum = MRECIST_TARGET_MIN_MM
            why = (f"viable diameter {mm(size) if size is not None else 'missing'} "
                   f"(target needs >= {mm(minimum)} with arterial enhancement)")
        if size is None or size < minimum:
            notes.append(f"Baseline lesion {t.lesion_id} not eligible as mRECIST target: {why}; left out of the sums.")
            log.add("mrecist.select.ineligible", f"{t.lesion_id}: {why}", CIT_SELECT, _refs(t))
            continue
        if len(chosen) >= MRECIST_MAX_TARGETS or per_organ.get(organ, 0) >= MRECIST_MAX_PER_ORGAN:
            notes.append(f"Baseline lesion {t.lesion_id} exceeds the target limits ({MRECIST_MAX_TARGETS} total, "
                         f"{MRECIST_MAX_PER_ORGAN} per organ); left out of the sums.")
            log.add("mrecist.select.limit", f"{t.lesion_id}: beyond {MRECIST_MAX_TARGETS} total / "
                    f"{MRECIST_MAX_PER_ORGAN} per organ", CIT_SELECT, _refs(t))
            continue
        chosen.append(t.lesion_id)
        per_organ[organ] = per_organ.get(organ, 0) + 1
    return tuple(chosen)


def _value(t: HccTarget, attr: str) -> Optional[Decimal]:
    """A lesion's viable or total diameter; a nodal target's short axis serves as both."""
    value = dec(getattr(t, attr))
    if value is None and t.nodal and attr == "total_mm":
        value = dec(t.viable_mm)
    return value


def _sum(tp: MrecistTimepoint, ids: tuple[str, ...], attr: str, shortcut: Optional[Decimal]):
    """(full sum or None, measured part, missing ids); shortcut used when no lesions are given."""
    if tp.targets or (ids and shortcut is None):
        by_id = {t.lesion_id: t for t in tp.targets}
        total, missing = Decimal(0), []
        for lid in ids:
            value = _value(by_id[lid], attr) if lid in by_id else None
            if value is None:
                missing.append(lid)
            else:
                total += value
        return (None if missing else total), total, missing
    if shortcut is not None:
        return dec(shortcut), dec(shortcut), []
    return None, Decimal(0), ["sum"]


def _complete(tp: MrecistTimepoint, ids: tuple[str, ...], attr: str, total: Decimal) -> bool:
    if not tp.targets:
        return total == 0
    by_id = {t.lesion_id: t for t in tp.targets}
    for lid in ids:
        t = by_id[lid]
        value = _value(t, attr)
        if value is None:
            return False
        if t.nodal and not value < RECIST_NODE_NORMAL_SA_MM:
            return False
        if not t.nodal and value != 0:
            return False
    return True


@dataclass
class _Track:
    """Sum series for one measurement (viable or total)."""

    attr: str
    label: str
    pd_abs: Optional[Decimal]
    pr_pct: Decimal
    pd_pct: Decimal
    baseline: Optional[Decimal] = None
    nadir: Optional[Decimal] = None

    def read(self, tp: MrecistTimepoint, ids: tuple[str, ...], shortcut: Optional[Decimal]):
        """(category CR/PR/SD/PD/NE, SumReading or None, missing phrase or None, measured part)."""
        full, part, miss = _sum(tp, ids, self.attr, shortcut)
        if full is not None:
            reading = classify_sum(full, self.baseline, self.nadir,
                                   complete=_complete(tp, ids, self.attr, full),
                                   pr_pct=self.pr_pct, pd_pct=self.pd_pct, pd_abs_mm=self.pd_abs, label=self.label)
            return reading.category, reading, None, part
        if miss != ["sum"] and progression_established(part, self.nadir, pd_pct=self.pd_pct, pd_abs_mm=self.pd_abs):
            return "PD", None, None, part
        what = f"{self.label.lower()} not measured" if miss == ["sum"] else \
            f"{self.label.lower()}: lesion(s) {', '.join(miss)} not measured"
        return "NE", None, f"{what} on {tp.date}", part

    def update(self, reading: Optional[SumReading]) -> None:
        if reading is not None and reading.sum_mm < self.nadir:
            self.nadir = reading.sum_mm


# --- engine -----------------------------------------------------------------------------------------
def assess(inputs: MrecistInputs, as_of: date) -> Assessment:
    """mRECIST category at the latest assessment on or before ``as_of`` (see module docstring)."""
    log = EvidenceLog()
    notes: list[str] = []
    tps = sorted((tp for tp in inputs.timepoints if tp.date <= as_of), key=lambda tp: tp.date)

    def not_evaluable(reason: str) -> Assessment:
        return Assessment(criteria=CRITERIA, category=NE, label=LABELS[NE], outcome=Outcome.NOT_EVALUABLE,
                          assessment_date=tps[-1].date if tps else None, confirmed=False, source=SOURCE,
                          missing=(reason,), evidence=log.items(), notes=tuple(notes))

    if len(tps) < 2:
        return not_evaluable("no baseline and follow-up imaging pair on or before the assessment date")
    base = tps[0]
    ids = _select_targets(base, notes, log)
    if base.targets and not ids:
        return not_evaluable("no eligible mRECIST target lesion at baseline")
    try:
        base_nt = normalise_non_target(base.non_target)
    except ValueError:
        # at baseline non-target disease is only recorded as present: a description means "present"
        base_nt = NT_NN
        notes.append(f"Baseline non-target description {base.non_target!r} read as non-target disease present.")

    viable = _Track("viable_mm", "Viable sum", None, MRECIST_PR_PCT, MRECIST_PD_PCT)
    total = _Track("total_mm", "Total-diameter sum", RECIST_PD_ABS_MM, RECIST_PR_PCT, RECIST_PD_PCT)

    vb, _, _ = _sum(base, ids, "viable_mm", base.viable_sum_mm)
    if vb is None and base.non_target is None:
        return not_evaluable("baseline viable target diameters missing")
    has_targets = vb is not None and vb > 0
    if not has_targets and base_nt is None:
        return not_evaluable("no viable target or non-target disease at baseline")
    viable.baseline = viable.nadir = vb if has_targets else None
    tb, _, _ = _sum(base, ids, "total_mm", base.total_sum_mm)
    has_total = has_targets and tb is not None and tb > 0
    total.baseline = total.nadir = tb if has_total else None
    if has_targets:
        log.add("mrecist.baseline", f"Baseline {base.date}: viable sum {mm(vb)}"
                + (f", total-diameter sum {mm(tb)}" if has_total else "")
                + (f" ({len(ids)} target lesions)" if ids else ""), CIT_SELECT, _refs(base))
    if has_targets and not has_total:
        notes.append("Total (conventional) diameters not given: no RECIST 1.1 equivalent.")

    history: list[TimepointResult] = []
    series: list[tuple[date, str]] = []
    values: dict = {}
    missing_last: list[str] = []
    for tp in tps[1:]:
        refs = _refs(tp)
        tv: dict = {}
        missing: list[str] = []
        # ---- targets
        if has_targets:
            target, reading, miss, part = viable.read(tp, ids, tp.viable_sum_mm)
            tv["baseline_viable_sum_mm"] = viable.baseline
            tv["nadir_viable_sum_mm"] = viable.nadir
            if reading is not None:
                tv.update(viable_sum_mm=reading.sum_mm, pct_change_viable_sum=reading.pct_from_baseline,
                          pct_change_viable_from_nadir=reading.pct_from_nadir)
                text = reading.text
                if target == "CR":
                    text = "No intratumoural arterial enhancement left in any target lesion (viable sum " \
                           f"{mm(reading.sum_mm)})"
                log.add(f"mrecist.target.{target.lower()}", f"{tp.date}: {text}", CIT_TARGET, refs)
            elif target == "PD":
                tv["available_viable_sum_mm"] = part
                log.add("mrecist.target.pd_partial", f"{tp.date}: measured viable diameters already sum to "
                        f"{mm(part)}, >= +{MRECIST_PD_PCT} % over nadir {mm(viable.nadir)}", CIT_TARGET, refs)
            else:
                missing.append(miss)
                log.add("mrecist.target.ne", f"{tp.date}: target response not evaluable ({miss})", CIT_TARGET, refs)
        else:
            target, reading = "none", None
        # ---- non-target
        nt = non_target_at(tp.non_target, normalise_non_target, base_nt is not None, tp.date, missing)
        if nt is not None:
            word = {NT_CR: "CR (no enhancement)", NT_NN: "IR/SD (enhancement persists)", NT_PD: "PD",
                    NT_NE: "not evaluated"}[nt]
            log.add("mrecist.nontarget", f"{tp.date}: non-target disease {word}", CIT_NT, refs)
        # ---- new lesions, nodes, effusion
        new = bool(tp.new_lesions)
        if tp.new_lesions:
            log.add("mrecist.new_lesion", f"{tp.date}: unequivocal new lesion(s) -> PD", CIT_NEW, refs)
        for node in tp.new_nodes:
            minimum = PORTA_HEPATIS_NODE_SA_MM if node.porta_hepatis else OTHER_NODE_SA_MM
            where = "porta hepatis" if node.porta_hepatis else "non-porta-hepatis"
            size = dec(node.short_axis_mm)
            if size >= minimum:
                new = True
                log.add("mrecist.new_node", f"{tp.date}: new {where} node {node.lesion_id} short axis {mm(size)} "
                        f"(malignant at >= {mm(minimum)}) -> new lesion", CIT_NEW, _refs(node))
            else:
                log.add("mrecist.new_node.benign", f"{tp.date}: node {node.lesion_id} short axis {mm(size)} "
                        f"< {mm(minimum)} ({where}): not a new lesion", CIT_NEW, _refs(node))
        if tp.effusion_new_or_increased:
            if tp.effusion_cytology_malignant:
                new = True
                log.add("mrecist.effusion", f"{tp.date}: new/increased effusion with malignant cytology -> PD",
                        CIT_NEW, refs)
            else:
                state = "no cytology" if tp.effusion_cytology_malignant is None else "cytology negative"
                log.add("mrecist.effusion.unproven", f"{tp.date}: new/increased effusion, {state}: "
                        "not progression without malignant cytology", CIT_NEW, refs)
                if tp.effusion_cytology_malignant is None:
                    notes.append(f"Effusion on {tp.date} needs cytology before it can count as progression.")
        overall = overall_response(target, nt, new)
        if overall == "CR" and tp.new_lesions is None:
            overall = "NE"
            missing.append(f"new lesions not assessed on {tp.date} (needed for CR)")
        category = _CAT[overall]
        log.add("mrecist.timepoint", f"{tp.date}: mRECIST {category} (target {target}, non-target {nt or 'none'}, "
                f"new lesions {'yes' if new else 'no'})", CIT_RECIST_TABLE1 + " pattern; " + CIT_TARGET, refs)
        if category == NE and not missing:
            missing.append(f"response not evaluable on {tp.date}")
        # ---- RECIST 1.1 equivalent on total diameters
        if has_total:
            t_cat, t_reading, t_miss, _ = total.read(tp, ids, tp.total_sum_mm)
            if t_reading is not None:
                tv.update(baseline_total_sum_mm=total.baseline, total_sum_mm=t_reading.sum_mm,
                          nadir_total_sum_mm=total.nadir, pct_change_total_size=t_reading.pct_from_baseline)
            rec = overall_response(t_cat, nt, new)
            rec = {"NN": "non-CR/non-PD"}.get(rec, rec)
            tv["RECIST_1.1_equivalent"] = rec
            log.add("mrecist.recist_equivalent",
                    f"{tp.date}: RECIST 1.1 on total diameters: "
                    + (t_reading.text if t_reading is not None else (t_miss or "progression")) + f" -> {rec}",
                    CIT_RECIST_TARGET, refs)
            total.update(t_reading)
        viable.update(reading)
        series.append((tp.date, category))
        history.append(TimepointResult(tp.date, category, OUTCOMES[category], dict(tv)))
        values, missing_last = tv, missing

    last_date, category = series[-1]
    confirmed = category in (SD, NN, PD) or response_confirmed(
        series, {CR: (CR,), PR: (PR, CR)}, RESPONSE_CONFIRM_MIN_DAYS)
    if category in (CR, PR):
        log.add(f"mrecist.{category.lower()}.confirmation",
                f"{category} {'confirmed' if confirmed else 'not yet confirmed'} by a repeat assessment "
                f">= {RESPONSE_CONFIRM_MIN_DAYS} days later", CIT_RECIST_CONFIRM)
    return Assessment(
        criteria=CRITERIA, category=category, label=LABELS[category], outcome=OUTCOMES[category],
        assessment_date=last_date, confirmed=confirmed, source=SOURCE, values=values, evidence=log.items(),
        history=tuple(history), missing=tuple(missing_last) if category == NE else (), notes=tuple(notes),
    )
