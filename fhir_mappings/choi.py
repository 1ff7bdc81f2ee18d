"""Choi (GIST) inputs (rules.choi): size (sum of longest diameters) and mean CT attenuation.

Representations (docs/fhir-inputs-choi.md):

* per lesion: mCODE TumorSize (LOINC 21889-1), longest diameter (33728-7), with the lesion's mean attenuation as
  component ``LOCAL|mean-attenuation`` (UCUM ``[hnsf'U]``; "HU" accepted); a separate Observation
  ``LOCAL|mean-attenuation`` with ``focus`` on the lesion's BodyStructure is read the same way;
* reported values where no lesion was measured: ``LOCAL|recist-target-sum`` (alias ``LOCAL|sum-longest-diameters``)
  for the SLD, ``LOCAL|mean-attenuation`` without ``focus`` for the mean attenuation of the target lesions;
* new lesions: a lesion first seen after baseline (or role ``new``) or ``LOCAL|recist-new-lesion``;
* new or growing intratumoural nodules: ``LOCAL|intratumoral-nodule`` (valueBoolean);
* obvious progression of non-measurable disease: ``LOCAL|recist-non-target-response`` = PD;
* symptomatic deterioration attributed to progression: ``LOCAL|symptomatic-deterioration`` (valueBoolean);
* modified Choi (PR needs size and attenuation): ``options["choi_modified"]`` or a protocol Observation
  ``LOCAL|modified-choi`` (valueBoolean).

Targets without role coding: every lesion measured at baseline, largest first, up to 10 in total and 5 per organ
(RECIST 1.0, which Choi 2007 used).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Mapping

from fhir_mappings import codes
from fhir_mappings.imaging_series import (
    INTRATUMORAL_NODULE,
    MEAN_ATTENUATION,
    SUM_LONGEST_DIAMETERS,
    SYMPTOMATIC_DETERIORATION,
    TARGET_SUM,
    Lesion,
    Reading,
    Value,
    collect_lesions,
    keys_with_local,
    non_target_word,
    numeric_observations,
    organ_of,
    reported_values,
    statuses,
    timepoint_dates,
)
from fhir_mappings.recist import _lesion_key
from fhir_mappings.record import LOCAL, PatientRecord
from fhir_mappings.units import HU, LENGTH_MM
from rules import choi as engine

MODIFIED_CHOI = f"{LOCAL}|modified-choi"
MAX_TARGETS = 10
"""RECIST 1.0 (used by Choi 2007): up to 10 target lesions ..."""
MAX_PER_ORGAN = 5
"""... and up to 5 per organ."""


@dataclass
class ChoiMapping:
    inputs: engine.ChoiInputs | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _size(r: Reading):
    """Choi measures the longest diameter (a node's short axis only when no longest diameter is given)."""
    return r.longest_mm if r.longest_mm is not None else r.diameter_mm


def _select(lesions: list[Lesion], baseline: date) -> list[Lesion]:
    ranked = sorted(lesions, key=lambda les: -(_size(les.readings[baseline]) or 0))
    chosen, per_organ = [], {}
    for les in ranked:
        organ = "lymph nodes" if les.nodal else (organ_of(les.organ) or f"unknown:{les.lesion_id}")
        if len(chosen) >= MAX_TARGETS or per_organ.get(organ, 0) >= MAX_PER_ORGAN:
            continue
        chosen.append(les)
        per_organ[organ] = per_organ.get(organ, 0) + 1
    return chosen


def map_choi(record: PatientRecord, options: Mapping[str, Any] | None = None) -> ChoiMapping:
    options = options or {}
    tp_dates = timepoint_dates(record)
    hu_keys = keys_with_local((MEAN_ATTENUATION,), options, "mean_attenuation")
    lesions = collect_lesions(record, tp_dates, {"attenuation": (hu_keys, HU)})
    attenuation = numeric_observations(record, [MEAN_ATTENUATION], HU, tp_dates, what="mean attenuation",
                                       input_name="mean_attenuation", options=options, allow_negative=True)
    _merge_lesion_attenuation(record, lesions, [v for v in attenuation if v.resource.get("focus")])
    # without focus: the mean attenuation of the target lesions at a time point (latest on a date wins)
    means = {v.date: (v.value, v.ref) for v in attenuation if not v.resource.get("focus")}
    sums = reported_values(record, [TARGET_SUM, SUM_LONGEST_DIAMETERS], LENGTH_MM, tp_dates,
                           what="reported sum of longest diameters", input_name="recist_target_sum", options=options)
    nt_status = statuses(record, [codes.NON_TARGET_RESPONSE], tp_dates, "non-target status")
    new_status = statuses(record, [codes.NEW_LESION], tp_dates, "new-lesion status")
    nodules = statuses(record, [INTRATUMORAL_NODULE], tp_dates, "intratumoural nodule finding")
    symptoms = statuses(record, [SYMPTOMATIC_DETERIORATION], tp_dates, "symptomatic deterioration")
    modified_obs = statuses(record, [MODIFIED_CHOI], tp_dates, "protocol setting")

    all_dates = sorted({d for les in lesions.values() for d in les.readings} | set(sums) | set(means)
                       | set(new_status) | set(nodules))
    if not all_dates:
        return ChoiMapping(None, ("no tumour measurements (mCODE TumorSize, LOINC 21889-1) or reported sums of "
                                  "longest diameters in the record",))
    baseline = all_dates[0]
    notes: list[str] = []
    coded = any(les.role for les in lesions.values())
    if coded:
        targets = [les for les in lesions.values() if les.role == "target" and baseline in les.readings]
        new = [les for les in lesions.values() if les.role == "new"
               or (les.role is None and les.first_seen is not None and les.first_seen > baseline)]
    else:
        targets = _select([les for les in lesions.values() if baseline in les.readings
                           and _size(les.readings[baseline]) is not None], baseline)
        new = [les for les in lesions.values() if les.first_seen is not None and les.first_seen > baseline]
        if targets:
            notes.append(f"Target lesions were taken as every lesion measured at baseline (up to {MAX_TARGETS}, "
                         f"{MAX_PER_ORGAN} per organ; no target coding in the record).")

    timepoints = []
    for d in all_dates:
        ls: tuple[engine.ChoiLesion, ...] = ()
        if any(d in t.readings for t in targets):
            ls = tuple(engine.ChoiLesion(t.lesion_id, _size(t.readings[d]), t.readings[d].extra.get("attenuation"),
                                         t.readings[d].ref) if d in t.readings else engine.ChoiLesion(t.lesion_id, None)
                       for t in targets)
        s, m = sums.get(d), means.get(d)
        new_flag = d != baseline and (any(les.first_seen is not None and les.first_seen <= d for les in new)
                                      or bool(d in new_status and new_status[d].yes))
        nt = non_target_word(nt_status[d].value) if d in nt_status else None
        refs = [r for r in ((s or (None, None))[1], (m or (None, None))[1],
                            nt_status[d].ref if d in nt_status else None) if r]
        timepoints.append(engine.ChoiTimepoint(
            date=d, lesions=ls, sld_mm=None if ls or s is None else s[0], mean_attenuation_hu=m[0] if m else None,
            new_lesions=new_flag, new_intratumoral_nodules=d != baseline and bool(d in nodules and nodules[d].yes),
            non_measurable_progression=d != baseline and nt == "PD",
            symptomatic_deterioration=d != baseline and bool(d in symptoms and symptoms[d].yes),
            ref=refs[0] if refs else None))
    modified = options.get("choi_modified")
    if modified is None:
        modified = any(s.yes for s in modified_obs.values())
    reference = options.get("choi_size_pd_reference", "nadir")
    return ChoiMapping(engine.ChoiInputs(tuple(timepoints), modified=bool(modified), size_pd_reference=reference),
                       (), tuple(notes))


def _merge_lesion_attenuation(record: PatientRecord, lesions: dict[str, Lesion], values: list[Value]) -> None:
    """Attenuation Observations with a focus on one lesion join that lesion's reading on the same date."""
    for v in values:
        try:
            key, _ = _lesion_key(v.resource, record)
        except (TypeError, AttributeError, ValueError):
            key = ""
        les = lesions.get(key)
        if les is None:
            record.issue(v.resource, "lesion attenuation skipped", "its lesion has no tumour size in the record")
            continue
        r = les.readings.get(v.date)
        if r is None:
            les.readings[v.date] = Reading(None, None, None, False, v.ref, {"attenuation": v.value})
        elif "attenuation" not in r.extra:
            les.readings[v.date] = replace(r, extra={**r.extra, "attenuation": v.value})


def observation_codes() -> tuple[str, ...]:
    return (codes.TUMOR_SIZE, codes.NON_TARGET_RESPONSE, codes.NEW_LESION, TARGET_SUM, SUM_LONGEST_DIAMETERS,
            MEAN_ATTENUATION, INTRATUMORAL_NODULE, SYMPTOMATIC_DETERIORATION, MODIFIED_CHOI)
