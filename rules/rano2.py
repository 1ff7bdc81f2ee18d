"""RANO 2.0 glioma response (Wen PY et al., J Clin Oncol 2023;41:5187-5199).

Decision table: criteria.md §10.2 (rows of §11, item 15 of §12).  Standard library only, no I/O, no clock.

Imaging (per compartment, bidimensional SPD in mm² or, optionally, volume in mm³)
    CR  disappearance of all enhancing measurable and non-measurable disease, no new lesions, no
        corticosteroids beyond physiological replacement, clinically stable/improved
    PR  >= 50 % decrease of SPD vs baseline (volumetric >= 65 %)
    MR  >= 25 % but < 50 % decrease (non-enhancing / IDH-mutant tumours; bidimensional only)
    SD  neither; corticosteroid dose no higher than at the baseline scan
    PD  >= 25 % increase of SPD vs nadir (volumetric >= 40 %), or a new measurable lesion, or unequivocal
        progression of non-measurable disease, or clinical deterioration not due to other causes.
        A corticosteroid increase alone is never PD.
Confirmation
    CR/PR/MR are preliminary until a scan >= 4 weeks later confirms them.  PD within 12 weeks after the
    end of radiotherapy (pseudoprogression window) is preliminary until a later scan confirms it.
Corticosteroid rule (Wen 2010 Table 2 and text, kept in RANO 2.0; criteria.md §10.2)
    Non-PD imaging while the steroid dose is above the baseline dose, without tumour-related clinical
    deterioration, qualifies for neither SD nor PD: "indeterminate - observe".  If tumour-related
    deterioration follows, PD is dated to the first time point at which the steroid increase was needed.

Interpretation choices [I] (criteria.md §0, §12 item 15):

* Baseline scan: ``baseline_date`` if given, else a scan labelled baseline, else for newly diagnosed
  tumours the first scan on or after ``radiotherapy_end`` (post-RT MRI), else the last scan on or before
  ``treatment_start``.  With none of these and no nadir shortcut nothing is guessed (not evaluable).
  With only a nadir shortcut, PD/SD are judged against the nadir, and PR only when the decrease from the
  nadir is itself >= 50 % (the nadir is never above baseline).
* Nadir = smallest measurement on study including baseline, before the scan being classified
  (criteria.md §0 convention 4), or the ``nadir_*`` shortcut when lower.  After a nadir of 0 (CR),
  any measurable disease (SPD > 0) is PD.
* Confirmation scan = the first evaluable scan >= 28 days later; every scan from the preliminary one up
  to it must show a response; the confirmed category is the lower of them (PR then CR = PR confirmed).
  An unconfirmed preliminary response is re-classified SD.  A scan that confirms an earlier response is
  itself reported with the confirmed category.  Confirmed responses are dated to their first scan.
* Preliminary PD (within 12 weeks = 84 days after the end of radiotherapy, new lesion inside the field,
  or any imaging PD when ``confirm_progression`` is set) is confirmed when the first scan >= 28 days
  later still meets a PD criterion; PD is then dated to the preliminary scan.  If that scan does not
  meet PD, the preliminary scan is re-classified SD (pseudoprogression).  Clinical deterioration and new
  lesions outside the radiation field are PD without confirmation.
* CR imaging while on corticosteroids above physiological replacement is reported as PR (the CR
  requirements other than steroids are met) - Wen 2010 practice, kept here.
* Any non-PD imaging (CR, PR, MR or SD level) with the steroid dose above baseline is "indeterminate":
  responses require stable/reduced steroids and SD requires a dose no higher than baseline.
* Mixed enhancing / non-enhancing tumours (``non_enhancing_spd_mm2``): each compartment is classified,
  PD in either is PD; CR + X = X; SD + response = response; PR + MR = MR.
* Missing steroid dose or clinical status at a scan is not guessed: the imaging category stands and a
  note says the requirement was not checked.
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

CRITERIA = "RANO 2.0"
SOURCE = Source(
    label="Wen PY et al. RANO 2.0: update to the Response Assessment in Neuro-Oncology criteria for high- "
    "and low-grade gliomas in adults. J Clin Oncol 2023;41:5187-5199",
    url="https://doi.org/10.1200/JCO.23.01059",
)
CITE = "Wen 2023 (RANO 2.0)"
CITE_STEROID = "Wen 2010 (RANO) Table 2 and text; RANO 2.0 (criteria.md §10.2)"

# --- thresholds (criteria.md §10.2; Wen 2023) ---------------------------------------------------------
PR_PCT_2D = Decimal(-50)           # PR: >= 50 % decrease in SPD vs baseline (Wen 2023; §10.2 [V])
PR_PCT_VOLUME = Decimal(-65)       # PR: >= 65 % decrease in volume (Wen 2023; §10.2 [V])
MR_PCT_2D = Decimal(-25)           # MR: >= 25 % but < 50 % decrease (non-enhancing tumours; §10.2 [V])
PD_PCT_2D = Decimal(25)            # PD: >= 25 % increase in SPD vs nadir (Wen 2023; §10.2 [V])
PD_PCT_VOLUME = Decimal(40)        # PD: >= 40 % increase in volume vs nadir (Wen 2023; §10.2 [V])
CONFIRMATION_DAYS = 28             # confirmation scan >= 4 weeks later (Wen 2023; §10.2, §11)
PSEUDOPROGRESSION_DAYS = 84        # PD within 12 weeks after radiotherapy needs confirmation (§10.2 [P])
# 12-week window checked against RANO 2010 (Wen 2010) as reproduced in PMC4530825 T1 ("<12 weeks after
# completion of chemoradiotherapy"); the RANO 2.0 confirmation procedure itself was not found in stored sources.
MEASURABLE_MIN_DIAMETER_MM = 10    # measurable: both perpendicular diameters >= 10 mm (§10.2; informational)

# --- categories --------------------------------------------------------------------------------------
CR_CONFIRMED, CR_PRELIMINARY = "CR (confirmed)", "CR (preliminary)"
PR_CONFIRMED, PR_PRELIMINARY = "PR (confirmed)", "PR (preliminary)"
MR_CONFIRMED, MR_PRELIMINARY = "MR (confirmed)", "MR (preliminary)"
SD = "SD"
PD = "PD"
PD_PRELIMINARY = "PD (preliminary)"
PD_CONFIRMED = "PD (confirmed)"
INDETERMINATE = "indeterminate - observe (neither SD nor PD while steroid dose is above baseline)"
NE = "NE"
BASELINE = "baseline"

_RESP_CATS = {
    ("CR", True): CR_CONFIRMED, ("CR", False): CR_PRELIMINARY,
    ("PR", True): PR_CONFIRMED, ("PR", False): PR_PRELIMINARY,
    ("MR", True): MR_CONFIRMED, ("MR", False): MR_PRELIMINARY,
}
_RANK = {"SD": 0, "MR": 1, "PR": 2, "CR": 3}

LABELS = {
    CR_CONFIRMED: "complete response (confirmed)",
    CR_PRELIMINARY: "complete response (preliminary; needs a confirmation scan >= 4 weeks later)",
    PR_CONFIRMED: "partial response (confirmed)",
    PR_PRELIMINARY: "partial response (preliminary; needs a confirmation scan >= 4 weeks later)",
    MR_CONFIRMED: "minor response (confirmed)",
    MR_PRELIMINARY: "minor response (preliminary; needs a confirmation scan >= 4 weeks later)",
    SD: "stable disease",
    PD: "progressive disease",
    PD_PRELIMINARY: "progressive disease (preliminary; confirm on a later scan to exclude pseudoprogression)",
    PD_CONFIRMED: "progressive disease (confirmed on a later scan)",
    INDETERMINATE: "indeterminate: neither stable nor progressive disease while the corticosteroid dose is "
                   "above baseline; observe",
    NE: "not evaluable",
    BASELINE: "baseline scan (reference)",
}

OUTCOMES = {
    CR_CONFIRMED: Outcome.COMPLETE, CR_PRELIMINARY: Outcome.COMPLETE,
    PR_CONFIRMED: Outcome.PARTIAL, PR_PRELIMINARY: Outcome.PARTIAL,
    MR_CONFIRMED: Outcome.MINOR, MR_PRELIMINARY: Outcome.MINOR,
    SD: Outcome.STABLE,
    PD: Outcome.PROGRESSION, PD_CONFIRMED: Outcome.PROGRESSION,
    PD_PRELIMINARY: Outcome.UNCONFIRMED_PROGRESSION,
    INDETERMINATE: Outcome.INDETERMINATE,
    NE: Outcome.NOT_EVALUABLE,
    BASELINE: Outcome.NOT_EVALUABLE,
}

ABBREVIATION = {
    CR_CONFIRMED: "CR", CR_PRELIMINARY: "CR", PR_CONFIRMED: "PR", PR_PRELIMINARY: "PR",
    MR_CONFIRMED: "MR", MR_PRELIMINARY: "MR", SD: "SD", PD: "PD", PD_PRELIMINARY: "PD", PD_CONFIRMED: "PD",
    INDETERMINATE: "indeterminate", NE: "NE", BASELINE: "baseline",
}

BASELINE_LABELS = ("baseline", "post-rt", "post-radiotherapy", "post radiotherapy")


@dataclass(frozen=True)
class RANOScan:
    """One MRI time point.

    spd_mm2:                       sum of products of perpendicular diameters of measurable lesions
                                   (enhancing; T2/FLAIR for non-enhancing tumours), mm²
    volume_mm3:                    optional volumetric measurement (used when RANOInputs.volumetric)
    non_enhancing_spd_mm2:         second compartment of a mixed tumour (T2/FLAIR SPD), mm²
    new_measurable_lesion:         a new measurable lesion
    new_lesion_outside_rt_field:   the new lesion lies outside the radiation field (no pseudoprogression)
    non_measurable_progression:    unequivocal progression of non-measurable disease
    non_measurable_disease_present: non-measurable enhancing disease still seen (blocks CR); None = not stated
    steroid_dose_mg_day:           corticosteroid dose (dexamethasone equivalent) at this scan
    physiological_steroids_only:   only physiological replacement (allowed with CR)
    clinical_deterioration:        tumour-related clinical deterioration (not due to other causes); None = not recorded
    evaluable:                     False when the scan could not be assessed
    """

    date: date
    spd_mm2: Decimal | None = None
    volume_mm3: Decimal | None = None
    non_enhancing_spd_mm2: Decimal | None = None
    new_measurable_lesion: bool = False
    new_lesion_outside_rt_field: bool = False
    non_measurable_progression: bool = False
    non_measurable_disease_present: bool | None = None
    steroid_dose_mg_day: Decimal | None = None
    physiological_steroids_only: bool = False
    clinical_deterioration: bool | None = None
    evaluable: bool = True
    ref: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class RANOInputs:
    scans: tuple[RANOScan, ...]
    baseline_date: date | None = None
    treatment_start: date | None = None
    newly_diagnosed: bool = False
    radiotherapy_end: date | None = None
    baseline_steroid_dose_mg_day: Decimal | None = None
    minor_response_eligible: bool = False  # non-enhancing / IDH-mutant tumours: MR category applies
    volumetric: bool = False
    confirm_progression: bool = False       # e.g. immunotherapy: every imaging PD needs confirmation
    nadir_spd_mm2: Decimal | None = None     # shortcut: nadir known but not in the series
    nadir_volume_mm3: Decimal | None = None


def _refs(*items) -> tuple[str, ...]:
    return tuple(i.ref for i in items if i is not None and getattr(i, "ref", None))


@dataclass
class _TP:
    """Working state for one follow-up scan."""

    scan: RANOScan
    level: str = "NE"                 # CR / PR / MR / SD / PD / IND / NE
    pd_reasons: tuple[str, ...] = ()
    pd_needs_confirmation: bool = False
    clinical_pd: bool = False
    measure: Decimal | None = None
    baseline: Decimal | None = None
    nadir: Decimal | None = None
    pct_base: Decimal | None = None
    pct_nadir: Decimal | None = None
    cr_blocked_by_steroids: bool = False
    category: str = NE
    confirm_with: int | None = None


def _combine(a: str, b: str) -> str:
    """Mixed tumours: PD in either is PD; CR + X = X; SD + response = response; PR + MR = MR."""
    if "PD" in (a, b):
        return "PD"
    if "NE" in (a, b):
        return "NE"
    if a == b:
        return a
    if "CR" in (a, b):
        return b if a == "CR" else a
    if "SD" in (a, b):
        return b if a == "SD" else a
    return "MR"


def assess(inputs: RANOInputs, as_of: date) -> Assessment:
    log = EvidenceLog()
    notes: list[str] = []
    values: dict = {}
    scans = sorted((s for s in inputs.scans if s.date <= as_of), key=lambda s: s.date)
    vol = inputs.volumetric
    unit = "mm³" if vol else "mm²"
    pr_pct = PR_PCT_VOLUME if vol else PR_PCT_2D
    pd_pct = PD_PCT_VOLUME if vol else PD_PCT_2D
    key = "volume_mm3" if vol else "SPD_mm2"
    pkey = "pct_change_volume" if vol else "pct_change_SPD"

    def measure(s: RANOScan) -> Decimal | None:
        return s.volume_mm3 if vol else s.spd_mm2

    def _ne(missing: tuple[str, ...], history=()) -> Assessment:
        return Assessment(criteria=CRITERIA, category=NE, label=LABELS[NE], outcome=Outcome.NOT_EVALUABLE,
                          assessment_date=None, confirmed=False, source=SOURCE, values=values,
                          evidence=log.items(), history=tuple(history), missing=missing, notes=tuple(notes))

    if not scans:
        return _ne(("MRI scans",))

    # ---- baseline ---------------------------------------------------------------------------------------
    base: RANOScan | None = None
    if inputs.baseline_date is not None:
        base = next((s for s in scans if s.date == inputs.baseline_date), None)
        if base is None:
            return _ne((f"baseline MRI of {inputs.baseline_date}",))
    if base is None:
        labelled = [s for s in scans if s.label and s.label.strip().lower().startswith(BASELINE_LABELS)]
        base = labelled[-1] if labelled else None
    if base is None and inputs.newly_diagnosed:
        if inputs.radiotherapy_end is None:
            if inputs.nadir_spd_mm2 is None and inputs.nadir_volume_mm3 is None:
                return _ne(("end date of radiotherapy (baseline for newly diagnosed glioma is the "
                            "post-radiotherapy MRI)",))
        else:
            base = next((s for s in scans if s.date >= inputs.radiotherapy_end), None)
            if base is not None:
                log.add("rano.baseline.post_rt",
                        f"Newly diagnosed: baseline is the first MRI after radiotherapy ended "
                        f"{inputs.radiotherapy_end}: {base.date}.", CITE, _refs(base))
    if base is None and inputs.treatment_start is not None and not inputs.newly_diagnosed:
        before = [s for s in scans if s.date <= inputs.treatment_start]
        base = before[-1] if before else None
    nadir_shortcut = inputs.nadir_volume_mm3 if vol else inputs.nadir_spd_mm2
    if base is None and nadir_shortcut is None:
        return _ne(("baseline MRI (baseline date, treatment start or post-radiotherapy scan)",))

    follow = [s for s in scans if base is None or s.date > base.date]
    history: list[TimepointResult] = []
    base_m = measure(base) if base is not None else None
    if base is not None:
        history.append(TimepointResult(base.date, BASELINE, OUTCOMES[BASELINE],
                                       {key: base_m} if base_m is not None else {}))
        values["baseline_date"] = base.date
        if base_m is None:
            return _ne((f"baseline {'volume' if vol else 'SPD'} on {base.date}",), history)
        values["baseline_" + key] = base_m
    if not follow:
        return _ne(("MRI after baseline",), history)

    base_steroid = inputs.baseline_steroid_dose_mg_day
    if base_steroid is None and base is not None:
        base_steroid = base.steroid_dose_mg_day
    if base_steroid is not None:
        values["baseline_steroid_dose_mg_day"] = base_steroid

    # ---- per-scan imaging level ---------------------------------------------------------------------------
    tps: list[_TP] = []
    prior: list[Decimal] = [base_m] if base_m is not None else []
    prior_ne: list[Decimal] = ([base.non_enhancing_spd_mm2] if base is not None
                               and base.non_enhancing_spd_mm2 is not None else [])
    for s in follow:
        tp = _TP(scan=s)
        tps.append(tp)
        m = measure(s)
        reasons: list[str] = []
        if s.clinical_deterioration:
            reasons.append("tumour-related clinical deterioration")
            tp.clinical_pd = True
        if s.new_measurable_lesion:
            reasons.append("new measurable lesion")
        if s.non_measurable_progression:
            reasons.append("unequivocal progression of non-measurable disease")
        if not s.evaluable or (m is None and not reasons):
            tp.level = "NE"
            continue
        levels: list[str] = []
        if m is not None:
            cands = list(prior) + ([nadir_shortcut] if nadir_shortcut is not None else [])
            nadir = min(cands) if cands else None
            tp.measure, tp.baseline, tp.nadir = m, base_m, nadir
            if base_m is not None and base_m > 0:
                tp.pct_base = pct_change(m, base_m)
            if nadir is not None and nadir > 0:
                tp.pct_nadir = pct_change(m, nadir)
            lvl = "SD"
            if nadir is not None and nadir > 0 and change_at_least(m, nadir, pd_pct):
                reasons.append(f"{'volume' if vol else 'SPD'} {fmt(m)} {unit} is {fmt_pct(tp.pct_nadir)} from "
                               f"nadir {fmt(nadir)} {unit} (PD needs >= +{fmt(pd_pct)} %)")
                lvl = "PD"
            elif nadir is not None and nadir == 0 and m > 0:
                reasons.append(f"measurable disease ({fmt(m)} {unit}) reappeared after a nadir of 0")
                lvl = "PD"
            elif m == 0 and s.non_measurable_disease_present is not True and not s.new_measurable_lesion:
                lvl = "CR"
            elif base_m is not None and base_m > 0 and change_at_most(m, base_m, pr_pct):
                lvl = "PR"
            elif base_m is None and nadir is not None and nadir > 0 and change_at_most(m, nadir, pr_pct):
                lvl = "PR"
            elif (inputs.minor_response_eligible and not vol and base_m is not None and base_m > 0
                  and change_at_most(m, base_m, MR_PCT_2D)):
                lvl = "MR"
            levels.append(lvl)
            prior.append(m)
        ne_m = s.non_enhancing_spd_mm2
        if ne_m is not None and prior_ne:
            nb, nn = prior_ne[0], min(prior_ne)
            lvl2 = "SD"
            if nn > 0 and change_at_least(ne_m, nn, PD_PCT_2D):
                reasons.append(f"non-enhancing SPD {fmt(ne_m)} mm² is {fmt_pct(pct_change(ne_m, nn))} from nadir "
                               f"{fmt(nn)} mm² (PD needs >= +{fmt(PD_PCT_2D)} %)")
                lvl2 = "PD"
            elif ne_m == 0:
                lvl2 = "CR"
            elif nb > 0 and change_at_most(ne_m, nb, PR_PCT_2D):
                lvl2 = "PR"
            elif nb > 0 and change_at_most(ne_m, nb, MR_PCT_2D):
                lvl2 = "MR"
            levels.append(lvl2)
            prior_ne.append(ne_m)
        level = levels[0] if levels else "SD"
        for other in levels[1:]:
            level = _combine(level, other)
        if reasons:
            level = "PD"
        tp.pd_reasons = tuple(reasons)
        if level == "PD":
            imaging_pd = any(not r.startswith("tumour-related") for r in reasons)
            in_window = (inputs.radiotherapy_end is not None
                         and 0 <= (s.date - inputs.radiotherapy_end).days <= PSEUDOPROGRESSION_DAYS)
            outside_field_only = (s.new_measurable_lesion and s.new_lesion_outside_rt_field)
            tp.pd_needs_confirmation = (imaging_pd and not tp.clinical_pd and not outside_field_only
                                        and (in_window or inputs.confirm_progression))
        else:
            dose = s.steroid_dose_mg_day
            if dose is not None and base_steroid is not None and dose > base_steroid:
                level = "IND"
            elif level == "CR" and dose is not None and dose > 0 and not s.physiological_steroids_only:
                tp.cr_blocked_by_steroids = True
                level = "PR"
        tp.level = level

    # ---- progression (with confirmation) --------------------------------------------------------------
    def first_after(k: int, days: int) -> int | None:
        return next((x for x in range(k + 1, len(tps)) if tps[x].level != "NE"
                     and (tps[x].scan.date - tps[k].scan.date).days >= days), None)

    pd_index: int | None = None
    pd_category: str | None = None
    pd_date_index: int | None = None
    for k, tp in enumerate(tps):
        if tp.level != "PD":
            continue
        if not tp.pd_needs_confirmation:
            pd_index, pd_category = k, PD
            break
        j = first_after(k, CONFIRMATION_DAYS)
        if j is None:
            pd_index, pd_category = k, PD_PRELIMINARY
            break
        if tps[j].level == "PD":
            pd_index, pd_category = k, PD_CONFIRMED
            tp.confirm_with = j
            break
        tp.level = "SD"  # pseudoprogression: not confirmed
        tp.category = SD
        log.add("rano.pd.pseudoprogression",
                f"Preliminary PD on {tp.scan.date} ({'; '.join(tp.pd_reasons)}) was not confirmed on "
                f"{tps[j].scan.date}: pseudoprogression, re-classified SD.", CITE, _refs(tp.scan, tps[j].scan))
        tp.pd_reasons = ()
    if pd_index is not None:
        pd_date_index = pd_index
        if tps[pd_index].clinical_pd:
            x = pd_index - 1
            while x >= 0 and tps[x].level == "IND":
                pd_date_index = x
                x -= 1

    # ---- responses (with confirmation, hindsight) -------------------------------------------------------
    def run_min(a: int, b: int) -> str | None:
        lv = [tps[x].level for x in range(a, b + 1) if tps[x].level != "NE"]
        if all(v in ("CR", "PR", "MR") for v in lv):
            return min(lv, key=lambda v: _RANK[v])
        return None

    limit = pd_date_index if pd_date_index is not None else len(tps)
    for k in range(limit):
        tp = tps[k]
        if tp.level in ("NE", "IND", "SD"):
            tp.category = {"NE": NE, "IND": INDETERMINATE, "SD": SD}[tp.level]
            continue
        if tp.level == "PD":  # refuted PD handled above; other PDs are at/after pd_index
            continue
        best: str | None = None
        j = first_after(k, CONFIRMATION_DAYS)
        if j is not None and j < limit:
            r = run_min(k, j)
            if r is not None:
                best = r
                tp.confirm_with = j
        for i in range(k):
            if first_after(i, CONFIRMATION_DAYS) == k and tps[i].level in ("CR", "PR", "MR"):
                r = run_min(i, k)
                if r is not None and (best is None or _RANK[r] > _RANK[best]):
                    best = r
        if best is not None:
            tp.category = _RESP_CATS[(best, True)]
        elif j is not None:
            tp.category = SD
            log.add("rano.response.not_confirmed",
                    f"Preliminary {tp.level} on {tp.scan.date} was not confirmed by the scan of "
                    f"{tps[j].scan.date}: re-classified SD.", CITE, _refs(tp.scan, tps[j].scan))
        else:
            tp.category = _RESP_CATS[(tp.level, False)]
    if pd_date_index is not None:
        for x in range(pd_date_index, len(tps)):
            tps[x].category = pd_category

    for tp in tps:
        hv: dict = {}
        if tp.measure is not None:
            hv[key] = tp.measure
        if tp.pct_base is not None:
            hv[pkey] = tp.pct_base
        if tp.pct_nadir is not None:
            hv["pct_change_from_nadir"] = tp.pct_nadir
        history.append(TimepointResult(tp.scan.date, tp.category, OUTCOMES[tp.category], hv))

    # ---- the current assessment ---------------------------------------------------------------------
    last = len(tps) - 1
    category = tps[last].category
    idx = last
    if pd_date_index is not None:
        idx = pd_date_index
    elif category in (CR_CONFIRMED, PR_CONFIRMED, MR_CONFIRMED):
        rank = _RANK[ABBREVIATION[category]]
        while idx - 1 >= 0 and tps[idx - 1].category in (CR_CONFIRMED, PR_CONFIRMED, MR_CONFIRMED) \
                and _RANK[ABBREVIATION[tps[idx - 1].category]] >= rank:
            idx -= 1
    cur = tps[idx]
    values["response"] = ABBREVIATION[category]
    if cur.measure is not None:
        values[key] = cur.measure
    if cur.nadir is not None:
        values["nadir_" + key] = cur.nadir
    if cur.pct_base is not None:
        values[pkey] = cur.pct_base
    if cur.pct_nadir is not None:
        values["pct_change_from_nadir"] = cur.pct_nadir
    latest = tps[last]
    if latest.measure is not None:
        values["latest_" + key] = latest.measure
    if latest.pct_base is not None:
        values[pkey + "_latest"] = latest.pct_base
    if latest.scan.steroid_dose_mg_day is not None:
        values["steroid_dose_mg_day"] = latest.scan.steroid_dose_mg_day

    missing: tuple[str, ...] = ()
    confirmed = category in (CR_CONFIRMED, PR_CONFIRMED, MR_CONFIRMED, SD, PD, PD_CONFIRMED)

    # evidence for the current category
    if category in (PD, PD_PRELIMINARY, PD_CONFIRMED):
        p = tps[pd_index]
        values["progression_date"] = tps[pd_date_index].scan.date
        rule = "rano.pd.clinical" if p.clinical_pd else "rano.pd.imaging"
        log.add(rule, f"Scan {p.scan.date}: PD ({'; '.join(p.pd_reasons)}).", CITE, _refs(p.scan))
        if p.clinical_pd and pd_date_index != pd_index:
            log.add("rano.pd.steroid_dated",
                    f"Tumour-related deterioration followed a corticosteroid increase: PD dated to "
                    f"{tps[pd_date_index].scan.date}, the first time point at which the increase was needed.",
                    CITE_STEROID, _refs(tps[pd_date_index].scan))
        if category == PD_PRELIMINARY:
            log.add("rano.pd.preliminary",
                    f"Within {PSEUDOPROGRESSION_DAYS // 7} weeks after radiotherapy (ended "
                    f"{inputs.radiotherapy_end}) or confirmation required: preliminary PD; confirm on a scan on "
                    f"or after {p.scan.date + timedelta(days=CONFIRMATION_DAYS)}.", CITE, _refs(p.scan))
        if category == PD_CONFIRMED:
            c = tps[p.confirm_with]
            values["confirmation_date"] = c.scan.date
            values["confirmation_days"] = (c.scan.date - p.scan.date).days
            log.add("rano.pd.confirmed",
                    f"Confirmed on {c.scan.date} ({'; '.join(c.pd_reasons)}), "
                    f"{(c.scan.date - p.scan.date).days} days later; PD dated to {p.scan.date}.",
                    CITE, _refs(c.scan))
    elif category == INDETERMINATE:
        s = cur.scan
        log.add("rano.steroids.indeterminate",
                f"Corticosteroid dose {fmt(s.steroid_dose_mg_day)} mg/day is above the baseline dose "
                f"{fmt(base_steroid)} mg/day without tumour-related clinical deterioration; imaging is not PD"
                f"{'' if cur.pct_nadir is None else f' ({fmt_pct(cur.pct_nadir)} from nadir {fmt(cur.nadir)} {unit}, PD needs >= +{fmt(pd_pct)} %)'}"
                f": neither SD nor PD, observe. A steroid increase alone is not PD.", CITE_STEROID, _refs(s))
        notes.append("SD once the steroid dose is back to baseline; PD dated to this time point if "
                      "tumour-related deterioration follows.")
    elif category == NE:
        confirmed = False
        missing = (f"evaluable MRI measurement on {cur.scan.date}",)
    else:
        s = cur.scan
        if cur.measure is not None:
            ref_text = (f"from baseline {fmt(cur.baseline)} {unit}" if cur.pct_base is not None
                        else f"from nadir {fmt(cur.nadir)} {unit} (baseline not given)")
            pct = cur.pct_base if cur.pct_base is not None else cur.pct_nadir
            abbr = ABBREVIATION[category]
            thr = {"CR": "disappearance of all enhancing disease",
                   "PR": f"PR needs <= {fmt(pr_pct)} %",
                   "MR": f"MR needs <= {fmt(MR_PCT_2D)} % and > {fmt(PR_PCT_2D)} %",
                   "SD": f"PR needs <= {fmt(pr_pct)} %, PD >= +{fmt(pd_pct)} % from nadir"}[abbr]
            log.add(f"rano.{abbr.lower()}",
                    f"Scan {s.date}: {'volume' if vol else 'SPD'} {fmt(cur.measure)} {unit} is "
                    f"{fmt_pct(pct) if pct is not None else 'n/a'} {ref_text} ({thr}).", CITE, _refs(s))
        if cur.cr_blocked_by_steroids:
            log.add("rano.cr.steroids",
                    f"All enhancing disease gone but corticosteroids {fmt(s.steroid_dose_mg_day)} mg/day above "
                    "physiological replacement: reported as PR.", CITE_STEROID, _refs(s))
        if cur.confirm_with is not None and category != SD:
            c = tps[cur.confirm_with]
            days = (c.scan.date - s.date).days
            values["confirmation_date"] = c.scan.date
            values["confirmation_days"] = days
            log.add("rano.confirmed",
                    f"Confirmed on {c.scan.date}, {days} days later (>= {CONFIRMATION_DAYS} days): "
                    f"{'volume' if vol else 'SPD'} {fmt(c.measure) if c.measure is not None else 'n/a'} {unit}.",
                    CITE, _refs(c.scan))
        if category in (CR_PRELIMINARY, PR_PRELIMINARY, MR_PRELIMINARY):
            notes.append(f"Preliminary: confirm on a scan on or after {s.date + timedelta(days=CONFIRMATION_DAYS)}.")
        if base is None and category == SD:
            notes.append("Baseline SPD not given: a partial or minor response cannot be excluded.")
        dose = tps[last].scan.steroid_dose_mg_day
        if dose is None or base_steroid is None:
            notes.append("Corticosteroid dose (scan or baseline) not recorded: the steroid requirement was not "
                         "checked.")
        else:
            log.add("rano.steroids.ok",
                    f"Corticosteroid dose {fmt(dose)} mg/day is not above baseline {fmt(base_steroid)} mg/day.",
                    CITE_STEROID, _refs(tps[last].scan))
        if tps[last].scan.clinical_deterioration is None:
            notes.append("Clinical status not recorded: 'clinically stable' was not checked.")

    return Assessment(criteria=CRITERIA, category=category, label=LABELS[category],
                      outcome=OUTCOMES[category], assessment_date=cur.scan.date, confirmed=confirmed,
                      source=SOURCE, values=values, evidence=log.items(), history=tuple(history),
                      missing=missing, notes=tuple(notes))


__all__ = ["CRITERIA", "SOURCE", "RANOScan", "RANOInputs", "assess"]
