"""order-select / order-sign: warn on surveillance orders the schedule advises against or repeats too early.

Only for patients in remission (the schedules are for asymptomatic follow-up); silent when the order fits.
"""
from __future__ import annotations

import uuid
from datetime import date
from typing import Any, Mapping

from cds_service.cards import _clean, _clip, md_escape
from cds_service.remission import CARD_SYSTEM, RemissionView
from fhir_mappings.activity import last_done, order_codes, order_label, schedule_key
from fhir_mappings.record import PatientRecord
from rules import surveillance

OVERRIDE_REASONS = [
    {"system": f"{CARD_SYSTEM}-override", "code": "symptoms", "display": "New symptoms or signs: not routine surveillance"},
    {"system": f"{CARD_SYSTEM}-override", "code": "high-risk", "display": "Patient meets high-risk criteria"},
    {"system": f"{CARD_SYSTEM}-override", "code": "trial-protocol", "display": "Required by a clinical trial protocol"},
    {"system": f"{CARD_SYSTEM}-override", "code": "other", "display": "Other clinical reason"},
]


def draft_orders(context: Mapping[str, Any], hook: str) -> list[dict]:
    """Draft requests of the context's draftOrders Bundle; for order-select only the selected ones."""
    bundle = context.get("draftOrders")
    entries = []
    if isinstance(bundle, dict):
        entries = [e.get("resource") for e in bundle.get("entry") or () if isinstance(e, dict)]
    elif isinstance(bundle, list):  # tolerate a bare array
        entries = list(bundle)
    orders = [r for r in entries if isinstance(r, dict) and r.get("resourceType") in
              ("ServiceRequest", "MedicationRequest", "DeviceRequest", "NutritionOrder")]
    if hook == "order-select":
        selected = {s for s in context.get("selections") or () if isinstance(s, str)}
        if selected:
            orders = [o for o in orders if f"{o.get('resourceType')}/{o.get('id')}" in selected]
    return orders


def order_cards(views: list[RemissionView], record: PatientRecord, orders: list[dict], as_of: date,
                schedules: Mapping[str, Any] | None) -> list[dict]:
    data = schedules if schedules is not None else surveillance.load_default_schedules()
    cards = []
    for view in views:
        tl = view.timeline
        key = schedule_key(view.result.cancer)
        if tl is None or not tl.in_remission or key is None:
            continue
        resolved = surveillance.resolve_cancer_type(key, data)
        anchor = tl.complete_remission_start or tl.remission_start
        if resolved is None or anchor is None:
            continue
        ct = data["cancer_types"][resolved]
        done = last_done(record, {it["id"]: it.get("codes", []) for it in ct.get("items", [])}, as_of)
        for order in orders:
            codes = order_codes(order)
            if not codes:
                continue
            findings = surveillance.check_order(resolved, codes, anchor, done, as_of, True, data)
            for f in findings:
                cards.append(_finding_card(f, order, view))
    return cards


def _finding_card(f: surveillance.OrderFinding, order: dict, view: RemissionView) -> dict:
    label = order_label(order)
    cancer = view.result.cancer.cancer.label
    if f.kind == "not_recommended":
        summary = f"{label}: not recommended for routine surveillance of {cancer} in remission"
    else:
        summary = f"{label}: too early — last done {f.last_done.isoformat() if f.last_done else '?'}, next due " \
                  f"{f.next_due.isoformat() if f.next_due else '?'}"
    lines = [md_escape(f.message), "", f"Guideline: {md_escape(f.citation)} ({md_escape(f.version)})."]
    if f.unless:
        lines.append(f"Unless: {md_escape(f.unless)}.")
    if view.timeline:
        lines.append(f"Remission status: {md_escape(view.timeline.status)}.")
    ref = f"{order.get('resourceType')}/{order.get('id')}" if order.get("id") else None
    suggestions = None
    if ref:
        suggestions = [{"label": f"Remove the order for {label}"[:120], "uuid": str(uuid.uuid4()), "isRecommended": True,
                        "actions": [{"type": "delete", "description": f"Remove {label} from the draft orders",
                                     "resourceId": ref}]}]
    return _clean({
        "uuid": str(uuid.uuid4()),
        "summary": _clip(summary),
        "indicator": "warning",
        "detail": "\n".join(lines),
        "source": {"label": f"Surveillance schedule: {f.citation}"[:200],
                   "topic": {"system": CARD_SYSTEM, "code": "surveillance-order-check",
                             "display": "Surveillance order check"}},
        "suggestions": suggestions,
        "selectionBehavior": "at-most-one" if suggestions else None,
        "overrideReasons": OVERRIDE_REASONS,
        "extension": {"org.remission-cds.order-check": {"kind": f.kind, "item": f.item_id, "orderCode": f.order_code,
                                                        "nextDue": f.next_due.isoformat() if f.next_due else None}},
    })
