"""What surveillance has been done and when: the last date of each schedule item, from the record.

A schedule item names the codes that count as done (``system|code``); the latest Observation, DiagnosticReport,
Procedure, ImagingStudy or Encounter carrying one of them (or a configured local code) is its last-done date.
"""
from __future__ import annotations

from datetime import date
from typing import Any, Iterable, Mapping

from fhir_mappings.record import PatientRecord, concept_keys, concept_text, effective_date
from fhir_mappings.routing import RoutedCancer

DONE_TYPES = ("Observation", "DiagnosticReport", "Procedure", "ImagingStudy", "Encounter", "ServiceRequest")

# cancer type (routing key) -> surveillance schedule key (rules/data/surveillance.json)
SCHEDULES = {
    "breast": "breast_early", "colorectal": "colorectal_II_III", "lung": "nsclc_I_III", "hodgkin": "hodgkin",
    "aml": "aml_cr", "all": "all_cr", "myeloma": "myeloma", "thyroid": "thyroid_dtc", "cll": "cll",
    "ovarian": "ovarian_epithelial", "prostate": "prostate", "solid": "generic_solid",
}


def schedule_key(routed: RoutedCancer) -> str | None:
    key = routed.cancer.key
    text = routed.condition_text.lower()
    if key == "lymphoma":
        return "follicular" if "follicular" in text else "dlbcl"
    if key == "testicular":
        return "testicular_I_seminoma" if "seminoma" in text and "non" not in text else "testicular_I_nonseminoma"
    return SCHEDULES.get(key)


def schedule_conditions(routed: RoutedCancer) -> dict[str, bool]:
    """Schedule-item conditions the record settles (False drops the item; unknown ones stay, with their text)."""
    out: dict[str, bool] = {}
    if routed.cancer.key == "colorectal":
        text = routed.condition_text.lower()
        icd_rectal = any(c.startswith(("C20", "C19")) for c in _icd_codes(routed))
        out["rectal_lar_or_no_pelvic_rt"] = None if (icd_rectal or "rect" in text) else False
    return {k: v for k, v in out.items() if v is not None}


def _icd_codes(routed: RoutedCancer) -> list[str]:
    return list(getattr(routed, "icd_codes", ()) or ())


def _codes_of(res: dict) -> set[str]:
    keys = concept_keys(res.get("code"))
    for t in res.get("type") or ():  # Encounter.type
        keys |= concept_keys(t)
    return keys


def last_done(record: PatientRecord, codes_by_item: Mapping[str, Iterable[str]], as_of: date,
              extra: Mapping[str, Iterable[str]] | None = None) -> dict[str, date | None]:
    """item id -> latest date (on or before ``as_of``) a resource with one of its codes was done."""
    wanted: dict[str, set[str]] = {i: set(c) | set((extra or {}).get(i, ())) for i, c in codes_by_item.items()}
    out: dict[str, date | None] = {i: None for i in wanted}
    for rtype in DONE_TYPES:
        for res in record.of_type(rtype):
            if rtype == "ServiceRequest" and res.get("status") != "completed":
                continue
            keys = _codes_of(res)
            if not keys:
                continue
            d = effective_date(res) or _period_start(res)
            if d is None or d > as_of:
                continue
            for item, codes in wanted.items():
                if keys & codes and (out[item] is None or d > out[item]):
                    out[item] = d
    return out


def _period_start(res: dict) -> date | None:
    from fhir_mappings.record import parse_date

    for key in ("period", "started"):
        v = res.get(key)
        if isinstance(v, dict):
            d = parse_date(v.get("start"))
            if d:
                return d
        elif isinstance(v, str):
            d = parse_date(v)
            if d:
                return d
    return None


def order_codes(order: dict[str, Any]) -> list[str]:
    """``system|code`` strings of a draft order (ServiceRequest/MedicationRequest code)."""
    keys = concept_keys(order.get("code")) | concept_keys(order.get("medicationCodeableConcept"))
    return sorted(keys)


def order_label(order: dict[str, Any]) -> str:
    return concept_text(order.get("code")) or concept_text(order.get("medicationCodeableConcept")) or "this order"
