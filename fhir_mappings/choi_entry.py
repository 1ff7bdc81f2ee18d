"""Registers the Choi criteria for GIST (routing name "Choi"; the card says "Choi (GIST)" or "modified Choi")."""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings.choi import map_choi, observation_codes
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.record import PatientRecord
from fhir_mappings.routing import RoutedCancer
from rules import choi as engine


def _run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    mapping = map_choi(record, options)
    if mapping.inputs is None:
        return MapperOutput(None, mapping.missing)
    a = engine.assess(mapping.inputs, as_of)
    return MapperOutput(a, a.missing, mapping.notes)


register(CriteriaMapper("Choi", observation_codes(), fn=_run,
                        needs=("Observation", "DiagnosticReport", "BodyStructure")))
