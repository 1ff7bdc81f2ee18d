"""Prometheus metrics at /metrics. Labels never carry patient data: endpoint, service id, status, criteria,
category, and short reason classes only. With several gunicorn workers set PROMETHEUS_MULTIPROC_DIR (the deploy
files do) so /metrics aggregates every worker."""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

REQUESTS = Counter("remission_cds_requests_total", "HTTP requests", ["endpoint", "service", "status"])
LATENCY = Histogram("remission_cds_request_seconds", "HTTP request latency", ["endpoint", "service"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))
CARDS = Counter("remission_cds_cards_total", "cards returned", ["criteria", "category"])
FHIR_FETCH_ERRORS = Counter("remission_cds_fhir_fetch_errors_total", "FHIR fetch failures", ["reason"])
FHIR_FETCH_SECONDS = Histogram("remission_cds_fhir_fetch_seconds", "FHIR fetch duration per prefetch key",
                               buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))
JWT_FAILURES = Counter("remission_cds_jwt_failures_total", "refused CDS-client JWTs", ["reason"])


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def record_cards(cards: list[dict]) -> None:
    for card in cards:
        ext = (card.get("extension") or {})
        a = ext.get("org.remission-cds.assessment")
        if a:
            CARDS.labels(a.get("criteria", "?")[:40], str(a.get("category", "?"))[:40]).inc()
        elif "org.remission-cds.surveillance" in ext:
            CARDS.labels("surveillance", "schedule").inc()
        elif "org.remission-cds.order-check" in ext:
            CARDS.labels("order-check", ext["org.remission-cds.order-check"].get("kind", "?")).inc()
