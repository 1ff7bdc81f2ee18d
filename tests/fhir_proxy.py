"""A tiny loopback HTTP proxy in front of the real FHIR server, only to inject faults and observe paging.

It forwards every request to the upstream FHIR base unchanged, except what a test asks for: cap ``_count`` (a
server whose page size is smaller than the service asks for), answer a fixed status (a server that rejects the
token), or drop connections after N requests (the server going away mid-run). Absolute URLs of the upstream in
response bodies (paging links, fullUrl) are rewritten to the proxy, as a real gateway does. It records the paths
requested and whether each carried the expected bearer token; it logs nothing.
"""
from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit


class FaultProxy:
    def __init__(self, upstream_base: str, *, cap_count: int | None = None, status: int | None = None,
                 fail_after: int | None = None):
        self.upstream = urlsplit(upstream_base.rstrip("/"))
        self.cap_count = cap_count
        self.status = status
        self.fail_after = fail_after
        self.paths: list[str] = []
        self.authorizations: list[str | None] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.upstream.path}"

    def start(self) -> "FaultProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # noqa: ANN002 - silent: requests carry patient ids and tokens
                return

            def _handle(self) -> None:
                with proxy._lock:
                    proxy.paths.append(self.path)
                    proxy.authorizations.append(self.headers.get("Authorization"))
                    n = len(proxy.paths)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.fail_after is not None and n > proxy.fail_after:
                    self.close_connection = True   # no answer at all: the server went away
                    return
                if proxy.status is not None:
                    payload = (b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login",'
                               b'"diagnostics":"injected fault"}]}')
                    self._reply(proxy.status, payload, "application/fhir+json")
                    return
                path = self.path
                if proxy.cap_count is not None and self.command == "POST" and path.endswith("/_search") and body:
                    # a search sent as POST [type]/_search: cap the page size in the form body
                    params = [(k, v) for k, v in parse_qsl(body.decode(), keep_blank_values=True) if k != "_count"]
                    asked = [int(v) for k, v in parse_qsl(body.decode()) if k == "_count" and v.isdigit()]
                    params.append(("_count", str(min([proxy.cap_count, *asked]))))
                    body = urlencode(params).encode()
                elif proxy.cap_count is not None and "?" in path:
                    route, _, query = path.partition("?")
                    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "_count"]
                    asked = [int(v) for k, v in parse_qsl(query) if k == "_count" and v.isdigit()]
                    params.append(("_count", str(min([proxy.cap_count, *asked]))))
                    path = f"{route}?{urlencode(params)}"
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() in ("authorization", "accept", "content-type")}
                    conn.request(self.command, path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    up = f"{proxy.upstream.scheme}://{proxy.upstream.netloc}".encode()
                    data = data.replace(up, f"http://127.0.0.1:{proxy._server.server_address[1]}".encode())
                    self._reply(resp.status, data, resp.getheader("Content-Type") or "application/fhir+json")
                finally:
                    conn.close()

            def _reply(self, status: int, data: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _handle
            do_POST = _handle
            do_PUT = _handle

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

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
