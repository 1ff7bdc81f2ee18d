"""GCIG CA-125 response and progression (Rustin GJS et al., Int J Gynecol Cancer 2011;21:419-423).

Decision table: criteria.md §10.4 (rows of §11).  Standard library only, no I/O, no clock.

Evaluability for response
    The pretreatment sample must be >= 2 x ULN and drawn within 2 weeks before treatment starts.
    Patients who received mouse antibodies, or whose peritoneum / pleura was interfered with
    (e.g. paracentesis) during the 28 days before a sample, are not evaluable.
Response
    >= 50 % reduction from the pretreatment value, confirmed and maintained for >= 28 days.
    Intervening and confirmatory samples must be <= the previous sample, allowing 10 % assay
    variability.  Response date = date of the first 50 % reduction.  Sub-type (CRF use):
    CR = the value has fallen to within the normal range (<= ULN), PR otherwise.
Progression (rules A/B/C)
    A  elevated pretreatment and normalised:  >= 2 x ULN on two occasions >= 1 week apart
    B  elevated pretreatment, never normalised: >= 2 x nadir on two occasions >= 1 week apart
    C  normal pretreatment:                    >= 2 x ULN on two occasions >= 1 week apart
    Progression date = date of the first elevated value.

Interpretation choices [I] (criteria.md §0: explicit and documented):

* Pretreatment sample = the last value on or before ``treatment_start`` (0-14 days before it counts as
  "within 2 weeks").  Without a treatment start, a value labelled pretreatment/baseline is used and the
  2-week window cannot be checked (a note says so).  Without either, nothing is guessed: not evaluable.
* "During the previous 28 days" is read per sample: a sample drawn 0-28 days after a peritoneal or pleural
  procedure is unusable.  If that is the pretreatment sample the patient is not evaluable; a later
  unusable sample is left out of the series (a note names it).
* Mouse antibodies make the patient not evaluable for both response and progression (Rustin 2011:
  "not evaluable by CA 125").
* Response confirmation: the confirmatory sample is the first sample >= 28 days after the first 50 %
  reduction; it must itself be >= 50 % below pretreatment, and every sample from the first reduction up
  to it must be <= 110 % of the sample before it (``ASSAY_VARIABILITY_PCT``).  If that run fails, the
  next 50 % reduction is tried.  Once confirmed, the response stands until progression.
* Progression confirmation: the confirming sample is the first sample >= 7 days after the first
  elevated one, and every sample from the first elevated one up to it must meet the threshold.  The
  nadir for rule B is the lowest value before the first elevated sample (pretreatment included).
  "Normalised" (rule A) = any on-treatment value <= ULN before the first elevated sample.
* Pretreatment values between 1 x and 2 x ULN: not evaluable for response; progression follows rule
  B (elevated, compared with the nadir) or A once normalised.
* Time-point history uses hindsight: each sample shows the category it has once later samples have
  confirmed (or refuted) the events it starts, as the GCIG dates events to their first sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from .base import (
    Assessment,
    Evidence,
    EvidenceLog,
    Outcome,
    Source,
    TimepointResult,
    change_at_most,
    fmt,
    fmt_pct,
    pct_change,
)

CRITERIA = "GCIG CA-125 (2011)"
SOURCE = Source(
    label="Rustin GJS et al. Definitions for response and progression in ovarian cancer clinical trials "
    "incorporating RECIST 1.1 and CA 125 agreed by the GCIG. Int J Gynecol Cancer 2011;21:419-423",
    url="https://doi.org/10.1097/IGC.0b013e3182070f17",
)
CITE = "Rustin 2011 (GCIG CA-125)"

# --- thresholds (criteria.md §10.4; Rustin 2011) -------------------------------------------------
EVALUABLE_MULTIPLE_OF_ULN = Decimal(2)     # pretreatment >= 2 x ULN (Rustin 2011; criteria.md §10.4)
PRETREATMENT_WINDOW_DAYS = 14              # sample within 2 weeks before treatment (Rustin 2011; §10.4)
SEROSAL_PROCEDURE_WINDOW_DAYS = 28         # no peritoneal/pleural interference in previous 28 days (§10.4)
RESPONSE_REDUCTION_PCT = Decimal(-50)      # >= 50 % reduction from pretreatment (Rustin 2011; §10.4)
RESPONSE_CONFIRMATION_DAYS = 28            # confirmed and maintained >= 28 days (Rustin 2011; §10.4, §11)
ASSAY_VARIABILITY_PCT = Decimal(10)        # later samples <= previous within 10 % assay variability (§10.4)
# checked: "CA 125 definitions agreed by GCIG November 2005" (docplayer.net/21242714), the definitions Rustin 2011
# restates: intervening and 28-day confirmatory samples <= the previous sample within 10 % assay variability.
PROGRESSION_MULTIPLE = Decimal(2)          # >= 2 x ULN (A, C) or >= 2 x nadir (B) (Rustin 2011; §10.4)
PROGRESSION_CONFIRMATION_DAYS = 7          # two occasions >= 1 week apart (Rustin 2011; §10.4, §11)

# --- categories --------------------------------------------------------------------------------------
RESPONSE = "CA-125 response"
RESPONSE_UNCONFIRMED = "CA-125 response (unconfirmed)"
NO_RESPONSE = "no CA-125 response"
PROGRESSION = "CA-125 progression"
PROGRESSION_UNCONFIRMED = "CA-125 progression (unconfirmed)"
NOT_EVALUABLE = "not evaluable for CA-125 response"
PRETREATMENT = "pretreatment (baseline)"

LABELS = {
    RESPONSE: "CA-125 response (>= 50 % fall, confirmed >= 28 days)",
    RESPONSE_UNCONFIRMED: "CA-125 fall of >= 50 %, not yet confirmed at >= 28 days",
    NO_RESPONSE: "no CA-125 response and no CA-125 progression",
    PROGRESSION: "CA-125 progression (confirmed >= 1 week apart)",
    PROGRESSION_UNCONFIRMED: "CA-125 rise to the progression level, not yet confirmed >= 1 week later",
    NOT_EVALUABLE: "not evaluable for CA-125 response",
    PRETREATMENT: "pretreatment CA-125 (reference value)",
}

OUTCOMES = {
    RESPONSE: Outcome.PARTIAL,  # COMPLETE when the value is within the normal range (sub-type CR)
    RESPONSE_UNCONFIRMED: Outcome.PARTIAL,
    NO_RESPONSE: Outcome.STABLE,
    PROGRESSION: Outcome.PROGRESSION,
    PROGRESSION_UNCONFIRMED: Outcome.UNCONFIRMED_PROGRESSION,
    NOT_EVALUABLE: Outcome.NOT_EVALUABLE,
    PRETREATMENT: Outcome.NOT_EVALUABLE,
}

PRETREATMENT_LABELS = ("pretreatment", "pre-treatment", "baseline")


@dataclass(frozen=True)
class CA125Value:
    """One CA-125 result in U/mL (= kU/L)."""

    date: date
    value_U_mL: Decimal
    ref: str | None = None
    label: str | None = None  # vignette shortcut, e.g. "pretreatment"


@dataclass(frozen=True)
class SerosalProcedure:
    """Medical or surgical interference with peritoneum or pleura (paracentesis, thoracentesis, surgery)."""

    date: date
    description: str = "paracentesis"
    ref: str | None = None


@dataclass(frozen=True)
class GCIGInputs:
    values: tuple[CA125Value, ...]
    uln_U_mL: Decimal
    treatment_start: date | None = None
    mouse_antibodies: bool = False
    mouse_antibodies_ref: str | None = None
    serosal_procedures: tuple[SerosalProcedure, ...] = ()
    # shortcut when only the fact is known: peritoneal/pleural interference within 28 days before the
    # pretreatment sample (makes the patient not evaluable, like a dated procedure would)
    recent_serosal_interference: bool = False


def _refs(*vals: CA125Value | SerosalProcedure | None) -> tuple[str, ...]:
    return tuple(v.ref for v in vals if v is not None and v.ref)


def _is_pretreatment_label(label: str | None) -> bool:
    return bool(label) and label.strip().lower().startswith(PRETREATMENT_LABELS)


def _at_least_multiple(value: Decimal, reference: Decimal, multiple: Decimal) -> bool:
    return value >= multiple * reference


def _within_variability(current: Decimal, previous: Decimal) -> bool:
    """current <= previous + 10 % (cross-multiplied: current*100 <= previous*(100+10))."""
    return current * 100 <= previous * (100 + ASSAY_VARIABILITY_PCT)


def _not_evaluable(reason_missing: tuple[str, ...], log: EvidenceLog, notes: list[str],
                   values: dict, history: tuple[TimepointResult, ...] = ()) -> Assessment:
    return Assessment(
        criteria=CRITERIA,
        category=NOT_EVALUABLE,
        label=LABELS[NOT_EVALUABLE],
        outcome=Outcome.NOT_EVALUABLE,
        assessment_date=None,
        confirmed=False,
        source=SOURCE,
        values=values,
        evidence=log.items(),
        history=history,
        missing=reason_missing,
        notes=tuple(notes),
    )


def _find_response(series: list[CA125Value], pre: CA125Value):
    """Return (start_index, confirm_index | None, pending: bool) for the first confirmed 50 % fall,
    else the last unconfirmed candidate still pending, else None."""
    n = len(series)
    pending = None
    for i in range(n):
        if not change_at_most(series[i].value_U_mL, pre.value_U_mL, RESPONSE_REDUCTION_PCT):
            continue
        j = next((k for k in range(i + 1, n)
                  if (series[k].date - series[i].date).days >= RESPONSE_CONFIRMATION_DAYS), None)
        if j is None:
            # no sample >= 28 days later yet; pending if nothing since has broken the maintenance rule
            if all(_within_variability(series[k].value_U_mL, series[k - 1].value_U_mL) for k in range(i + 1, n)):
                if pending is None:
                    pending = i
            continue
        run_ok = all(_within_variability(series[k].value_U_mL, series[k - 1].value_U_mL) for k in range(i + 1, j + 1))
        if run_ok and change_at_most(series[j].value_U_mL, pre.value_U_mL, RESPONSE_REDUCTION_PCT):
            return i, j, False
    if pending is not None:
        return pending, None, True
    return None


def _find_progression(series: list[CA125Value], pre: CA125Value, uln: Decimal):
    """Return (first_index, confirm_index | None, rule, threshold, nadir) or None.

    The first confirmed rise wins; a rise at the end of the series without a sample >= 7 days later is
    returned unconfirmed.  Rises refuted by a confirming sample below the threshold are skipped.
    """
    n = len(series)
    pre_elevated = pre.value_U_mL > uln
    for i in range(n):
        before = series[:i]
        normalised = any(v.value_U_mL <= uln for v in before)
        if not pre_elevated:
            rule, ref_value = "C", uln
        elif normalised:
            rule, ref_value = "A", uln
        else:
            rule = "B"
            ref_value = min([pre.value_U_mL] + [v.value_U_mL for v in before])
        threshold = PROGRESSION_MULTIPLE * ref_value
        if series[i].value_U_mL < threshold:
            continue
        j = next((k for k in range(i + 1, n)
                  if (series[k].date - series[i].date).days >= PROGRESSION_CONFIRMATION_DAYS), None)
        if j is None:
            if all(series[k].value_U_mL >= threshold for k in range(i + 1, n)):
                return i, None, rule, threshold, ref_value
            continue
        if all(series[k].value_U_mL >= threshold for k in range(i + 1, j + 1)):
            return i, j, rule, threshold, ref_value
    return None


def assess(inputs: GCIGInputs, as_of: date) -> Assessment:
    log = EvidenceLog()
    notes: list[str] = []
    uln = inputs.uln_U_mL
    values: dict = {"uln_U_mL": uln}

    if uln is None or uln <= 0:
        return _not_evaluable(("upper limit of normal (ULN) for the CA-125 assay",), log, notes, values)

    if inputs.mouse_antibodies:
        log.add("gcig.evaluable.mouse_antibodies",
                "Patient received mouse antibodies: CA-125 is not evaluable.",
                CITE, (inputs.mouse_antibodies_ref,) if inputs.mouse_antibodies_ref else ())
        return _not_evaluable(("CA-125 not usable: patient received mouse antibodies",), log, notes, values)

    if inputs.recent_serosal_interference:
        log.add("gcig.evaluable.serosal",
                "Medical or surgical interference with peritoneum or pleura (e.g. paracentesis) within "
                f"{SEROSAL_PROCEDURE_WINDOW_DAYS} days: CA-125 is not evaluable.", CITE)
        return _not_evaluable((f"CA-125 not usable: peritoneal/pleural interference within "
                               f"{SEROSAL_PROCEDURE_WINDOW_DAYS} days",), log, notes, values)

    series_all = sorted((v for v in inputs.values if v.date <= as_of), key=lambda v: v.date)
    if not series_all:
        return _not_evaluable(("CA-125 values",), log, notes, values)

    # ---- pretreatment sample -------------------------------------------------------------------------
    pre: CA125Value | None = None
    if inputs.treatment_start is not None:
        candidates = [v for v in series_all if v.date <= inputs.treatment_start]
        if not candidates:
            return _not_evaluable(("pretreatment CA-125 (on or before treatment start)",), log, notes, values)
        pre = candidates[-1]
        days_before = (inputs.treatment_start - pre.date).days
        values["pretreatment_days_before_treatment"] = days_before
        if days_before > PRETREATMENT_WINDOW_DAYS:
            log.add("gcig.evaluable.window",
                    f"Pretreatment CA-125 on {pre.date} is {days_before} days before treatment "
                    f"(must be within {PRETREATMENT_WINDOW_DAYS} days).", CITE, _refs(pre))
            return _not_evaluable(
                (f"pretreatment CA-125 within {PRETREATMENT_WINDOW_DAYS} days before treatment "
                 f"(latest was {days_before} days before)",), log, notes, values)
    else:
        labelled = [v for v in series_all if _is_pretreatment_label(v.label)]
        if not labelled:
            return _not_evaluable(("treatment start date (to identify the pretreatment CA-125 sample)",),
                                  log, notes, values)
        pre = labelled[-1]
        notes.append("Treatment start not given: the sample labelled pretreatment is used and the "
                     f"{PRETREATMENT_WINDOW_DAYS}-day window before treatment is not checked.")

    # ---- peritoneal / pleural interference -----------------------------------------------------------
    def _interfered(v: CA125Value) -> SerosalProcedure | None:
        for p in inputs.serosal_procedures:
            if 0 <= (v.date - p.date).days <= SEROSAL_PROCEDURE_WINDOW_DAYS:
                return p
        return None

    proc = _interfered(pre)
    if proc is not None:
        log.add("gcig.evaluable.serosal",
                f"{proc.description} on {proc.date} was {(pre.date - proc.date).days} days before the "
                f"pretreatment sample (none allowed within {SEROSAL_PROCEDURE_WINDOW_DAYS} days).",
                CITE, _refs(pre, proc))
        return _not_evaluable((f"pretreatment CA-125 not usable: {proc.description} within "
                               f"{SEROSAL_PROCEDURE_WINDOW_DAYS} days before it",), log, notes, values)

    series: list[CA125Value] = []
    for v in series_all:
        if v.date <= pre.date:
            continue
        p = _interfered(v)
        if p is not None:
            notes.append(f"CA-125 on {v.date} left out: {p.description} on {p.date} was within "
                         f"{SEROSAL_PROCEDURE_WINDOW_DAYS} days before it.")
            log.add("gcig.sample.excluded",
                    f"CA-125 {fmt(v.value_U_mL)} U/mL on {v.date} excluded ({p.description} on {p.date}, "
                    f"within {SEROSAL_PROCEDURE_WINDOW_DAYS} days).", CITE, _refs(v, p))
            continue
        series.append(v)

    pre_v = pre.value_U_mL
    values["pretreatment_U_mL"] = pre_v
    values["pretreatment_date"] = pre.date
    eval_threshold = EVALUABLE_MULTIPLE_OF_ULN * uln
    response_evaluable = pre_v >= eval_threshold
    values["response_evaluable"] = response_evaluable
    log.add("gcig.evaluable.pretreatment",
            f"Pretreatment CA-125 {fmt(pre_v)} U/mL on {pre.date} is "
            f"{'>=' if response_evaluable else '<'} {fmt(EVALUABLE_MULTIPLE_OF_ULN)} x ULN "
            f"({fmt(eval_threshold)} U/mL): {'evaluable' if response_evaluable else 'not evaluable'} for response.",
            CITE, _refs(pre))

    history_base = [TimepointResult(pre.date, PRETREATMENT, OUTCOMES[PRETREATMENT],
                                    {"CA125_U_mL": pre_v})]
    if not series:
        return _not_evaluable(("CA-125 value after the pretreatment sample",), log, notes, values,
                              tuple(history_base))

    # ---- events ----------------------------------------------------------------------------------------
    prog = _find_progression(series, pre, uln)
    resp = _find_response(series, pre) if response_evaluable else None

    prog_idx = prog[0] if prog else None
    if resp is not None and prog_idx is not None and resp[0] >= prog_idx:
        resp = None  # a fall after progression started is not a response

    def _category_at(k: int) -> str:
        if prog is not None and k >= prog[0]:
            return PROGRESSION if prog[1] is not None else PROGRESSION_UNCONFIRMED
        if resp is not None and k >= resp[0]:
            return RESPONSE if resp[1] is not None else RESPONSE_UNCONFIRMED
        return NO_RESPONSE if response_evaluable else NOT_EVALUABLE

    def _outcome(cat: str, v: CA125Value) -> Outcome:
        if cat == RESPONSE and v.value_U_mL <= uln:
            return Outcome.COMPLETE
        return OUTCOMES[cat]

    history = list(history_base)
    for k, v in enumerate(series):
        cat = _category_at(k)
        history.append(TimepointResult(v.date, cat, _outcome(cat, v), {
            "CA125_U_mL": v.value_U_mL,
            "pct_change": pct_change(v.value_U_mL, pre_v),
        }))

    latest = series[-1]
    category = _category_at(len(series) - 1)
    values["latest_U_mL"] = latest.value_U_mL
    values["latest_date"] = latest.date
    values["pct_change_latest"] = pct_change(latest.value_U_mL, pre_v)
    missing: tuple[str, ...] = ()
    confirmed = False
    assessment_date = latest.date
    outcome = OUTCOMES[category]

    if category in (PROGRESSION, PROGRESSION_UNCONFIRMED):
        i, j, rule, threshold, ref_value = prog
        first = series[i]
        assessment_date = first.date
        values.update({
            "progression_date": first.date,
            "progression_rule": rule,
            "progression_threshold_U_mL": threshold,
            "pct_change": pct_change(first.value_U_mL, pre_v),
        })
        basis = {"A": f"normalised after elevated pretreatment: >= {fmt(PROGRESSION_MULTIPLE)} x ULN",
                 "B": f"elevated and never normalised: >= {fmt(PROGRESSION_MULTIPLE)} x nadir "
                      f"{fmt(ref_value)} U/mL",
                 "C": f"normal pretreatment: >= {fmt(PROGRESSION_MULTIPLE)} x ULN"}[rule]
        if rule == "B":
            values["nadir_U_mL"] = ref_value
        log.add(f"gcig.progression.{rule.lower()}.first",
                f"CA-125 {fmt(first.value_U_mL)} U/mL on {first.date} is >= {fmt(threshold)} U/mL "
                f"(rule {rule}, {basis}).", CITE, _refs(first))
        if j is not None:
            second = series[j]
            days = (second.date - first.date).days
            confirmed = True
            values["confirmation_date"] = second.date
            values["confirmation_days"] = days
            log.add(f"gcig.progression.{rule.lower()}.confirmed",
                    f"Confirmed by CA-125 {fmt(second.value_U_mL)} U/mL on {second.date}, {days} days later "
                    f"(>= {PROGRESSION_CONFIRMATION_DAYS} days, >= {fmt(threshold)} U/mL); progression dated "
                    f"to the first elevated value {first.date}.", CITE, _refs(second))
        else:
            notes.append(f"Repeat CA-125 on or after {first.date + timedelta(days=PROGRESSION_CONFIRMATION_DAYS)} "
                         "to confirm progression.")
    elif category in (RESPONSE, RESPONSE_UNCONFIRMED):
        i, j, _pending = resp
        first = series[i]
        assessment_date = first.date
        pc = pct_change(first.value_U_mL, pre_v)
        values.update({"response_date": first.date, "pct_change": pc})
        log.add("gcig.response.reduction",
                f"CA-125 {fmt(first.value_U_mL)} U/mL on {first.date} is {fmt_pct(pc)} from pretreatment "
                f"{fmt(pre_v)} U/mL (response needs <= {fmt(RESPONSE_REDUCTION_PCT)} %).", CITE, _refs(first))
        if j is not None:
            second = series[j]
            days = (second.date - first.date).days
            confirmed = True
            values["confirmation_date"] = second.date
            values["confirmation_days"] = days
            log.add("gcig.response.confirmed",
                    f"Maintained on {second.date} ({fmt(second.value_U_mL)} U/mL, "
                    f"{fmt_pct(pct_change(second.value_U_mL, pre_v))}), {days} days later "
                    f"(>= {RESPONSE_CONFIRMATION_DAYS} days); no sample in between rose more than "
                    f"{fmt(ASSAY_VARIABILITY_PCT)} % above the one before.", CITE, _refs(second))
            within_normal = latest.value_U_mL <= uln
            code = "CR" if within_normal else "PR"
            values["response_subtype_code"] = code
            # self-explanatory for the card and the CRF: "PR (not within normal range; 150 U/mL > ULN 35)"
            values["response_subtype"] = (f"{code} ({'within' if within_normal else 'not within'} normal range; "
                                          f"{fmt(latest.value_U_mL, 2)} U/mL {'<=' if within_normal else '>'} ULN "
                                          f"{fmt(uln, 2)})")
            if within_normal:
                outcome = Outcome.COMPLETE
            log.add("gcig.response.subtype",
                    f"Latest CA-125 {fmt(latest.value_U_mL)} U/mL is {'<=' if within_normal else '>'} ULN "
                    f"{fmt(uln)} U/mL: CA-125 {'CR (within normal range)' if within_normal else 'PR (not within normal range)'}.",
                    CITE, _refs(latest))
        else:
            notes.append("Repeat CA-125 on or after "
                         f"{first.date + timedelta(days=RESPONSE_CONFIRMATION_DAYS)} to confirm the response.")
    elif category == NO_RESPONSE:
        confirmed = True  # a negative finding needs no confirmation
        pc = values["pct_change_latest"]
        values["pct_change"] = pc
        log.add("gcig.response.none",
                f"Latest CA-125 {fmt(latest.value_U_mL)} U/mL on {latest.date} is {fmt_pct(pc)} from "
                f"pretreatment (response needs <= {fmt(RESPONSE_REDUCTION_PCT)} % maintained "
                f"{RESPONSE_CONFIRMATION_DAYS} days); no progression rule met.", CITE, _refs(latest))
    else:  # NOT_EVALUABLE for response, no progression
        values["pct_change"] = values["pct_change_latest"]
        missing = (f"pretreatment CA-125 >= {fmt(EVALUABLE_MULTIPLE_OF_ULN)} x ULN ({fmt(eval_threshold)} U/mL) "
                   f"for response assessment (was {fmt(pre_v)} U/mL)",)
        notes.append("No CA-125 progression rule met.")
        assessment_date = latest.date

    return Assessment(
        criteria=CRITERIA,
        category=category,
        label=LABELS[category],
        outcome=outcome,
        assessment_date=assessment_date,
        confirmed=confirmed,
        source=SOURCE,
        values=values,
        evidence=log.items(),
        history=tuple(history),
        missing=missing,
        notes=tuple(notes),
    )


__all__ = [
    "CRITERIA", "SOURCE", "CA125Value", "SerosalProcedure", "GCIGInputs", "assess",
    "RESPONSE", "RESPONSE_UNCONFIRMED", "NO_RESPONSE", "PROGRESSION", "PROGRESSION_UNCONFIRMED",
    "NOT_EVALUABLE",
]
