"""PCWG3 prostate cancer: PSA and bone-scan outcomes (Scher HI et al., J Clin Oncol 2016;34:1402-1418).

Decision table: criteria.md §10.3 (rows of §11).  Standard library only, no I/O, no clock.

PSA (ng/mL)
    Progression after a decline: first PSA >= 25 % AND >= 2 ng/mL above the nadir, confirmed by a second
    value >= 3 weeks later; progression date = date of the first rise.
    Progression without a decline: >= 25 % and >= 2 ng/mL above baseline after 12 weeks.
    Early rises: rises within the first 12 weeks are ignored for progression.
    PSA50 response: decline >= 50 % from baseline, confirmed by a second value >= 3 weeks later.
Bone scan (the "2 + 2" rule)
    Flare window (first post-treatment scan, up to 12 weeks): >= 2 new lesions vs baseline = PDu; PD only
    if the next scan >= 6 weeks later shows >= 2 additional new lesions, dated to the first scan; otherwise
    flare, and the first scan is re-classified non-PD.  After the flare window the first post-treatment
    scan is the reference: >= 2 new lesions vs that scan = PDu, PD if they persist on a scan >= 6 weeks
    later (dated to the first scan showing them).  Time-point categories NED / non-PD / PDu / PD / NE.

Interpretation choices [I] (criteria.md §0):

* Baseline PSA / bone scan = the last value on or before ``treatment_start``; without a treatment start,
  the value/scan labelled baseline.  Without either nothing is guessed (not evaluable).  The 12-week
  windows count from ``treatment_start`` or, when it is absent, from the baseline date (noted).
* Nadir = the lowest PSA on study including baseline, before the value being classified (criteria.md §0
  convention 4); a nadir given as a shortcut (``nadir_ng_mL``) is used when it is lower.  After a decline
  the nadir is below baseline, without one it equals baseline, so one test (>= 25 % and >= 2 ng/mL above
  the nadir) covers both PCWG3 rows.
* "Early rises ignored": a rise dated < 12 weeks (84 days) from treatment start cannot be the first rise
  of PSA progression, with or without a prior decline (criteria.md §10.3 row "Early rises").
* Confirmation (PSA progression and PSA50): the confirming value is the first value >= 21 days after the
  first one; every value from the first up to it must still meet the threshold, otherwise the next
  candidate is tried.  A candidate with no value >= 21 days later yet is "unconfirmed".
* Current PSA category: progression first; else, when the latest PSA is above the nadir before it (a rise
  being watched), "no PSA progression" (PCWG3-01: a PSA that rose 30 % / 1.2 ng/mL from its nadir after an
  earlier decline is reported as no progression); else the PSA50 status ("PSA response ..." or
  "no PSA response (<50% decline)").  A confirmed PSA50 earlier in a series that is now rising is kept in
  ``values['psa50_confirmed']`` and a note.
* Bone: the flare window is scans <= 12 weeks (84 days) after treatment start.  A first post-treatment
  scan outside the window is compared with baseline and needs only persistence (>= 2 new lesions vs
  baseline) on a scan >= 6 weeks later.  "Persist" = the confirming scan still shows >= 2 new lesions vs the
  reference.  The confirming scan is the first evaluable scan >= 6 weeks later.
* History uses hindsight: a time point shows the category it has once later values confirm or refute
  the event it starts (PCWG3 dates progression to the first rise / first scan).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from .base import (
    Assessment,
    EvidenceLog,
    Outcome,
    Source,
    TimepointResult,
    change_at_least,
    change_at_most,
    fmt,
    fmt_pct,
    pct_change,
)

CRITERIA = "PCWG3"
SOURCE = Source(
    label="Scher HI et al. Trial design and objectives for castration-resistant prostate cancer: updated "
    "recommendations from the Prostate Cancer Clinical Trials Working Group 3. J Clin Oncol 2016;34:1402-1418",
    url="https://doi.org/10.1200/JCO.2015.64.2702",
)
CITE = "Scher 2016 (PCWG3) Table 2"

# --- thresholds (criteria.md §10.3; Scher 2016) ------------------------------------------------------
PSA_PROGRESSION_PCT = Decimal(25)          # >= 25 % above nadir/baseline (Scher 2016 Table 2; §10.3)
PSA_PROGRESSION_ABS_NG_ML = Decimal(2)     # and >= 2 ng/mL absolute increase (Scher 2016 Table 2; §10.3)
PSA_CONFIRMATION_DAYS = 21                 # confirmed by a second value >= 3 weeks later (§10.3, §11)
EARLY_RISE_DAYS = 84                       # rises in the first 12 weeks ignored (Scher 2016; §10.3 [P]; re-check:
                                           # Scher 2016 table not found in stored sources)
PSA_RESPONSE_PCT = Decimal(-50)            # PSA50: decline >= 50 % from baseline (§10.3; checked, secondary:
                                           # pharmaverse/admiralonco adrs_pcwg3.Rmd, >= 50 % from baseline
                                           # confirmed >= 3 weeks later)
BONE_FLARE_WINDOW_DAYS = 84                # flare window: first post-treatment scan up to 12 weeks (§10.3)
BONE_NEW_LESIONS = 2                       # >= 2 new lesions (2 + 2 rule; Scher 2016; §10.3)
BONE_ADDITIONAL_LESIONS = 2                # >= 2 additional new lesions to confirm a flare-window PDu (§10.3)
BONE_CONFIRMATION_DAYS = 42                # confirmation scan >= 6 weeks later (§10.3, §11)

# --- categories --------------------------------------------------------------------------------------
PSA_PROGRESSION = "PSA progression"
PSA_PROGRESSION_UNCONFIRMED = "PSA progression (unconfirmed)"
NO_PSA_PROGRESSION = "no PSA progression"
PSA_RESPONSE = "PSA response (>=50% decline, confirmed)"
PSA_RESPONSE_UNCONFIRMED = "PSA response (>=50% decline, unconfirmed)"
NO_PSA_RESPONSE = "no PSA response (<50% decline)"
PSA_NE = "PSA not evaluable"
PSA_BASELINE = "PSA baseline"

BONE_PD = "PD (bone)"
BONE_PDU = "PDu (bone)"
BONE_NON_PD = "non-PD (bone)"
BONE_NED = "NED (bone)"
BONE_NE = "NE (bone)"
BONE_BASELINE = "baseline bone scan"

LABELS = {
    PSA_PROGRESSION: "PSA progression (>= 25 % and >= 2 ng/mL above nadir, confirmed >= 3 weeks later)",
    PSA_PROGRESSION_UNCONFIRMED: "PSA rise to the progression level, not yet confirmed >= 3 weeks later",
    NO_PSA_PROGRESSION: "no PSA progression",
    PSA_RESPONSE: "PSA response: decline of at least 50 % from baseline, confirmed >= 3 weeks later",
    PSA_RESPONSE_UNCONFIRMED: "PSA decline of at least 50 % from baseline, not yet confirmed",
    NO_PSA_RESPONSE: "no PSA response (decline of less than 50 %) and no PSA progression",
    PSA_NE: "PSA not evaluable",
    PSA_BASELINE: "baseline PSA (reference value)",
    BONE_PD: "radiographic progression on bone scan (2 + 2 rule, confirmed)",
    BONE_PDU: "unconfirmed progression on bone scan (awaiting a scan >= 6 weeks later)",
    BONE_NON_PD: "no progression on bone scan",
    BONE_NED: "no evidence of bone disease",
    BONE_NE: "bone scan not evaluable",
    BONE_BASELINE: "baseline bone scan (reference)",
}

OUTCOMES = {
    PSA_PROGRESSION: Outcome.PROGRESSION,
    PSA_PROGRESSION_UNCONFIRMED: Outcome.UNCONFIRMED_PROGRESSION,
    NO_PSA_PROGRESSION: Outcome.STABLE,
    PSA_RESPONSE: Outcome.PARTIAL,
    PSA_RESPONSE_UNCONFIRMED: Outcome.PARTIAL,
    NO_PSA_RESPONSE: Outcome.STABLE,
    PSA_NE: Outcome.NOT_EVALUABLE,
    PSA_BASELINE: Outcome.NOT_EVALUABLE,
    BONE_PD: Outcome.PROGRESSION,
    BONE_PDU: Outcome.UNCONFIRMED_PROGRESSION,
    BONE_NON_PD: Outcome.STABLE,
    BONE_NED: Outcome.COMPLETE,
    BONE_NE: Outcome.NOT_EVALUABLE,
    BONE_BASELINE: Outcome.NOT_EVALUABLE,
}

BASELINE_LABELS = ("baseline", "pretreatment", "pre-treatment")


def _is_baseline_label(label: str | None) -> bool:
    return bool(label) and label.strip().lower().startswith(BASELINE_LABELS)


# =====================================================================================================
# Inputs
# =====================================================================================================

@dataclass(frozen=True)
class PSAValue:
    """One serum PSA result in ng/mL (= µg/L)."""

    date: date
    value_ng_mL: Decimal
    ref: str | None = None
    label: str | None = None  # vignette shortcut: "baseline", "nadir"


@dataclass(frozen=True)
class PSAInputs:
    values: tuple[PSAValue, ...]
    treatment_start: date | None = None
    nadir_ng_mL: Decimal | None = None  # shortcut when the nadir is known but not in the series


@dataclass(frozen=True)
class BoneScan:
    """One bone scan.

    new_lesions_vs_baseline:          number of new lesions compared with the baseline scan
    additional_new_lesions_vs_first:  shortcut: new lesions compared with the first post-treatment scan
                                      (otherwise derived as new_vs_baseline(this) - new_vs_baseline(first))
    lesion_count:                     total lesions seen (0 with no new lesions = NED)
    evaluable:                        False when the scan could not be read (NE)
    """

    date: date
    new_lesions_vs_baseline: int | None = None
    additional_new_lesions_vs_first: int | None = None
    lesion_count: int | None = None
    evaluable: bool = True
    ref: str | None = None
    label: str | None = None  # "baseline"


@dataclass(frozen=True)
class BoneInputs:
    scans: tuple[BoneScan, ...]
    treatment_start: date | None = None


@dataclass(frozen=True)
class PCWG3Inputs:
    psa: PSAInputs | None = None
    bone: BoneInputs | None = None


def _refs(*items) -> tuple[str, ...]:
    return tuple(i.ref for i in items if i is not None and getattr(i, "ref", None))


def _ne(category: str, missing: tuple[str, ...], log: EvidenceLog, notes: list[str], values: dict,
        history=()) -> Assessment:
    return Assessment(criteria=CRITERIA, category=category, label=LABELS[category],
                      outcome=Outcome.NOT_EVALUABLE, assessment_date=None, confirmed=False, source=SOURCE,
                      values=values, evidence=log.items(), history=tuple(history), missing=missing,
                      notes=tuple(notes))


# =====================================================================================================
# PSA
# =====================================================================================================

def _meets_rise(value: Decimal, nadir: Decimal) -> bool:
    """>= 25 % AND >= 2 ng/mL above the nadir (exact; a zero nadir only needs the absolute rise)."""
    abs_ok = value - nadir >= PSA_PROGRESSION_ABS_NG_ML
    pct_ok = (value - nadir) * 100 >= PSA_PROGRESSION_PCT * nadir
    return abs_ok and pct_ok


def assess_psa(inputs: PSAInputs, as_of: date) -> Assessment:
    log = EvidenceLog()
    notes: list[str] = []
    values: dict = {}
    series_all = sorted((v for v in inputs.values if v.date <= as_of), key=lambda v: v.date)
    if not series_all:
        return _ne(PSA_NE, ("PSA values",), log, notes, values)

    if inputs.treatment_start is not None:
        before = [v for v in series_all if v.date <= inputs.treatment_start]
        if not before:
            return _ne(PSA_NE, ("baseline PSA (on or before treatment start)",), log, notes, values)
        base = before[-1]
        start = inputs.treatment_start
    else:
        labelled = [v for v in series_all if _is_baseline_label(v.label)]
        if not labelled:
            return _ne(PSA_NE, ("treatment start date or baseline PSA (to identify the baseline)",),
                       log, notes, values)
        base = labelled[-1]
        start = base.date
        notes.append("Treatment start not given: the 12-week windows count from the baseline PSA date.")

    series = [v for v in series_all if v.date > base.date]
    b = base.value_ng_mL
    values["baseline_ng_mL"] = b
    values["baseline_date"] = base.date
    history = [TimepointResult(base.date, PSA_BASELINE, OUTCOMES[PSA_BASELINE], {"PSA_ng_mL": b})]
    if not series:
        return _ne(PSA_NE, ("PSA value after baseline",), log, notes, values, history)
    if b <= 0:
        return _ne(PSA_NE, ("baseline PSA above 0 ng/mL (percent changes need a positive baseline)",),
                   log, notes, values, history)

    n = len(series)

    def nadir_before(k: int) -> Decimal:
        cands = [b] + [v.value_ng_mL for v in series[:k]]
        if inputs.nadir_ng_mL is not None and inputs.nadir_ng_mL <= b:
            cands.append(inputs.nadir_ng_mL)
        return min(cands)

    # ---- progression: first confirmed rise after week 12 ------------------------------------------------
    prog = None  # (i, j | None, nadir)
    for i in range(n):
        if (series[i].date - start).days < EARLY_RISE_DAYS:
            continue
        nad = nadir_before(i)
        if not _meets_rise(series[i].value_ng_mL, nad):
            continue
        j = next((k for k in range(i + 1, n)
                  if (series[k].date - series[i].date).days >= PSA_CONFIRMATION_DAYS), None)
        last = j if j is not None else n - 1
        if all(_meets_rise(series[k].value_ng_mL, nad) for k in range(i + 1, last + 1)):
            prog = (i, j, nad)
            break
    early_rises = [v for k, v in enumerate(series)
                   if (v.date - start).days < EARLY_RISE_DAYS and _meets_rise(v.value_ng_mL, nadir_before(k))]

    # ---- PSA50 ------------------------------------------------------------------------------------------
    def _is50(v: PSAValue) -> bool:
        return change_at_most(v.value_ng_mL, b, PSA_RESPONSE_PCT)

    resp = None  # (i, j | None)
    pending = None
    for i in range(n):
        if not _is50(series[i]):
            continue
        j = next((k for k in range(i + 1, n)
                  if (series[k].date - series[i].date).days >= PSA_CONFIRMATION_DAYS), None)
        last = j if j is not None else n - 1
        run_ok = all(_is50(series[k]) for k in range(i + 1, last + 1))
        if j is not None and run_ok:
            resp = (i, j)
            break
        if j is None and run_ok and pending is None:
            pending = i
    psa50 = resp if resp is not None else ((pending, None) if pending is not None else None)

    def category_at(k: int) -> str:
        if prog is not None and k >= prog[0]:
            return PSA_PROGRESSION if prog[1] is not None else PSA_PROGRESSION_UNCONFIRMED
        if series[k].value_ng_mL > nadir_before(k):
            return NO_PSA_PROGRESSION
        if psa50 is not None and psa50[0] <= k and _is50(series[k]):
            if psa50[1] is not None:  # hindsight: confirmed by a later value
                return PSA_RESPONSE
            return PSA_RESPONSE_UNCONFIRMED
        if _is50(series[k]):
            return PSA_RESPONSE_UNCONFIRMED
        return NO_PSA_RESPONSE

    for k, v in enumerate(series):
        cat = category_at(k)
        nad = nadir_before(k)
        history.append(TimepointResult(v.date, cat, OUTCOMES[cat], {
            "PSA_ng_mL": v.value_ng_mL,
            "pct_change_from_baseline": pct_change(v.value_ng_mL, b),
            "nadir_ng_mL": nad,
        }))

    k_last = n - 1
    latest = series[k_last]
    category = category_at(k_last)
    values["latest_ng_mL"] = latest.value_ng_mL
    values["latest_date"] = latest.date
    values["pct_change_from_baseline_latest"] = pct_change(latest.value_ng_mL, b)
    values["best_pct_change_from_baseline"] = min(pct_change(v.value_ng_mL, b) for v in series)
    wk12 = next((v for v in series if (v.date - start).days >= EARLY_RISE_DAYS), None)
    if wk12 is not None:
        values["pct_change_from_baseline_12wk"] = pct_change(wk12.value_ng_mL, b)
    values["psa50_confirmed"] = resp is not None
    if resp is not None:
        values["psa50_date"] = series[resp[0]].date

    confirmed = True
    idx = k_last
    if category in (PSA_PROGRESSION, PSA_PROGRESSION_UNCONFIRMED):
        i, j, nad = prog
        idx = i
        first = series[i]
        values["progression_date"] = first.date
        log.add("pcwg3.psa.progression.rise",
                f"PSA {fmt(first.value_ng_mL, 2)} ng/mL on {first.date} is "
                f"{fmt_pct(pct_change(first.value_ng_mL, nad)) if nad > 0 else 'n/a'} and "
                f"+{fmt(first.value_ng_mL - nad, 2)} ng/mL from nadir {fmt(nad, 2)} ng/mL "
                f"(needs >= {fmt(PSA_PROGRESSION_PCT)} % and >= {fmt(PSA_PROGRESSION_ABS_NG_ML)} ng/mL, "
                f">= {EARLY_RISE_DAYS // 7} weeks after start: {(first.date - start).days} days).",
                CITE, _refs(first))
        if nad == b:
            log.add("pcwg3.psa.progression.no_decline",
                    "No PSA decline below baseline before the rise: progression measured from baseline "
                    f"after {EARLY_RISE_DAYS // 7} weeks.", CITE)
        if j is not None:
            second = series[j]
            values["confirmation_date"] = second.date
            values["confirmation_days"] = (second.date - first.date).days
            log.add("pcwg3.psa.progression.confirmed",
                    f"Confirmed by PSA {fmt(second.value_ng_mL, 2)} ng/mL on {second.date}, "
                    f"{(second.date - first.date).days} days later (>= {PSA_CONFIRMATION_DAYS} days); "
                    f"progression dated to the first rise {first.date}.", CITE, _refs(second))
        else:
            confirmed = False
            notes.append(f"Repeat PSA on or after {first.date + timedelta(days=PSA_CONFIRMATION_DAYS)} "
                         "to confirm progression.")
    elif category in (PSA_RESPONSE, PSA_RESPONSE_UNCONFIRMED):
        if psa50 is not None and psa50[0] <= k_last:
            idx = psa50[0]
        first = series[idx]
        values["response_date"] = first.date
        log.add("pcwg3.psa.response.decline",
                f"PSA {fmt(first.value_ng_mL, 2)} ng/mL on {first.date} is "
                f"{fmt_pct(pct_change(first.value_ng_mL, b))} from baseline {fmt(b, 2)} ng/mL "
                f"(PSA50 needs <= {fmt(PSA_RESPONSE_PCT)} %).", CITE, _refs(first))
        if category == PSA_RESPONSE:
            second = series[resp[1]]
            values["confirmation_date"] = second.date
            values["confirmation_days"] = (second.date - first.date).days
            log.add("pcwg3.psa.response.confirmed",
                    f"Confirmed by PSA {fmt(second.value_ng_mL, 2)} ng/mL on {second.date} "
                    f"({fmt_pct(pct_change(second.value_ng_mL, b))}), {(second.date - first.date).days} days "
                    f"later (>= {PSA_CONFIRMATION_DAYS} days).", CITE, _refs(second))
        else:
            confirmed = False
            notes.append(f"Repeat PSA on or after {first.date + timedelta(days=PSA_CONFIRMATION_DAYS)} "
                         "to confirm the PSA50 response.")
    elif category == NO_PSA_PROGRESSION:
        nad = nadir_before(k_last)
        pct = pct_change(latest.value_ng_mL, nad) if nad > 0 else None
        reason = []
        if (latest.date - start).days < EARLY_RISE_DAYS:
            reason.append(f"rise within the first {EARLY_RISE_DAYS // 7} weeks is ignored")
        if not (latest.value_ng_mL - nad >= PSA_PROGRESSION_ABS_NG_ML):
            reason.append(f"absolute rise < {fmt(PSA_PROGRESSION_ABS_NG_ML)} ng/mL")
        if nad > 0 and not change_at_least(latest.value_ng_mL, nad, PSA_PROGRESSION_PCT):
            reason.append(f"rise < {fmt(PSA_PROGRESSION_PCT)} %")
        if not reason:
            reason.append("the rise was not confirmed by a value >= 3 weeks later")
        log.add("pcwg3.psa.no_progression",
                f"PSA {fmt(latest.value_ng_mL, 2)} ng/mL on {latest.date} is "
                f"{fmt_pct(pct) if pct is not None else 'n/a'} and "
                f"+{fmt(latest.value_ng_mL - nad, 2)} ng/mL from nadir {fmt(nad, 2)} ng/mL "
                f"(progression needs >= {fmt(PSA_PROGRESSION_PCT)} % AND >= {fmt(PSA_PROGRESSION_ABS_NG_ML)} "
                f"ng/mL): {'; '.join(reason)}.", CITE, _refs(latest))
        if resp is not None:
            notes.append(f"A PSA50 response was confirmed from {series[resp[0]].date}; PSA has since risen "
                         "from its nadir.")
    else:  # NO_PSA_RESPONSE
        log.add("pcwg3.psa.no_response",
                f"PSA {fmt(latest.value_ng_mL, 2)} ng/mL on {latest.date} is "
                f"{fmt_pct(pct_change(latest.value_ng_mL, b))} from baseline {fmt(b, 2)} ng/mL "
                f"(PSA50 needs <= {fmt(PSA_RESPONSE_PCT)} %); no progression.", CITE, _refs(latest))
    for v in early_rises:
        if prog is None or v.date < series[prog[0]].date:
            log.add("pcwg3.psa.early_rise_ignored",
                    f"PSA rise on {v.date} ({(v.date - start).days} days after start) is within the first "
                    f"{EARLY_RISE_DAYS // 7} weeks and is ignored for progression.", CITE, _refs(v))

    cur = series[idx]
    nad = nadir_before(idx)
    values["PSA_ng_mL"] = cur.value_ng_mL
    values["nadir_ng_mL"] = nad
    values["pct_change_from_baseline"] = pct_change(cur.value_ng_mL, b)
    values["absolute_change_ng_mL"] = cur.value_ng_mL - nad
    if nad > 0:
        values["pct_change_from_nadir"] = pct_change(cur.value_ng_mL, nad)

    return Assessment(criteria=CRITERIA, category=category, label=LABELS[category],
                      outcome=OUTCOMES[category], assessment_date=cur.date, confirmed=confirmed,
                      source=SOURCE, values=values, evidence=log.items(), history=tuple(history),
                      notes=tuple(notes))


# =====================================================================================================
# Bone scan
# =====================================================================================================

def assess_bone(inputs: BoneInputs, as_of: date) -> Assessment:
    log = EvidenceLog()
    notes: list[str] = []
    values: dict = {}
    scans_all = sorted((s for s in inputs.scans if s.date <= as_of), key=lambda s: s.date)
    if not scans_all:
        return _ne(BONE_NE, ("bone scans",), log, notes, values)
    if inputs.treatment_start is not None:
        before = [s for s in scans_all if s.date <= inputs.treatment_start]
        if not before:
            return _ne(BONE_NE, ("baseline bone scan (on or before treatment start)",), log, notes, values)
        base = before[-1]
        start = inputs.treatment_start
    else:
        labelled = [s for s in scans_all if _is_baseline_label(s.label)]
        if not labelled:
            return _ne(BONE_NE, ("treatment start date or baseline bone scan",), log, notes, values)
        base = labelled[-1]
        start = base.date
        notes.append("Treatment start not given: the 12-week flare window counts from the baseline scan.")

    history = [TimepointResult(base.date, BONE_BASELINE, OUTCOMES[BONE_BASELINE],
                               {"lesion_count": base.lesion_count} if base.lesion_count is not None else {})]
    post = [s for s in scans_all if s.date > base.date]
    values["baseline_date"] = base.date
    if base.lesion_count is not None:
        values["baseline_lesion_count"] = base.lesion_count
    if not post:
        return _ne(BONE_NE, ("bone scan after baseline",), log, notes, values, history)

    ev = [s for s in post if s.evaluable and (s.new_lesions_vs_baseline is not None
                                              or s.additional_new_lesions_vs_first is not None
                                              or s.lesion_count is not None)]
    first = ev[0] if ev else None

    def new_vs_base(s: BoneScan) -> int | None:
        if s.new_lesions_vs_baseline is not None:
            return s.new_lesions_vs_baseline
        if s is first and s.additional_new_lesions_vs_first is None and base.lesion_count is not None \
                and s.lesion_count is not None:
            return max(0, s.lesion_count - base.lesion_count)
        if s is not first and s.additional_new_lesions_vs_first is not None and first is not None:
            f = new_vs_base(first)
            return None if f is None else f + s.additional_new_lesions_vs_first
        return None

    def new_vs_first(s: BoneScan) -> int | None:
        if s.additional_new_lesions_vs_first is not None:
            return s.additional_new_lesions_vs_first
        a, f = new_vs_base(s), (new_vs_base(first) if first is not None else None)
        return None if a is None or f is None else a - f

    def next_confirming(idx: int) -> int | None:
        return next((k for k in range(idx + 1, len(ev))
                     if (ev[k].date - ev[idx].date).days >= BONE_CONFIRMATION_DAYS), None)

    # ---- find PD / PDu events ----------------------------------------------------------------------------
    events: dict[int, tuple[str, int | None, str]] = {}  # ev index -> (status, confirming index, rule)
    pd_event = None
    if first is not None:
        in_window = (first.date - start).days <= BONE_FLARE_WINDOW_DAYS
        values["first_scan_in_flare_window"] = in_window
        n0 = new_vs_base(first)
        if n0 is not None and n0 >= BONE_NEW_LESIONS:
            j = next_confirming(0)
            if j is None:
                events[0] = ("PDu", None, "flare" if in_window else "persist")
            else:
                if in_window:
                    add = new_vs_first(ev[j])
                    ok = add is not None and add >= BONE_ADDITIONAL_LESIONS
                else:
                    nb = new_vs_base(ev[j])
                    ok = nb is not None and nb >= BONE_NEW_LESIONS
                events[0] = ("PD" if ok else "flare", j, "flare" if in_window else "persist")
                if ok:
                    pd_event = 0
        if pd_event is None:
            for k in range(1, len(ev)):
                a = new_vs_first(ev[k])
                if a is None or a < BONE_NEW_LESIONS:
                    continue
                j = next_confirming(k)
                if j is None:
                    events[k] = ("PDu", None, "after")
                    continue
                aj = new_vs_first(ev[j])
                if aj is not None and aj >= BONE_NEW_LESIONS:
                    events[k] = ("PD", j, "after")
                    pd_event = k
                    break
                events[k] = ("refuted", j, "after")

    def category_at(s: BoneScan) -> str:
        if pd_event is not None and s.date >= ev[pd_event].date:
            return BONE_PD
        if not s.evaluable or s not in ev:
            return BONE_NE
        k = ev.index(s)
        st = events.get(k)
        if st is not None and st[0] == "PDu":
            return BONE_PDU
        nb = new_vs_base(s)
        if s.lesion_count == 0 and (nb in (None, 0)):
            return BONE_NED
        return BONE_NON_PD

    for s in post:
        cat = category_at(s)
        hv = {}
        if new_vs_base(s) is not None and s in ev:
            hv["new_lesions_vs_baseline"] = new_vs_base(s)
        history.append(TimepointResult(s.date, cat, OUTCOMES[cat], hv))

    latest = post[-1]
    category = category_at(latest)
    confirmed = True
    a_date = latest.date
    missing: tuple[str, ...] = ()
    if category == BONE_PD:
        st, j, rule = events[pd_event]
        s0, s1 = ev[pd_event], ev[j]
        a_date = s0.date
        days = (s1.date - s0.date).days
        values.update({"progression_date": s0.date, "confirmation_date": s1.date, "days_between_scans": days})
        if rule == "flare":
            log.add("pcwg3.bone.flare_window.pdu",
                    f"Scan {s0.date} ({(s0.date - start).days} days after start, within the "
                    f"{BONE_FLARE_WINDOW_DAYS // 7}-week flare window) shows {new_vs_base(s0)} new lesions vs "
                    f"baseline (>= {BONE_NEW_LESIONS}).", CITE, _refs(s0))
            log.add("pcwg3.bone.two_plus_two.confirmed",
                    f"Scan {s1.date}, {days} days later (>= {BONE_CONFIRMATION_DAYS}), shows {new_vs_first(s1)} "
                    f"additional new lesions (>= {BONE_ADDITIONAL_LESIONS}; {new_vs_base(s1)} vs baseline): "
                    f"PD by the 2 + 2 rule, dated to {s0.date}.", CITE, _refs(s1))
        else:
            ref_name = "baseline" if rule == "persist" else f"the first post-treatment scan {first.date}"
            n0 = new_vs_base(s0) if rule == "persist" else new_vs_first(s0)
            n1 = new_vs_base(s1) if rule == "persist" else new_vs_first(s1)
            log.add("pcwg3.bone.after_window.pdu",
                    f"Scan {s0.date} shows {n0} new lesions vs {ref_name} (>= {BONE_NEW_LESIONS}).", CITE,
                    _refs(s0))
            log.add("pcwg3.bone.after_window.confirmed",
                    f"Persisting on scan {s1.date} ({n1} new lesions), {days} days later "
                    f"(>= {BONE_CONFIRMATION_DAYS}): PD dated to {s0.date}.", CITE, _refs(s1))
    elif category == BONE_PDU:
        k = ev.index(latest)
        st, _j, rule = events[k]
        n0 = new_vs_base(latest) if k == 0 else new_vs_first(latest)
        confirmed = False
        a_date = latest.date
        log.add("pcwg3.bone.pdu",
                f"Scan {latest.date} shows {n0} new lesions vs {'baseline' if k == 0 else 'the first post-treatment scan'} "
                f"(>= {BONE_NEW_LESIONS}); needs a scan on or after "
                f"{latest.date + timedelta(days=BONE_CONFIRMATION_DAYS)}"
                f"{' with >= 2 additional new lesions (2 + 2 rule)' if rule == 'flare' else ' showing they persist'}.",
                CITE, _refs(latest))
        values["pdu_date"] = latest.date
    elif category == BONE_NE:
        confirmed = False
        missing = (f"evaluable bone scan on {latest.date} (new-lesion count)",)
        log.add("pcwg3.bone.ne", f"Scan {latest.date} is not evaluable.", CITE, _refs(latest))
    else:
        nb = new_vs_base(latest)
        log.add("pcwg3.bone.non_pd" if category == BONE_NON_PD else "pcwg3.bone.ned",
                f"Scan {latest.date}: {nb if nb is not None else 'no count of'} new lesions vs baseline; "
                f"no progression by the 2 + 2 rule.", CITE, _refs(latest))
    for k, (st, j, rule) in events.items():
        if st in ("flare", "refuted"):
            log.add("pcwg3.bone.flare" if st == "flare" else "pcwg3.bone.not_confirmed",
                    f"New lesions on {ev[k].date} were not confirmed on {ev[j].date} "
                    f"({(ev[j].date - ev[k].date).days} days later): "
                    f"{'flare, re-classified non-PD' if st == 'flare' else 'not progression'}.",
                    CITE, _refs(ev[k], ev[j]))
    if latest in ev and new_vs_base(latest) is not None:
        values["new_lesions_vs_baseline"] = new_vs_base(latest)

    return Assessment(criteria=CRITERIA, category=category, label=LABELS[category],
                      outcome=OUTCOMES[category], assessment_date=a_date, confirmed=confirmed, source=SOURCE,
                      values=values, evidence=log.items(), history=tuple(history), missing=missing,
                      notes=tuple(notes))


# =====================================================================================================
# Combined
# =====================================================================================================

_SEVERITY = {Outcome.PROGRESSION: 0, Outcome.UNCONFIRMED_PROGRESSION: 1}


def assess(inputs: PCWG3Inputs | PSAInputs | BoneInputs, as_of: date) -> Assessment:
    """PSA and/or bone scan.  With both, the category is the bone one when it is (unconfirmed)
    progression and the PSA one is not; otherwise the PSA one (the bone one when PSA is not evaluable).
    The other modality's values are added with a ``bone_`` / ``psa_`` prefix and its evidence follows."""
    if isinstance(inputs, PSAInputs):
        return assess_psa(inputs, as_of)
    if isinstance(inputs, BoneInputs):
        return assess_bone(inputs, as_of)
    psa = assess_psa(inputs.psa, as_of) if inputs.psa is not None else None
    bone = assess_bone(inputs.bone, as_of) if inputs.bone is not None else None
    if psa is None and bone is None:
        log = EvidenceLog()
        return _ne(PSA_NE, ("PSA values or bone scans",), log, [], {})
    if psa is None or bone is None:
        return psa or bone  # type: ignore[return-value]
    ps, bs = _SEVERITY.get(psa.outcome, 9), _SEVERITY.get(bone.outcome, 9)
    if bs < ps or (psa.outcome == Outcome.NOT_EVALUABLE and bone.outcome != Outcome.NOT_EVALUABLE):
        primary, secondary, prefix = bone, psa, "psa_"
    else:
        primary, secondary, prefix = psa, bone, "bone_"
    values = {prefix + k: v for k, v in secondary.values.items()}
    values[prefix + "category"] = secondary.category
    values.update(primary.values)
    history = tuple(sorted(primary.history + secondary.history, key=lambda t: t.date))
    return Assessment(
        criteria=CRITERIA, category=primary.category, label=primary.label, outcome=primary.outcome,
        assessment_date=primary.assessment_date, confirmed=primary.confirmed, source=SOURCE, values=values,
        evidence=primary.evidence + secondary.evidence, history=history,
        missing=primary.missing if primary.outcome == Outcome.NOT_EVALUABLE else (),
        notes=primary.notes + secondary.notes + (f"{'Bone' if prefix == 'bone_' else 'PSA'}: {secondary.category}.",),
    )


__all__ = [
    "CRITERIA", "SOURCE", "PSAValue", "PSAInputs", "BoneScan", "BoneInputs", "PCWG3Inputs",
    "assess", "assess_psa", "assess_bone",
]
