"""Remission over time on the cards: timeline (confirmation, duration, loss), surveillance plan, suggestions.

The rules live in ``rules.timeline`` and ``rules.surveillance``; this module only connects them to the record
(last-done dates) and turns them into card text and FHIR suggestions (validated with fhir.resources R4B).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from cds_service.cards import EXTENSION_KEY, _clean, _clip, md_escape, new_uuid
from fhir_mappings.activity import last_done, schedule_conditions, schedule_key
from fhir_mappings.pipeline import CriteriaResult
from fhir_mappings.record import LOINC, SNOMED, PatientRecord
from rules import surveillance
from rules.base import Outcome
from rules.timeline import Timeline, build_timeline

CARD_SYSTEM = "http://remission-cds.org/fhir/CodeSystem/criteria"

# mCODE CancerDiseaseStatus values (codes.md §2): STU4 max value set for remission, preferred set otherwise
STATUS_VALUE = {
    Outcome.COMPLETE: ("103338009", "In full remission (qualifier value)"),
    Outcome.PARTIAL: ("103337004", "In partial remission (qualifier value)"),
    Outcome.MINOR: ("268910001", "Patient's condition improved (finding)"),
    Outcome.STABLE: ("359746009", "Patient's condition stable (finding)"),
    Outcome.NO_RESPONSE: ("359746009", "Patient's condition stable (finding)"),
    Outcome.PROGRESSION: ("271299001", "Patient's condition worsened (finding)"),
    Outcome.RELAPSE: ("271299001", "Patient's condition worsened (finding)"),
    Outcome.UNCONFIRMED_PROGRESSION: ("709137006", "Patient condition undetermined (finding)"),
    Outcome.INDETERMINATE: ("709137006", "Patient condition undetermined (finding)"),
    Outcome.NOT_EVALUABLE: ("709137006", "Patient condition undetermined (finding)"),
}
# evidence type (codes.md §2.3) by criteria family
EVIDENCE = {
    "imaging": ("363679005", "Imaging (procedure)"),
    "lab": ("386344002", "Laboratory data interpretation (procedure)"),
    "pathology": ("108257001", "Anatomic pathology procedure (procedure)"),
    "marker": ("250724005", "Tumor marker measurement procedure (procedure)"),
}
_LAB_CRITERIA = ("ELN", "IMWG", "MRD", "iwCLL", "ALL")
_MARKER_CRITERIA = ("PCWG3", "GCIG", "ATA")
_PATH_CRITERIA = ("pCR", "RCB", "Breast")


def evidence_type(criteria: str) -> tuple[str, str]:
    for family, words in (("pathology", _PATH_CRITERIA), ("lab", _LAB_CRITERIA), ("marker", _MARKER_CRITERIA)):
        for k in words:  # (no generator per family)
            if k in criteria:
                return EVIDENCE[family]
    return EVIDENCE["imaging"]


@dataclass
class RemissionView:
    result: CriteriaResult
    timeline: Timeline | None
    plan: surveillance.SurveillancePlan | None
    anchor: date | None


VALIDATE_SUGGESTIONS = False  # tests turn it on; the builders below are fixed code, checked by the tests


def _validate(resource: dict) -> dict:
    """Validate a suggested resource against FHIR R4 (R4B models) when VALIDATE_SUGGESTIONS is on.

    The resources are built by the fixed code in this module, so the test suite validates every shape they can
    take (tests/test_remission_cards.py); validating again on each hook call cost a fifth of a small call.
    """
    if not VALIDATE_SUGGESTIONS:
        return resource
    from fhir.resources.R4B import get_fhir_model_class

    cls = get_fhir_model_class(resource["resourceType"])
    cls.model_validate(resource)
    return resource


def disease_status_resource(view: RemissionView, patient_id: str) -> dict:
    a = view.result.assessment
    assert a is not None
    code, display = STATUS_VALUE[a.outcome]
    ev_code, ev_display = evidence_type(a.criteria)
    res = {
        "resourceType": "Observation",
        "meta": {"profile": ["http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-disease-status"]},
        "status": "preliminary",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "survey"}]}],
        "code": {"coding": [{"system": LOINC, "code": "97509-4", "display": "Cancer disease status"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": (a.assessment_date or view.timeline.as_of).isoformat() if view.timeline else
        (a.assessment_date.isoformat() if a.assessment_date else None),
        "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": code, "display": display}],
                                 "text": f"{a.criteria}: {a.label} ({a.category})"},
        "method": {"coding": [{"system": CARD_SYSTEM, "code": a.criteria, "display": a.criteria}], "text": a.criteria},
        "extension": [{"url": "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-disease-status-evidence-type",
                       "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": ev_code, "display": ev_display}]}}],
    }
    if view.result.cancer.condition_ref:
        res["focus"] = [{"reference": view.result.cancer.condition_ref}]
    return _validate(_clean(res))


def service_request_resource(item: surveillance.PlanItem, patient_id: str, condition_ref: str | None) -> dict:
    coding = []
    for key in item.codes[:3]:
        system, code = key.split("|", 1)
        coding.append({"system": system, "code": code})
    res = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "category": [{"text": f"surveillance: {item.kind}"}],
        "code": {"coding": coding, "text": item.label} if coding else {"text": item.label},
        "subject": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": item.due_date.isoformat() if item.due_date else None,
        "reasonReference": [{"reference": condition_ref}] if condition_ref else None,
        "note": [{"text": f"Surveillance per {item.citation} ({item.version}): {item.interval}."}],
    }
    return _validate(_clean(res))


def build_views(results: list[CriteriaResult], record: PatientRecord, as_of: date,
                schedules: Mapping[str, Any] | None, local_done_codes: Mapping[str, Any] | None = None
                ) -> list[RemissionView]:
    views = []
    planned: set[str] = set()
    for r in results:
        a = r.assessment
        if a is None or a.outcome is Outcome.NOT_EVALUABLE and not a.history:
            views.append(RemissionView(r, None, None, None))
            continue
        tl = build_timeline(a, as_of, cancer_type=r.cancer.cancer.key)
        plan = None
        anchor = None
        key = schedule_key(r.cancer)
        if key and tl.in_remission and tl.level is Outcome.COMPLETE and key not in planned:
            anchor = tl.complete_remission_start or tl.remission_start
            data = schedules if schedules is not None else surveillance.load_default_schedules()
            resolved = surveillance.resolve_cancer_type(key, data)
            if resolved and anchor:
                ct = data["cancer_types"][resolved]
                codes_by_item = {it["id"]: it.get("codes", []) for it in ct.get("items", [])}
                done = last_done(record, codes_by_item, as_of, (local_done_codes or {}).get(resolved))
                plan = surveillance.plan(resolved, anchor, done, as_of, data, conditions=schedule_conditions(r.cancer))
                planned.add(key)
        views.append(RemissionView(r, tl, plan, anchor))
    return views


def timeline_lines(tl: Timeline) -> list[str]:
    lines = ["**Course**", f"- {md_escape(tl.status)}"]
    if tl.best_category:
        lines.append(f"- Best response so far: {md_escape(tl.best_category)}"
                     + (f" ({tl.best_date.isoformat()})" if tl.best_date else ""))
    if tl.remission_start:
        lines.append(f"- Remission first met {tl.remission_start.isoformat()}"
                     + (f"; confirmed {tl.confirmed_on.isoformat()} ({md_escape(tl.confirmation_basis or '')})"
                        if tl.confirmed and tl.confirmed_on else
                        (f"; confirm on or after {tl.confirm_on_or_after.isoformat()}" if tl.confirm_on_or_after
                         else "")))
    if tl.loss_date:
        lines.append(f"- **Lost {tl.loss_date.isoformat()}: {md_escape(tl.loss_category or '')}**")
    if tl.cure_note:
        lines.append(f"- {md_escape(tl.cure_note)}")
    return lines


_FROM_WORDS = {Outcome.COMPLETE: "complete response", Outcome.PARTIAL: "partial response",
               Outcome.MINOR: "minor response"}


def loss_summary(view: RemissionView, base_summary: str) -> str | None:
    tl = view.timeline
    a = view.result.assessment
    if tl is None or a is None or tl.severity is None:
        return None
    what = "RELAPSE" if a.outcome is Outcome.RELAPSE else (
        "PROGRESSION" if a.outcome is Outcome.PROGRESSION else "POSSIBLE PROGRESSION")
    lost_from = getattr(tl, "lost_from", None)
    after = f" after {_FROM_WORDS.get(lost_from, 'response')}" if lost_from else ""
    return _clip(f"{what}{after}: {base_summary}")


def surveillance_card(view: RemissionView, patient_id: str) -> dict | None:
    plan = view.plan
    if plan is None:
        return None
    due = plan.with_status("overdue", "due")
    upcoming = plan.with_status("upcoming")
    avoid = plan.with_status("not_recommended")
    overdue = [it for it in due if it.status == "overdue"]
    now_due = [it for it in due if it.status == "due"]
    parts = []
    if overdue:
        parts.append("overdue: " + ", ".join(it.label for it in overdue))
    if now_due:
        parts.append("due: " + ", ".join(it.label for it in now_due))
    summary = _clip("Follow-up in remission — " + ("; ".join(parts) if parts else "nothing due now"))
    lines = [f"**Follow-up schedule: {md_escape(plan.label)}** — {plan.months_since_anchor} months since "
             f"{plan.anchor.isoformat()} (start of complete remission).", "",
             "| Item | Interval | Last done | Next due | Status |", "|---|---|---|---|---|"]
    for it in plan.items:
        if it.status == "not_recommended":
            continue
        lines.append(f"| {md_escape(it.label)} | {md_escape(it.interval)} | "
                     f"{it.last_done.isoformat() if it.last_done else 'not in record'} | "
                     f"{it.due_date.isoformat() if it.due_date else '—'} | {it.status} |")
    if avoid:
        lines += ["", "**Not recommended routinely**"]
        lines += [f"- {md_escape(it.label)} _({md_escape(it.citation)})_" for it in avoid]
    if plan.notes:
        lines += ["", "**Notes**"] + [f"- {md_escape(n)}" for n in plan.notes[:6]]
    cites = sorted({f"{it.citation} ({it.version})" for it in plan.items})
    lines += ["", "Sources: " + "; ".join(md_escape(c) for c in cites[:8])]
    suggestions = []
    for it in due:
        if it.kind == "visit":
            continue
        try:
            sr = service_request_resource(it, patient_id, view.result.cancer.condition_ref)
        except ValueError:
            continue
        suggestions.append({"label": _clip(f"Order {it.label}", 80), "uuid": new_uuid(), "isRecommended": False,
                            "actions": [{"type": "create", "description": f"Order {it.label} (surveillance)",
                                         "resource": sr}]})
    card = {
        "uuid": new_uuid(),
        "summary": summary,
        "indicator": "warning" if any(i.status == "overdue" for i in due) else "info",
        "detail": "\n".join(lines),
        "source": {"label": f"Surveillance schedule: {plan.source}"[:200],
                   "topic": {"system": CARD_SYSTEM, "code": "surveillance", "display": "Surveillance schedule"}},
        "suggestions": suggestions or None,
        "selectionBehavior": "any" if suggestions else None,
        "extension": {"org.remission-cds.surveillance": {
            "cancerType": plan.cancer_type, "anchor": plan.anchor.isoformat(), "asOf": plan.as_of.isoformat(),
            "items": [{"id": it.item_id, "label": it.label, "status": it.status,
                       "dueDate": it.due_date.isoformat() if it.due_date else None,
                       "lastDone": it.last_done.isoformat() if it.last_done else None,
                       "citation": it.citation} for it in plan.items]}},
    }
    return _clean(card)


def remission_extension(view: RemissionView) -> dict:
    tl = view.timeline
    if tl is None:
        return {}
    return _clean({
        "inRemission": tl.in_remission,
        "remissionStart": tl.remission_start.isoformat() if tl.remission_start else None,
        "remissionConfirmed": tl.confirmed,
        "confirmedOn": tl.confirmed_on.isoformat() if tl.confirmed_on else None,
        "durationDays": tl.duration_days,
        "bestResponse": tl.best_category,
        "lossDate": tl.loss_date.isoformat() if tl.loss_date else None,
        "lossCategory": tl.loss_category,
        "severity": tl.severity,
        "status": tl.status,
    })


def decorate_assessment_card(card: dict, view: RemissionView, patient_id: str, *, status_suggestion: bool = True,
                             links: list[dict[str, str]] | None = None,
                             smart_link: dict[str, str] | None = None) -> dict:
    """Add the course (timeline) to an assessment card, the loss alert, and the disease-status suggestion.

    ``smart_link`` ({label, url}): a SMART app link (the response timeline) with this cancer as its appContext.
    """
    if links:
        card["links"] = [{"label": l["label"], "url": l["url"], "type": "absolute"} for l in links]
    if smart_link:
        ext = card.get("extension", {}).get(EXTENSION_KEY) or {}
        context = _clean({"condition": (ext.get("cancer") or {}).get("condition"), "criteria": ext.get("criteria")})
        card.setdefault("links", []).append({"label": smart_link["label"], "url": smart_link["url"], "type": "smart",
                                             "appContext": json.dumps(context, separators=(",", ":"))})
    tl = view.timeline
    if tl is None:
        return card
    alert = loss_summary(view, card["summary"])
    if alert:
        card["summary"] = alert
        card["indicator"] = tl.severity
    card["detail"] = card["detail"].replace("\n\n**Evidence**", "\n\n" + "\n".join(timeline_lines(tl)) +
                                            "\n\n**Evidence**", 1)
    ext = card.get("extension", {}).get(EXTENSION_KEY)
    if ext is not None:
        rem = remission_extension(view)
        if rem:
            ext["remission"] = rem
    if not status_suggestion:
        return card
    try:
        status = disease_status_resource(view, patient_id)
        card["suggestions"] = [{"label": "Record this disease status (mCODE CancerDiseaseStatus)",
                                "uuid": new_uuid(), "isRecommended": False,
                                "actions": [{"type": "create", "description": "Record the assessed cancer disease "
                                             "status with the criteria used", "resource": status}]}]
        card["selectionBehavior"] = "at-most-one"
    except ValueError:
        pass
    return card
