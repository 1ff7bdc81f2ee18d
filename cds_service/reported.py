"""Reported vs computed: a category stated in a radiology or pathology report, shown beside the computed one.

A stated category is its own kind of evidence ("reported by radiology on 2024-03-04: PR"); it is never merged
with the computed category. When the two differ the card says so, so the clinician looks at both.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from cds_service.cards import EXTENSION_KEY, _clip, md_escape
from fhir_mappings.pipeline import CriteriaResult
from fhir_mappings.record import PatientRecord, concept_keys
from fhir_mappings.report_text import stated_in_record

# criteria (Assessment.criteria prefix) -> the report_text kinds that state its category
KINDS = (
    ("iRECIST", ("irecist",)), ("mRECIST", ("mrecist",)), ("RECIST", ("recist", "response")),
    ("Lugano", ("lugano", "response")), ("ELN", ("eln",)), ("IMWG 2016 MRD", ("mrd",)), ("IMWG", ("imwg",)),
    ("iwCLL", ("iwcll",)), ("RANO", ("rano",)), ("PCWG3", ("pcwg3",)), ("GCIG", ("gcig",)), ("Choi", ("choi",)),
    ("ATA", ("ata",)), ("Breast RCB", ("rcb_class",)), ("Breast", ("pcr",)), ("ALL MRD", ("mrd",)),
)
PATHOLOGY = "http://loinc.org|LP7839-6"


def _kinds(criteria: str) -> tuple[str, ...]:
    for prefix, kinds in KINDS:
        if criteria.startswith(prefix):
            return kinds
    return ()


def _who(record: PatientRecord, ref: str | None) -> str:
    rep = record.get(ref) if ref else None
    if rep is not None:
        cats = set()
        for c in rep.get("category") or () if isinstance(rep.get("category"), list) else ():
            cats |= concept_keys(c)
        if PATHOLOGY in cats or any(k.endswith("|PAT") or k.endswith("|SP") for k in cats):
            return "pathology"
    return "radiology"


def _norm(value: str) -> str:
    return value.strip().lower().replace(" ", "").replace("_", "")


def latest_reported(record: PatientRecord, criteria: str, on_or_before: date | None) -> dict[str, Any] | None:
    kinds = _kinds(criteria)
    if not kinds:
        return None
    found = None
    for when, ref, stated in stated_in_record(record, kinds):
        if stated.negated or (on_or_before is not None and when > on_or_before):
            continue
        found = (when, ref, stated)
    if found is None:
        return None
    when, ref, stated = found
    return {"category": stated.value, "date": when, "report": ref, "by": _who(record, ref), "text": stated.span_text}


def annotate(card: dict, result: CriteriaResult, record: PatientRecord) -> dict:
    """Add the latest reported category (if any) to an assessment or insufficient-data card."""
    a = result.assessment
    criteria = a.criteria if a is not None else result.criteria
    rep = latest_reported(record, criteria, None)
    if rep is None:
        return card
    computed = a.category if a is not None and card.get("extension", {}).get(EXTENSION_KEY, {}).get(
        "category") != "insufficient data" else None
    agrees = computed is not None and _norm(rep["category"]) == _norm(computed)
    line = (f"**Reported by {rep['by']} on {rep['date'].isoformat()}: {md_escape(rep['category'])}** "
            f"(\"{md_escape(rep['text'][:120])}\")")
    if computed is None:
        note = "No category could be computed from coded data; the report's statement is shown as reported."
    elif agrees:
        note = "The computed category agrees with the report."
    else:
        note = (f"The computed category ({md_escape(computed)}) differs from the reported one "
                f"({md_escape(rep['category'])}): check the measurements and the report.")
        if len(card["summary"]) < 110:
            card["summary"] = _clip(f"{card['summary']} (report says {rep['category']})")
    detail = card.get("detail", "")
    head, sep, rest = detail.partition("\n\n")
    card["detail"] = f"{head}\n\n{line}. {note}{sep}{rest}" if sep else f"{detail}\n\n{line}. {note}"
    ext = card.setdefault("extension", {}).get(EXTENSION_KEY)
    if ext is not None:
        ext["reported"] = {"category": rep["category"], "date": rep["date"].isoformat(), "by": rep["by"],
                           **({"report": rep["report"]} if rep["report"] else {}),
                           "agreesWithComputed": agrees}
    return card
