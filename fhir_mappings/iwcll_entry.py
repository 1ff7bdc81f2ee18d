"""Registers iwCLL 2018 (CLL) with the pipeline.

Options (``options`` of the hook call): ``iwcll_spleen_change_basis`` ("length" default / "enlargement"),
``iwcll_require_marrow_for_cr`` (default True), ``iwcll_use_anc`` (default True), ``iwcll_assessment_window_days``
(default 30) and ``local_codes`` (input names in docs/fhir-inputs-iwcll.md). A record with an MRD result but no
clinical response data gets the uMRD4 assessment (criteria "iwCLL 2018 MRD") instead of "insufficient data".
"""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings.iwcll import OBSERVATION_CODES, map_iwcll
from fhir_mappings.pipeline import CriteriaMapper, MapperOutput, register
from fhir_mappings.record import PatientRecord
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
    notes = list(mapping.notes)
    if routed.remission_state == "remission" and a.outcome.is_loss:
        notes.append("The problem list still codes this CLL as in remission, but the data show progression.")
    return MapperOutput(a, a.missing, tuple(dict.fromkeys(notes)))


register(CriteriaMapper(ROUTING_NAME, OBSERVATION_CODES, fn=_run,
                        needs=("Observation", "DiagnosticReport", "MedicationRequest", "Procedure")))
