"""Registers ATA 2015 (differentiated thyroid cancer response to therapy) with the pipeline."""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings import ata
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.record import PatientRecord
from fhir_mappings.routing import RoutedCancer

CRITERIA = "ATA 2015"  # the routing name (routing.CANCER_TYPES "thyroid"); cards carry the engine's CRITERIA


def _run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    a, mapping = ata.assess(record, as_of, options)
    if a is None:
        return MapperOutput(None, mapping.missing, mapping.notes)
    return MapperOutput(a, a.missing, mapping.notes)


register(CriteriaMapper(CRITERIA, ata.OBSERVATION_CODES, fn=_run,
                        needs=("Observation", "DiagnosticReport", "Procedure", "MedicationRequest")))
