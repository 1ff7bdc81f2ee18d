"""Registers breast pCR / RCB (post-neoadjuvant surgical pathology) with the pipeline."""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings import breast
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.record import PatientRecord
from fhir_mappings.routing import RoutedCancer

CRITERIA = "Breast pCR/RCB"  # the routing name (routing.CANCER_TYPES "breast"); cards carry "Breast pCR" or
#                              "Breast RCB (Symmans 2007)" (rules.breast: RCB when RCB measurements exist)


def _run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    a, mapping = breast.assess(record, as_of, options)
    if a is None:
        return MapperOutput(None, mapping.missing, mapping.notes)
    return MapperOutput(a, a.missing, mapping.notes)


def _applies(record: PatientRecord, routed: RoutedCancer, options: Mapping[str, Any]) -> bool:
    return breast.has_post_neoadjuvant_data(record, options)


register(CriteriaMapper(CRITERIA, breast.OBSERVATION_CODES, report_categories=("http://loinc.org|LP7839-6",),
                        fn=_run, needs=("Observation", "DiagnosticReport", "Procedure"), applies=_applies))
