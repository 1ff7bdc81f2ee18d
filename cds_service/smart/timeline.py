"""The response timeline app's data: the hook's own pipeline, returned per cancer instead of as cards.

``POST /smart/api/timeline`` takes the patient's FHIR data that the browser read with its SMART token (or from an
open sandbox server) and runs exactly what the ``remission-status`` hook runs on a prefetch: the same resolver
(``prefetch.resolve``, with no FHIR server, so nothing is fetched server-side and no token ever reaches the
service), ``PatientRecord`` → ``assess_record`` → ``build_views``, and the same card builders. Each cancer's entry
carries its card's ``org.remission-cds.assessment`` extension unchanged (criteria, category, confirmed, values,
history, remission), the card's summary/indicator/detail, the surveillance plan, and the chart specifications read
off that extension (:mod:`cds_service.smart.charts`). So the app cannot show a category the cards would not.

Two body shapes: a FHIR ``Bundle`` (collection/searchset/batch-response) of the patient's resources, split by type
into the hook's prefetch keys; or ``{"patientId": ..., "prefetch": {key: Bundle | OperationOutcome}}``, the hook's
own prefetch object (a key the browser could not read is sent as an OperationOutcome and reported as
unavailable, as in the hook). Nothing from the body is logged.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from cds_service import cards as card_builder
from cds_service.config import Settings
from cds_service.errors import HookError
from cds_service.prefetch import REQUIRED_KEYS, resolve, templates
from cds_service.remission import RemissionView, build_views, decorate_assessment_card, remission_extension
from cds_service.reported import annotate as annotate_reported
from cds_service.smart.charts import charts_for
from fhir_mappings.pipeline import assess_record
from fhir_mappings.record import PatientRecord

Json = dict[str, Any]

# the hook's prefetch key for each resource type it reads (prefetch.templates)
from cds_service.prefetch import KEY_FOR_TYPE  # noqa: E402  (one mapping for the hook and the app)


def _bundle(resources: list[Json]) -> Json:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"resource": r} for r in resources]}


def _belongs_to(res: Json, patient_id: str) -> bool:
    """False for a resource whose subject/patient names another patient (a server may ignore ``patient=``)."""
    if res.get("resourceType") == "Patient":
        return res.get("id") == patient_id
    ref = res.get("subject") or res.get("patient")
    ref = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(ref, str) or "Patient/" not in ref:
        return True
    return ref.split("/_history/")[0].rsplit("/", 1)[-1] == patient_id


def prefetch_from_body(body: Any, patient_hint: str | None, settings: Settings, as_of: date) -> tuple[str, Json]:
    """(patient id, prefetch object) from either body shape; HookError 400 when it is neither."""
    if not isinstance(body, dict):
        raise HookError(400, "structure", "request body must be a JSON object (a FHIR Bundle or {patientId, prefetch})")
    if body.get("resourceType") == "Bundle":
        resources = [e["resource"] for e in body.get("entry") or () if isinstance(e, dict)
                     and isinstance(e.get("resource"), dict)]
        patient_id = patient_hint or next((r.get("id") for r in resources if r.get("resourceType") == "Patient"
                                           and isinstance(r.get("id"), str)), None)
        if not patient_id:
            raise HookError(400, "required", "the patient is not known: add ?patient=<id> or a Patient resource",
                            ["patient"])
        by_key: dict[str, list[Json]] = {k: [] for k in templates(settings, as_of)}
        for r in resources:
            key = KEY_FOR_TYPE.get(str(r.get("resourceType")))
            if key in by_key and _belongs_to(r, patient_id):
                by_key[key].append(r)
        prefetch: Json = {k: _bundle(v) for k, v in by_key.items()}
        if by_key.get("patient"):
            prefetch["patient"] = by_key["patient"][0]
        return patient_id, prefetch
    prefetch = body.get("prefetch")
    patient_id = body.get("patientId") or patient_hint
    if not isinstance(prefetch, dict) or not isinstance(patient_id, str) or not patient_id:
        raise HookError(400, "invalid", "body must be a FHIR Bundle, or an object with patientId and prefetch",
                        ["body"])
    out: Json = {}
    for key, value in prefetch.items():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            entries = [e for e in value.get("entry") or () if isinstance(e, dict)
                       and (not isinstance(e.get("resource"), dict) or _belongs_to(e["resource"], patient_id)
                            or e["resource"].get("resourceType") == "OperationOutcome")]
            value = {**value, "entry": entries}
        out[key] = value
    return patient_id, out


def _patient_summary(resources: list[Json], patient_id: str) -> Json:
    pat = next((r for r in resources if r.get("resourceType") == "Patient" and r.get("id") == patient_id), None)
    if pat is None:
        return {"id": patient_id}
    name = ""
    for n in pat.get("name") or ():
        if isinstance(n, dict):
            name = n.get("text") or " ".join([*(n.get("given") or []), n.get("family") or ""]).strip()
            if name:
                break
    return card_builder._clean({"id": patient_id, "name": name or None, "birthDate": pat.get("birthDate"),
                                "gender": pat.get("gender")})


def _surveillance(view: RemissionView) -> Json | None:
    plan = view.plan
    if plan is None:
        return None
    return card_builder._clean({
        "cancerType": plan.cancer_type, "label": plan.label, "anchor": plan.anchor.isoformat(),
        "asOf": plan.as_of.isoformat(), "monthsSinceAnchor": plan.months_since_anchor,
        "items": [{"id": it.item_id, "label": it.label, "kind": it.kind, "status": it.status,
                   "interval": it.interval, "phase": it.phase or None,
                   "dueDate": it.due_date.isoformat() if it.due_date else None,
                   "overdueAfter": it.overdue_after.isoformat() if it.overdue_after else None,
                   "lastDone": it.last_done.isoformat() if it.last_done else None,
                   "citation": it.citation if not it.version or it.version in it.citation else f"{it.citation} ({it.version})",
                   "note": it.note} for it in plan.items],
        "notes": list(plan.notes), "source": plan.source,
    })


def _course(view: RemissionView) -> Json | None:
    tl = view.timeline
    if tl is None:
        return None
    out = remission_extension(view)
    out.update(card_builder._clean({
        "confirmOnOrAfter": tl.confirm_on_or_after.isoformat() if tl.confirm_on_or_after else None,
        "confirmationBasis": tl.confirmation_basis, "durationPhrase": tl.duration_phrase,
        "bestDate": tl.best_date.isoformat() if tl.best_date else None,
        "completeRemissionStart": tl.complete_remission_start.isoformat() if tl.complete_remission_start else None,
        "cureNote": tl.cure_note,
        "episodes": [card_builder._clean({
            "start": e.start.isoformat(), "startCategory": e.start_category, "bestCategory": e.best_category,
            "end": e.end.isoformat() if e.end else None, "endCategory": e.end_category,
        }) for e in tl.episodes],
    }))
    return out


def timeline(body: Any, settings: Settings, as_of: date, patient_hint: str | None = None) -> Json:
    """The app's JSON for one patient: per cancer, the card's assessment, its course, charts and surveillance."""
    patient_id, prefetch = prefetch_from_body(body, patient_hint, settings, as_of)
    hook_body = {"hook": "patient-view", "hookInstance": "smart-timeline", "context": {"patientId": patient_id},
                 "prefetch": prefetch}
    resolved = resolve(hook_body, settings, as_of)   # no fhirServer: nothing is fetched from here
    missing_required = [k for k in REQUIRED_KEYS if k in resolved.unavailable]
    if missing_required:
        why = "; ".join(f"{k}: {resolved.unavailable[k]}" for k in missing_required)
        raise HookError(412, "not-found", f"required data could not be obtained ({why})",
                        [f"prefetch.{k}" for k in missing_required])
    record = PatientRecord(resolved.resources, patient_id)
    results = assess_record(record, as_of, settings.mapping_options())
    views = build_views(results, record, as_of, settings.surveillance_schedules(), settings.surveillance_done_codes)
    cancers = []
    for i, view in enumerate(views):
        card = card_builder.card_for(view.result, show_insufficient=True)
        if card is None:
            continue
        card = annotate_reported(card, view.result, record)
        assessed = card_builder.has_assessment(view.result)
        if assessed:
            card = decorate_assessment_card(card, view, patient_id, status_suggestion=False, links=None)
        ext = dict((card.get("extension") or {}).get(card_builder.EXTENSION_KEY) or {})
        entry = {"id": f"cancer-{i + 1}", **ext, "assessed": assessed,
                 "summary": card["summary"], "indicator": card["indicator"], "detail": card.get("detail", ""),
                 "sourceUrl": (card.get("source") or {}).get("url"),
                 "conditionText": view.result.cancer.condition_text,
                 "course": _course(view) if assessed else None,
                 "charts": charts_for(ext) if assessed else [],
                 "surveillance": _surveillance(view)}
        cancers.append(card_builder._clean(entry))
    urgency = {"critical": 0, "warning": 1, "info": 2}
    cancers.sort(key=lambda c: urgency.get(c.get("indicator"), 3))   # as the cards: loud alerts first
    unavailable = {k: v for k, v in resolved.unavailable.items() if k not in REQUIRED_KEYS and k != "patient"}
    return card_builder._clean({"patient": _patient_summary(resolved.resources, patient_id), "asOf": as_of.isoformat(),
                                "cancers": cancers, "unavailable": unavailable or None})
