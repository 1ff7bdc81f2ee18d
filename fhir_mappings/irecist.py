"""iRECIST inputs (rules.irecist) from the same FHIR as RECIST 1.1, plus new-lesion detail and reported sums.

Representations (docs/fhir-inputs-irecist.md):

* target lesions: mCODE TumorSize (LOINC 21889-1) per lesion, tracked by BodyStructure identifier, as for RECIST
  1.1; without role coding the targets are selected at baseline by RECIST rules (rules.recist.select_targets);
* a reported sum of target diameters: Observation ``LOCAL|recist-target-sum`` (valueQuantity, mm or cm), used at
  a time point where no target lesion was measured;
* non-target disease: the RECIST status Observation ``LOCAL|recist-non-target-response`` (CR / non-CR/non-PD /
  PD / NE, "none"), or measured non-target lesions; a further increase after iUPD: that Observation with
  ``interpretation`` v3 ObservationInterpretation ``U`` (significant change up) or ``W`` (worse);
* new lesions: TumorSize of a lesion first seen after baseline (or role ``new``), with an optional component
  ``LOCAL|new-lesion-category`` (NLT / NLNT; otherwise derived by the engine) and ``interpretation`` U/W when a
  non-measurable new lesion grew; or only the status Observation ``LOCAL|recist-new-lesion`` (yes/no/equivocal).

Who is on a checkpoint inhibitor (iRECIST applies): :func:`on_checkpoint_inhibitor`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from fhir_mappings import codes
from fhir_mappings.imaging_series import (
    TARGET_SUM,
    Lesion,
    Status,
    collect_lesions,
    derived_non_target,
    non_target_word,
    organ_of,
    reported_values,
    statuses,
    timepoint_dates,
)
from fhir_mappings.record import PatientRecord, Resource, codings, concept_text
from fhir_mappings.units import LENGTH_MM
from rules import irecist as engine
from rules import recist as recist_engine

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"

# Default checkpoint-inhibitor list: generic name -> brand names.  A medication matches by any of these words in
# its code display / text (RxNorm clinical-drug names contain the ingredient), by a class phrase (trial drugs are
# often recorded as "anti-PD-1 antibody"), by an RxNorm ingredient code below or by ATC L01FF (PD-1/PD-L1
# inhibitors).  Only RxNorm codes found in public code tables are listed (pembrolizumab and nivolumab in two,
# atezolizumab in one; none checked against an RxNorm release); add others through options["checkpoint_inhibitors"].
CHECKPOINT_INHIBITORS: dict[str, tuple[str, ...]] = {
    "pembrolizumab": ("keytruda",), "nivolumab": ("opdivo",), "cemiplimab": ("libtayo",),
    "dostarlimab": ("jemperli",), "atezolizumab": ("tecentriq",), "durvalumab": ("imfinzi",),
    "avelumab": ("bavencio",), "ipilimumab": ("yervoy",), "tremelimumab": ("imjudo",),
    "relatlimab": ("opdualag",), "retifanlimab": ("zynyz",), "toripalimab": ("loqtorzi",),
    "tislelizumab": ("tevimbra",),
}
CHECKPOINT_RXNORM = {"1547545": "pembrolizumab", "1597876": "nivolumab", "1792776": "atezolizumab"}
CLASS_PHRASES = ("anti-pd-1", "anti-pd-l1", "anti-ctla-4", "anti-lag-3", "pd-1 inhibitor", "pd-l1 inhibitor",
                 "ctla-4 inhibitor", "lag-3 inhibitor", "pd-1 blocking", "pd-l1 blocking", "checkpoint inhibitor",
                 "checkpoint blockade")
ATC_PREFIXES = ("L01FF",)
EXCLUDED_STATUS = {"draft", "not-taken", "not-done", "entered-in-error", "cancelled"}


_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def _compact(text: str) -> str:
    return _NOT_ALNUM.sub("", text.lower())


def _words_and_codes(options: Mapping[str, Any] | None) -> tuple[tuple[str, ...], set[str] | frozenset[str]]:
    """(compacted words, system|code keys) of the checkpoint-inhibitor list in force."""
    custom = (options or {}).get("checkpoint_inhibitors")
    if not custom:
        return _DEFAULT_WORDS_AND_CODES  # the built-in list, compacted once at import
    return _build_words_and_codes(custom)


def _build_words_and_codes(custom: Any) -> tuple[tuple[str, ...], set[str] | frozenset[str]]:
    words: list[str] = []
    keys: set[str] = set()
    if custom:
        for item in custom:
            if isinstance(item, Mapping):
                for w in [item.get("name"), *(item.get("words") or ())]:
                    if isinstance(w, str) and w.strip():
                        words.append(_compact(w))
                for c in item.get("codes") or ():
                    keys.add(c if "|" in c else f"{RXNORM}|{c}")
            elif isinstance(item, str) and "|" in item:
                keys.add(item)
            elif isinstance(item, str) and item.strip().isdigit():
                keys.add(f"{RXNORM}|{item.strip()}")
            elif isinstance(item, str) and item.strip():
                words.append(_compact(item))
    else:
        for generic, brands in CHECKPOINT_INHIBITORS.items():
            words.append(generic)
            words.extend(brands)
        words.extend(_compact(p) for p in CLASS_PHRASES)
        keys = {f"{RXNORM}|{c}" for c in CHECKPOINT_RXNORM}
    return tuple(w for w in words if len(w) >= 3), keys


_DEFAULT_WORDS, _DEFAULT_KEYS = _build_words_and_codes(None)
_DEFAULT_WORDS_AND_CODES = (_DEFAULT_WORDS, frozenset(_DEFAULT_KEYS))


def _medication_concepts(record: PatientRecord, res: Resource) -> list[Any]:
    out = [res.get("medicationCodeableConcept")]
    ref = res.get("medicationReference")
    if isinstance(ref, dict):
        med = record.get(ref)
        if med is not None:
            out.append(med.get("code"))
        if isinstance(ref.get("display"), str):
            out.append({"text": ref["display"]})
    return [c for c in out if isinstance(c, dict)]


def checkpoint_inhibitor_orders(record: PatientRecord, options: Mapping[str, Any] | None = None) -> list[Resource]:
    """MedicationRequest / -Administration / -Statement resources of a checkpoint inhibitor (not drafts,
    not 'not taken' / 'not done', not doNotPerform)."""
    words, keys = _words_and_codes(options)
    custom = bool((options or {}).get("checkpoint_inhibitors"))
    found = []
    for rtype in ("MedicationRequest", "MedicationAdministration", "MedicationStatement"):
        for res in record.of_type(rtype):
            status = res.get("status")
            if (isinstance(status, str) and status in EXCLUDED_STATUS) or res.get("doNotPerform") is True:
                continue
            try:
                hit = _matches(record, res, words, keys, custom)
            except (TypeError, AttributeError, ValueError):
                record.issue(res, "medication not read", "malformed resource (unexpected data shape)")
                hit = False
            if hit:
                found.append(res)
    return found


def _matches(record: PatientRecord, res: Resource, words: tuple[str, ...], keys: set[str], custom: bool) -> bool:
    """Whether one medication resource names a drug of the list (by code, ATC class or words)."""
    for cc in _medication_concepts(record, res):
        pairs = list(codings(cc))
        if any(f"{s}|{c}" in keys for s, c in pairs):
            return True
        if not custom and any(s == ATC and c.upper().startswith(ATC_PREFIXES) for s, c in pairs):
            return True
        coding = cc.get("coding") if isinstance(cc.get("coding"), list) else []
        text = " ".join([concept_text(cc)] + [c["display"] for c in coding
                                              if isinstance(c, dict) and isinstance(c.get("display"), str)])
        compact = _compact(text)
        if any(w in compact for w in words):
            return True
    return False


def on_checkpoint_inhibitor(record: PatientRecord, routed: Any = None,
                            options: Mapping[str, Any] | None = None) -> bool:
    """iRECIST applies: the record holds a checkpoint-inhibitor medication (see :func:`checkpoint_inhibitor_orders`)."""
    return bool(checkpoint_inhibitor_orders(record, options))


# --- the mapping ----------------------------------------------------------------------------------------
@dataclass
class IRecistMapping:
    inputs: engine.IRecistInputs | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


ANONYMOUS_NEW = "new lesion(s) reported"


def _nodal_gone(les: Lesion, r) -> bool:
    if r.diameter_mm is None:
        return False
    return r.diameter_mm < recist_engine.NODE_NORMAL_MM if les.nodal else r.diameter_mm == 0


def map_irecist(record: PatientRecord, options: Mapping[str, Any] | None = None) -> IRecistMapping:
    options = options or {}
    tp_dates = timepoint_dates(record)
    lesions = collect_lesions(record, tp_dates)
    sums = reported_values(record, [TARGET_SUM], LENGTH_MM, tp_dates, what="reported target sum",
                           input_name="recist_target_sum", options=options)
    nt_status = statuses(record, [codes.NON_TARGET_RESPONSE], tp_dates, "non-target status")
    new_status = statuses(record, [codes.NEW_LESION], tp_dates, "new-lesion status")
    confirm = statuses(record, [codes.TRIAL_CONFIRMATION], tp_dates, "protocol setting")

    all_dates = sorted({d for les in lesions.values() for d in les.readings} | set(sums) | set(nt_status)
                       | set(new_status))
    if not all_dates:
        return IRecistMapping(None, ("no tumour measurements (mCODE TumorSize, LOINC 21889-1) or reported target "
                                     "sums in the record",))
    baseline = all_dates[0]
    notes: list[str] = []

    coded = any(les.role for les in lesions.values())
    if coded:
        targets = [les for les in lesions.values() if les.role == "target"]
        non_targets = [les for les in lesions.values() if les.role == "non-target"
                       or (les.role is None and les.first_seen == baseline)]
        new = [les for les in lesions.values() if les.role == "new"
               or (les.role is None and les.first_seen is not None and les.first_seen > baseline)]
    else:
        at_base = [les for les in lesions.values() if baseline in les.readings
                   and les.readings[baseline].diameter_mm is not None]
        selection = recist_engine.select_targets([
            recist_engine.BaselineLesion(les.lesion_id, les.nodal, les.readings[baseline].diameter_mm, les.organ)
            for les in at_base])
        targets = [lesions[i] for i in selection.targets]
        non_targets = [lesions[i] for i in selection.non_targets]
        new = [les for les in lesions.values() if les.first_seen is not None and les.first_seen > baseline]
        if targets:
            notes.append("Target lesions were selected automatically at baseline (no target/non-target coding "
                         "in the record).")
    targets = [t for t in targets if baseline in t.readings]

    timepoints = []
    for d in all_dates:
        tls: tuple[engine.TargetLesion, ...] = ()
        if any(d in t.readings for t in targets):
            tls = tuple(
                engine.TargetLesion(t.lesion_id, t.readings[d].diameter_mm, t.nodal, t.readings[d].too_small,
                                    t.readings[d].ref) if d in t.readings else engine.TargetLesion(t.lesion_id, None,
                                                                                                    t.nodal)
                for t in targets)
        reported_sum = sums.get(d)
        nt, further, nt_ref = _non_target(d, baseline, nt_status.get(d), non_targets)
        new_lesions = _new_lesions(d, baseline, new, new_status.get(d))
        refs = [r for r in (nt_ref, reported_sum[1] if reported_sum else None,
                            new_status[d].ref if d in new_status else None) if r]
        timepoints.append(engine.IRecistTimepoint(
            date=d, target_lesions=tls, target_sum_mm=None if tls or reported_sum is None else reported_sum[0],
            non_target=nt, non_target_further_increase=further, new_lesions=new_lesions,
            ref=refs[0] if refs else None))

    required = options.get("irecist_confirmation_required", options.get("recist_confirmation_required"))
    if required is None:
        required = any(s.yes for s in confirm.values())
    return IRecistMapping(engine.IRecistInputs(timepoints=tuple(timepoints), confirmation_required=bool(required)),
                          (), tuple(notes))


def _non_target(d: date, baseline: date, status: Status | None, non_targets: list[Lesion]
                ) -> tuple[str | None, bool, str | None]:
    """(non-target status for the engine, further increase reported, reference)."""
    if status is not None:
        word = non_target_word(status.value)
        text = status.value.lower()
        further = status.increased or "further increase" in text or "increas" in text
        return word, further, status.ref
    word = derived_non_target(d, baseline, non_targets, _nodal_gone)
    further = any(d in les.readings and les.readings[d].increased for les in non_targets)
    return word, further, None


def _new_lesions(d: date, baseline: date, new: list[Lesion], status: Status | None) -> tuple[engine.NewLesion, ...]:
    if d == baseline:
        return ()
    out = []
    for les in new:
        first = les.first_seen
        if first is None or first > d:
            continue
        first_size = les.readings[first].diameter_mm
        if les.nodal and first_size is not None and first_size < recist_engine.NODE_NORMAL_MM:
            continue  # a node < 10 mm short axis is not pathological (RECIST WG "New lymph node lesions")
        r = les.readings.get(d)
        category = next((les.readings[x].category for x in sorted(les.readings) if les.readings[x].category), None)
        out.append(engine.NewLesion(
            lesion_id=les.lesion_id, size_mm=r.diameter_mm if r else None, site=organ_of(les.organ), nodal=les.nodal,
            category=category, increased=bool(r and r.increased), ref=r.ref if r else None))
    if not out and status is not None:
        v = status.value.strip().lower()
        if status.yes or v in ("unequivocal", "new lesion", "new lesions"):
            out.append(engine.NewLesion(lesion_id=ANONYMOUS_NEW, ref=status.ref))
    return tuple(out)


def observation_codes() -> tuple[str, ...]:
    return (codes.TUMOR_SIZE, codes.NON_TARGET_RESPONSE, codes.NEW_LESION, codes.TRIAL_CONFIRMATION, TARGET_SUM)
