"""The benchmark's request generator (bench/generate.py) makes a valid patient-view call that the app answers.

No timing here: the benchmark itself is `python bench/run.py` (docs/performance.md).
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    if str(ROOT) not in sys.path:  # bench/ is not an installed package
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("bench.generate")


def test_generated_request_is_a_valid_hook_call_and_answered(client):
    """A small N: the envelope validates, the prefetch has the declared shape, and the service says 200."""
    from cds_service.models import HookRequest

    gen = _generator()
    body = gen.build_body(40)
    req = orjson.loads(body)
    HookRequest.model_validate(req)
    assert req["hook"] == "patient-view" and req["context"]["patientId"] == gen.PATIENT_ID
    obs = [e["resource"] for e in req["prefetch"]["observations"]["entry"]]
    assert len(obs) == 40 and all(o["resourceType"] == "Observation" for o in obs)
    codes = {c["code"] for o in obs for c in o["code"]["coding"]}
    assert "21889-1" in codes                  # TumorSize, read by RECIST 1.1
    assert {"2039-6", "85354-9"} <= codes      # a tumour marker and a vital sign the service must filter out
    assert all(o["subject"]["reference"] == f"Patient/{gen.PATIENT_ID}" for o in obs)
    assert req["prefetch"]["conditions"]["entry"] and req["prefetch"]["reports"]["entry"]
    assert gen.build_body(40) == body          # deterministic

    resp = client.post("/cds-services/remission-status", data=body, content_type="application/json")
    assert resp.status_code == 200
    assert resp.get_json()["cards"]
