"""CORS for browser clients (the public CDS Hooks Sandbox), and two prefetch gaps the real FHIR server showed:
surveillance labs (CEA, Tg, PSA...) were not asked for, and a server that ignores `patient=` mixes patients."""
from __future__ import annotations

from datetime import date
from urllib.parse import unquote

import pytest

SANDBOX = "https://sandbox.cds-hooks.org"
ROUTES = ("/cds-services", "/cds-services/remission-status", "/cds-services/surveillance-order-check",
          "/cds-services/remission-status/feedback")


def _preflight(client, path, origin=SANDBOX, **extra):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "authorization, content-type", **extra})


@pytest.mark.parametrize("path", ROUTES)
def test_preflight_on_every_route_default_any_origin(client, path):
    resp = _preflight(client, path)
    assert resp.status_code in (200, 204)
    assert resp.headers["Access-Control-Allow-Origin"] in ("*", SANDBOX)
    assert resp.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert set(resp.headers["Access-Control-Allow-Methods"].replace(" ", "").split(",")) >= {"GET", "POST",
                                                                                              "OPTIONS"}


@pytest.fixture()
def jwt_app(tmp_path):
    """Production-like: JWT required, only the Sandbox's origin allowed."""
    from cds_service import create_app

    return create_app({"feedback_database_url": f"sqlite:///{tmp_path}/fb.sqlite3", "cors_origins": [SANDBOX],
                       "auth": {"mode": "jwt", "trusted_issuers": [{"iss": SANDBOX, "jwks": {"keys": []}}]}})


@pytest.mark.parametrize("path", ROUTES)
def test_preflight_needs_no_token_and_names_the_allowed_origin(jwt_app, path):
    client = jwt_app.test_client()
    resp = _preflight(client, path)
    assert resp.status_code in (200, 204)        # a preflight carries no Authorization header: never a 401
    assert resp.headers["Access-Control-Allow-Origin"] == SANDBOX
    assert resp.headers["Vary"] == "Origin"
    other = _preflight(client, path, origin="https://elsewhere.example")
    assert "Access-Control-Allow-Origin" not in other.headers


def test_discovery_get_and_a_rejected_call_still_carry_cors_headers(jwt_app):
    """The browser can only read a 401 (and show it) when the error response has the CORS headers too."""
    client = jwt_app.test_client()
    resp = client.get("/cds-services", headers={"Origin": SANDBOX})
    assert resp.status_code == 401
    assert resp.headers["Access-Control-Allow-Origin"] == SANDBOX


def test_private_network_preflight(client):
    """A public https page calling the service on this machine (`sandbox up`): Private Network Access preflight."""
    resp = _preflight(client, "/cds-services", **{"Access-Control-Request-Private-Network": "true"})
    assert resp.headers["Access-Control-Allow-Private-Network"] == "true"
    assert "Access-Control-Allow-Private-Network" not in _preflight(client, "/cds-services").headers


# --- prefetch ---------------------------------------------------------------------------------------------

def _observation_codes(settings_dict=None) -> set[str]:
    from cds_service.config import load_settings
    from cds_service.prefetch import templates

    tmpl = templates(load_settings(settings_dict or {}), date(2026, 1, 1))["observations"]
    query = dict(p.split("=", 1) for p in tmpl.split("?", 1)[1].split("&"))
    return set(unquote(query["code"]).split(","))


def test_observation_template_asks_for_the_surveillance_labs():
    """The surveillance card reads CEA/Tg/PSA as 'done': the service must ask the EHR for them too."""
    codes = _observation_codes()
    assert {"http://loinc.org|2039-6", "http://loinc.org|3013-0"} <= codes     # CEA, thyroglobulin
    assert len(codes) == len(set(codes))


def test_configured_surveillance_done_codes_for_a_lab_item_are_asked_for():
    extra = "http://hospital.example.org/lab|CEA-LOCAL"
    codes = _observation_codes({"surveillance_done_codes": {"colorectal_II_III": {"cea": [extra]}}})
    assert extra in codes and "http://loinc.org|2039-6" in codes


def test_resources_of_another_patient_from_the_fhir_server_are_dropped():
    from cds_service.prefetch import _of_patient

    mine = {"resourceType": "BodyStructure", "id": "a", "patient": {"reference": "Patient/p1"}}
    theirs = {"resourceType": "BodyStructure", "id": "b", "patient": {"reference": "Patient/p2"}}
    absolute = {"resourceType": "Observation", "id": "c", "subject": {"reference": "http://x/fhir/Patient/p1"}}
    versioned = {"resourceType": "Observation", "id": "d", "subject": {"reference": "Patient/p2/_history/3"}}
    group = {"resourceType": "Observation", "id": "e", "subject": {"reference": "Group/g1"}}
    patient = {"resourceType": "Patient", "id": "p1"}
    got = _of_patient([mine, theirs, absolute, versioned, group, patient], "p1")
    assert [r["id"] for r in got] == ["a", "c", "e", "p1"]
