"""The sandbox patient library: coverage of every criteria set, valid FHIR R4 transaction Bundles, deterministic,
and every patient's expected card(s) through the HTTP API with prefetch. Plus the CLI's `sandbox patients`."""
from __future__ import annotations

import json
import re
from datetime import date

import pytest
from fhir.resources.R4B.bundle import Bundle

from cds_service.app import today
from cds_service.sandbox.patients import AUTHORED_TODAY, LIBRARY_CONFIG, by_id, library

AS_OF = today()   # the service dates its assessment by the clock; the library is written for the same day
LIB = library(AS_OF)

# every criteria set (card names) the service supports, and the hard cases the library must show
CRITERIA = {"RECIST 1.1", "iRECIST", "Lugano 2014 (PET-CT)", "Lugano 2014 (CT-based)", "ELN 2022 AML", "IMWG 2016",
            "IMWG 2016 MRD", "ATA 2015 DTC response to therapy", "Breast pCR", "Breast RCB (Symmans 2007)",
            "ALL MRD (COG end of induction)", "iwCLL 2018", "RANO 2.0", "PCWG3", "GCIG CA-125 (2011)",
            "mRECIST (HCC)", "Choi (GIST)"}


@pytest.fixture(scope="module")
def lib_client(tmp_path_factory):
    from cds_service import create_app

    db = tmp_path_factory.mktemp("feedback") / "feedback.sqlite3"
    return create_app({"feedback_database_url": f"sqlite:///{db}", **LIBRARY_CONFIG}).test_client()


def test_library_size_and_coverage():
    assert len(LIB) >= 25
    assert len({p.id for p in LIB}) == len(LIB)
    assert CRITERIA <= {e.criteria for p in LIB for e in p.expected}
    cats = {(e.criteria, e.category) for p in LIB for e in p.expected}
    assert ("RECIST 1.1", "insufficient data") in cats                            # missing data
    assert any(e.confirmed is True for p in LIB for e in p.expected)              # confirmed response
    assert any(e.confirmed is False for p in LIB for e in p.expected)             # unconfirmed response
    assert any(e.indicator == "critical" for p in LIB for e in p.expected)        # loss of complete remission
    assert any(len({e.criteria for e in p.expected}) == 2 and "two" in p.id for p in LIB)   # two cancers
    assert any(p.needs_config for p in LIB)                                       # local codes
    assert any(p.surveillance for p in LIB)                                       # surveillance due/overdue
    statuses = {s for p in LIB for s in p.surveillance.values()}
    assert {"due", "overdue"} <= statuses


@pytest.mark.parametrize("patient", LIB, ids=[p.id for p in LIB])
def test_bundle_is_valid_fhir_r4_transaction(patient):
    bundle = patient.transaction_bundle()
    Bundle.model_validate(bundle)   # fhir.resources R4B models
    assert bundle["type"] == "transaction"
    assert all(e["request"] == {"method": "PUT", "url": f"{e['resource']['resourceType']}/{e['resource']['id']}"}
               for e in bundle["entry"])
    refs = {f"{r['resourceType']}/{r['id']}" for r in patient.resources}
    assert len(refs) == len(patient.resources)
    assert all(re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", r["id"]) and r["id"].startswith(patient.id)
               for r in patient.resources)   # FHIR ids, namespaced by patient: PUT never overwrites another's
    text = json.dumps(bundle)
    assert f'"Patient/{patient.id}"' in text
    for res in patient.resources:   # every reference resolves inside the patient's own bundle
        for ref in _references(res):
            assert ref in refs, f"{res['resourceType']}/{res['id']} -> {ref}"


def _references(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                yield v
            else:
                yield from _references(v)
    elif isinstance(node, list):
        for v in node:
            yield from _references(v)


@pytest.mark.parametrize("patient", LIB, ids=[p.id for p in LIB])
def test_patient_through_http_with_prefetch(lib_client, patient):
    resp = lib_client.post("/cds-services/remission-status", json=patient.hook_request())
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert patient.problems(resp.get_json()) == []


def test_local_codes_need_the_library_configuration(client):
    """Without the mapping the local-code patient's counts are unknown: not the CRh it gets with the mapping."""
    patient = by_id(LIB)["sbx-aml-local-codes"]
    assert patient.needs_config
    body = client.post("/cds-services/remission-status", json=patient.hook_request()).get_json()
    assert patient.problems(body), "the local codes were read without any configuration"


def test_library_is_deterministic_and_dated_for_as_of():
    again = library(AS_OF)
    assert [p.transaction_bundle() for p in again] == [p.transaction_bundle() for p in LIB]
    authored = by_id(library(AUTHORED_TODAY))
    shifted = by_id(library(date(2030, 6, 15)))
    days = (date(2030, 6, 15) - AUTHORED_TODAY).days
    a = authored["sbx-lung-recist-pr"].resources
    b = shifted["sbx-lung-recist-pr"].resources
    sizes_a = [r.get("effectiveDateTime") for r in a if r.get("effectiveDateTime")]
    sizes_b = [r.get("effectiveDateTime") for r in b if r.get("effectiveDateTime")]
    assert [(date.fromisoformat(y[:10]) - date.fromisoformat(x[:10])).days for x, y in zip(sizes_a, sizes_b)] \
        == [days] * len(sizes_a)
    assert max(sizes_a) <= AUTHORED_TODAY.isoformat()
    # ids, codes and texts never move, only dates
    strip = lambda rs: json.dumps([{k: v for k, v in r.items() if "Date" not in k and k not in (  # noqa: E731
        "issued", "birthDate", "effectiveDateTime", "onsetDateTime", "authoredOn", "performedDateTime")}
        for r in rs], sort_keys=True)
    assert strip(a) == strip(b)


def test_every_patient_is_inside_the_lookback_window():
    """The service asks the FHIR server for the last lookback_days (1095) only; the library must fit in it."""
    oldest = min(date.fromisoformat(v[:10]) for p in LIB for r in p.resources for k, v in r.items()
                 if k in ("effectiveDateTime", "performedDateTime", "authoredOn", "issued") and isinstance(v, str))
    assert (AS_OF - oldest).days < 1095 - 60


def test_cli_sandbox_patients(capsys):
    from cds_service.cli import main

    assert main(["sandbox", "patients"]) == 0
    out = capsys.readouterr().out
    assert f"{len(LIB)} patients" in out
    assert "sbx-crc-surveillance" in out and "RECIST 1.1: CR" in out
    assert main(["sandbox", "patients", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {p["id"] for p in listed} == {p.id for p in LIB}
    assert all(p["expected"] for p in listed)


def test_readme_try_it_is_true():
    """The README's "Try it" commands parse, its patient counts match the library, its sample config is valid."""
    import re
    import shlex
    from pathlib import Path

    import yaml

    from cds_service.cli import build_parser
    from cds_service.config import load_settings

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\s*\.venv/bin/remission-cds (sandbox [^#\n]*)", section, re.M)
    assert {c.split()[1] for c in commands} >= {"up", "seed"}
    for cmd in commands:
        build_parser().parse_args(shlex.split(cmd))
    counts = {int(n) for n in re.findall(r"(\d+) synthetic patients", section)}
    counts |= {int(n) for pair in re.findall(r"(\d+)/(\d+) patients", section) for n in pair}
    assert counts == {len(LIB)}
    config = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1).replace(
        "<your-tunnel-or-host>", "cds.example.org"))
    settings = load_settings(config)
    assert settings.local_codes() == load_settings(LIBRARY_CONFIG).local_codes()
    assert "https://sandbox.cds-hooks.org" in settings.cors_origins
