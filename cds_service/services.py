"""The CDS services this app offers (discovery is generated from this list and the configuration)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cds_service.config import Settings
from cds_service.prefetch import templates


@dataclass(frozen=True)
class ServiceDef:
    id: str
    hooks: tuple[str, ...]
    title: str
    description: str
    usage: str


SERVICES: tuple[ServiceDef, ...] = (
    ServiceDef(
        id="remission-status",
        hooks=("patient-view",),
        title="Cancer response and remission status",
        description=(
            "Assesses each cancer in the record against its published response criteria (RECIST 1.1 for solid "
            "tumours; more criteria sets as listed in the README) from FHIR Conditions, Observations and "
            "DiagnosticReports, and returns one card per cancer with the category, its evidence and its source."
        ),
        usage="Needs the prefetch keys or a fhirServer the service may query (with fhirAuthorization).",
    ),
    ServiceDef(
        id="surveillance-order-check",
        hooks=("order-select", "order-sign"),
        title="Surveillance order check for patients in remission",
        description=(
            "Checks draft orders (ServiceRequest) of a patient in remission against the follow-up schedule of "
            "their cancer: warns on tests the guidelines advise against (e.g. routine surveillance PET-CT in "
            "lymphoma in complete remission) or repeats before they are due, with a suggestion to remove the "
            "order. Silent when the order fits the schedule."
        ),
        usage="context.draftOrders (Bundle of ServiceRequest); the prefetch keys or a fhirServer to query.",
    ),
)


def enabled_services(settings: Settings) -> list[ServiceDef]:
    out = []
    for s in SERVICES:
        toggle = settings.services.get(s.id)
        if toggle is None or toggle.enabled:
            out.append(s)
    return out


def discovery(settings: Settings, today: date) -> dict:
    services = []
    for s in enabled_services(settings):
        toggle = settings.services.get(s.id)
        for hook in s.hooks:
            services.append({
                "hook": hook,
                "id": s.id,
                "title": (toggle.title if toggle and toggle.title else s.title),
                "description": s.description,
                "prefetch": templates(settings, today),
                "usageRequirements": s.usage,
            })
    return {"services": services}
