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


def test_benchmark_command_runs_the_service_and_every_echo(tmp_path):
    """`bench/run.py` end to end at a tiny size: four gunicorn servers start, answer, are measured and stopped.

    No timing is asserted (these machines are shared); only that the command works and reports every target."""
    import json
    import subprocess

    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--sizes", "20", "--concurrency", "1",
           "--repeats", "1", "--duration", "0.3", "--min-requests", "3", "--workers", "1", "--no-inprocess",
           "--no-write", "--json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(out.read_text())
    (size,) = data["sizes"]
    targets = {"echo", "echo-nogc", "bare", "service"}
    assert {c["target"] for c in size["cells"]} == targets
    assert all(c["errors"] == 0 and c["count"] >= 3 for c in size["cells"])
    assert set(size["peak_rss"]) == targets and all(v > 0 for v in size["peak_rss"].values())
    assert "G1 p50 service/echo, N=20, c=1" in done.stdout and "peak ratio service/echo" in done.stdout
    assert "against `echo-nogc`" in done.stdout and "peak ratio service/bare" in done.stdout
    (summary,) = data["summaries"]
    assert set(summary["stricter"]) == {"echo-nogc", "bare"} and summary["ratio"]["p50_ms"] > 0
