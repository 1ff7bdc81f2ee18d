"""RECIST 1.1 inputs from mCODE TumorSize Observations (LOINC 21889-1) and the project's status codes.

Lesions are tracked by their BodyStructure identifier (``Observation.focus``); time points are the imaging
DiagnosticReports that group the measurements (``result``), or the measurement date when there is none.
Role coding (target / non-target / new) is optional: without it, targets are selected at baseline as RECIST
does (rules.recist.select_targets), the rest is non-target, and a lesion first seen after baseline is new.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from fhir_mappings import codes
from fhir_mappings.record import (
    LOCAL,
    SYSTEM_ALIASES,
    UCUM,
    PatientRecord,
    Resource,
    concept_keys,
    concept_text,
    effective_date,
    quantity,
    ref_of,
    to_decimal,
)
from fhir_mappings.report_text import dated_reports
from fhir_mappings.units import LENGTH_MM, UnitError, normalise
from rules import recist as engine
from rules.recist import new_target_measurement, new_timepoint

ROLE_VALUES = {"target": "target", "non-target": "non-target", "nontarget": "non-target", "new": "new"}
NT_VALUES = {"cr": "CR", "non-cr/non-pd": "non-CR/non-PD", "non-cr-non-pd": "non-CR/non-PD", "pd": "PD", "ne": "NE",
             "present": "non-CR/non-PD", "absent": "CR"}


@dataclass
class _Lesion:
    lesion_id: str
    nodal: bool = False
    organ: str | None = None
    role: str | None = None
    sizes: dict[date, tuple[Decimal | None, bool, str | None]] = field(default_factory=dict)  # date -> (mm, too_small, ref)


@dataclass
class RecistMapping:
    inputs: engine.RecistInputs | None
    selection: engine.TargetSelection | None
    reasons_missing: tuple[str, ...] = ()


def _coded_components(obs: Resource) -> list[tuple[dict, set[str]]]:
    """(component, its code's system|code keys) for each component: read once per TumorSize, asked up to 5 times."""
    return [(c, concept_keys(c.get("code"))) for c in obs.get("component") or () if isinstance(c, dict)]


def _component(obs: Resource, key: str, coded: list[tuple[dict, set[str]]] | None = None) -> list[dict]:
    """The components of ``obs`` whose code carries ``key`` (``coded``: _coded_components(obs), when at hand)."""
    return [c for c, keys in (_coded_components(obs) if coded is None else coded) if key in keys]


def _lesion_key(obs: Resource, record: PatientRecord) -> tuple[str, Resource | None]:
    for f in obs.get("focus") or ():
        if not isinstance(f, dict):
            continue
        body = record.get(f)
        if body is not None:
            for ident in body.get("identifier") or ():
                if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                    return ident["value"], body
            return ref_of(body) or "", body
        ident = f.get("identifier")
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            return ident["value"], None
        if isinstance(f.get("reference"), str):
            return f["reference"], None
    site = concept_text(obs.get("bodySite"))
    return (f"site:{site}" if site else ""), None


def _body_key(body: Resource) -> str:
    """The lesion key _lesion_key gives for a focus that resolves to ``body``."""
    for ident in body.get("identifier") or ():
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            return ident["value"]
    return ref_of(body) or ""


def _is_nodal(obs: Resource, body: Resource | None, coded: list[tuple[dict, set[str]]] | None = None) -> bool:
    for c in _component(obs, codes.NODAL, coded):
        if isinstance(c.get("valueBoolean"), bool):
            return c["valueBoolean"]
    for res, key in ((body, "location"), (obs, "bodySite")):
        if res and isinstance(res.get(key), dict):
            if concept_keys(res[key]) & codes.LYMPH_NODE_SNOMED:
                return True
            text = concept_text(res[key]).lower()
            if "lymph node" in text or " ln" in f" {text}" or text.endswith(" node") or "nodal" in text:
                return True
    return False


def _organ(obs: Resource, body: Resource | None) -> str | None:
    for res, key in ((body, "location"), (obs, "bodySite")):
        if res and isinstance(res.get(key), dict):
            t = concept_text(res[key])
            if t:
                return t
    return None


def _dimension(obs: Resource, nodal: bool, record: PatientRecord,
               coded: list[tuple[dict, set[str]]] | None = None) -> tuple[Decimal | None, bool]:
    """(diameter in mm, too_small) of one TumorSize; (None, False) when not measured."""
    note = obs.get("note")
    notes = " ".join(str(n.get("text", "")) for n in (note if isinstance(note, list) else ())
                     if isinstance(n, dict)).lower()
    interp = obs.get("interpretation")
    interp_keys: set[str] = set()
    for concept in interp if isinstance(interp, list) else [interp]:  # R4: a list of CodeableConcept
        interp_keys |= concept_keys(concept)
    too_small = "too small to measure" in notes or codes.TOO_SMALL in interp_keys

    def value_of(comp: dict) -> Decimal | None:
        nonlocal too_small
        if codes.TOO_SMALL in concept_keys(comp.get("valueCodeableConcept")):
            too_small = True
            return None
        v, unit, _ = quantity(comp.get("valueQuantity"))
        if v is None:
            return None
        try:
            mm = normalise(v, unit, LENGTH_MM)
        except UnitError as exc:
            record.issue(obs, "tumour size skipped", str(exc))
            return None
        if mm < 0:
            record.issue(obs, "tumour size skipped", "negative diameter")
            return None
        return mm

    if nodal:
        for comp in _component(obs, codes.SHORT_AXIS, coded):
            v = value_of(comp)
            if v is not None:
                return v, too_small
        others = [v for v in (value_of(c) for c in _component(obs, codes.OTHER_DIMENSION, coded)) if v is not None]
        if others:
            return min(others), too_small
    for comp in _component(obs, codes.LONGEST_DIMENSION, coded):
        v = value_of(comp)
        if v is not None:
            return v, too_small
    return None, too_small


def _results(report: Any) -> list | tuple:
    """A report's ``result`` References, or none when ``result`` is not a list (malformed: a number, a string, a
    lone object), as fhir_mappings/lugano.py reads it: one bad report loses its grouping, not the whole assessment
    (its measurements keep their own dates)."""
    results = report.get("result")
    return results if type(results) is list else ()


def _timepoint_dates(record: PatientRecord, obs_list: list[Resource]) -> dict[str, date]:
    """Date of the imaging report that groups each measurement (report date wins over measurement date)."""
    when: dict[str, date] = {}
    ref_key = record.ref_key  # ref_of(record.get(r)) without reading every result resource
    for rep in record.of_type("DiagnosticReport"):
        d = effective_date(rep)
        if d is None:
            continue
        for r in _results(rep):
            key = ref_key(r)
            if key:
                when[key] = d
    return when


def _status_by_date(record: PatientRecord, key: str, tp_dates: dict[str, date],
                    found: list[Resource] | None = None) -> dict[date, tuple[str, str | None]]:
    """``found``: record.with_codes([key], "Observation"), when already at hand."""
    out: dict[date, tuple[str, str | None]] = {}
    for obs in record.with_codes([key], "Observation") if found is None else found:
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


def _report_dates(record: PatientRecord, wanted: set[str]) -> dict[str, date]:
    """_timepoint_dates(record, ...) restricted to the measurements in ``wanted`` (their ``ref_of``), which is all
    map_recist looks up: a report's results are matched by their reference text, without resolving each one.

    A ``Type/id`` reference names the resource the index holds under that key (PatientRecord.ref_key); any other
    spelling (absolute URL, ``_history``, a reference without text) goes through ref_key as before."""
    wanted = {w for w in wanted if record.ref_key(w) == w}  # keys the index resolves (all of them, normally)
    when: dict[str, date] = {}
    if not wanted:
        return when
    ref_key = record.ref_key
    for rep, d in dated_reports(record):
        for r in _results(rep):
            ref = r.get("reference") if type(r) is dict else r
            if type(ref) is str:
                if ref in wanted:  # a key of the index: its own ref_key
                    when[ref] = d
                    continue
                if ref.count("/") == 1:  # ref_key is ref or None: not wanted either way
                    continue
            key = ref_key(r)
            if key and key in wanted:
                when[key] = d
    return when


_SIZE_COMPONENTS = frozenset({codes.NODAL, codes.SHORT_AXIS, codes.OTHER_DIMENSION, codes.LONGEST_DIMENSION,
                              codes.LESION_ROLE})
_NO_COMPONENTS: dict[str, list[dict]] = {}


def _by_system(keys: Any) -> dict[str, dict[str, str]]:
    """{system: {code: key}} of ``system|code`` keys with one "|": a coding (normalised system, stripped
    code) has the key among its concept_keys exactly when the table lists the pair, and no key string is built."""
    out: dict[str, dict[str, str]] = {}
    for key in keys:
        system, code = key.rsplit("|", 1)
        if "|" in system or "|" in code:
            raise ValueError(f"{key}: more than one '|'")
        out.setdefault(system, {})[code] = key
    return out


_SIZE_COMPONENTS_BY_SYSTEM = _by_system(_SIZE_COMPONENTS)
_LYMPH_NODE_BY_SYSTEM = _by_system(codes.LYMPH_NODE_SNOMED)


def _components_by_code(obs: Resource) -> dict[str, list[dict]]:
    """{key: _component(obs, key)} for the component codes map_recist reads, in one pass over the components."""
    comps = obs.get("component")
    if comps is None:
        return _NO_COMPONENTS
    out: dict[str, list[dict]] = {}
    for c in comps or ():
        if isinstance(c, dict):
            code = c.get("code")
            coding = code.get("coding") if type(code) is dict else None
            if type(coding) is list and len(coding) == 1 and type(coding[0]) is dict:  # concept_keys(code), inlined
                c0 = coding[0]
                bare = c0.get("code")
                if not isinstance(bare, str):
                    continue
                system = c0.get("system")
                if not isinstance(system, str):
                    system = ""
                k = _SIZE_COMPONENTS_BY_SYSTEM.get(SYSTEM_ALIASES.get(system, system), _NO_CODES).get(bare.strip())
                if k is None:
                    continue
                keys: tuple[str, ...] | set[str] = (k,)
            else:
                keys = concept_keys(code)
            for k in keys:
                if k in _SIZE_COMPONENTS:
                    listed = out.get(k)
                    if listed is None:
                        out[k] = [c]
                    else:
                        listed.append(c)
    return out


_NO_CODES: dict[str, str] = {}


def _codes_lymph_node(concept: Any) -> bool:
    """Whether concept_keys(concept) meets codes.LYMPH_NODE_SNOMED (a coding's code is looked up before its key is
    thought of: no key string is built)."""
    coding = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(coding, list):
        return False
    for c in coding:
        if isinstance(c, dict):
            bare = c.get("code")
            if isinstance(bare, str):
                system = c.get("system")
                if not isinstance(system, str):
                    system = ""
                if bare.strip() in _LYMPH_NODE_BY_SYSTEM.get(SYSTEM_ALIASES.get(system, system), _NO_CODES):
                    return True
    return False


def _site_is_nodal(concept: Any) -> bool:
    """The location / bodySite test of _is_nodal for one value (a dict)."""
    if _codes_lymph_node(concept):
        return True
    text = concept_text(concept).lower()
    # " ln" in f" {text}", without building the string
    return "lymph node" in text or text.startswith("ln") or " ln" in text or text.endswith(" node") or "nodal" in text


# "mm" is LENGTH_MM's canonical unit, neither rejected nor read as another unit: normalise multiplies by 1
_MM_AS_IS = LENGTH_MM.canonical == "mm" and "mm" not in LENGTH_MM.rejected and LENGTH_MM.same_as.get("mm", "mm") == "mm"


def _size_value(obs: Resource, comp: dict, record: PatientRecord) -> tuple[Decimal | None, bool]:
    """(value_of(comp), whether it said too small) as _dimension's value_of reads it."""
    vcc = comp.get("valueCodeableConcept")
    if vcc is not None and codes.TOO_SMALL in concept_keys(vcc):
        return None, True
    q = comp.get("valueQuantity")
    from_float = False
    if type(q) is dict:
        value = q.get("value")
        if type(value) is float:  # to_decimal(value), the usual JSON number
            v: Decimal | None = Decimal(repr(value))
            if not v.is_finite():  # type: ignore[union-attr]
                v = None
            from_float = True
        else:
            v = to_decimal(value)
        if v is None:
            return None, False
        code = q.get("code")
        unit = code if isinstance(code, str) and q.get("system") in (UCUM, None) else None
        if unit is None and isinstance(q.get("unit"), str):
            unit = q["unit"]
    else:
        v, unit, _ = quantity(q)
        if v is None:
            return None, False
    if from_float and unit == "mm" and _MM_AS_IS:
        # normalise(v, "mm", LENGTH_MM) is v * Decimal(1): v itself, as a float's repr has at most 17 digits (the
        # product is exact, with v's exponent)
        mm = v
    else:
        try:
            mm = normalise(v, unit, LENGTH_MM)
        except UnitError as exc:
            record.issue(obs, "tumour size skipped", str(exc))
            return None, False
    if mm < 0:
        record.issue(obs, "tumour size skipped", "negative diameter")
        return None, False
    return mm, False


def _size_of(obs: Resource, nodal: bool, record: PatientRecord,
             by_code: dict[str, list[dict]]) -> tuple[Decimal | None, bool]:
    """_dimension(obs, nodal, record) with the components already sorted by code (``_components_by_code``)."""
    note = obs.get("note")
    notes = " ".join(str(n.get("text", "")) for n in note if isinstance(n, dict)).lower() \
        if isinstance(note, list) else ""
    interp = obs.get("interpretation")
    if interp is None:
        too_small = "too small to measure" in notes
    else:
        interp_keys: set[str] = set()
        for concept in interp if isinstance(interp, list) else [interp]:
            interp_keys |= concept_keys(concept)
        too_small = "too small to measure" in notes or codes.TOO_SMALL in interp_keys
    if nodal:
        for comp in by_code.get(codes.SHORT_AXIS, ()):
            v, small = _size_value(obs, comp, record)
            too_small = too_small or small
            if v is not None:
                return v, too_small
        others = []
        for comp in by_code.get(codes.OTHER_DIMENSION, ()):
            v, small = _size_value(obs, comp, record)
            too_small = too_small or small
            if v is not None:
                others.append(v)
        if others:
            return min(others), too_small
    for comp in by_code.get(codes.LONGEST_DIMENSION, ()):
        v, small = _size_value(obs, comp, record)
        too_small = too_small or small
        if v is not None:
            return v, too_small
    return None, too_small


def map_recist(record: PatientRecord, *, confirmation_required: bool | None = None) -> RecistMapping:
    sizes = record.with_codes([codes.TUMOR_SIZE], "Observation")
    stated = {key: record.with_codes([key], "Observation") for key in
              (codes.NON_TARGET_RESPONSE, codes.NEW_LESION, codes.TIMEPOINT_RESPONSE, codes.TRIAL_CONFIRMATION)}
    wanted = {r for obs in sizes if (r := ref_of(obs))}
    for found in stated.values():
        wanted.update(r for obs in found if (r := ref_of(obs)))
    tp_dates = _report_dates(record, wanted)  # the dates map_recist asks _timepoint_dates for
    lesions: dict[str, _Lesion] = {}
    # Per measurement this does what _lesion_key, _is_nodal, _organ and _dimension do, reading each lesion's
    # BodyStructure once per call (its key and whether its location is a node) and the components once
    # (tests/test_eval_fast_forms.py compares with the plain form on random records).
    by_focus: dict[str, tuple[str, Resource]] = {}  # focus reference -> (lesion key, BodyStructure)
    body_nodal: dict[int, bool] = {}  # id(BodyStructure) -> its location says node
    for obs in sizes:
        rtype, rid = obs.get("resourceType"), obs.get("id")
        ref = f"{rtype}/{rid}" if rtype and rid else None  # ref_of(obs)
        d = tp_dates[ref] if ref in tp_dates else effective_date(obs)  # the report's date wins
        if d is None:
            record.issue(obs, "tumour size skipped", "no date")
            continue
        key, body = "", None  # _lesion_key(obs, record)
        for f in obs.get("focus") or ():
            if not isinstance(f, dict):
                continue
            target = f.get("reference")
            known = by_focus.get(target) if type(target) is str else None
            if known is not None:
                key, body = known
                break
            found_body = record.get(f)
            if found_body is not None:
                key, body = _body_key(found_body), found_body
                if type(target) is str:
                    by_focus[target] = (key, body)
                break
            ident = f.get("identifier")
            if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                key = ident["value"]
                break
            if isinstance(f.get("reference"), str):
                key = f["reference"]
                break
        else:
            site = concept_text(obs.get("bodySite"))
            key = f"site:{site}" if site else ""
        if not key:
            record.issue(obs, "tumour size skipped", "no lesion identifier (focus) or body site to track it by")
            continue
        les = lesions.get(key)
        if les is None:  # (setdefault would build a _Lesion for every measurement)
            les = lesions[key] = _Lesion(key)
        by_code = _components_by_code(obs)
        if not les.nodal:  # _is_nodal(obs, body)
            nodal = None
            for c in by_code.get(codes.NODAL, ()):
                if isinstance(c.get("valueBoolean"), bool):
                    nodal = c["valueBoolean"]
                    break
            if nodal is None:
                nodal = False
                if body and isinstance(body.get("location"), dict):
                    said = body_nodal.get(id(body))
                    if said is None:
                        said = body_nodal[id(body)] = _site_is_nodal(body["location"])
                    nodal = said
                if not nodal:
                    site_ = obs.get("bodySite")
                    nodal = isinstance(site_, dict) and _site_is_nodal(site_)
            les.nodal = nodal
        les.organ = les.organ or _organ(obs, body)
        for comp in by_code.get(codes.LESION_ROLE, ()):
            for k in concept_keys(comp.get("valueCodeableConcept")):
                les.role = ROLE_VALUES.get(k.split("|", 1)[1].lower(), les.role)
        dim, too_small = _size_of(obs, les.nodal, record, by_code)
        les.sizes[d] = (dim, too_small, ref)

    nt_status = _status_by_date(record, codes.NON_TARGET_RESPONSE, tp_dates, stated[codes.NON_TARGET_RESPONSE])
    new_status = _status_by_date(record, codes.NEW_LESION, tp_dates, stated[codes.NEW_LESION])
    reported = _status_by_date(record, codes.TIMEPOINT_RESPONSE, tp_dates, stated[codes.TIMEPOINT_RESPONSE])
    confirm_obs = _status_by_date(record, codes.TRIAL_CONFIRMATION, tp_dates, stated[codes.TRIAL_CONFIRMATION])
    if confirmation_required is None:
        confirmation_required = any(v[0] == "yes" for v in confirm_obs.values())
    min_sd_days = _min_sd_days(record, stated[codes.TRIAL_CONFIRMATION])

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
            engine.new_baseline_lesion(les.lesion_id, les.nodal, les.sizes[baseline][0], les.organ) for les in at_base])
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
        measured = False  # any target measured at d (else no targets at this time point)
        for t in targets:
            got = t.sizes.get(d)
            if got is None:  # not measured here: not assessed (only if other targets were measured)
                dim, small, ref = None, False, None
            else:
                dim, small, ref = got
                measured = True
            tms.append(new_target_measurement(t.lesion_id, t.nodal, dim, small, t.organ, ref))
        if not measured:
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
        nt_ref = nt_status[d][1] if d in nt_status else None
        refs = ((nl_ref, nt_ref) if nt_ref else (nl_ref,)) if nl_ref else ((nt_ref,) if nt_ref else ())
        rep = reported.get(d)
        timepoints.append(new_timepoint(d, tuple(tms), nt, nl, rep[0] if rep and not tms else None, refs))

    inputs = engine.new_recist_inputs(  # RecistInputs(...) with every field given (rules.base.frozen_builder)
        timepoints=tuple(timepoints), confirmation_required=confirmation_required, treatment_start=treatment_start,
        min_sd_days=min_sd_days if min_sd_days is not None else engine.DEFAULT_MIN_SD_DAYS,
        targets_auto_selected=selection is not None and bool(selection.targets),
    )
    return RecistMapping(inputs, selection)


MIN_SD_INTERVAL = f"{LOCAL}|min-sd-interval-days"  # component of the protocol Observation: valueQuantity (d / wk)


def _min_sd_days(record: PatientRecord, protocol: list[Resource]) -> int | None:
    """The protocol's minimum interval for SD to count as best overall response (criteria.md §2.9: "at a minimum
    interval defined in the protocol, generally not less than 6-8 weeks"), from a ``min-sd-interval-days``
    component of the protocol Observation (``response-confirmation-required``); None when not stated."""
    for obs in protocol:
        for comp in _component(obs, MIN_SD_INTERVAL):
            v, unit, _ = quantity(comp.get("valueQuantity"))
            if v is None:
                record.issue(obs, "minimum SD interval skipped", "no value")
                continue
            u = (unit or "d").lower()
            if u in ("d", "day", "days"):
                return int(v)
            if u in ("wk", "w", "week", "weeks"):
                return int(v * 7)
            record.issue(obs, "minimum SD interval skipped", f"unit {unit!r} is not days or weeks")
    return None


def _non_target_status(d: date, baseline: date, non_targets: list[_Lesion], stated: dict) -> str | None:
    if d in stated:
        raw = stated[d][0].strip().lower()
        if raw in ("none", "no"):
            return None
        if raw.startswith("present"):
            return "non-CR/non-PD"
        return NT_VALUES.get(raw, stated[d][0])
    if not non_targets:
        # a status stated at baseline ("present") means the patient has non-target disease
        return "NE" if (baseline in stated and stated[baseline][0].lower() not in ("none", "no")) and d != baseline else None
    measured = [les.sizes[d] for les in non_targets if d in les.sizes]
    if not measured:
        return "NE"
    gone = all((m[0] is not None and (m[0] < engine.NODE_NORMAL_MM if les.nodal else m[0] == 0))
               for les, m in zip([l for l in non_targets if d in l.sizes], measured))
    if gone and len(measured) == len(non_targets):
        return "CR"
    return "non-CR/non-PD"


def _treatment_start(record: PatientRecord, baseline: date) -> date | None:
    """Earliest anticancer medication on or after the 28 days before baseline (used for the SD minimum)."""
    dates = []
    for rtype in ("MedicationAdministration", "MedicationRequest", "MedicationStatement"):
        for res in record.of_type(rtype):
            d = effective_date(res)
            if d and d >= baseline - timedelta(days=28):
                dates.append(d)
    return min(dates) if dates else None
