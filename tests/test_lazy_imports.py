"""What a service worker does not import in the default configuration (open auth, SQLite feedback store, clients that
send their prefetch), and that the optional paths still load what they need.

Each of these packages costs a worker several MiB of resident memory (docs/performance.md, memory per worker):
PyJWT + cryptography ~9, the UCUM registry (ucumvert, pint, lark) ~11, requests ~5, psycopg ~9, rich (a test
tool structlog would pick up) ~5, PyYAML ~1 (no configuration file; plain environment values). They are checked in
a fresh interpreter, since the test process imports them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cds_service.sandbox.vignettes import to_patient
from conftest import ROOT, load_vignettes

NOT_IN_A_DEFAULT_WORKER = ("jwt", "cryptography", "requests", "urllib3", "psycopg", "ucumvert", "pint", "lark",
                           "rich", "pygments", "better_exceptions", "yaml")

WORKER = r"""
import json, sys
from decimal import Decimal

import cds_service
from fhir_mappings import units

config = json.loads(sys.argv[1])
app = cds_service.create_app(config)
client = app.test_client()
statuses = []
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        resp = client.post("/cds-services/remission-status", data=f.read(), content_type="application/json")
    statuses.append((resp.status_code, len(resp.get_json()["cards"])))
# every conversion a mapper can ask for, as the hook calls above did for some
for (unit, target) in list(units._FACTORS) + list(units._UNCONVERTIBLE):
    try:
        units.normalise(Decimal(1), unit, units.UnitSpec("x", target, (unit,)))
    except units.UnitError:
        pass
print(json.dumps({"statuses": statuses, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _worker(tmp_path: Path, config: dict | None, bodies: list[bytes]) -> tuple[dict, str]:
    """Runs WORKER: ``config`` None is the default configuration with the feedback URL from the environment."""
    paths = []
    for i, body in enumerate(bodies):
        p = tmp_path / f"body{i}.json"
        p.write_bytes(body)
        paths.append(str(p))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMISSION_CDS_")}
    env["REMISSION_CDS_FEEDBACK_DATABASE_URL"] = f"sqlite:///{tmp_path}/feedback.sqlite3"
    proc = subprocess.run([sys.executable, "-c", WORKER, json.dumps(config), *paths], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def _vignette_body(vid: str) -> bytes:
    return json.dumps(to_patient(next(v for v in load_vignettes() if v["id"] == vid)).hook_request()).encode()


def test_a_default_worker_imports_none_of_the_optional_heavy_packages(tmp_path):
    sys.path.insert(0, str(ROOT))
    try:
        from bench.generate import build_body
    finally:
        sys.path.remove(str(ROOT))
    bodies = [build_body(100)] + [_vignette_body(v) for v in ("RECIST-01", "ELN-13", "IMWG-07")]
    out, stderr = _worker(tmp_path, None, bodies)
    assert [s for s, _ in out["statuses"]] == [200] * len(bodies)
    assert all(n > 0 for _, n in out["statuses"])
    loaded = set(out["modules"]) & set(NOT_IN_A_DEFAULT_WORKER)
    assert not loaded, f"imported by a default worker: {sorted(loaded)}"
    # the log lines are still one JSON object each (structlog's JSONRenderer), with level and UTC timestamp
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    relaxed = next(line for line in lines if line["event"] == "security_relaxed")
    assert relaxed["level"] == "warning" and relaxed["timestamp"].endswith("Z")


def test_jwt_mode_imports_pyjwt_at_start_not_on_the_first_call(tmp_path):
    config = {"feedback_database_url": f"sqlite:///{tmp_path}/fb.sqlite3",
              "auth": {"mode": "jwt", "trusted_issuers": [{"iss": "https://ehr.example.org", "jwks": {"keys": []}}]}}
    out, _ = _worker(tmp_path, config, [])
    assert "jwt" in out["modules"] and "cryptography" in out["modules"]


# --- jwt mode with keys from a JWKS URL and an allow-listed jku (PyJWKClient, imported on first use) -------------

ISS = "https://ehr.example.org"
BASE = "https://cds.example.org/cds-services"


@pytest.fixture(scope="module")
def jwks_server():
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "url1", "alg": "ES384",
                                                                                "use": "sig"}
    payload = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield key, f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


def _token(key, aud: str, kid: str, **headers) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, key, algorithm="ES384", headers={"kid": kid, **headers})


@pytest.mark.parametrize("how", ["jwks_url", "jku"])
def test_keys_from_a_jwks_url_or_an_allow_listed_jku_are_used(tmp_path, jwks_server, how):
    from cds_service import create_app

    key, url = jwks_server
    issuer = {"iss": ISS, "jwks_url": url} if how == "jwks_url" else {"iss": ISS, "jwks": {"keys": []},
                                                                        "jku_allowlist": [url]}
    client = create_app({"feedback_database_url": f"sqlite:///{tmp_path}/fb.sqlite3", "public_url": BASE,
                         "auth": {"mode": "jwt", "trusted_issuers": [issuer]}}).test_client()
    extra = {"jku": url} if how == "jku" else {}
    ok = _token(key, BASE, "url1", **extra)
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {ok}"}).status_code == 200
    unknown_kid = _token(key, BASE, "nope", **extra)
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {unknown_kid}"}).status_code == 401
    other = _token(ec.generate_private_key(ec.SECP384R1()), BASE, "url1", **extra)
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {other}"}).status_code == 401
    if how == "jku":
        elsewhere = _token(key, BASE, "url1", jku=url + "?other")
        assert client.get("/cds-services", headers={"Authorization": f"Bearer {elsewhere}"}).status_code == 401
