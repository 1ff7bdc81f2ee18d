"""The OpenAPI 3.1 description of the service, served at ``GET /openapi.json``.

Built from the same service list and configuration as discovery (one path per enabled service, with the hooks it
answers), and kept to what the service really does: request bodies are what the validators accept (extra members
are allowed, as CDS Hooks asks), every error is an OperationOutcome (``application/fhir+json``) except the bare
401 of a refused JWT. ``tests/test_openapi.py`` fuzzes the app against this document with schemathesis.
"""
from __future__ import annotations

from typing import Any

from cds_service.config import Settings
from cds_service.services import SERVICES, ServiceDef, enabled_services

FHIR_JSON = "application/fhir+json"
# the whitespace pydantic trims around a number in a string (Unicode White_Space)
_WS = "[\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_json(_ref("OperationOutcome"), FHIR_JSON)}


ERRORS = {
    "400": _error("the body is not JSON, not an object, or not a valid request (the issue names the field)"),
    "404": _error("no such service (or it is disabled in the configuration)"),
    "405": _error("method not allowed on this path (the Allow header lists the allowed ones)"),
    "413": _error("the body is larger than max_body_bytes (16 MiB by default)"),
}
UNAUTHORIZED = {"401": {"description": "the CDS client's JWT is missing or invalid (auth.mode jwt): no body"}}

SCHEMAS: dict[str, Any] = {
    "OperationOutcome": {
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"const": "OperationOutcome"},
            "issue": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            }},
        },
    },
    "FhirAuthorization": {
        "description": "OAuth 2.0 access token for fhirServer (CDS Hooks 2.0 fhirAuthorization).",
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "scope", "subject"],
        "properties": {
            "access_token": {"type": "string", "minLength": 1},
            "token_type": {"const": "Bearer"},
            "expires_in": {"description": "seconds (an integer in CDS Hooks); the service does not read it and "
                                          "also accepts what reads as an integer: \"300\", \" 300 \", true",
                           "anyOf": [{"type": "integer"}, {"type": "boolean"},
                                     {"type": "string", "pattern": f"^{_WS}*[+-]?[0-9]+(_[0-9]+)*(\\.0+)?{_WS}*$"}]},
            "scope": {"type": "string"},
            "subject": {"type": "string"},
            "patient": {"type": ["string", "null"]},
        },
    },
    "Prefetch": {
        "description": "Prefetch results by key (see discovery): a resource or Bundle, null when the client found "
                       "nothing, or an OperationOutcome when it could not run the query. Keys not sent are fetched "
                       "from fhirServer. A value that is not a JSON object is read as no data.",
        "type": ["object", "null"],
        "additionalProperties": True,
    },
    "Coding": {
        "type": "object",
        "required": ["code"],
        "properties": {"system": {"type": ["string", "null"]}, "code": {"type": "string"},
                       "display": {"type": ["string", "null"]}},
    },
    "Card": {
        "type": "object",
        "required": ["summary", "indicator", "source"],
        "properties": {
            "uuid": {"type": "string"},
            "summary": {"type": "string", "maxLength": 140},
            "detail": {"type": "string"},
            "indicator": {"enum": ["info", "warning", "critical"]},
            "source": {"type": "object", "required": ["label"], "properties": {
                "label": {"type": "string"}, "url": {"type": "string"}, "icon": {"type": "string"},
                "topic": _ref("Coding")}},
            "suggestions": {"type": "array", "items": {"type": "object", "required": ["label"], "properties": {
                "label": {"type": "string"}, "uuid": {"type": "string"}, "isRecommended": {"type": "boolean"},
                "actions": {"type": "array", "items": {"type": "object", "required": ["type", "description"]}}}}},
            "selectionBehavior": {"enum": ["at-most-one", "any"]},
            "overrideReasons": {"type": "array", "items": _ref("Coding")},
            "links": {"type": "array", "items": {"type": "object", "required": ["label", "url", "type"],
                                                 "properties": {"type": {"enum": ["absolute", "smart"]}}}},
            "extension": {"type": "object",
                          "description": "org.remission-cds.assessment (README 'The card extension') and others"},
        },
    },
    "CardsResponse": {
        "type": "object",
        "required": ["cards"],
        "properties": {"cards": {"type": "array", "items": _ref("Card")},
                       "systemActions": {"type": "array", "items": {"type": "object"}}},
    },
    "Discovery": {
        "type": "object",
        "required": ["services"],
        "properties": {"services": {"type": "array", "items": {
            "type": "object",
            "required": ["hook", "id", "description"],
            "properties": {
                "hook": {"type": "string"}, "id": {"type": "string"}, "title": {"type": "string"},
                "description": {"type": "string"}, "usageRequirements": {"type": "string"},
                "prefetch": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }}},
    },
    "FeedbackItem": {
        "type": "object",
        "required": ["card", "outcome", "outcomeTimestamp"],
        "properties": {
            "card": {"type": "string", "minLength": 1, "description": "the card's uuid"},
            "outcome": {"enum": ["accepted", "overridden"]},
            "acceptedSuggestions": {"type": ["array", "null"], "items": {
                "type": "object", "required": ["id"], "properties": {"id": {"type": "string", "minLength": 1}}}},
            "overrideReason": {"type": ["object", "null"], "properties": {
                "reason": {"anyOf": [_ref("Coding"), {"type": "null"}]},
                "userComment": {"type": ["string", "null"]}}},
            "outcomeTimestamp": {"type": "string", "minLength": 10,
                                 "description": "RFC 3339 UTC, e.g. 2026-11-22T10:05:31Z"},
        },
        "if": {"properties": {"outcome": {"const": "accepted"}}, "required": ["outcome"]},
        "then": {"required": ["acceptedSuggestions"],
                 "properties": {"acceptedSuggestions": {"type": "array", "minItems": 1}}},
    },
    "FeedbackRequest": {
        "type": "object",
        "required": ["feedback"],
        "properties": {"feedback": {"type": "array", "minItems": 1, "items": _ref("FeedbackItem")}},
    },
    "FeedbackResponse": {
        "type": "object",
        "required": ["received", "new"],
        "properties": {"received": {"type": "integer", "minimum": 1},
                       "new": {"type": "integer", "minimum": 0,
                               "description": "items not stored before (repeats are idempotent)"}},
    },
}


def _hook_request(svc: ServiceDef) -> dict[str, Any]:
    context: dict[str, Any] = {
        "type": "object",
        "required": ["patientId"],
        "properties": {"patientId": {"type": "string", "minLength": 1}},
        "description": "the hook's context (userId, encounterId, ... as the hook defines them; only the members "
                       "listed here are read)",
    }
    if svc.id == "surveillance-order-check":
        context["required"] = ["patientId", "draftOrders"]
        context["properties"]["draftOrders"] = {"type": ["object", "array"],
                                                "description": "Bundle of draft ServiceRequests"}
    return {
        "type": "object",
        "required": ["hook", "hookInstance", "context"],
        "properties": {
            "hook": {"enum": list(svc.hooks)},
            "hookInstance": {"type": "string", "minLength": 1},
            "fhirServer": {"type": ["string", "null"], "pattern": "^https?://",
                           "description": "queried for prefetch keys not sent (allow-listed hosts only)"},
            "fhirAuthorization": {"anyOf": [_ref("FhirAuthorization"), {"type": "null"}]},
            "context": context,
            "prefetch": _ref("Prefetch"),
        },
        "if": {"required": ["fhirAuthorization"], "properties": {"fhirAuthorization": {"type": "object"}}},
        "then": {"required": ["fhirServer"], "properties": {"fhirServer": {"type": "string", "minLength": 1}}},
    }


def _preflight(path_name: str) -> dict[str, Any]:
    return {"summary": f"CORS preflight for {path_name}", "tags": ["CORS"],
            "responses": {"204": {"description": "allowed; CORS headers for a listed Origin"}}}


def openapi_document(settings: Settings) -> dict[str, Any]:
    jwt = settings.auth.mode == "jwt"
    auth_errors = UNAUTHORIZED if jwt else {}
    paths: dict[str, Any] = {
        "/cds-services": {"get": {
            "operationId": "discovery", "summary": "CDS Hooks discovery", "tags": ["CDS Hooks"],
            "responses": {"200": {"description": "the services, hooks and prefetch templates",
                                  **_json(_ref("Discovery"))}, **auth_errors},
        }},
    }
    for svc in enabled_services(settings):
        paths[f"/cds-services/{svc.id}"] = {
            "post": {
                "operationId": f"hook-{svc.id}", "summary": svc.title, "description": svc.description,
                "tags": ["CDS Hooks"],
                "requestBody": {"required": True, **_json(_hook_request(svc))},
                "responses": {
                    "200": {"description": "cards (possibly none)", **_json(_ref("CardsResponse"))},
                    "400": ERRORS["400"], **auth_errors, "413": ERRORS["413"],
                    "412": _error("required data (conditions, observations) could not be obtained: not prefetched "
                                  "and fhirServer missing, not allowed, or failing within the hook deadline"),
                },
            },
            "options": _preflight(f"/cds-services/{svc.id}"),
        }
    feedback_ids = [s.id for s in SERVICES]  # feedback on cards of a service disabled since is still taken
    paths["/cds-services/{service_id}/feedback"] = {
        "parameters": [{"name": "service_id", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": feedback_ids}}],
        "post": {
            "operationId": "feedback", "summary": "Card feedback (idempotent per card, outcome and suggestions)",
            "tags": ["CDS Hooks"],
            "requestBody": {"required": True, **_json(_ref("FeedbackRequest"))},
            "responses": {"200": {"description": "stored", **_json(_ref("FeedbackResponse"))},
                          "400": ERRORS["400"], **auth_errors, "404": ERRORS["404"], "413": ERRORS["413"]},
        },
        "options": {**_preflight("feedback"),  # answered before the service id is looked at
                    "parameters": [{"name": "service_id", "in": "path", "required": True,
                                    "schema": {"type": "string"}}]},
    }
    paths["/healthz"] = {"get": {
        "operationId": "healthz", "summary": "liveness", "tags": ["Operations"],
        "responses": {"200": {"description": "the process is alive", **_json(
            {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}})}},
    }}
    ready = {"type": "object", "required": ["status", "feedbackStore"],
             "properties": {"status": {"enum": ["ready", "not ready"]}, "feedbackStore": {"type": "boolean"}}}
    paths["/readyz"] = {"get": {
        "operationId": "readyz", "summary": "readiness (configuration loaded, feedback store reachable)",
        "tags": ["Operations"],
        "responses": {"200": {"description": "ready", **_json(ready)},
                      "503": {"description": "the feedback store is not reachable", **_json(ready)}},
    }}
    paths["/metrics"] = {"get": {
        "operationId": "metrics", "summary": "Prometheus metrics (no patient data in labels)", "tags": ["Operations"],
        "responses": {"200": {"description": "text exposition format", **_json({"type": "string"}, "text/plain")}},
    }}
    paths["/openapi.json"] = {"get": {
        "operationId": "openapi", "summary": "this document", "tags": ["Operations"],
        "responses": {"200": {"description": "OpenAPI 3.1", **_json({"type": "object"})}},
    }}
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "remission-cds", "version": _version(),
                 "description": "CDS Hooks 2.0 service: cancer response and remission status, surveillance order "
                                "check. Every non-2xx answer carries an OperationOutcome, except a refused JWT "
                                "(bare 401)."},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
    if settings.public_url:
        base = settings.public_url.rstrip("/")
        doc["servers"] = [{"url": base[: -len("/cds-services")] if base.endswith("/cds-services") else base}]
    if jwt:
        doc["components"]["securitySchemes"] = {"cdsClientJwt": {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "CDS Hooks 'Trusting CDS Clients': ES384/RS384, aud = the endpoint's URL, one jti once"}}
        for path, item in paths.items():
            if path.startswith("/cds-services"):
                for method, op in item.items():
                    if method in ("get", "post"):
                        op["security"] = [{"cdsClientJwt": []}]
    return doc


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("remission-cds")
    except Exception:  # noqa: BLE001 - not installed (source checkout)
        return "0.0.0"
