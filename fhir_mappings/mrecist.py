"""mRECIST (HCC) inputs (rules.mrecist) from TumorSize with a viable-diameter component.

Representations (docs/fhir-inputs-mrecist.md):

* per target lesion: mCODE TumorSize (LOINC 21889-1) with the conventional longest diameter (33728-7) and the
  viable (arterially enhancing) longest diameter as component ``LOCAL|viable-tumor-diameter`` (mm or cm; 0 = no
  enhancement left); a node's short axis (``LOCAL|short-axis``) is its mRECIST measurement;
* reported sums where no lesion was measured: ``LOCAL|viable-tumor-sum`` and ``LOCAL|recist-target-sum``;
* non-target disease: ``LOCAL|recist-non-target-response`` (CR / IR/SD / PD / NE / none);
* new lesions: a lesion first seen after baseline (or role ``new``); a new lymph node goes to the engine with its
  short axis (malignant only from 20 mm at the porta hepatis, 15 mm elsewhere); or ``LOCAL|recist-new-lesion``;
* a new or increasing effusion / ascites: ``LOCAL|effusion-new-or-increased`` (valueBoolean), with its cytology
  ``LOCAL|effusion-cytology`` (malignant / negative), the latter dated on or after the imaging.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from fhir_mappings import codes
from fhir_mappings.imaging_series import (
    EFFUSION,
    EFFUSION_CYTOLOGY,
    TARGET_SUM,
    VIABLE_DIAMETER,
    VIABLE_SUM,
    Lesion,
    Reading,
    collect_lesions,
    derived_non_target,
    keys_with_local,
    non_target_word,
    organ_of,
    reported_values,
    statuses,
    timepoint_dates,
)
from fhir_mappings.record import PatientRecord
from fhir_mappings.units import LENGTH_MM
from rules import mrecist as engine
from rules._imaging import RECIST_NODE_NORMAL_SA_MM

PORTA_HEPATIS_WORDS = ("porta hepatis", "portal hepatis", "hepatic hilum", "hepatic hilar", "liver hilum",
                       "hepatoduodenal")


@dataclass
class MrecistMapping:
    inputs: engine.MrecistInputs | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _porta(les: Lesion) -> bool:
    return les.nodal and any(w in les.location for w in PORTA_HEPATIS_WORDS)


def _viable(les: Lesion, r: Reading):
    """mRECIST measurement: a node's short axis, otherwise the viable (enhancing) diameter."""
    if les.nodal:
        return r.short_axis_mm if r.short_axis_mm is not None else r.diameter_mm
    return r.extra.get("viable")


def _gone(les: Lesion, r: Reading) -> bool:
    v = _viable(les, r)
    if v is None:
        v = r.diameter_mm
    if v is None:
        return False
    return v < RECIST_NODE_NORMAL_SA_MM if les.nodal else v == 0


def _cytology(value: str, boolean: bool | None) -> bool | None:
    if boolean is not None:
        return boolean
    t = value.lower()
    if "negative" in t or "benign" in t or "no malignan" in t or "non-malignant" in t:
        return False
    if "malignan" in t or "positive" in t:
        return True
    return None


def map_mrecist(record: PatientRecord, options: Mapping[str, Any] | None = None) -> MrecistMapping:
    options = options or {}
    tp_dates = timepoint_dates(record)
    viable_keys = keys_with_local((VIABLE_DIAMETER,), options, "viable_tumor_diameter")
    lesions = collect_lesions(record, tp_dates, {"viable": (viable_keys, LENGTH_MM)})
    viable_sums = reported_values(record, [VIABLE_SUM], LENGTH_MM, tp_dates, what="reported viable sum",
                                  input_name="viable_tumor_sum", options=options)
    total_sums = reported_values(record, [TARGET_SUM], LENGTH_MM, tp_dates, what="reported target sum",
                                 input_name="recist_target_sum", options=options)
    nt_status = statuses(record, [codes.NON_TARGET_RESPONSE], tp_dates, "non-target status")
    new_status = statuses(record, [codes.NEW_LESION], tp_dates, "new-lesion status")
    effusion = statuses(record, [EFFUSION], tp_dates, "effusion finding")
    cytology = statuses(record, [EFFUSION_CYTOLOGY], {}, "effusion cytology")

    all_dates = sorted({d for les in lesions.values() for d in les.readings} | set(viable_sums) | set(total_sums)
                       | set(nt_status) | set(new_status) | set(effusion))
    if not all_dates:
        return MrecistMapping(None, ("no tumour measurements (mCODE TumorSize, LOINC 21889-1, with a viable-diameter "
                                     "component) or reported viable sums in the record",))
    baseline = all_dates[0]
    notes: list[str] = []

    coded = any(les.role for les in lesions.values())
    if coded:
        targets = [les for les in lesions.values() if les.role == "target" and baseline in les.readings]
        non_targets = [les for les in lesions.values() if les.role == "non-target"
                       or (les.role is None and les.first_seen == baseline)]
        new = [les for les in lesions.values() if les.role == "new"
               or (les.role is None and les.first_seen is not None and les.first_seen > baseline)]
    else:
        at_base = [les for les in lesions.values() if baseline in les.readings]
        # candidates largest viable first; the engine keeps the eligible ones (>= 10 mm, 5 total, 2 per organ)
        at_base.sort(key=lambda les: -(_viable(les, les.readings[baseline]) or 0))
        base_tp = engine.MrecistTimepoint(baseline, targets=tuple(_target(les, baseline) for les in at_base))
        chosen = set(engine._select_targets(base_tp, [], engine.EvidenceLog()))
        targets = at_base
        non_targets = [les for les in at_base if les.lesion_id not in chosen]
        new = [les for les in lesions.values() if les.first_seen is not None and les.first_seen > baseline]
        if chosen:
            notes.append("Target lesions were selected automatically at baseline (no target/non-target coding "
                         "in the record).")

    cyto_by_tp: dict[date, bool | None] = {}
    for when, st in sorted(cytology.items()):
        tp = max((d for d in all_dates if d <= when), default=None)
        if tp is not None:
            cyto_by_tp[tp] = _cytology(st.value, st.boolean)

    timepoints = []
    for d in all_dates:
        tgs: tuple[engine.HccTarget, ...] = ()
        if any(d in t.readings for t in targets):
            tgs = tuple(_target(t, d) for t in targets)
        vs, ts = viable_sums.get(d), total_sums.get(d)
        if d in nt_status:
            nt = non_target_word(nt_status[d].value)
            if nt == "non-CR/non-PD":
                nt = "IR/SD"
        else:
            nt = derived_non_target(d, baseline, non_targets, _gone)
        new_flag, nodes = _new(d, baseline, new, new_status.get(d))
        eff = effusion.get(d)
        refs = [r for r in ((vs or (None, None))[1], nt_status[d].ref if d in nt_status else None,
                            eff.ref if eff else None) if r]
        timepoints.append(engine.MrecistTimepoint(
            date=d, targets=tgs, viable_sum_mm=None if tgs or vs is None else vs[0],
            total_sum_mm=None if tgs or ts is None else ts[0], non_target=nt,
            new_lesions=new_flag, new_nodes=nodes,
            effusion_new_or_increased=bool(eff and eff.yes and d != baseline),
            effusion_cytology_malignant=cyto_by_tp.get(d), ref=refs[0] if refs else None))
    return MrecistMapping(engine.MrecistInputs(tuple(timepoints)), (), tuple(notes))


def _target(les: Lesion, d: date) -> engine.HccTarget:
    r = les.readings.get(d)
    if r is None:
        return engine.HccTarget(les.lesion_id, None, None, site=organ_of(les.organ), nodal=les.nodal,
                                porta_hepatis=_porta(les))
    return engine.HccTarget(les.lesion_id, _viable(les, r), r.longest_mm if not les.nodal else r.diameter_mm,
                            site=organ_of(les.organ), nodal=les.nodal, porta_hepatis=_porta(les), ref=r.ref)


def _new(d: date, baseline: date, new: list[Lesion], status) -> tuple[bool, tuple[engine.NewNode, ...]]:
    if d == baseline:
        return False, ()
    flag = False
    nodes = []
    for les in new:
        if les.first_seen is None or les.first_seen > d:
            continue
        r = les.readings.get(d) or les.readings[les.first_seen]
        if les.nodal:
            sa = r.short_axis_mm if r.short_axis_mm is not None else r.diameter_mm
            if sa is not None:
                nodes.append(engine.NewNode(les.lesion_id, sa, _porta(les), r.ref))
            continue
        flag = True
    if status is not None and not flag and not nodes:
        flag = status.yes
    return flag, tuple(nodes)


def observation_codes() -> tuple[str, ...]:
    return (codes.TUMOR_SIZE, codes.NON_TARGET_RESPONSE, codes.NEW_LESION, VIABLE_SUM, TARGET_SUM, EFFUSION,
            EFFUSION_CYTOLOGY)
