"""The README's curl example is real: posting exactly that file returns the card the README shows."""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_returns_the_card_shown(client):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "--data @examples/patient-view-recist.json" in readme
    shown = re.search(r'"summary": "(RECIST 1\.1: [^"]+)"', readme).group(1)
    body = json.loads((ROOT / "examples" / "patient-view-recist.json").read_text(encoding="utf-8"))
    resp = client.post("/cds-services/remission-status", json=body)
    assert resp.status_code == 200
    card = resp.get_json()["cards"][0]
    assert card["summary"] == shown
    ext = card["extension"]["org.remission-cds.assessment"]
    shown_values = json.loads(re.search(r'"values": (\{[^}]+\})', readme).group(1))
    for key, value in shown_values.items():
        assert ext["values"][key] == value, key


def test_readme_names_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "python3 dev.py run" in readme and "python3 dev.py test" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 dev.py test" in ci


def test_cli_evaluate_and_bad_input(tmp_path, capsys):
    from cds_service.cli import main

    assert main(["evaluate", str(ROOT / "examples" / "patient-view-recist.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cards"][0]["assessment"]["category"] == "PR"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["evaluate", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text('{"resourceType": "Patient"}')
    assert main(["evaluate", str(other)]) == 2
    assert main(["evaluate", str(tmp_path / "missing.json")]) == 2
