"""Registers RANO 2.0 (glioma) with the pipeline."""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.rano import OBSERVATION_CODES, map_rano
from fhir_mappings.record import PatientRecord
from fhir_mappings.routing import RoutedCancer
from rules import rano2 as engine
from rules.base import Outcome


def _run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    mapping = map_rano(record, routed, as_of, options)
    if mapping.inputs is None:
        return MapperOutput(None, mapping.missing)
    a = engine.assess(mapping.inputs, as_of)
    missing = tuple(a.missing)
    if a.outcome is Outcome.NOT_EVALUABLE:  # what the record lacks first, then what the engine lacked
        missing = tuple(dict.fromkeys(mapping.missing + missing))
    return MapperOutput(a, missing, mapping.notes)


register(CriteriaMapper("RANO 2.0", OBSERVATION_CODES, fn=_run,
                        needs=("Observation", "DiagnosticReport", "MedicationRequest", "Procedure")))
