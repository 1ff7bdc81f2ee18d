"""End to end through a real FHIR server: sekmet-fhir (SQLite) on 127.0.0.1, installed into .venv-fhir on first use.

The service (Flask test client; `test_sandbox_up_cli` runs it under gunicorn) gets hook calls without prefetch
or with part of it, fetches the rest from the FHIR server with the bearer token the call carries, follows paging,
and must give every library patient its expected card(s). Faults: a token the server rejects, the server stopped,
the server going away in the middle of paging (the last two through a small fault-injecting proxy).

If the FHIR server cannot be installed or started, these tests FAIL (never skip) and say why.
"""
from __future__ import annotations

import copy
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from cds_service.app import today
from cds_service.sandbox.fhir_server import FhirServerError, LocalFhirServer, free_port
from cds_service.sandbox.patients import LIBRARY_CONFIG, SandboxPatient, by_id, library
from cds_service.sandbox.seed import SeedError, seed
from fhir_proxy import FaultProxy

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "e2e-" + secrets.token_hex(12)
AS_OF = today()
LIB = library(AS_OF)
PATIENTS = by_id(LIB)
REQUIRED = ("conditions", "observations")


def _start(data_dir: Path, tokens: list[str] | None) -> LocalFhirServer:
    try:
        return LocalFhirServer(data_dir, tokens=tokens).start()
    except FhirServerError as exc:
        problem = str(exc)
    pytest.fail(f"the local FHIR server (sekmet-fhir in .venv-fhir) could not be installed or started: {problem}",
                pytrace=False)


@pytest.fixture(scope="session")
def fhir(tmp_path_factory):
    """The FHIR server for this test session: only requests with `Bearer TOKEN` are answered (others get 401)."""
    server = _start(tmp_path_factory.mktemp("fhir-e2e"), [TOKEN])
    try:
        report = seed(server.base_url, LIB, token=TOKEN)
        assert report.written == report.resources > 0
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from cds_service import create_app

    db = tmp_path_factory.mktemp("e2e-feedback") / "feedback.sqlite3"
    app = create_app({"feedback_database_url": f"sqlite:///{db}", **LIBRARY_CONFIG, "hook_deadline_s": 20,
                      "fhir": {"read_timeout_s": 15, "connect_timeout_s": 2}})
    return app.test_client()


def _call(service, patient: SandboxPatient, base: str, *, token: str | None = TOKEN, prefetch: dict | None = None):
    req = patient.hook_request(with_prefetch=False, fhir_server=base, token=token)
    if prefetch is not None:
        req["prefetch"] = prefetch
    return service.post("/cds-services/remission-status", json=req)


def _diagnostics(body: dict) -> str:
    return " ".join(i.get("diagnostics", "") for i in body.get("issue", []))


# --- the library through the server -------------------------------------------------------------------------

@pytest.mark.parametrize("patient", LIB, ids=[p.id for p in LIB])
def test_patient_without_prefetch(fhir, service, patient):
    """The service fetches everything from the FHIR server with the request's token: the expected card(s)."""
    resp = _call(service, patient, fhir.base_url)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert patient.problems(body) == []
    assert not any("incomplete" in c["summary"] for c in body["cards"]), [c["summary"] for c in body["cards"]]


@pytest.mark.parametrize("patient", LIB, ids=[p.id for p in LIB])
def test_patient_with_partial_prefetch(fhir, service, patient):
    """The EHR prefetched the Patient, Conditions and Observations only: the service fetches the other keys."""
    full = patient.builder.prefetch()
    resp = _call(service, patient, fhir.base_url,
                 prefetch={k: full[k] for k in ("patient", "conditions", "observations")})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert patient.problems(resp.get_json()) == []


def test_every_prefetch_template_is_a_search_the_server_supports(fhir):
    """Each discovery template, run against the server: only BodyStructure's `patient` is not supported there."""
    from cds_service.config import load_settings
    from cds_service.prefetch import resolve_template, templates

    patient = PATIENTS["sbx-crc-surveillance"]
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/fhir+json"}
    unsupported = {}
    for key, template in templates(load_settings(LIBRARY_CONFIG), AS_OF).items():
        query = resolve_template(template, {"patientId": patient.id})
        resp = requests.get(f"{fhir.base_url}/{query}", headers=headers, timeout=30)
        assert resp.status_code == 200, (key, resp.text[:300])
        body = resp.json()
        outcomes = [e["resource"] for e in body.get("entry", []) if e.get("search", {}).get("mode") == "outcome"]
        if outcomes:
            unsupported[key] = " ".join(i.get("diagnostics", "") for o in outcomes for i in o.get("issue", []))
    assert set(unsupported) == {"lesions"}, unsupported
    assert "Unknown search parameter 'patient' for BodyStructure" in unsupported["lesions"]


def test_lesions_of_other_patients_are_not_used(fhir):
    """The server ignores `patient` on BodyStructure and returns everyone's; the service keeps the patient's own."""
    from cds_service.config import load_settings
    from cds_service.prefetch import resolve

    patient = PATIENTS["sbx-lung-recist-pr"]
    req = patient.hook_request(with_prefetch=False, fhir_server=fhir.base_url, token=TOKEN)
    resolved = resolve(req, load_settings({"hook_deadline_s": 20}), AS_OF)
    bodies = [r for r in resolved.resources if r["resourceType"] == "BodyStructure"]
    assert bodies and all(r["patient"]["reference"] == f"Patient/{patient.id}" for r in bodies)
    assert not resolved.unavailable


# --- paging -------------------------------------------------------------------------------------------------

def test_paging_when_the_server_pages_smaller_than_asked(fhir, service):
    """A server (gateway) that caps pages at 4 entries: the service follows Bundle.link[next] to the end."""
    patient = PATIENTS["sbx-lung-recist-pr"]
    with FaultProxy(fhir.base_url, cap_count=4) as proxy:
        resp = _call(service, patient, proxy.base_url)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert patient.problems(resp.get_json()) == []
    obs_pages = [p for p in proxy.paths if p.startswith("/fhir/Observation")]
    n_obs = sum(1 for r in patient.resources if r["resourceType"] == "Observation")
    # long code lists are split into several searches (fhir_client.split_long_search); each is paged to its end
    assert len(obs_pages) >= -(-n_obs // 4) > 3, obs_pages
    assert any("_offset=" in p for p in obs_pages)


def test_the_servers_own_paging_past_its_maximum_page(fhir, service, monkeypatch):
    """1,000 other Observations first: the PSA results are on the server's second page (its maximum is 1,000)."""
    monkeypatch.setattr("cds_service.fhir_client.LONG_URL", 10**6)  # one search, so one result set to page
    base = copy.deepcopy(PATIENTS["sbx-prostate-pcwg3"].builder)
    old = base.patient_id
    text = json.dumps(base.resources).replace(old, "sbx-e2e-many-obs")
    base.resources, base.patient_id = json.loads(text), "sbx-e2e-many-obs"
    psa = [r for r in base.resources if r["resourceType"] == "Observation"]
    others = [r for r in base.resources if r["resourceType"] != "Observation"]
    filler = []
    for i in range(1000):
        filler.append({"resourceType": "Observation", "id": f"sbx-e2e-many-obs-anc-{i}", "status": "final",
                       "subject": {"reference": "Patient/sbx-e2e-many-obs"},
                       "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                                 "code": "laboratory"}]}],
                       "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
                       "effectiveDateTime": (AS_OF - timedelta(days=1 + i % 500)).isoformat(),
                       "valueQuantity": {"value": 3.1, "unit": "10*9/L", "system": "http://unitsofmeasure.org",
                                         "code": "10*9/L"}})
    base.resources = others + filler + psa     # the server returns them in this order
    patient = SandboxPatient(base.patient_id, "many observations", "paging", PATIENTS["sbx-prostate-pcwg3"].expected,
                             base)
    assert seed(fhir.base_url, [patient], token=TOKEN).written == len(base.resources)
    with FaultProxy(fhir.base_url) as proxy:
        resp = _call(service, patient, proxy.base_url)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert patient.problems(resp.get_json()) == []
    obs_pages = [p for p in proxy.paths if p.startswith("/fhir/Observation")]
    assert any("_offset=1000" in p for p in obs_pages), obs_pages  # the server's own second page was followed


def test_prefetch_page_with_a_next_link_is_completed_from_the_server(fhir, service):
    """The EHR paginated the prefetch (CDS Hooks 2.0): the service fetches the later pages with the token."""
    patient = PATIENTS["sbx-lung-recist-pr"]
    full = patient.builder.prefetch()
    first = requests.get(f"{fhir.base_url}/Observation", params={"patient": patient.id, "_count": 5},
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()
    assert len(first["entry"]) == 5 and any(l["relation"] == "next" for l in first["link"])
    prefetch = {k: v for k, v in full.items()}
    prefetch["observations"] = first
    resp = _call(service, patient, fhir.base_url, prefetch=prefetch)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert patient.problems(resp.get_json()) == []


# --- tokens -------------------------------------------------------------------------------------------------

def test_the_service_sends_the_requests_bearer_token(fhir, service):
    patient = PATIENTS["sbx-aml-eln-cr"]
    with FaultProxy(fhir.base_url) as proxy:
        resp = _call(service, patient, proxy.base_url)
    assert resp.status_code == 200
    assert proxy.paths and all(a == f"Bearer {TOKEN}" for a in proxy.authorizations)


@pytest.mark.parametrize("token", ["wrong-token", None], ids=["rejected-token", "no-token"])
def test_a_token_the_server_rejects_is_a_clear_412(fhir, service, token):
    resp = _call(service, PATIENTS["sbx-aml-eln-cr"], fhir.base_url, token=token)
    assert resp.status_code == 412
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    text = _diagnostics(body)
    assert "refused the access token (HTTP 401)" in text and "conditions" in text
    assert "wrong-token" not in resp.get_data(as_text=True)


def test_a_401_from_a_gateway_with_partial_prefetch_is_a_degraded_card(fhir, service):
    """Required keys prefetched, the rest refused (401 injected): the card plus a 'may be incomplete' card."""
    patient = PATIENTS["sbx-thyroid-ata"]
    full = patient.builder.prefetch()
    with FaultProxy(fhir.base_url, status=401) as proxy:
        resp = _call(service, patient, proxy.base_url, prefetch={k: full[k] for k in ("patient", *REQUIRED)})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    cards = resp.get_json()["cards"]
    assert cards[0]["summary"].startswith("Remission assessment may be incomplete") and "procedures" in cards[0]["detail"]
    assert "HTTP 401" in cards[0]["detail"]


# --- the server goes away -----------------------------------------------------------------------------------

def test_fhir_server_stopped_mid_run(tmp_path, service):
    """Works, then the FHIR server stops: a clear 412 without prefetch, a degraded card with partial prefetch."""
    server = _start(tmp_path / "fhir", None)   # an open server, as the CDS Hooks Sandbox uses
    patient = PATIENTS["sbx-aml-eln-cr"]          # its card needs Conditions and Observations only
    try:
        seed(server.base_url, [patient])
        ok = _call(service, patient, server.base_url, token=None)
        assert ok.status_code == 200 and patient.problems(ok.get_json()) == []
    finally:
        server.stop()
    started = time.monotonic()
    down = _call(service, patient, server.base_url, token=None)
    assert time.monotonic() - started < 10
    assert down.status_code == 412
    assert "could not be reached" in _diagnostics(down.get_json())
    full = patient.builder.prefetch()
    partial = _call(service, patient, server.base_url, token=None,
                    prefetch={k: full[k] for k in ("patient", *REQUIRED)})
    assert partial.status_code == 200
    cards = partial.get_json()["cards"]
    assert "may be incomplete" in cards[0]["summary"] and "could not be reached" in cards[0]["detail"]
    assert cards[0]["indicator"] == "warning"
    assert patient.problems(partial.get_json()) == []


def test_fhir_server_goes_away_between_pages(fhir, service):
    """The connection drops on the second page of Observations: 412, never a partial record assessed as whole."""
    patient = PATIENTS["sbx-lung-recist-pr"]
    with FaultProxy(fhir.base_url, cap_count=4, fail_after=3) as proxy:   # Patient, Conditions, Observations p1
        resp = _call(service, patient, proxy.base_url)
    assert resp.status_code == 412, resp.get_data(as_text=True)
    text = _diagnostics(resp.get_json())
    assert "observations" in text and "could not be reached" in text


# --- seeding ------------------------------------------------------------------------------------------------

def test_seeding_again_changes_nothing(fhir):
    patient = PATIENTS["sbx-two-cancers"]
    url = f"{fhir.base_url}/Observation/{patient.resources[-1]['id']}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    before = requests.get(url, headers=headers, timeout=30).json()["meta"]["versionId"]
    report = seed(fhir.base_url, LIB, token=TOKEN)
    assert report.written == 0 and report.unchanged == report.resources
    assert requests.get(url, headers=headers, timeout=30).json()["meta"]["versionId"] == before


def test_seed_cli_progress_and_refused_token(fhir, capsys):
    from cds_service.cli import main

    assert main(["sandbox", "seed", "--fhir-base", fhir.base_url, "--token", TOKEN]) == 0
    out = capsys.readouterr().out
    assert f"12/{len(LIB)} patients..." in out and f"{len(LIB)}/{len(LIB)} patients..." in out
    assert "0 written" in out and TOKEN not in out
    assert main(["sandbox", "seed", "--fhir-base", fhir.base_url, "--token", "wrong-token",
                 "--patient", "sbx-thyroid-ata"]) == 1
    err = capsys.readouterr().err
    assert "refused the request (HTTP 401)" in err and "wrong-token" not in err
    with pytest.raises(SeedError):
        seed(fhir.base_url, LIB[:1], token=None)


# --- the CLI's local sandbox ---------------------------------------------------------------------------------

def test_sandbox_up_cli(tmp_path):
    """`remission-cds sandbox up`: FHIR server + seeded library + the service under gunicorn; SIGINT stops both."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMISSION_CDS_")}
    proc = subprocess.Popen([sys.executable, "-m", "cds_service.cli", "sandbox", "up", "--port", str(port),
                             "--data-dir", str(tmp_path / "sandbox"), "--duration", "120"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        out = "".join(lines)
        assert "Ctrl-C stops" in out, out[-3000:]
        assert f"{len(LIB)}/{len(LIB)} patients..." in out
        fhir_base = re.search(r"FHIR server\s+(http://127\.0\.0\.1:\d+/fhir)", out).group(1)
        curl = next(l for l in lines if l.startswith("curl ") and "sbx-crc-surveillance" in l)
        body = json.loads(re.search(r"-d '(\{.*\})'", curl).group(1))
        assert body["fhirServer"] == fhir_base and "prefetch" not in body
        resp = requests.post(f"http://127.0.0.1:{port}/cds-services/remission-status", json=body, timeout=30)
        assert resp.status_code == 200
        assert PATIENTS["sbx-crc-surveillance"].problems(resp.json()) == []
        assert requests.options(f"http://127.0.0.1:{port}/cds-services", timeout=10,
                                headers={"Origin": "https://sandbox.cds-hooks.org",
                                         "Access-Control-Request-Method": "GET"}).headers[
            "Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, rest[-2000:]
    assert "sandbox: stopped" in rest
    for url in (f"http://127.0.0.1:{port}/healthz", f"{fhir_base}/metadata"):
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)


# --- the FHIR server's own virtual environment ---------------------------------------------------------------

def test_fhir_venv_is_reused_without_pip(fhir, monkeypatch):
    """Installed once (by the session fixture); later calls only read the stamp."""
    from cds_service.sandbox import fhir_server

    def no_subprocess(*a, **k):
        raise AssertionError("ensure_fhir_venv ran a command although the venv is installed")

    monkeypatch.setattr(fhir_server.subprocess, "run", no_subprocess)
    started = time.monotonic()
    python = fhir_server.ensure_fhir_venv()
    assert python.exists() and time.monotonic() - started < 1


def test_fhir_venv_install_failure_says_why(tmp_path, monkeypatch):
    """No package index reachable: a FhirServerError with pip's own words (the e2e tests then fail, never skip)."""
    from cds_service.sandbox.fhir_server import ensure_fhir_venv

    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(FhirServerError, match=r"pip could not install sekmet-fhir==0\.1\.1 .*\n.*ERROR"):
        ensure_fhir_venv(tmp_path / "venv-fhir", log=lambda msg: None)
    assert not (tmp_path / "venv-fhir" / ".remission-cds-installed").exists()


# --- the order hooks through the server ----------------------------------------------------------------------

def test_order_sign_surveillance_check_without_prefetch(fhir, service):
    """order-sign for the colorectal patient in remission, the record from the FHIR server: a surveillance PET-CT
    is advised against, and a CEA two months after the last one is too early (the CEA is read from the server)."""
    patient = PATIENTS["sbx-crc-surveillance"]
    orders = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "ServiceRequest", "id": "draft-pet", "status": "draft", "intent": "order",
                      "subject": {"reference": f"Patient/{patient.id}"},
                      "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "78815"}],
                               "text": "PET-CT skull base to mid-thigh"}}},
        {"resource": {"resourceType": "ServiceRequest", "id": "draft-cea", "status": "draft", "intent": "order",
                      "subject": {"reference": f"Patient/{patient.id}"},
                      "code": {"coding": [{"system": "http://loinc.org", "code": "2039-6"}], "text": "CEA"}}}]}
    req = patient.hook_request(hook="order-sign", with_prefetch=False, fhir_server=fhir.base_url, token=TOKEN)
    req["context"]["draftOrders"] = orders
    resp = service.post("/cds-services/surveillance-order-check", json=req)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    cards = resp.get_json()["cards"]
    summaries = sorted(c["summary"] for c in cards)
    assert [c["indicator"] for c in cards] == ["warning", "warning"], summaries
    cea = next(r for r in patient.resources if r.get("code", {}).get("coding", [{}])[0].get("code") == "2039-6")
    assert summaries[0].startswith("CEA: too early") and f"last done {cea['effectiveDateTime'][:10]}" in summaries[0]
    assert summaries[1].startswith("PET-CT") and "not recommended" in summaries[1]
