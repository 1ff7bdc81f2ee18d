"""Registers RECIST 1.1 with the pipeline."""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings import codes
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, new_mapper_output, register
from fhir_mappings.recist import map_recist
from fhir_mappings.record import PatientRecord
from fhir_mappings.routing import RoutedCancer
from rules import recist as engine


def _run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    mapping = map_recist(record, confirmation_required=options.get("recist_confirmation_required"))
    if mapping.inputs is None:
        return MapperOutput(None, mapping.reasons_missing)
    a = engine.assess(mapping.inputs, as_of, continuing_pr=options.get("recist_continuing_pr", True))
    notes = ()
    if mapping.selection is not None and mapping.selection.targets:
        notes = ("Target lesions were selected automatically at baseline (no target/non-target coding in the record).",)
    return new_mapper_output(a, a.missing, notes, False)  # MapperOutput(a, a.missing, notes)


register(CriteriaMapper("RECIST 1.1", codes.RECIST_OBSERVATION_CODES, fn=_run))
