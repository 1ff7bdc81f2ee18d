"""A loopback HTTP server that plays the EHR's FHIR server, only to inject faults (tests/test_faults.py).

The fault is chosen by the base URL the hook call names: ``http://127.0.0.1:<port>/f/<mode>/<scope>/fhir``.
``scope`` is ``all`` (every request misbehaves) or ``optional`` (only the optional data do: every type but
Patient, Condition and Observation, which answer normally). Searches come as GET or as POST ``[type]/_search``.
Modes:

- ``ok``        the patient's data (search Bundles built from a sandbox patient's prefetch)
- ``slow``      answers after ``SLOW_S`` seconds, beyond the service's read timeout and hook deadline
- ``e500``      HTTP 500 with an OperationOutcome
- ``busy429``   HTTP 429 with ``Retry-After: 1``; ``busy503``: HTTP 503 with ``Retry-After: 120``
- ``drop``      sends the headers and half the body, then closes the connection
- ``reset``     closes the connection without answering
- ``redirect``  HTTP 302 to another host (``redirect_base``: a second server that records what reaches it)
- ``trickle``   sends the headers, then the body one byte every 0.2 s (at most ``TRICKLE_S`` seconds)
- ``garbage``   HTTP 200 with hostile bodies in turn: not JSON, a JSON array, ``entry`` or ``link`` not a list, a
                next link that is a number, an invalid URL, or an absolute URL on the other host

Every sleep is bounded. It records, per request, the path and whether the expected bearer token came with it,
never the token itself; it logs nothing.
"""
from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_S = 3.5
TRICKLE_S = 6.0
MODES = ("ok", "slow", "e500", "busy429", "busy503", "drop", "reset", "redirect", "trickle", "garbage")
REQUIRED_TYPES = {"Patient", "Condition", "Observation"}  # never faulty in the "optional" scope
KEY_OF_TYPE = {"Patient": "patient", "Condition": "conditions", "Observation": "observations",
               "DiagnosticReport": "reports", "BodyStructure": "lesions", "MedicationRequest": "medications",
               "Procedure": "procedures"}  # other types: an empty search Bundle


def _bind_other_loopback() -> str:
    """127.0.0.2 when this machine routes it (Linux does), else 127.0.0.1 (another port: another host to HTTP)."""
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
        return "127.0.0.2"
    except OSError:
        return "127.0.0.1"


def _read_body(h: BaseHTTPRequestHandler) -> bytes:
    length = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(min(length, 1 << 20)) if length > 0 else b""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - the service hung up: expected
        return


class Recorder:
    """The redirect / paging target on "another host": it must never see a request with the token."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bool]] = []
        self.token = ""
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # noqa: ANN002 - silent
                return

            def do_GET(self) -> None:  # noqa: N802
                _read_body(self)
                auth = self.headers.get("Authorization") or ""
                rec.requests.append((self.path, bool(rec.token) and rec.token in auth))
                body = b'{"resourceType":"Bundle","type":"searchset","entry":[]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

        self.host = _bind_other_loopback()
        self._server = _Server((self.host, 0), Handler)
        self.base = f"http://{self.host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def start(self) -> "Recorder":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class FaultServer:
    def __init__(self, prefetch: dict, token: str, redirect_base: str) -> None:
        self.prefetch = prefetch
        self.token = token
        self.redirect_base = redirect_base.rstrip("/")
        self.lock = threading.Lock()
        self.requests: list[tuple[str, bool]] = []   # (path, carried the expected token)
        self.faults: Counter[str] = Counter()           # mode -> fault responses injected
        self._garbage = itertools.count()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # noqa: ANN002 - silent: paths carry patient ids
                return

            def do_GET(self) -> None:  # noqa: N802
                try:
                    _read_body(self)
                    srv._handle(self)
                except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
                    self.close_connection = True  # the service gave up on this request: fine

            do_POST = do_GET  # POST [type]/_search

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def base(self, mode: str, scope: str = "all") -> str:
        assert mode in MODES and scope in ("all", "optional")
        return f"http://127.0.0.1:{self.port}/f/{mode}/{scope}/fhir"

    def start(self) -> "FaultServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- answers ---------------------------------------------------------------------------------------------------
    def _data(self, rtype: str) -> bytes:
        value = self.prefetch.get(KEY_OF_TYPE.get(rtype, ""))
        if value is None:
            value = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}
        return json.dumps(value).encode()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = h.path.split("?", 1)[0].split("/")
        # /f/<mode>/<scope>/fhir/<Type>[/<id>]
        mode, scope = (parts[2], parts[3]) if len(parts) > 5 and parts[1] == "f" else ("ok", "all")
        rtype = parts[5] if len(parts) > 5 else ""
        with self.lock:
            self.requests.append((h.path, self.token in (h.headers.get("Authorization") or "")))
        faulty = mode != "ok" and (scope == "all" or rtype not in REQUIRED_TYPES)
        if not faulty:
            return self._send(h, 200, self._data(rtype))
        with self.lock:
            self.faults[mode] += 1
        if mode == "slow":
            time.sleep(SLOW_S)
            return self._send(h, 200, self._data(rtype))
        if mode == "e500":
            return self._send(h, 500, b'{"resourceType":"OperationOutcome","issue":[{"severity":"fatal",'
                                      b'"code":"exception","diagnostics":"injected fault"}]}')
        if mode in ("busy429", "busy503"):
            retry = "1" if mode == "busy429" else "120"
            return self._send(h, 429 if mode == "busy429" else 503, b'{"resourceType":"OperationOutcome"}',
                              {"Retry-After": retry})
        if mode == "drop":
            body = self._data(rtype)
            h.send_response(200)
            h.send_header("Content-Type", "application/fhir+json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return None
        if mode == "reset":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return None
        if mode == "redirect":
            return self._send(h, 302, b"", {"Location": self.redirect_base + h.path})
        if mode == "trickle":
            body = self._data(rtype)
            h.send_response(200)
            h.send_header("Content-Type", "application/fhir+json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.flush()
            end = time.monotonic() + TRICKLE_S
            for i in range(len(body)):
                if time.monotonic() > end:
                    break
                h.wfile.write(body[i:i + 1])
                h.wfile.flush()
                time.sleep(0.2)
            h.close_connection = True
            return None
        if mode == "garbage":
            variants = [
                b"<html><body>Service Unavailable</body></html>",
                b'[{"resourceType": "Bundle"}]',
                b'{"resourceType": "Bundle", "entry": 5}',
                b'{"resourceType": "Bundle", "entry": [], "link": 5}',
                b'{"resourceType": "Bundle", "entry": [], "link": [{"relation": "next", "url": 5}]}',
                b'{"resourceType": "Bundle", "entry": [], "link": [{"relation": "next", "url": "http://[bad"}]}',
                json.dumps({"resourceType": "Bundle", "entry": [], "link": [
                    {"relation": "next", "url": self.redirect_base + "/fhir/Condition?page=2"}]}).encode(),
            ]
            return self._send(h, 200, variants[next(self._garbage) % len(variants)])
        raise AssertionError(mode)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/fhir+json")
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)
