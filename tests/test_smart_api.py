"""The response timeline app's service side (Flask test client): one source of truth with the hook.

For every library patient the timeline endpoint, given the prefetch the hook is given, returns the same assessments
as the ``remission-status`` cards (criteria, category, label, confirmed, values, history, remission); given the same
resources as one FHIR Bundle, the same again. Chart points are the card history's values and thresholds are the
engines' constants. Cards link to the app as a SMART link with the cancer as appContext, and the link can be
turned off.
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from cds_service.app import today
from cds_service.sandbox.patients import LIBRARY_CONFIG, by_id, library
from rules import recist

EXT = "org.remission-cds.assessment"
LIB = library(today())
PATIENTS = by_id(LIB)


@pytest.fixture()
def settings_dict(tmp_path):
    return {"feedback_database_url": f"sqlite:///{tmp_path}/feedback.sqlite3", **LIBRARY_CONFIG}


def _hook(client, patient) -> dict:
    resp = client.post("/cds-services/remission-status", json=patient.hook_request())
    assert resp.status_code == 200
    return resp.get_json()


def _timeline(client, body, patient_id: str | None = None):
    url = "/smart/api/timeline" + (f"?patient={patient_id}" if patient_id else "")
    return client.post(url, data=json.dumps(body), content_type="application/json")


def _bundle_of(prefetch: dict) -> dict:
    resources = []
    for value in prefetch.values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            resources += [e["resource"] for e in value.get("entry") or ()]
        elif isinstance(value, dict):
            resources.append(value)
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


SAME = ("criteria", "category", "label", "outcome", "assessmentDate", "confirmed", "values", "history", "remission",
        "missing", "cancer")


def _key(a: dict) -> tuple:
    return (a["criteria"], (a.get("cancer") or {}).get("condition") or "")


@pytest.mark.parametrize("pid", sorted(PATIENTS))
def test_same_assessments_as_the_hook(client, pid):
    patient = PATIENTS[pid]
    hook = _hook(client, patient)
    cards = {_key(c["extension"][EXT]): c for c in hook["cards"] if EXT in (c.get("extension") or {})}
    prefetch = patient.hook_request()["prefetch"]
    for body, hint in (({"patientId": pid, "prefetch": prefetch}, None), (_bundle_of(prefetch), pid)):
        resp = _timeline(client, body, hint)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:400]
        out = resp.get_json()
        assert out["patient"]["id"] == pid
        got = {_key(c): c for c in out["cancers"]}
        assert set(got) == set(cards)
        for k, card in cards.items():
            a = card["extension"][EXT]
            for field in SAME:
                assert got[k].get(field) == a.get(field), (pid, k, field)
            assert got[k]["summary"] == card["summary"] and got[k]["indicator"] == card["indicator"]
        # the surveillance plan is the surveillance card's plan
        plans = [c["extension"]["org.remission-cds.surveillance"] for c in hook["cards"]
                 if "org.remission-cds.surveillance" in (c.get("extension") or {})]
        shown = [c["surveillance"] for c in out["cancers"] if c.get("surveillance")]
        assert [[(i["id"], i["status"], i.get("dueDate")) for i in p["items"]] for p in plans] == \
               [[(i["id"], i["status"], i.get("dueDate")) for i in p["items"]] for p in shown]
        expected = dataclasses.replace(patient, surveillance={})   # surveillance compared with the card above
        assert expected.problems({"cards": [{"indicator": c["indicator"], "extension": {EXT: c}}
                                            for c in out["cancers"]]}) == []


def test_chart_points_and_thresholds_come_from_the_card_and_the_engine(client):
    patient = PATIENTS["sbx-lung-recist-pr"]
    a = next(c["extension"][EXT] for c in _hook(client, patient)["cards"] if EXT in (c.get("extension") or {}))
    out = _timeline(client, {"patientId": patient.id, "prefetch": patient.hook_request()["prefetch"]}).get_json()
    chart = next(ch for ch in out["cancers"][0]["charts"] if ch["id"] == "burden")
    assert [(p["date"], p["value"], p["category"]) for p in chart["series"][0]["points"]] == \
           [(h["date"], h["values"]["target_sum_mm"], h["category"]) for h in a["history"]]
    refs = {r["kind"]: r["value"] for r in chart["refs"]}
    base, nadir = a["values"]["baseline_sum_mm"], a["values"]["nadir_sum_mm"]
    assert refs["baseline"] == base and refs["nadir"] == nadir
    assert refs["response"] == pytest.approx(base * (1 + float(recist.PR_DECREASE_PCT) / 100))
    assert refs["progression"] == pytest.approx(max(nadir * (1 + float(recist.PD_INCREASE_PCT) / 100),
                                                    nadir + float(recist.PD_ABSOLUTE_MM)))
    assert "100" in chart["description"] and "PR" in chart["description"]   # the text alternative has the numbers


@pytest.mark.parametrize("pid, charts", [("sbx-myeloma-imwg-pr", {"serum-m", "urine-m"}),
                                         ("sbx-thyroid-ata", {"tg"}), ("sbx-aml-eln-cr", {"blasts"}),
                                         ("sbx-prostate-pcwg3", {"psa"}), ("sbx-ovarian-gcig", {"ca125"}),
                                         ("sbx-mzl-lugano-ct", {"burden"}), ("sbx-glioma-rano", {"burden"})])
def test_marker_and_burden_charts_per_criterion(client, pid, charts):
    patient = PATIENTS[pid]
    out = _timeline(client, {"patientId": pid, "prefetch": patient.hook_request()["prefetch"]}).get_json()
    ids = {ch["id"] for c in out["cancers"] for ch in c.get("charts", [])}
    assert charts <= ids
    for c in out["cancers"]:
        for ch in c.get("charts", []):
            assert ch["series"] and all(p["value"] is not None for s in ch["series"] for p in s["points"])
            assert ch["description"].startswith(ch["title"])


def test_other_patients_resources_are_left_out(client):
    mine, other = PATIENTS["sbx-lung-recist-pr"], PATIENTS["sbx-crc-recist-pd"]
    prefetch = mine.hook_request()["prefetch"]
    bundle = _bundle_of(prefetch)
    bundle["entry"] += _bundle_of(other.hook_request()["prefetch"])["entry"]
    out = _timeline(client, bundle, mine.id).get_json()
    assert [(c["criteria"], c["category"]) for c in out["cancers"]] == [("RECIST 1.1", "PR")]


def test_bad_bodies(client):
    assert _timeline(client, []).status_code == 400
    assert _timeline(client, {"resourceType": "Bundle", "type": "collection", "entry": []}).status_code == 400
    assert client.post("/smart/api/timeline", data=b"{not json", content_type="application/json").status_code == 400
    assert client.post("/smart/api/timeline", data=b"").status_code == 400
    # a key the browser could not read is sent as an OperationOutcome: required ones stop, as in the hook
    patient = PATIENTS["sbx-lung-recist-pr"]
    prefetch = dict(patient.hook_request()["prefetch"])
    prefetch["observations"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden"}]}
    resp = _timeline(client, {"patientId": patient.id, "prefetch": prefetch})
    assert resp.status_code == 412 and resp.get_json()["resourceType"] == "OperationOutcome"
    prefetch = dict(patient.hook_request()["prefetch"])
    prefetch["procedures"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden"}]}
    out = _timeline(client, {"patientId": patient.id, "prefetch": prefetch}).get_json()
    assert "procedures" in out["unavailable"]


def test_cards_link_to_the_app_with_the_cancer_as_app_context(client):
    hook = _hook(client, PATIENTS["sbx-two-cancers"])
    assessed = [c for c in hook["cards"] if EXT in (c.get("extension") or {})]
    assert len(assessed) == 2
    for card in assessed:
        links = [l for l in card.get("links", []) if l["type"] == "smart"]
        assert len(links) == 1
        assert links[0]["url"] == "http://localhost/smart/launch"
        ctx = json.loads(links[0]["appContext"])
        assert ctx == {"condition": card["extension"][EXT]["cancer"]["condition"],
                       "criteria": card["extension"][EXT]["criteria"]}
    surveillance = [c for c in hook["cards"] if "org.remission-cds.surveillance" in (c.get("extension") or {})]
    assert all("links" not in c for c in surveillance)


@pytest.mark.parametrize("override", [{"cards": {"smart_link": False}}, {"smart": {"enabled": False}}])
def test_the_link_and_the_app_can_be_turned_off(tmp_path, override):
    from cds_service import create_app

    app = create_app({"feedback_database_url": f"sqlite:///{tmp_path}/fb.sqlite3", **override})
    client = app.test_client()
    hook = _hook(client, PATIENTS["sbx-lung-recist-pr"])
    assert all(l["type"] != "smart" for c in hook["cards"] for l in c.get("links", []))
    page = client.get("/smart/launch")
    assert page.status_code == (404 if override.get("smart") else 200)


def test_public_url_makes_the_link(tmp_path):
    from cds_service import create_app

    app = create_app({"feedback_database_url": f"sqlite:///{tmp_path}/fb.sqlite3",
                      "public_url": "https://cds.example.org/", "cards": {"links": [
                          {"label": "Protocol", "url": "https://example.org/protocol"}]}})
    card = _hook(app.test_client(), PATIENTS["sbx-lung-recist-pr"])["cards"][0]
    assert [(l["type"], l["url"]) for l in card["links"]] == [("absolute", "https://example.org/protocol"),
                                                               ("smart", "https://cds.example.org/smart/launch")]


def test_pages_and_configuration(client):
    for path in ("/smart/launch", "/smart/app"):
        resp = client.get(path)
        assert resp.status_code == 200 and b"/smart/static/app.js" in resp.data
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/smart/static/app.js").status_code == 200
    assert client.get("/smart/static/app.css").status_code == 200
    assert client.get("/smart/").status_code == 302
    conf = client.get("/smart/api/config").get_json()
    assert conf["clientId"] == "remission-cds-timeline" and conf["redirectPath"] == "/smart/app"
    assert conf["scope"].split()[0] == "launch" and conf["standaloneScope"].split()[0] == "launch/patient"
    assert conf["allowedHosts"] == ["127.0.0.1", "localhost", "[::1]"] and conf["openSandbox"] is True
    from cds_service.prefetch import KEY_FOR_TYPE

    assert set(conf["queries"]) == set(KEY_FOR_TYPE.values())
    assert all("{{context.patientId}}" in q for q in conf["queries"].values())


def test_static_files_fetch_nothing_from_outside():
    from pathlib import Path

    static = Path(__file__).resolve().parents[1] / "cds_service" / "smart" / "static"
    for f in static.iterdir():
        text = f.read_text(encoding="utf-8")
        for bad in ("cdn.", "googleapis", "unpkg", "jsdelivr", "<script>", "style=\"", "onclick", "innerHTML",
                    "localStorage.setItem", "console.log"):
            assert bad not in text, (f.name, bad)
