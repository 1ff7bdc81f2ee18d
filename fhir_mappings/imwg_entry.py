"""Registers IMWG 2016 (one card per myeloma) and IMWG 2016 MRD (a second card, only when the record holds a myeloma
MRD result) with the pipeline."""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings.imwg import (
    IMWG_OBSERVATION_CODES,
    MRD_OBSERVATION_CODES,
    assess_imwg,
    has_mrd_data,
    map_imwg_mrd,
)
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.record import PatientRecord
from fhir_mappings.routing import RoutedCancer
from rules import imwg_mrd as mrd_engine

MRD_CRITERIA = "IMWG 2016 MRD"


def _safely(fn):
    """Last-resort net: a record the mapper cannot read gives an insufficient-data card, never a failed hook call
    (the other cancers' cards still go out).  The mapper itself records issues and is fuzz-tested without it."""
    def run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
        try:
            return fn(record, routed, as_of, options)
        except Exception as exc:  # noqa: BLE001 - deliberately broad, see docstring
            record.issue(None, "myeloma data could not be read", f"internal error ({type(exc).__name__})")
            return MapperOutput(None, ("readable myeloma results (see the issues below)",))
    return run


def _run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    a, mapping = assess_imwg(record, routed, as_of, options)
    if a is None:
        return MapperOutput(None, mapping.missing, mapping.notes)
    return MapperOutput(a, a.missing, mapping.notes)


def _run_mrd(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    # the IMWG response (MRD categories require CR); its data issues belong to the IMWG card, not this one
    n = len(record.issues)
    response, imwg_mapping = assess_imwg(record, routed, as_of, options)
    del record.issues[n:]
    mapping = map_imwg_mrd(record, routed, as_of, options, response, imwg_mapping)
    if mapping.inputs is None:
        return MapperOutput(None, mapping.missing, mapping.notes)
    try:
        a = mrd_engine.assess(mapping.inputs, as_of)
    except (ValueError, ArithmeticError) as exc:
        record.issue(None, "IMWG MRD assessment not possible", type(exc).__name__)
        return MapperOutput(None, ("MRD results consistent enough to assess",))
    return MapperOutput(a, a.missing, mapping.notes)


def _has_mrd(record: PatientRecord, routed: RoutedCancer, options: Mapping[str, Any]) -> bool:
    return has_mrd_data(record, options, routed)


register(CriteriaMapper("IMWG 2016", IMWG_OBSERVATION_CODES, ("http://loinc.org|LP29684-5",), fn=_safely(_run),
                        needs=("Observation", "DiagnosticReport", "BodyStructure", "MedicationRequest")))
register(CriteriaMapper(MRD_CRITERIA, MRD_OBSERVATION_CODES, ("http://loinc.org|LP29684-5",), fn=_safely(_run_mrd),
                        needs=("Observation", "DiagnosticReport"), applies=_has_mrd))
