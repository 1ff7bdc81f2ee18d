"""A minimal SMART on FHIR EHR on loopback, for the browser test of the EHR launch (authorization code + PKCE).

It plays the EHR's authorization server and stands in front of the real FHIR server (sekmet-fhir, which offers no
user launch) as its gateway:

* ``GET  /fhir/.well-known/smart-configuration``: authorization and token endpoints, ``authorization_code``, S256;
* ``GET  /auth/authorize``: checks what SMART App Launch requires of the app (response_type, client_id,
  redirect_uri, the ``launch`` it issued, ``aud`` = the FHIR base, scope with ``launch``, a state, an S256 code
  challenge) and redirects back with a one-time code, or with ``error`` when something is wrong;
* ``POST /auth/token``: the code exchange: one use, same redirect_uri and client_id, and the PKCE verifier must
  hash to the challenge; answers the bearer token, the patient in context and the card's ``appContext``;
* ``/fhir/...``: answered only with that bearer token (401 otherwise), forwarded to the FHIR server, absolute URLs
  of the upstream in bodies rewritten to the gateway; CORS as a real EHR gateway answers a browser app.

It records what it checked (``checks``) and whether each FHIR request carried the token; it logs nothing.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit


class SmartEhrStub:
    def __init__(self, upstream_base: str, *, client_id: str, launches: dict[str, dict]):
        self.upstream = urlsplit(upstream_base.rstrip("/"))
        self.client_id = client_id
        self.launches = launches            # launch id (or "standalone") -> {"patient": id, "appContext": str}
        self.token = "ehr-" + secrets.token_urlsafe(24)
        self.codes: dict[str, dict] = {}
        self.checks: list[str] = []         # what went wrong at authorize/token ("ok ..." entries when fine)
        self.fhir_requests: list[tuple[str, bool]] = []   # (path without query, carried the token)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def fhir_base(self) -> str:
        return self.origin + "/fhir"

    def note(self, text: str) -> None:
        with self._lock:
            self.checks.append(text)

    def start(self) -> "SmartEhrStub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # noqa: ANN002 - silent: URLs carry codes and patient ids
                return

            def _send(self, status: int, body: bytes = b"", ctype: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_OPTIONS(self) -> None:  # CORS preflight (the Authorization header makes FHIR reads non-simple)
                self._send(204, headers={"Access-Control-Allow-Methods": "GET, POST",
                                         "Access-Control-Allow-Headers": "Authorization, Accept, Content-Type",
                                         "Access-Control-Max-Age": "600"})

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path == "/fhir/.well-known/smart-configuration":
                    conf = {"authorization_endpoint": stub.origin + "/auth/authorize",
                            "token_endpoint": stub.origin + "/auth/token",
                            "grant_types_supported": ["authorization_code"],
                            "code_challenge_methods_supported": ["S256"],
                            "capabilities": ["launch-ehr", "launch-standalone", "client-public",
                                             "context-ehr-patient", "permission-v2"]}
                    self._send(200, json.dumps(conf).encode())
                elif path == "/auth/authorize":
                    self._authorize({k: v[0] for k, v in parse_qs(query).items()})
                elif path.startswith("/fhir/"):
                    self._fhir()
                else:
                    self._send(404)

            def do_POST(self) -> None:
                if self.path == "/auth/token":
                    length = int(self.headers.get("Content-Length") or 0)
                    form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                    self._token(form)
                else:
                    self._send(405)

            def _authorize(self, q: dict[str, str]) -> None:
                problems = []
                if q.get("response_type") != "code":
                    problems.append("response_type")
                if q.get("client_id") != stub.client_id:
                    problems.append("client_id")
                if q.get("aud") != stub.fhir_base:
                    problems.append("aud")
                scopes = (q.get("scope") or "").split()
                launch = q.get("launch")
                if launch is None:   # standalone launch: the EHR picks the patient (launches["standalone"])
                    launch = "standalone"
                    if "launch/patient" not in scopes or "launch" in scopes:
                        problems.append("scope")
                elif "launch" not in scopes:
                    problems.append("scope")
                if launch not in stub.launches:
                    problems.append("launch")
                if q.get("code_challenge_method") != "S256" or len(q.get("code_challenge") or "") < 43:
                    problems.append("code_challenge")
                if not q.get("state"):
                    problems.append("state")
                redirect = q.get("redirect_uri") or ""
                if not redirect.startswith("http://127.0.0.1:"):
                    self._send(400, b'{"error":"invalid_request","error_description":"redirect_uri"}')
                    return
                if problems:
                    stub.note("authorize refused: " + ",".join(problems))
                    target = redirect + "?" + urlencode({"error": "invalid_request", "state": q.get("state", ""),
                                                         "error_description": ",".join(problems)})
                else:
                    code = secrets.token_urlsafe(16)
                    with stub._lock:
                        stub.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": redirect,
                                            "launch": launch, "scope": q["scope"]}
                    stub.note("ok authorize")
                    target = redirect + "?" + urlencode({"code": code, "state": q["state"]})
                self._send(302, headers={"Location": target})

            def _token(self, form: dict[str, str]) -> None:
                with stub._lock:
                    grant = stub.codes.pop(form.get("code", ""), None)   # one use only
                problems = []
                if grant is None:
                    problems.append("code")
                else:
                    if form.get("grant_type") != "authorization_code":
                        problems.append("grant_type")
                    if form.get("redirect_uri") != grant["redirect_uri"]:
                        problems.append("redirect_uri")
                    if form.get("client_id") != stub.client_id:
                        problems.append("client_id")
                    digest = hashlib.sha256((form.get("code_verifier") or "").encode()).digest()
                    if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
                        problems.append("code_verifier")
                if problems:
                    stub.note("token refused: " + ",".join(problems))
                    self._send(400, json.dumps({"error": "invalid_grant",
                                                "error_description": ",".join(problems)}).encode())
                    return
                stub.note("ok token (PKCE verified)")
                ctx = stub.launches[grant["launch"]]
                body = {"access_token": stub.token, "token_type": "Bearer", "expires_in": 300,
                        "scope": grant["scope"], "patient": ctx["patient"], "need_patient_banner": True}
                if ctx.get("appContext"):
                    body["appContext"] = ctx["appContext"]
                self._send(200, json.dumps(body).encode())

            def _fhir(self) -> None:
                auth = self.headers.get("Authorization") or ""
                ok = auth == f"Bearer {stub.token}"
                with stub._lock:
                    stub.fhir_requests.append((self.path.split("?")[0], ok))
                if not ok:
                    self._send(401, b'{"resourceType":"OperationOutcome","issue":[{"severity":"error",'
                                    b'"code":"login","diagnostics":"a bearer token is required"}]}',
                               "application/fhir+json")
                    return
                conn = http.client.HTTPConnection(stub.upstream.hostname, stub.upstream.port, timeout=30)
                try:
                    conn.request("GET", self.path, headers={"Accept": "application/fhir+json"})
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                up = f"{stub.upstream.scheme}://{stub.upstream.netloc}".encode()
                self._send(resp.status, data.replace(up, stub.origin.encode()),
                           resp.getheader("Content-Type") or "application/fhir+json")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
