"""Registers GCIG CA-125 (ovarian cancer) with the pipeline."""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings.gcig import OBSERVATION_CODES, map_gcig
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.record import PatientRecord
from fhir_mappings.routing import RoutedCancer
from rules import gcig as engine
from rules.base import Outcome

VERDICT_RULES = {"gcig.evaluable.mouse_antibodies", "gcig.evaluable.serosal", "gcig.evaluable.window"}


def _run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    mapping = map_gcig(record, routed, as_of, options)
    if mapping.inputs is None:
        return MapperOutput(None, mapping.missing)
    a = engine.assess(mapping.inputs, as_of)
    if a.outcome is not Outcome.NOT_EVALUABLE:
        return MapperOutput(a, a.missing, mapping.notes)
    missing = tuple(dict.fromkeys(mapping.missing + tuple(a.missing)))
    # "not evaluable for CA-125 response" decided by a GCIG rule (mouse antibodies, a paracentesis within 28
    # days, a pretreatment sample drawn too early) is the criterion's verdict: show it as such.  (Below 2 x ULN
    # without progression the engine dates the assessment, so it gets a card anyway.)
    verdict = any(e.rule in VERDICT_RULES for e in a.evidence)
    return MapperOutput(a, missing, mapping.notes, show_not_evaluable=verdict)


register(CriteriaMapper("GCIG CA-125", OBSERVATION_CODES, fn=_run,
                        needs=("Observation", "MedicationRequest", "Procedure")))
