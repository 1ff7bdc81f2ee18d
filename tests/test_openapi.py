"""GET /openapi.json describes the real service, and schemathesis fuzzes the app in-process against it.

Property-based: up to 50 generated requests per operation (schema-valid and schema-violating bodies, headers and
methods), each sent to the Flask app through WSGI. Contract: never a 5xx; every status, content type and body is
the documented one; every error is a 4xx whose body is an OperationOutcome (the bare 401 of jwt mode excepted,
which the open app here never sends).
"""
from __future__ import annotations

import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
# CI replays the same examples every run (derandomize); FUZZ_RANDOM=1 explores new ones
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"


FUZZ_CONFIG = {"fhir": {"allowed_hosts": ["fhir.allow-list.invalid"]}}  # made-up fhirServers: never fetched


def _document() -> dict:
    from cds_service.config import load_settings
    from cds_service.openapi import openapi_document

    return openapi_document(load_settings(FUZZ_CONFIG))


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    from cds_service import create_app

    db = tmp_path_factory.mktemp("openapi") / "fb.sqlite3"
    app = create_app({"feedback_database_url": f"sqlite:///{db}", **FUZZ_CONFIG})
    assert app.test_client().get("/openapi.json").get_json() == json.loads(json.dumps(_document()))
    return app


# the document the app serves (checked in fuzz_app); loaded here so that pytest can list one test per operation
# every default check; a schema-valid hook call without the data it needs is answered 412 (CDS Hooks: SHALL)
CONFIG = schemathesis.Config.from_dict({"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "412"]}}})
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)


@schemathesis.check
def errors_are_operation_outcomes(ctx, response, case):
    """Every error is a 4xx with an OperationOutcome body (application/fhir+json)."""
    status = response.status_code
    if status >= 500:
        raise AssertionError(f"server error {status}")
    if status >= 400:
        body = json.loads(response.content)
        assert body.get("resourceType") == "OperationOutcome" and body.get("issue"), body
        assert response.headers.get("content-type", [""])[0].startswith("application/fhir+json")
    return True


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_openapi_document(case, fuzz_app):
    case.call_and_validate(app=fuzz_app, additional_checks=[errors_are_operation_outcomes])


def test_openapi_document_lists_every_endpoint(client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    assert {"/cds-services", "/cds-services/remission-status", "/cds-services/surveillance-order-check",
            "/cds-services/{service_id}/feedback", "/healthz", "/readyz", "/metrics", "/openapi.json"} <= set(
        doc["paths"])
    hook = doc["paths"]["/cds-services/remission-status"]["post"]["responses"]
    for status in ("200", "400", "412", "413"):
        assert status in hook
    assert hook["412"]["content"]["application/fhir+json"]["schema"] == {"$ref": "#/components/schemas/OperationOutcome"}


def test_jwt_mode_documents_the_bearer_scheme_and_the_bare_401(tmp_path):
    from cds_service import create_app

    app = create_app({"feedback_database_url": f"sqlite:///{tmp_path}/fb.sqlite3",
                      "public_url": "https://cds.example.org/cds-services",
                      "auth": {"mode": "jwt", "trusted_issuers": [{"iss": "https://ehr.example.org",
                                                                   "jwks": {"keys": []}}]}})
    doc = app.test_client().get("/openapi.json").get_json()  # not under /cds-services: no token needed
    assert doc["servers"] == [{"url": "https://cds.example.org"}]
    op = doc["paths"]["/cds-services/remission-status"]["post"]
    assert op["security"] == [{"cdsClientJwt": []}] and "content" not in op["responses"]["401"]
