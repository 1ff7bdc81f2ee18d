"""Registers ELN 2022 (AML) with the pipeline.

Options (``options`` of the hook call): ``eln_cri_allows_both_lineages_low`` (bool; default False = ELN-07 reading:
both lineages below CR thresholds and CRh not met is MLFS; a protocol-setting Observation
``LOCAL|eln-cri-both-lineages-low`` in the record is used when the option is not given), ``eln_use_crh`` (bool;
default True) and ``local_codes`` (see fhir_mappings.labs.local_codes; input names in docs/fhir-inputs-eln.md).
"""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings.eln import OBSERVATION_CODES, map_eln
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.record import PatientRecord
from fhir_mappings.report_text import stated_in_record
from fhir_mappings.routing import RoutedCancer
from rules import eln2022 as engine
from rules.base import Assessment, Outcome

ROUTING_NAME = "ELN 2022"  # the criteria name in routing.CANCER_TYPES (the card says engine.CRITERIA)


def problem_list_notes(routed: RoutedCancer, a: Assessment | None) -> list[str]:
    """ICD-10-CM C92.x1 / C92.x2 (or clinicalStatus remission / relapse) beside the computed category."""
    state = routed.remission_state
    if not state:
        return []
    if a is not None and state == "remission" and a.outcome in (Outcome.RELAPSE, Outcome.PROGRESSION,
                                                                 Outcome.UNCONFIRMED_PROGRESSION):
        return [f"The problem list still codes this AML as in remission ({routed.condition_text}), but the data "
                f"show {a.category}: consider updating the problem list"]
    if a is not None and state == "relapse" and a.outcome in (Outcome.COMPLETE, Outcome.PARTIAL):
        return [f"The problem list codes this AML as in relapse ({routed.condition_text}), but the latest data "
                f"meet {a.category}: consider updating the problem list"]
    return [f"The problem list codes this AML as in {state} ({routed.condition_text}); the ELN category is "
            "computed from the data, not from the problem list"]


def reported_notes(record: PatientRecord, a: Assessment) -> list[str]:
    """ELN categories stated in report text, shown beside the computed ones (never merged; design.md)."""
    out = []
    for d, _ref, stated in stated_in_record(record, ("eln",)):
        if stated.negated:
            continue
        try:
            said = engine.normalise_category(stated.value)
        except ValueError:
            said = stated.value
        computed = next((h.category for h in reversed(a.history) if h.date == d), None)
        if computed is None:
            out.append(f"Report of {d.isoformat()} states ELN {said} (reported; no computed assessment that day)")
        elif computed == said:
            out.append(f"Report of {d.isoformat()} states ELN {said}, as computed")
        else:
            out.append(f"Report of {d.isoformat()} states ELN {said}, computed {computed}: check the report "
                       "against the data")
    return out


def _run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    mapping = map_eln(record, routed, options)
    if mapping.inputs is None:
        return MapperOutput(None, mapping.missing, mapping.notes + tuple(problem_list_notes(routed, None)))
    inclusive = options.get("eln_cri_allows_both_lineages_low")
    if inclusive is None:
        inclusive = mapping.cri_allows_both_lineages_low
    a = engine.assess(mapping.inputs, as_of,
                      cri_allows_both_lineages_low=bool(inclusive) if inclusive is not None
                      else engine.CRI_ALLOWS_BOTH_LINEAGES_LOW,
                      use_crh=options.get("eln_use_crh", True))
    notes = list(mapping.notes)
    notes.extend(problem_list_notes(routed, a))
    notes.extend(reported_notes(record, a))
    # a recorded reason (early death, withdrawal) makes "non-evaluable" the criterion's own verdict: an assessment
    # card, not an "insufficient data" one
    verdict = a.category == engine.NOT_EVALUABLE and bool(mapping.inputs.not_evaluable_reason)
    return MapperOutput(a, a.missing, tuple(dict.fromkeys(notes)), show_not_evaluable=verdict)


register(CriteriaMapper(ROUTING_NAME, OBSERVATION_CODES, fn=_run,
                        needs=("Observation", "DiagnosticReport", "MedicationRequest", "Procedure")))
