"""The response timeline SMART app in a real browser: Debian's headless Chromium driven by Selenium (chromedriver).

Set-up (session fixtures): Chromium and ChromeDriver from Debian (installed with apt-get when missing and the run
is root, as on a fresh CI machine; a clear failure otherwise, never a skip), the real local FHIR server of the
sandbox (sekmet-fhir, :mod:`cds_service.sandbox.fhir_server`) loaded with library patients, and the service itself
on a loopback port (werkzeug, threads). The app is launched as a clinician would: the open sandbox path
(``/smart/launch?iss=<FHIR base>&patient=<id>``) and a full EHR launch (authorization code + PKCE) through a small
SMART EHR stub in front of the same FHIR server (``tests/smart_ehr_stub.py``).

Each page is compared with the hook: the categories shown are the ``remission-status`` cards' categories for the
same patient read from the same FHIR server, chart points are the card history's values. Screenshots go to
``var/artefacts/smart-*.png`` (gitignored).
"""
from __future__ import annotations

import base64
import dataclasses
import fcntl
import io
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from cds_service.app import today
from cds_service.sandbox.fhir_server import FhirServerError, LocalFhirServer
from cds_service.sandbox.patients import LIBRARY_CONFIG, by_id, library
from cds_service.sandbox.seed import seed
from smart_ehr_stub import SmartEhrStub

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = ROOT / "var" / "artefacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
APT_TIMEOUT_S = 900
PAGE_TIMEOUT_S = 30
CLIENT_ID = "remission-cds-timeline"
EXT = "org.remission-cds.assessment"

AS_OF = today()
PATIENTS = by_id(library(AS_OF))
USED = ("sbx-lung-recist-pr", "sbx-lung-relapse-after-cr", "sbx-myeloma-imwg-pr", "sbx-crc-surveillance",
        "sbx-two-cancers", "sbx-breast-pcr")


# --- set-up -------------------------------------------------------------------------------------------------------

def _ensure_chromium() -> None:
    """Debian's chromium + chromium-driver; installed here when missing and root (a fresh CI machine)."""
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return
    if os.geteuid() != 0:
        pytest.fail(f"the browser tests need {CHROMIUM} and {CHROMEDRIVER}: run "
                    "'apt-get update && apt-get install -y chromium chromium-driver' as root", pytrace=False)
    with open(os.path.join(tempfile.gettempdir(), "remission-cds-chromium.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # two test runs must not run apt-get at once
        if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
            return
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "chromium-driver",
                     "fonts-liberation"]):   # a font family the screenshots can rely on (Recommends skipped)
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=APT_TIMEOUT_S, env=env,
                                      stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                pytest.fail(f"'{' '.join(cmd)}' took more than {APT_TIMEOUT_S} s; the browser tests need Debian's "
                            "chromium and chromium-driver", pytrace=False)
            if proc.returncode != 0:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
                pytest.fail(f"'{' '.join(cmd)}' failed (exit {proc.returncode}); the browser tests need Debian's "
                            f"chromium and chromium-driver:\n{tail}", pytrace=False)
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(f"apt-get installed chromium but {CHROMIUM} or {CHROMEDRIVER} is still missing", pytrace=False)


@pytest.fixture(scope="module")
def fhir(tmp_path_factory):
    """The sandbox FHIR server, open (no authorization: the 'open sandbox' launch), with the patients used here."""
    try:
        server = LocalFhirServer(tmp_path_factory.mktemp("smart-fhir"), tokens=None).start()
    except FhirServerError as exc:
        pytest.fail(f"the local FHIR server (sekmet-fhir in .venv-fhir) could not be installed or started: {exc}",
                    pytrace=False)
    try:
        seed(server.base_url, [PATIENTS[p] for p in USED])
        yield server
    finally:
        server.stop()


class _Recorder:
    """WSGI middleware: remembers whether any request to the service carried the EHR's token (it must not)."""

    def __init__(self, app, needle: list[str]):
        self.app = app
        self.needle = needle
        self.seen_token = False
        self.paths: list[str] = []

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        text = body.decode("utf-8", "replace") + " " + " ".join(str(v) for k, v in environ.items()
                                                                 if k.startswith("HTTP_") or k == "QUERY_STRING")
        if any(n and n in text for n in self.needle):
            self.seen_token = True
        self.paths.append(environ.get("PATH_INFO", ""))
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The service on a loopback port (threads), with the library's configuration (local lab codes)."""
    from werkzeug.serving import make_server

    from cds_service import create_app

    db = tmp_path_factory.mktemp("smart-service") / "feedback.sqlite3"
    app = create_app({"feedback_database_url": f"sqlite:///{db}", **LIBRARY_CONFIG, "hook_deadline_s": 20,
                      "fhir": {"read_timeout_s": 15, "connect_timeout_s": 2}})
    needle: list[str] = []
    recorder = _Recorder(app.wsgi_app, needle)
    app.wsgi_app = recorder
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        yield {"base": base, "app": app, "recorder": recorder, "needle": needle}
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium and ChromeDriver, installed on a fresh (root) machine; fails, never skips, without them."""
    _ensure_chromium()
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    os.environ.setdefault("SE_OFFLINE", "true")   # Selenium Manager must not try to download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1366,1000", "--force-device-scale-factor=1"):
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    except Exception as exc:  # noqa: BLE001 - say why the browser did not start, then fail
        pytest.fail(f"headless Chromium did not start through {CHROMEDRIVER}: {exc}", pytrace=False)
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


# --- helpers ------------------------------------------------------------------------------------------------------

def _hook(service_client_base: str, patient_id: str, fhir_base: str) -> dict:
    """The remission-status hook for the patient, reading the same FHIR server (no prefetch)."""
    import requests

    req = PATIENTS[patient_id].hook_request(with_prefetch=False, fhir_server=fhir_base, token=None)
    resp = requests.post(f"{service_client_base}/cds-services/remission-status", json=req, timeout=30)
    assert resp.status_code == 200, resp.text[:500]
    return resp.json()


def _assessments(hook_body: dict) -> list[dict]:
    return [c["extension"][EXT] for c in hook_body["cards"] if EXT in (c.get("extension") or {})]


def _wait_state(driver, states=("ready",), timeout: float = PAGE_TIMEOUT_S) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = driver.execute_script("return document.body ? document.body.dataset.state : ''") or ""
        if state in states or state == "error":
            break
        time.sleep(0.1)
    if state not in states:
        err = driver.execute_script("var e=document.getElementById('error'); return e ? e.innerText : ''")
        logs = "; ".join(e.get("message", "") for e in driver.get_log("browser"))[-1500:]
        pytest.fail(f"the app ended in state {state!r}, expected {states}: {err} | console: {logs}", pytrace=False)
    return state


def _screenshot(driver, name: str) -> Path:
    """A full-page PNG in var/artefacts (Chrome DevTools: beyond the viewport)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path = ARTEFACTS / f"smart-{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def _page_sections(driver) -> list[dict]:
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('section.cancer')).map(s => ({
          criteria: s.dataset.criteria, category: s.dataset.category, indicator: s.dataset.indicator,
          confirmed: s.dataset.confirmed,
          badge: s.querySelector('[data-role=category]').textContent,
          charts: Array.from(s.querySelectorAll('figure[data-chart-id]')).map(f => f.dataset.chartId),
          history: Array.from(s.querySelectorAll('table.history tbody tr')).map(r => [r.dataset.date,
                   r.querySelector('.badge').textContent, r.cells[3].textContent]),
        }));""")


def _chart_points(driver, section_criteria: str, chart_id: str) -> list[tuple[str, float]]:
    return [tuple(x) for x in driver.execute_script("""
        const s = Array.from(document.querySelectorAll('section.cancer')).find(x => x.dataset.criteria === arguments[0]);
        const f = s.querySelector('figure[data-chart-id="' + arguments[1] + '"]');
        return Array.from(f.querySelectorAll('circle.pt')).map(c => [c.dataset.date, Number(c.dataset.value)]);
        """, section_criteria, chart_id)]


def _open(driver, service, fhir, patient_id: str) -> None:
    from urllib.parse import quote

    driver.get(f"{service['base']}/smart/launch?iss={quote(fhir.base_url, safe='')}&patient={quote(patient_id)}")
    _wait_state(driver)


def _same_categories_as_hook(driver, service, fhir, patient_id: str) -> tuple[list[dict], list[dict]]:
    hook = _assessments(_hook(service["base"], patient_id, fhir.base_url))
    page = _page_sections(driver)
    assert sorted((s["criteria"], s["category"]) for s in page) == sorted((a["criteria"], a["category"]) for a in hook)
    shown = [{"indicator": s["indicator"], "extension": {EXT: {"criteria": s["criteria"], "category": s["category"],
                                                                 "confirmed": s["confirmed"] == "true"}}}
             for s in page]
    expected = dataclasses.replace(PATIENTS[patient_id], surveillance={})   # surveillance: checked on its own
    assert expected.problems({"cards": shown}) == []   # the library's own expectations, too
    for s in page:
        assert s["badge"] == s["category"]
        a = next(a for a in hook if a["criteria"] == s["criteria"])
        # the course table lists every dated category of the card's history, in order
        if a.get("history"):
            assert [(r[0], r[1]) for r in s["history"]] == [(h["date"], h["category"]) for h in a["history"]]
    return page, hook


# --- tests: open sandbox launch -----------------------------------------------------------------------------------

def test_recist_partial_response(browser, service, fhir):
    pid = "sbx-lung-recist-pr"
    _open(browser, service, fhir, pid)
    page, hook = _same_categories_as_hook(browser, service, fhir, pid)
    a = hook[0]
    assert page[0]["category"] == "PR" and "burden" in page[0]["charts"]
    # the tumour-burden chart plots the card's sums of diameters at the card's dates
    want = [(h["date"], h["values"]["target_sum_mm"]) for h in a["history"]]
    assert _chart_points(browser, "RECIST 1.1", "burden") == want
    legend = browser.execute_script(
        "return document.querySelector('figure[data-chart-id=burden] .legend').innerText")
    base, nadir = a["values"]["baseline_sum_mm"], a["values"]["nadir_sum_mm"]
    assert f"Baseline {base:g} mm" in legend and f"Nadir {nadir:g} mm" in legend
    assert f"\u221230 % from baseline ({base * 0.7:g} mm)" in legend
    assert f"+20 % and +5 mm from nadir ({max(nadir * 1.2, nadir + 5):g} mm)" in legend
    text = browser.find_element("css selector", "section.cancer").text
    assert "confirmed" in text and "Remission duration" in text
    assert browser.execute_script("return document.getElementById('mode').hidden") is False   # says: open sandbox
    _screenshot(browser, "recist-pr")


def test_relapse_after_complete_response(browser, service, fhir):
    pid = "sbx-lung-relapse-after-cr"
    _open(browser, service, fhir, pid)
    page, hook = _same_categories_as_hook(browser, service, fhir, pid)
    assert page[0]["category"] == "PD" and page[0]["indicator"] == "critical"
    rem = hook[0]["remission"]
    loss_row = [r for r in page[0]["history"] if r[0] == rem["lossDate"]]
    assert loss_row and "remission lost" in loss_row[0][2]
    first = [r for r in page[0]["history"] if r[0] == rem["remissionStart"]]
    assert first and "remission first met" in first[0][2]
    assert browser.execute_script("return document.querySelector('section.cancer.alert-critical') !== null")
    assert "Remission lost" in browser.find_element("css selector", "dl.course").text
    _screenshot(browser, "relapse-after-cr")


def test_myeloma_marker_charts(browser, service, fhir):
    pid = "sbx-myeloma-imwg-pr"
    _open(browser, service, fhir, pid)
    page, hook = _same_categories_as_hook(browser, service, fhir, pid)
    assert page[0]["category"] == "PR" and {"serum-m", "urine-m"} <= set(page[0]["charts"])
    a = hook[0]
    assert _chart_points(browser, "IMWG 2016", "serum-m") == [(h["date"], h["values"]["serum_M_g_dL"])
                                                              for h in a["history"]]
    legend = browser.execute_script(
        "return document.querySelector('figure[data-chart-id=\"serum-m\"] .legend').innerText")
    assert f"Baseline {a['values']['baseline_serum_M_g_dL']:g} g/dL" in legend and "Partial response" in legend
    _screenshot(browser, "myeloma-pr")


def test_surveillance_calendar_matches_the_card(browser, service, fhir):
    pid = "sbx-crc-surveillance"
    _open(browser, service, fhir, pid)
    _same_categories_as_hook(browser, service, fhir, pid)
    hook = _hook(service["base"], pid, fhir.base_url)
    card_items = {i["id"]: i["status"] for c in hook["cards"]
                  for i in ((c.get("extension") or {}).get("org.remission-cds.surveillance") or {}).get("items", [])}
    page_items = dict(browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-item]')).map(r => [r.dataset.item, r.dataset.status])"))
    assert page_items == card_items and page_items["colonoscopy"] == "overdue"
    overdue = browser.find_element("css selector", ".calendar li.overdue").text
    assert "Colonoscopy" in overdue or "colonoscopy" in overdue
    _screenshot(browser, "surveillance")


def test_two_cancers_and_an_insufficient_data_card(browser, service, fhir):
    for pid in ("sbx-two-cancers", "sbx-breast-pcr"):
        _open(browser, service, fhir, pid)
        page, _ = _same_categories_as_hook(browser, service, fhir, pid)
        toc = browser.execute_script("return document.querySelectorAll('#toc a').length")
        assert toc == len(page) == 2
    assert "insufficient data" in [s["category"] for s in page]


# --- tests: accessibility -----------------------------------------------------------------------------------------

def test_keyboard_focus_and_text_alternatives(browser, service, fhir):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    _open(browser, service, fhir, "sbx-lung-recist-pr")
    browser.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);")
    seen = []
    for _ in range(12):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        seen.append(browser.execute_script("""
            const e = document.activeElement, cs = getComputedStyle(e);
            return {tag: e.tagName.toLowerCase(), cls: e.getAttribute('class') || '', label: e.getAttribute('aria-label') || e.textContent.trim().slice(0, 60),
                    outline: cs.outlineStyle, stroke: cs.strokeWidth};"""))
    assert seen[0]["tag"] == "a" and "Skip" in seen[0]["label"]
    assert any(s["tag"] == "a" and "RECIST 1.1" in s["label"] for s in seen), seen   # the cancer list
    points = [s for s in seen if s["tag"] == "circle"]
    assert points, f"chart points are not reachable with Tab: {seen}"
    assert all(p["label"] for p in points)
    assert any(s["tag"] == "summary" and "Data table" in s["label"] for s in seen), seen   # the chart's data table
    # every focused control shows where the focus is (until the focus leaves the page for the browser's own UI)
    for s in seen:
        if s["tag"] == "body":
            break
        assert s["outline"] != "none" or s["stroke"] in ("4px", "4"), (s, seen)
    # the table of contents moves the focus to the cancer's heading
    browser.find_element("css selector", "#toc a").send_keys(Keys.ENTER)
    assert browser.execute_script("return document.activeElement.tagName") == "H2"
    # every chart: an SVG image with a title and a description, and a data table with one row per point
    charts = browser.execute_script("""
        return Array.from(document.querySelectorAll('svg.chart')).map(s => {
          const t = document.getElementById(s.getAttribute('aria-labelledby'));
          const d = document.getElementById(s.getAttribute('aria-describedby'));
          const fig = s.closest('figure');
          return {role: s.getAttribute('role'), title: t ? t.textContent : '', desc: d ? d.textContent : '',
                  points: s.querySelectorAll('circle.pt').length,
                  rows: fig.querySelector('table') ? fig.querySelector('table tbody').rows.length : 0};
        });""")
    assert len(charts) >= 2
    for c in charts:
        assert c["role"] == "img" and c["title"] and len(c["desc"]) > 20, c
        assert c["rows"] == c["points"] > 0, c
    assert any("Sum of target lesion diameters" in c["title"] for c in charts)


def test_text_contrast_meets_wcag_aa(browser, service, fhir):
    _open(browser, service, fhir, "sbx-lung-relapse-after-cr")
    worst = browser.execute_script("""
        function rgb(s) { const m = s.match(/[\\d.]+/g).map(Number); return m.slice(0, 3); }
        function lum(c) { const a = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
                          return 0.2126 * a[0] + 0.7152 * a[1] + 0.0722 * a[2]; }
        function bg(e) { while (e) { const c = getComputedStyle(e).backgroundColor;
                           if (c && !c.startsWith('rgba(0, 0, 0, 0)') && c !== 'transparent') return rgb(c); e = e.parentElement; }
                         return [255, 255, 255]; }
        let worst = [99, ''];
        for (const e of document.querySelectorAll('.badge, h1, h2, h3, p, dt, dd, td, th, a, summary, .status, .mode, li')) {
          if (!e.offsetParent || !e.textContent.trim()) continue;
          const f = lum(rgb(getComputedStyle(e).color)), b = lum(bg(e));
          const ratio = (Math.max(f, b) + 0.05) / (Math.min(f, b) + 0.05);
          if (ratio < worst[0]) worst = [ratio, e.tagName + '.' + e.className + ': ' + e.textContent.trim().slice(0, 40)];
        }
        return worst;""")
    assert worst[0] >= 4.5, worst


# --- tests: SMART EHR launch (authorization code + PKCE) ------------------------------------------------------------

def test_ehr_launch_with_pkce(browser, service, fhir):
    from urllib.parse import quote

    pid = "sbx-two-cancers"
    hook = _hook(service["base"], pid, fhir.base_url)
    card = next(c for c in hook["cards"] if (c.get("extension") or {}).get(EXT, {}).get("criteria", "").startswith("ATA"))
    link = next(l for l in card["links"] if l["type"] == "smart")
    assert link["url"] == f"{service['base']}/smart/launch"
    stub = SmartEhrStub(fhir.base_url, client_id=CLIENT_ID,
                        launches={"launch-1": {"patient": pid, "appContext": link["appContext"]}}).start()
    service["needle"][:] = [stub.token]
    service["recorder"].seen_token = False
    try:
        # what the EHR does with a smart link: open the launch URL with launch and iss
        browser.get(f"{link['url']}?launch=launch-1&iss={quote(stub.fhir_base, safe='')}")
        _wait_state(browser)
        assert [c for c in stub.checks if not c.startswith("ok")] == [], stub.checks
        assert stub.checks == ["ok authorize", "ok token (PKCE verified)"]
        assert stub.fhir_requests and all(ok for _, ok in stub.fhir_requests)
        assert not service["recorder"].seen_token, "the access token reached the service"
        page, _ = _same_categories_as_hook(browser, service, fhir, pid)
        # the card's appContext selects its cancer; the code left the address bar
        focused = browser.execute_script("return document.querySelector('section.from-card').dataset.criteria")
        assert focused == card["extension"][EXT]["criteria"]
        assert "code=" not in browser.current_url
        assert browser.execute_script("return document.getElementById('mode').hidden") is True
        stored = browser.execute_script("return JSON.stringify(Object.assign({}, sessionStorage, localStorage))")
        assert stub.token not in stored
        _screenshot(browser, "ehr-launch")
        # the authorization code is single-use: replaying the redirect fails cleanly
        browser.get(f"{service['base']}/smart/app?code=replayed&state=unknown")
        _wait_state(browser, ("error",))
    finally:
        stub.stop()
        service["needle"][:] = []


def test_standalone_launch_with_oauth(browser, service, fhir):
    """A FHIR server that offers the authorization code grant: standalone launch signs in (launch/patient)."""
    from urllib.parse import quote

    pid = "sbx-myeloma-imwg-pr"
    stub = SmartEhrStub(fhir.base_url, client_id=CLIENT_ID, launches={"standalone": {"patient": pid}}).start()
    try:
        browser.get(f"{service['base']}/smart/launch?iss={quote(stub.fhir_base, safe='')}")
        _wait_state(browser)
        assert stub.checks == ["ok authorize", "ok token (PKCE verified)"], stub.checks
        _same_categories_as_hook(browser, service, fhir, pid)
    finally:
        stub.stop()


def test_open_sandbox_lists_the_servers_patients(browser, service, fhir):
    from urllib.parse import quote

    browser.get(f"{service['base']}/smart/launch?iss={quote(fhir.base_url, safe='')}")
    _wait_state(browser, ("patients",))
    links = browser.execute_script("return Array.from(document.querySelectorAll('ul.patients a')).map(a => a.href)")
    assert len(links) == len(USED) and all("patient=sbx-" in h for h in links)
    browser.get(links[0])
    _wait_state(browser)


def test_launch_refused_for_a_host_not_allowed(browser, service):
    from urllib.parse import quote

    browser.get(f"{service['base']}/smart/launch?iss={quote('http://fhir.example.org/fhir', safe='')}&patient=x")
    _wait_state(browser, ("error",))
    assert "allowed_hosts" in browser.find_element("id", "error").text
    browser.get(f"{service['base']}/smart/launch?iss={quote('http://fhir.example.org/fhir', safe='')}&launch=abc")
    _wait_state(browser, ("error",))
    assert "allowed_hosts" in browser.find_element("id", "error").text
