"""Registers Lugano 2014 (Hodgkin and non-Hodgkin lymphoma) with the pipeline: PET-CT or CT-based, chosen by
fhir_mappings.lugano.map_lugano."""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings.lugano import LUGANO_OBSERVATION_CODES, assess_lugano
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.record import PatientRecord
from fhir_mappings.routing import RoutedCancer
from rules import lugano2014 as engine


def _run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    assessment, missing, notes = assess_lugano(record, routed, as_of, options)
    return MapperOutput(assessment, missing, notes)


register(CriteriaMapper(engine.CRITERIA, LUGANO_OBSERVATION_CODES, fn=_run,
                        needs=("Observation", "DiagnosticReport", "BodyStructure", "MedicationRequest")))
