"""Registers iwCLL 2018 (CLL) with the pipeline.

Options (``options`` of the hook call): ``iwcll_spleen_change_basis`` ("length" default / "enlargement"),
``iwcll_require_marrow_for_cr`` (default True), ``iwcll_use_anc`` (default True), ``iwcll_assessment_window_days``
(default 30) and ``local_codes`` (input names in docs/fhir-inputs-iwcll.md). A record with an MRD result but no
clinical response data gets the uMRD4 assessment (criteria "iwCLL 2018 MRD") instead of "insufficient data".
"""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings.iwcll import OBSERVATION_CODES, WINDOW_DAYS, map_iwcll
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.record import PatientRecord
from fhir_mappings.report_text import stated_in_record
from fhir_mappings.routing import RoutedCancer
from rules import iwcll2018 as engine
from rules import mrd as mrd_engine

ROUTING_NAME = "iwCLL 2018"


def _run(record: PatientRecord, routed: RoutedCancer, as_of: date, options: Mapping[str, Any]) -> MapperOutput:
    mapping = map_iwcll(record, routed, as_of, options)
    if mapping.inputs is None:
        if mapping.mrd_only:
            a = mrd_engine.assess(mrd_engine.MrdInputs(mrd_engine.Scheme.CLL, mapping.mrd_only), as_of)
            return MapperOutput(a, a.missing, tuple(mapping.notes))
        return MapperOutput(None, mapping.missing, tuple(mapping.notes))
    basis = options.get("iwcll_spleen_change_basis") or "length"
    if basis not in ("length", "enlargement"):
        basis = "length"
    a = engine.assess(mapping.inputs, as_of, spleen_change_basis=basis,
                      require_marrow_for_cr=options.get("iwcll_require_marrow_for_cr", True) is not False,
                      use_anc=options.get("iwcll_use_anc", True) is not False)
    notes = list(mapping.notes) + _reported_beside(record, mapping, a, options)
    if routed.remission_state == "remission" and a.outcome.is_loss:
        notes.append("The problem list still codes this CLL as in remission, but the data show progression.")
    return MapperOutput(a, a.missing, tuple(dict.fromkeys(notes)))


def _reported_beside(record: PatientRecord, mapping, a, options: Mapping[str, Any]) -> list[str]:
    """A category stated for the current assessment (coded iwcll-response, or report text "iwCLL: PR") is shown
    beside the computed one, never merged with it (design.md "Reported vs computed")."""
    if a.assessment_date is None:
        return []
    window = int(options.get("iwcll_assessment_window_days") or WINDOW_DAYS)
    out = []
    stated: list[tuple[str, str]] = []
    cur = mapping.inputs.assessments[-1] if mapping.inputs and mapping.inputs.assessments else None
    if cur is not None and cur.reported_category and cur.date == a.assessment_date:
        stated.append((cur.reported_category, "recorded"))
    for d, ref, st in stated_in_record(record, ["iwcll"]):
        if not st.negated and 0 <= (a.assessment_date - d).days <= window:
            stated.append((st.value, f"stated in {ref or 'a report'} of {d.isoformat()}"))
    for value, where in dict.fromkeys(stated):
        same = value.upper() == a.category.upper()
        out.append(f"Reported category {value} ({where}); computed {a.category}"
                   + ("." if same else " - they differ: check the source."))
    return out


register(CriteriaMapper(ROUTING_NAME, OBSERVATION_CODES, fn=_run,
                        needs=("Observation", "DiagnosticReport", "MedicationRequest", "Procedure")))
