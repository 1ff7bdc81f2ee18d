"""Registers the MRD criteria sets with the pipeline.

* "ALL MRD" (routed for acute lymphoblastic leukaemia): the scheme - adult consensus, COG, AIEOP-BFM or paediatric
  relapse - is chosen from the record by ``fhir_mappings.mrd.map_all_mrd``; the card's criteria is the scheme's.
* "ELN 2021 MRD (MFC)" for AML: only when the record holds an MRD result and none of the ELN 2022 inputs (marrow /
  blood blasts, ANC, platelets) - then it replaces the ELN 2022 card, which could only say "insufficient data".
  (CLL MRD without clinical data is handled inside the iwCLL 2018 mapper.)
"""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings import mrd as m
from fhir_mappings.labs import local_codes
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.record import LOINC, PatientRecord
from fhir_mappings.routing import RoutedCancer
from rules import mrd as engine

ALL_CRITERIA = "ALL MRD"
AML_CRITERIA = engine.SCHEME_CRITERIA[engine.Scheme.AML_MFC]

# ELN 2022 inputs (codes.md §3.2): if any is present the ELN 2022 card is the one to show
ELN_INPUT_CODES = tuple(f"{LOINC}|{c}" for c in (
    "11150-0", "77147-7", "74233-8", "26446-5", "709-6", "30376-8", "708-8", "751-8", "753-4", "26499-4",
    "777-3", "26515-7", "778-1"))


def _run_all(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    mapping = m.map_all_mrd(record, routed, as_of, options)
    if mapping.inputs is None:
        return MapperOutput(None, tuple(mapping.missing), tuple(mapping.notes))
    notes = list(mapping.notes)
    kw = mapping.protocol_kw
    if kw is not None and kw.replace("AIEOP-BFM", "").replace("ALL", "").strip() not in ("2000", "2009"):
        notes.append(f"Configured AIEOP-BFM version '{kw}' is not 2000 or 2009 and was ignored.")
        kw = None
    a = engine.assess(mapping.inputs, as_of, protocol=kw)
    return MapperOutput(a, a.missing, tuple(notes))


def _has_mrd(record: PatientRecord, options: Mapping[str, Any]) -> bool:
    keys = [m.MRD_RESULT] + [k for k, _ in local_codes(options, input_name="mrd")]
    return bool(record.with_codes(keys, "Observation"))


def _aml_applies(record: PatientRecord, routed: RoutedCancer, options: Mapping[str, Any]) -> bool:
    return routed.cancer.key == "aml" and _has_mrd(record, options) and not record.with_codes(ELN_INPUT_CODES,
                                                                                             "Observation")


def _run_aml(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    raws = [r for r in m.read_mrd(record, options, routed.condition_ref) if r.date <= as_of]
    if not raws:
        return MapperOutput(None, ("MRD result (flow cytometry) - none usable in the record",))
    results, notes = m.simple_results(raws, engine.Sample.BM)
    a = engine.assess(engine.MrdInputs(engine.Scheme.AML_MFC, tuple(results)), as_of)
    return MapperOutput(a, a.missing, tuple(notes) + (
        "Only MRD is recorded for this AML (no blasts or counts): the ELN 2021 MFC-MRD threshold is shown instead "
        "of an ELN 2022 response.",))


register(CriteriaMapper(ALL_CRITERIA, m.OBSERVATION_CODES, fn=_run_all,
                        needs=("Observation", "DiagnosticReport", "MedicationRequest")))
register(CriteriaMapper(AML_CRITERIA, (m.MRD_RESULT,), fn=_run_aml, applies=_aml_applies, replaces=("ELN 2022",),
                        needs=("Observation", "DiagnosticReport")))
