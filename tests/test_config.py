"""Configuration for health-IT teams: the example file, every kind of mistake, and what a change does."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.config import load_settings
from cds_service.config_check import check_file, masked
from cds_service.sandbox.vignettes import to_patient
from conftest import assessment_cards, load_vignettes

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "remission-cds.example.yaml"
HOOK = "/cds-services/remission-status"


def test_example_file_loads_and_checks_clean():
    assert check_file(EXAMPLE) == []
    s = load_settings(EXAMPLE)
    assert s.services["remission-status"].title == "Cancer response and remission"
    assert ("http://hospital.example/lab|NEUT-ABS", "10*3/uL") in s.local_codes()["anc"]


BAD_FILES = [
    ("servces:\n  remission-status: {enabled: true}\n", 1, "unknown key 'servces'; did you mean 'services'?"),
    ("fhir:\n  read_timeout_s: -1\n", 2, "fhir.read_timeout_s: Input should be greater than 0"),
    ("fhir:\n  alow_http: false\n", 2, "unknown key 'alow_http'; did you mean 'allow_http'?"),
    ("services:\n  remision-status: {enabled: false}\n", 2, "unknown service 'remision-status'; did you mean"),
    ("mappings:\n  aml:\n    anc:\n      - {system: http://h.example/lab, code: A1, unit: 10*3/L}\n", 4,
     "mappings.aml.anc: unit '10*3/L' is a million times too small for a blood count"),
    ("mappings:\n  aml:\n    ancc:\n      - {system: http://h.example/lab, code: A1}\n", 3,
     "no mapper reads an input called 'ancc'; did you mean 'anc'?"),
    ("mappings:\n  myeloma:\n    serum_m_protein:\n      - {system: http://h.example/lab, code: M1, unit: mmol/L}\n",
     4, "is not a unit for serum M-protein"),
    ("environment: production\n", 1, "auth.mode must be jwt in production"),
    ("auth:\n  mode: jwt\n", 2, "mode jwt needs at least one trusted issuer"),
    ("surveillance:\n  cancer_types:\n    colorectal_II_III:\n      items:\n        - id: cea\n          bands: nope\n",
     1, "surveillance"),
    ("lookback_days: [1, 2]\n", 1, "lookback_days"),
    ("key: [unclosed\n", 2, "not valid YAML"),
    ("- just\n- a list\n", 1, "mapping of keys at the top level"),
]


@pytest.mark.parametrize("text,line,message", BAD_FILES, ids=[b[2][:40] for b in BAD_FILES])
def test_each_kind_of_mistake_gives_its_message_and_line(tmp_path, text, line, message):
    f = tmp_path / "config.yaml"
    f.write_text(text)
    problems = check_file(f)
    assert problems, "a problem was expected"
    hit = [p for p in problems if message in str(p)]
    assert hit, [str(p) for p in problems]
    if message != "surveillance":
        assert hit[0].line == line, str(hit[0])


def test_cli_check_config_exit_codes(tmp_path, capsys):
    from cds_service.cli import main

    assert main(["check-config", str(EXAMPLE)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("servces: {}\n")
    assert main(["check-config", str(bad)]) == 1
    assert "did you mean 'services'" in capsys.readouterr().out


def test_show_config_masks_secrets(monkeypatch, capsys):
    from cds_service.cli import main

    monkeypatch.setenv("REMISSION_CDS_FEEDBACK_DATABASE_URL", "postgresql://cds:s3cret-pw@db.example/cds")
    assert main(["show-config"]) == 0
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out and "postgresql://cds:***@db.example/cds" in out
    assert masked(load_settings({"auth": {"mode": "jwt", "trusted_issuers": [
        {"iss": "x", "jwks": {"keys": [{"kty": "EC"}]}}]}}))["auth"]["trusted_issuers"][0]["jwks"] == "***"


def test_environment_overrides_win(tmp_path, monkeypatch):
    f = tmp_path / "c.yaml"
    f.write_text("lookback_days: 1095\nfhir:\n  read_timeout_s: 2.0\n")
    monkeypatch.setenv("REMISSION_CDS_LOOKBACK_DAYS", "400")
    monkeypatch.setenv("REMISSION_CDS_FHIR__READ_TIMEOUT_S", "3.5")
    s = load_settings(f)
    assert s.lookback_days == 400 and s.fhir.read_timeout_s == 3.5


def _eln_cr_with_local_anc():
    p = to_patient(next(v for v in load_vignettes() if v["id"] == "ELN-01"))
    for r in p.resources:
        codes = [c.get("code") for c in (r.get("code") or {}).get("coding", [])]
        if r["resourceType"] == "Observation" and "751-8" in codes:
            r["code"] = {"coding": [{"system": "http://hospital.example/lab", "code": "NEUT-ABS"}]}
            r["valueQuantity"] = {"value": 1.5}  # no unit: the configured unit applies
    return p


def test_a_configured_local_code_changes_the_assessment(tmp_path):
    from cds_service import create_app

    p = _eln_cr_with_local_anc()
    plain = create_app({"feedback_database_url": f"sqlite:///{tmp_path}/a.sqlite3"}).test_client()
    without = assessment_cards(plain.post(HOOK, json=p.hook_request()).get_json())
    assert not without or without[0]["category"] != "CR"
    configured = create_app({"feedback_database_url": f"sqlite:///{tmp_path}/b.sqlite3", "mappings": {
        "aml": {"anc": [{"system": "http://hospital.example/lab", "code": "NEUT-ABS", "unit": "10*3/uL"}]}}})
    c = configured.test_client()
    with_code = assessment_cards(c.post(HOOK, json=p.hook_request()).get_json())
    assert with_code[0]["category"] == "CR"
    prefetch = next(s for s in c.get("/cds-services").get_json()["services"] if s["id"] == "remission-status")["prefetch"]
    assert "http://hospital.example/lab|NEUT-ABS" in prefetch["observations"]


def test_a_schedule_override_changes_the_due_dates(tmp_path, monkeypatch):
    import cds_service.app as appmod
    from cds_service import create_app
    from test_remission_cards import colorectal_cr

    monkeypatch.setattr(appmod, "today", lambda: date(2026, 11, 22))
    override = {"cancer_types": {"colorectal_II_III": {"items": [{
        "id": "cea", "label": "CEA", "kind": "lab", "type": "recurring",
        "bands": [{"from_month": 0, "to_month": 60, "every": [1, 2], "unit": "months"}],
        "citation": "Hospital protocol v3", "version": "local v3", "evidence": "local protocol", "verify": False,
        "codes": ["http://loinc.org|2039-6"]}]}}}

    def cea(settings):
        app = create_app({"feedback_database_url": f"sqlite:///{tmp_path}/{len(settings)}.sqlite3", **settings})
        body = app.test_client().post(HOOK, json=colorectal_cr(cea_last="2026-06-01").hook_request()).get_json()
        surv = next(c for c in body["cards"] if "org.remission-cds.surveillance" in c.get("extension", {}))
        return {i["id"]: i for i in surv["extension"]["org.remission-cds.surveillance"]["items"]}["cea"]

    assert cea({})["dueDate"] == "2026-09-01"
    changed = cea({"surveillance": override})
    assert changed["dueDate"] == "2026-07-01" and changed["status"] == "overdue"


def test_a_disabled_service_leaves_discovery_and_answers_404(tmp_path):
    from cds_service import create_app

    app = create_app({"feedback_database_url": f"sqlite:///{tmp_path}/c.sqlite3",
                      "services": {"surveillance-order-check": {"enabled": False}}})
    c = app.test_client()
    ids = {s["id"] for s in c.get("/cds-services").get_json()["services"]}
    assert ids == {"remission-status"}
    assert c.post("/cds-services/surveillance-order-check", json={}).status_code == 404


def _env_value_with_yaml(value: str):
    """How an environment override was read before the plain-string shortcut: always through YAML."""
    import yaml

    try:
        return yaml.safe_load(value) if value else value
    except yaml.YAMLError:
        return value


def _outcome(fn, value: str):
    try:
        out = fn(value)
    except Exception as exc:  # noqa: BLE001 - e.g. a date YAML cannot build: both ways must raise it
        return ("raises", type(exc).__name__)
    return (type(out).__name__, repr(out))


_PLAIN_EXAMPLES = ["sqlite:////var/lib/remission-cds/feedback.sqlite3", "postgresql://cds:pw@db.example:5432/cds",
                   "https://cds.example.org/cds-services", "production", "sandbox", "jwt", "info", "/tmp/x", "_x",
                   "a:b", "Bearer", "k=v", "x~y", "p50%", "user@host"]
_YAML_EXAMPLES = ["true", "True", "yes", "no", "on", "off", "null", "~", "open", "3", "3.5", "-1", ".inf", "1e3",
                  "2026-01-02", "[a, b]", "{a: 1}", "a: b", "a:", "key:", "'quoted'", "a #c", "*x", "&y", "<<", "=",
                  "[", "- a", "12:30", "50%", "0x1F", "Null", "NO", "Off", "y", "n", "mode: jwt"]


@pytest.mark.parametrize("value", _PLAIN_EXAMPLES + _YAML_EXAMPLES)
def test_environment_values_read_as_yaml_reads_them(value):
    from cds_service.config import _PLAIN_YAML_STRING, _env_value

    assert _outcome(_env_value, value) == _outcome(_env_value_with_yaml, value)
    if value in _PLAIN_EXAMPLES:
        assert _PLAIN_YAML_STRING.fullmatch(value)  # no YAML parser needed for these


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=40),
                 st.text(alphabet="abcfnotyANOTY019_./:@%+=~-#[]{}, '\"!&*?|>", max_size=20),
                 st.from_regex(r"[A-EG-MP-SU-XZa-eg-mp-su-xz/_][A-Za-z0-9_./:@%+=~-]*", fullmatch=True)))
def test_environment_values_read_as_yaml_reads_them_for_any_text(value):
    from cds_service.config import _env_value

    assert _outcome(_env_value, value) == _outcome(_env_value_with_yaml, value)
