"""The vignettes command: cases routed by their criteria when the id prefix is new, a case's own criteria options
(a stated pCR definition), and every failure counted and reported without stopping the run."""
from __future__ import annotations

import copy
import json

import pytest

from cds_service.cli import main
from conftest import load_vignettes

PUBLIC = {v["id"]: v for v in load_vignettes()}


def _run(tmp_path, capsys, cases: list[dict]) -> tuple[int, str]:
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    code = main(["vignettes", str(path)])
    return code, capsys.readouterr().out


def _renamed(vid: str, new_id: str) -> dict:
    v = copy.deepcopy(PUBLIC[vid])
    v["id"] = new_id
    return v


def test_a_new_id_prefix_is_routed_by_the_criteria(tmp_path, capsys):
    cases = [_renamed("ELN-01", "AML-901"), _renamed("RECIST-01", "SOLID-7"), _renamed("IMWG-01", "MM-3")]
    code, out = _run(tmp_path, capsys, cases)
    assert code == 0 and "3 passed, 0 failed" in out, out


def _dcis_case(definition: str | None, category: str) -> dict:
    inputs = {"surgery_date": "2024-07-02", "ypT": "ypTis", "ypN": "ypN0 (0/2 sentinel nodes)",
              "residual_DCIS": True}
    if definition is not None:
        inputs["pCR_definition"] = definition
    return {"id": f"PCR-9{len(definition or '')}", "criteria": "Breast pCR", "inputs": inputs,
            "expected": {"category": category}}


@pytest.mark.parametrize("definition,category", [
    (None, "pCR"),                                   # the default: ypT0/is ypN0 (residual DCIS allowed)
    ("ypT0/is ypN0 (residual DCIS allowed)", "pCR"),
    ("ypT0 ypN0 (no invasive or in situ residual)", "not pCR"),
])
def test_a_stated_pcr_definition_is_used(tmp_path, capsys, definition, category):
    code, out = _run(tmp_path, capsys, [_dcis_case(definition, category)])
    assert code == 0 and "1 passed, 0 failed" in out, out


def test_an_unreadable_definition_is_a_failure_naming_the_field(tmp_path, capsys):
    code, out = _run(tmp_path, capsys, [_dcis_case("whatever the surgeon prefers", "pCR")])
    assert code == 1 and "0 passed, 1 failed" in out and "pCR_definition" in out, out


def test_failures_are_counted_and_the_run_goes_on(tmp_path, capsys):
    unknown = {"id": "XYZ-1", "criteria": "Some future criteria", "inputs": {}, "expected": {"category": "CR"}}
    broken = _renamed("RECIST-01", "RECIST-901")
    broken["inputs"]["timepoints"] = "not a list"
    code, out = _run(tmp_path, capsys, [unknown, broken, _renamed("ELN-01", "ELN-902")])
    assert code == 1 and "1 passed, 2 failed" in out, out
    assert "no converter" in out
