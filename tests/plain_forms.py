"""Plain forms of hot-path code, as it was before the fast paths: the tests compare the two on random inputs.

Kept verbatim (helpers from rules/base.py, RECIST 1.1 ``assess`` from rules/recist.py...) apart from the imports.
Not collected by pytest (no test_ prefix).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Iterable

from rules.base import Assessment, EvidenceLog, Outcome, TimepointResult
from rules.recist import (
    _counts, _track_response,
    CATEGORY_LABELS, CITE, CONFIRMATION_DAYS, CRITERIA, NODE_NORMAL_MM, OUTCOMES, PD_ABSOLUTE_MM, PD_INCREASE_PCT,
    PR_DECREASE_PCT, SOURCE, TOO_SMALL_MM, _RANK, RecistInputs, TargetMeasurement, Timepoint,
)

# --- rules/base.py helpers ------------------------------------------------------------------------------------

PRECISION = 50


def D(value):
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def pct_change(current, reference) -> Decimal:
    cur, ref = D(current), D(reference)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return (cur - ref) * 100 / ref


def rounded(value: Decimal, places: int = 2) -> Decimal:
    return D(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def fmt(value, places: int = 1) -> str:
    v = rounded(D(value), places)
    s = format(v, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s if s != "-0" else "0"


def fmt_pct(value, places: int = 1) -> str:
    exact = D(value)
    # one more decimal at a time while rounding lands on a multiple of 5 % that the value is not
    if isinstance(places, int) and 0 <= places <= 6 and exact.is_finite():
        while places < 6 and rounded(exact, places) != exact and rounded(exact, places) % 5 == 0:
            places += 1
    v = rounded(exact, places)
    sign = "+" if v > 0 else ("\u2212" if v < 0 else "")
    return f"{sign}{fmt(abs(v), places)} %"


# --- rules/recist.py: time-point evaluation ------------------------------------------------------------------

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


def recist_assess(inputs: RecistInputs, as_of: date, *, continuing_pr: bool = True) -> Assessment:
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
        baseline_sum = sum(contributions, Decimal(0))
        parts = " + ".join(
            f"{t.lesion_id} {fmt(_contribution(t))} mm{' (short axis)' if t.nodal else ''}" for t in baseline.targets
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
    pr_assigned = False
    cr_assigned = False
    run_start = None
    for tp in tps[1:]:
        if not tp.targets and tp.reported_overall:
            overall = tp.reported_overall
            results.append(_TP(tp.date, None, tp.non_target, tp.new_lesion, overall, None, None, reported=True))
            ev.add("recist.timepoint.reported", f"{tp.date.isoformat()}: overall response {overall} as reported "
                   "(no measurements in the record).", f"{CITE} Table 1", _refs(tp))
            run_start = _track_response(results[-1], run_start, inputs.confirmation_required)
            pr_assigned = pr_assigned or (run_start is not None and overall == "PR" and _counts(tp.date, run_start, inputs))
            cr_assigned = cr_assigned or (run_start is not None and overall == "CR" and _counts(tp.date, run_start, inputs))
            continue
        target_resp: str | None = None
        tsum: Decimal | None = None
        avail: Decimal | None = None
        values: dict = {}
        if has_targets:
            by_id = {t.lesion_id: t for t in tp.targets}
            contribs: dict[str, Decimal | None] = {}
            for lid, bt in base_targets.items():
                m = by_id.get(lid)
                contribs[lid] = _contribution(m) if m is not None else None
            known = [c for c in contribs.values() if c is not None]
            avail = sum(known, Decimal(0))
            nadir = nadir_sum
            values["nadir_sum_mm"] = nadir
            values["baseline_sum_mm"] = baseline_sum
            if any(c is None for c in contribs.values()):
                absent = [lid for lid, c in contribs.items() if c is None]
                values["available_sum_mm"] = avail
                if _is_pd(avail, nadir):
                    target_resp = "PD"
                    ev.add("recist.target.pd_partial", f"{tp.date.isoformat()}: {', '.join(absent)} not assessed, but the "
                           f"measured targets alone sum to {fmt(avail)} mm, already {fmt_pct(pct_change(avail, nadir))} and "
                           f"+{fmt(avail - nadir)} mm over the nadir {fmt(nadir)} mm: PD is established (PD needs >= +20 % "
                           "and >= +5 mm).", f"{CITE} §4.3.2, Table 1", _refs(tp))
                    tsum = avail
                else:
                    target_resp = "NE"
                    ev.add("recist.target.ne", f"{tp.date.isoformat()}: {', '.join(absent)} not assessed; the measured "
                           f"targets sum to {fmt(avail)} mm and the missing lesion(s) could change the category: "
                           "target response not evaluable.", f"{CITE} §4.3.2, Table 1", _refs(tp))
            else:
                tsum = avail
                from_base = pct_change(tsum, baseline_sum)
                values.update(target_sum_mm=tsum, pct_change_from_baseline=from_base,
                              absolute_change_from_nadir_mm=tsum - nadir)
                if nadir > 0:
                    values["pct_change_from_nadir"] = pct_change(tsum, nadir)
                nodal_ok = all(
                    (c is not None and (c < NODE_NORMAL_MM if base_targets[lid].nodal else c == 0))
                    for lid, c in contribs.items()
                )
                nadir_txt = (f"{fmt_pct(pct_change(tsum, nadir))}, {'+' if tsum >= nadir else '−'}{fmt(abs(tsum - nadir))} mm "
                             f"vs nadir {fmt(nadir)} mm" if nadir > 0 else f"+{fmt(tsum)} mm over a nadir of 0 mm")
                back = [lid for lid, c in contribs.items()
                        if (c >= NODE_NORMAL_MM if base_targets[lid].nodal else c > 0)] \
                    if results and results[-1].overall == "CR" else []
                if back:
                    target_resp = "PD"
                    ev.add("recist.target.reappeared", f"{tp.date.isoformat()}: overall CR at the previous assessment and "
                           f"{', '.join(back)} has reappeared: PD (after a CR any reappearance is PD).",
                           "RECIST Working Group FAQ 'Does a new lesion always result in PD?'; criteria.md §2.6", _refs(tp))
                elif _is_pd(tsum, nadir):
                    target_resp = "PD"
                    ev.add("recist.target.pd", f"{tp.date.isoformat()}: sum {fmt(tsum)} mm is {nadir_txt}: PD "
                           "(needs >= +20 % and >= +5 mm over the nadir).", f"{CITE} §4.3.1", _refs(tp))
                elif nodal_ok:
                    target_resp = "CR"
                    ev.add("recist.target.cr", f"{tp.date.isoformat()}: all non-nodal targets 0 mm and every nodal target "
                           "short axis < 10 mm: target CR.", f"{CITE} §4.3.1", _refs(tp))
                elif tsum * 100 <= (100 + PR_DECREASE_PCT) * baseline_sum:
                    target_resp = "PR"
                    ev.add("recist.target.pr", f"{tp.date.isoformat()}: sum {fmt(tsum)} mm is {fmt_pct(from_base)} from "
                           f"baseline {fmt(baseline_sum)} mm: PR (needs <= −30 %).", f"{CITE} §4.3.1", _refs(tp))
                elif continuing_pr and (pr_assigned or cr_assigned):
                    target_resp = "PR"
                    ev.add("recist.target.pr_continuing", f"{tp.date.isoformat()}: sum {fmt(tsum)} mm is {fmt_pct(from_base)} "
                           f"from baseline and {nadir_txt}, not PD: the earlier PR continues until PD criteria are met "
                           "(strict time-point reading: SD).", "RECIST Working Group FAQ; criteria.md §2.4", _refs(tp))
                else:
                    target_resp = "SD"
                    ev.add("recist.target.sd", f"{tp.date.isoformat()}: sum {fmt(tsum)} mm is {fmt_pct(from_base)} from "
                           f"baseline (PR needs <= −30 %) and {nadir_txt} (PD needs >= +20 % and >= +5 mm): SD.",
                           f"{CITE} §4.3.1; EORTC FAQ", _refs(tp))
        nt = tp.non_target
        if nt == "PD":
            ev.add("recist.nontarget.pd", f"{tp.date.isoformat()}: unequivocal progression of non-target disease: PD.",
                   f"{CITE} §4.3.3", _refs(tp))
        if tp.new_lesion == "yes":
            ev.add("recist.new_lesion", f"{tp.date.isoformat()}: unequivocal new lesion: PD.", f"{CITE} §4.3.5", _refs(tp))
        elif tp.new_lesion == "equivocal":
            ev.add("recist.new_lesion.equivocal", f"{tp.date.isoformat()}: equivocal new lesion: not PD now; if a later scan "
                   "confirms it, PD is dated to this scan.", f"{CITE} §4.3.5", _refs(tp))
        overall = _overall(target_resp, nt, tp.new_lesion)
        if target_resp == "CR" and overall == "PR":
            ev.add("recist.overall.cr_nt", f"{tp.date.isoformat()}: targets CR but non-target disease "
                   f"{'not evaluated' if nt == 'NE' else 'persists'}: overall PR.", f"{CITE} Table 1")
        results.append(_TP(tp.date, target_resp, nt, tp.new_lesion, overall, tsum, avail, values=values))
        if tsum is not None and target_resp != "NE" and "available_sum_mm" not in values:
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
    history = (TimepointResult(baseline.date, "baseline", Outcome.NOT_EVALUABLE,
                               {"target_sum_mm": baseline_sum} if baseline_sum is not None else {}),) + tuple(
        TimepointResult(r.date, r.overall, OUTCOMES.get(r.overall, Outcome.NOT_EVALUABLE),
                        {k: v for k, v in (("target_sum_mm", r.target_sum),) if v is not None})
        for r in results
    )
    return Assessment(
        criteria=CRITERIA,
        category=current.overall,
        label=CATEGORY_LABELS.get(current.overall, current.overall),
        outcome=OUTCOMES.get(current.overall, Outcome.NOT_EVALUABLE),
        assessment_date=current.date,
        confirmed=cat_confirmed,
        source=SOURCE,
        values=values,
        evidence=ev.items(),
        history=history,
        missing=tuple(missing) + (("a target lesion was not assessed",) if current.overall == "NE" and
                                  current.target_response == "NE" else ()),
        notes=_notes(ev, continuing_pr),
    )


def _notes(ev: EvidenceLog, continuing_pr: bool) -> tuple[str, ...]:
    if continuing_pr and any(e.rule == "recist.target.pr_continuing" for e in ev.items()):
        return ("PR is kept until PD criteria are met (RECIST Working Group FAQ); a strict time-point reading "
                "would call this visit SD.",)
    return ()


def _refs(tp: Timepoint) -> tuple[str, ...]:
    refs = list(tp.refs)
    refs.extend(t.ref for t in tp.targets if t.ref)
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


# --- fhir_mappings/recist.py: map_recist ------------------------------------------------------------------------

from fhir_mappings import codes  # noqa: E402
from fhir_mappings.recist import (  # noqa: E402
    ROLE_VALUES, RecistMapping, _component, _coded_components, _dimension, _is_nodal, _Lesion, _lesion_key,
    _non_target_status, _organ, _treatment_start,
)
from fhir_mappings.record import PatientRecord, Resource, concept_keys, concept_text, effective_date, ref_of  # noqa: E402
from rules import recist as engine  # noqa: E402


def _timepoint_dates(record: PatientRecord, obs_list: list[Resource]) -> dict[str, date]:
    """Date of the imaging report that groups each measurement (report date wins over measurement date)."""
    when: dict[str, date] = {}
    ref_key = record.ref_key  # ref_of(record.get(r)) without reading every result resource
    for rep in record.of_type("DiagnosticReport"):
        d = effective_date(rep)
        if d is None:
            continue
        for r in rep.get("result") or ():
            key = ref_key(r)
            if key:
                when[key] = d
    return when


def _status_by_date(record: PatientRecord, key: str, tp_dates: dict[str, date]) -> dict[date, tuple[str, str | None]]:
    out: dict[date, tuple[str, str | None]] = {}
    for obs in record.with_codes([key], "Observation"):
        d = tp_dates.get(ref_of(obs) or "", effective_date(obs))
        if d is None:
            record.issue(obs, "status observation skipped", "no date")
            continue
        if isinstance(obs.get("valueBoolean"), bool):
            out[d] = ("yes" if obs["valueBoolean"] else "no", ref_of(obs))
            continue
        vc = obs.get("valueCodeableConcept")
        val = None
        for k in concept_keys(vc):
            val = k.split("|", 1)[1]
        val = val or concept_text(vc) or (obs.get("valueString") if isinstance(obs.get("valueString"), str) else None)
        if val:
            out[d] = (val.strip(), ref_of(obs))
        else:
            record.issue(obs, "status observation skipped", "no value")
    return out


def map_recist(record: PatientRecord, *, confirmation_required: bool | None = None) -> RecistMapping:
    sizes = record.with_codes([codes.TUMOR_SIZE], "Observation")
    tp_dates = _timepoint_dates(record, sizes)
    lesions: dict[str, _Lesion] = {}
    for obs in sizes:
        ref = ref_of(obs)
        d = tp_dates[ref] if ref in tp_dates else effective_date(obs)  # the report's date wins
        if d is None:
            record.issue(obs, "tumour size skipped", "no date")
            continue
        key, body = _lesion_key(obs, record)
        if not key:
            record.issue(obs, "tumour size skipped", "no lesion identifier (focus) or body site to track it by")
            continue
        les = lesions.get(key)
        if les is None:  # (setdefault would build a _Lesion for every measurement)
            les = lesions[key] = _Lesion(key)
        coded = _coded_components(obs)
        les.nodal = les.nodal or _is_nodal(obs, body, coded)
        les.organ = les.organ or _organ(obs, body)
        for comp in _component(obs, codes.LESION_ROLE, coded):
            for k in concept_keys(comp.get("valueCodeableConcept")):
                les.role = ROLE_VALUES.get(k.split("|", 1)[1].lower(), les.role)
        dim, too_small = _dimension(obs, les.nodal, record, coded)
        les.sizes[d] = (dim, too_small, ref)

    nt_status = _status_by_date(record, codes.NON_TARGET_RESPONSE, tp_dates)
    new_status = _status_by_date(record, codes.NEW_LESION, tp_dates)
    reported = _status_by_date(record, codes.TIMEPOINT_RESPONSE, tp_dates)
    confirm_obs = _status_by_date(record, codes.TRIAL_CONFIRMATION, tp_dates)
    if confirmation_required is None:
        confirmation_required = any(v[0] == "yes" for v in confirm_obs.values())

    all_dates = sorted({d for les in lesions.values() for d in les.sizes} | set(nt_status) | set(new_status) | set(reported))
    if not all_dates:
        return RecistMapping(None, None, ("no tumour measurements (mCODE TumorSize, LOINC 21889-1) in the record",))
    measured_dates = sorted({d for les in lesions.values() for d in les.sizes})
    if not measured_dates and reported and min(reported) == all_dates[0]:
        # only reported responses (no measurements): the baseline is the start of treatment (or a day before)
        start = _treatment_start(record, all_dates[0] - timedelta(days=365))
        all_dates.insert(0, start if start and start < all_dates[0] else all_dates[0] - timedelta(days=1))
    baseline = all_dates[0]

    coded_roles = any(les.role for les in lesions.values())
    selection = None
    if coded_roles:
        targets = [les for les in lesions.values() if les.role == "target"]
        non_targets = [les for les in lesions.values() if les.role == "non-target"]
    else:
        at_base = [les for les in lesions.values() if baseline in les.sizes and les.sizes[baseline][0] is not None]
        selection = engine.select_targets([
            engine.BaselineLesion(les.lesion_id, les.nodal, les.sizes[baseline][0], les.organ) for les in at_base])
        targets = [lesions[i] for i in selection.targets]
        non_targets = [lesions[i] for i in selection.non_targets]
        for les in lesions.values():
            if baseline not in les.sizes and les.role is None:
                les.role = "new"
    new_lesions = [les for les in lesions.values() if les.role == "new"]
    targets = [t for t in targets if baseline in t.sizes]

    treatment_start = _treatment_start(record, baseline)
    timepoints = []
    for d in all_dates:
        tms = []
        for t in targets:
            dim, small, ref = t.sizes.get(d, (None, False, None))
            if d not in t.sizes and d != baseline:
                # lesion not measured at this time point: not assessed (only if other targets were measured)
                pass
            tms.append(engine.TargetMeasurement(t.lesion_id, t.nodal, dim, small, t.organ, ref))
        if not any(d in t.sizes for t in targets):
            tms = []
        nt = _non_target_status(d, baseline, non_targets, nt_status)
        nl, nl_ref = "no", None
        if d in new_status:
            v = new_status[d][0].lower()
            nl = "yes" if v in ("yes", "true", "present") else ("equivocal" if v.startswith("equivocal") else "no")
            nl_ref = new_status[d][1]
        for les in new_lesions:
            first = min(les.sizes) if les.sizes else None
            if first is not None and first <= d and d != baseline:
                dim = les.sizes[first][0]
                if les.nodal and dim is not None and dim < engine.NODE_NORMAL_MM:
                    continue  # a node < 10 mm short axis is not pathological (RECIST WG "New lymph node lesions")
                nl = "yes"
                nl_ref = nl_ref or les.sizes[first][2]
        refs = tuple(r for r in (nl_ref, nt_status.get(d, (None, None))[1]) if r)
        rep = reported.get(d)
        timepoints.append(engine.Timepoint(d, tuple(tms), nt, nl, rep[0] if rep and not tms else None, refs))

    inputs = engine.RecistInputs(
        timepoints=tuple(timepoints), confirmation_required=confirmation_required,
        treatment_start=treatment_start, targets_auto_selected=selection is not None and bool(selection.targets),
    )
    return RecistMapping(inputs, selection)


# --- cds_service/cards.py -------------------------------------------------------------------------------------

import re  # noqa: E402
from typing import Any  # noqa: E402


def _json_value(key: str, v: Any) -> Any:
    if isinstance(v, Decimal):
        if key.endswith("fraction") and v != 0:
            # MRD levels / sensitivities (1E-5, 1E-6) would round to 0 at 4 places: keep 12 significant digits
            q = Decimal(format(v, ".12g")).normalize()
            return int(q) if q == q.to_integral_value() else float(q)
        places = Decimal("0.01") if key.startswith("pct") or "pct_change" in key else Decimal("0.0001")
        q = v.quantize(places, rounding=ROUND_HALF_UP)
        q = q.normalize() if q != 0 else Decimal(0)
        return int(q) if q == q.to_integral_value() else float(q)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [_json_value(key, x) for x in v]
    return v


def md_escape(text: str) -> str:
    return re.sub(r"([\\`*_\[\]|<>~])", r"\\\1", text)


def clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        out = {k: clean(v) for k, v in obj.items()}
        return {k: v for k, v in out.items() if v is not None and v != [] and v != {} and v != ""}
    if isinstance(obj, list):
        return [x for x in (clean(v) for v in obj) if x is not None and x != [] and x != {} and x != ""]
    return obj


# --- fhir_mappings/report_text.py -----------------------------------------------------------------------------

from fhir_mappings.labs import report_text  # noqa: E402
from fhir_mappings.report_text import extract, items  # noqa: E402


def report_texts(report):
    parts = [report_text({"conclusion": report.get("conclusion"), "presentedForm": items(report.get("presentedForm"))})]
    for cc in items(report.get("conclusionCode")):
        t = concept_text(cc)
        if t:
            parts.append(t)
    return "\n".join(p for p in parts if p)


def stated(reports):
    out = []
    for rep in reports:
        d = effective_date(rep)
        if d is None:
            continue
        for s in extract(report_texts(rep)):
            out.append((d, ref_of(rep), s))
    out.sort(key=lambda x: (x[0], x[1] or "", x[2].start))
    return out
