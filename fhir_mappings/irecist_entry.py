"""Registers iRECIST: it applies to patients on an immune checkpoint inhibitor and then replaces RECIST 1.1."""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings.irecist import map_irecist, observation_codes, on_checkpoint_inhibitor
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.record import PatientRecord
from fhir_mappings.routing import RoutedCancer
from rules import irecist as engine


def _run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    mapping = map_irecist(record, options)
    if mapping.inputs is None:
        return MapperOutput(None, mapping.missing)
    a = engine.assess(mapping.inputs, as_of)
    return MapperOutput(a, a.missing, mapping.notes + (
        "iRECIST is used instead of RECIST 1.1 because the record shows an immune checkpoint inhibitor.",))


register(CriteriaMapper(
    "iRECIST", observation_codes(), fn=_run,
    needs=("Observation", "DiagnosticReport", "BodyStructure", "MedicationRequest"),
    applies=on_checkpoint_inhibitor, replaces=("RECIST 1.1",),
))
