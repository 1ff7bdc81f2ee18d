"""Registers mRECIST for hepatocellular carcinoma (routing name "mRECIST"; the card says "mRECIST (HCC)")."""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings.mrecist import map_mrecist, observation_codes
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.record import PatientRecord
from fhir_mappings.routing import RoutedCancer
from rules import mrecist as engine


def _run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    mapping = map_mrecist(record, options)
    if mapping.inputs is None:
        return MapperOutput(None, mapping.missing)
    a = engine.assess(mapping.inputs, as_of)
    return MapperOutput(a, a.missing, mapping.notes)


register(CriteriaMapper("mRECIST", observation_codes(), fn=_run,
                        needs=("Observation", "DiagnosticReport", "BodyStructure")))
