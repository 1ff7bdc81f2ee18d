"""Regenerates examples/*.json (the README's curl examples) from the same builders the tests use.

    .venv/bin/python examples/make_examples.py
"""
from __future__ import annotations

import json
from pathlib import Path

from cds_service.sandbox.builders import PatientBuilder

HERE = Path(__file__).resolve().parent


def recist_partial_response() -> PatientBuilder:
    p = PatientBuilder("example-nsclc", name="Example")
    p.condition(icd10="C34.11", text="Non-small cell lung cancer, right upper lobe", onset="2023-12-12")
    lesions = {"T1": p.lesion("T1", "right upper lobe of lung"), "T2": p.lesion("T2", "liver segment VII"),
               "N1": p.lesion("N1", "subcarinal lymph node", nodal=True)}
    visits = {"2024-01-08": (50, 30, 20), "2024-03-04": (33, 21, 12), "2024-04-29": (32, 20, 14)}
    for when, (t1, t2, n1) in visits.items():
        obs = [p.tumor_size(lesions["T1"], when, longest_mm=t1),
               p.tumor_size(lesions["T2"], when, longest_mm=t2),
               p.tumor_size(lesions["N1"], when, longest_mm=n1 + 6, short_axis_mm=n1)]
        p.report(when, results=obs, conclusion="CT chest/abdomen/pelvis with contrast.")
    return p


def main() -> None:
    req = recist_partial_response().hook_request()
    req["hookInstance"] = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
    (HERE / "patient-view-recist.json").write_text(json.dumps(req, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
