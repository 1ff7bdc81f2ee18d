"""Fetches a prefetch key from the EHR's FHIR server when the client did not send it.

The bearer token goes only to an allow-listed host, over https unless plain http is allowed for local
testing; redirects are never followed (a redirect could carry the token elsewhere); paging follows
``Bundle.link[next]`` on the same host only; every request has connect and read timeouts and the whole
call has a deadline. The token is never logged and never appears in an error message.

The deadline is a wall-clock bound, not only a timeout per socket read: each fetch runs in a helper thread and
the hook stops waiting for it when the deadline passes, so a server that trickles its answer a byte at a time, a
slow name lookup or a stalled TLS handshake cannot hold the hook call (the helper notices the cancellation between
chunks and stops). A page larger than ``MAX_PAGE_BYTES`` is refused. Malformed Bundles (``entry`` or ``link`` not
a list, a paging link that is not a string) are a ``FetchError``, never a crash.

``requests`` (with urllib3, charset_normalizer and idna: ~5 MiB of resident memory per worker) is imported by the
first fetch, on the hook's thread rather than in the timed helper thread: a worker whose clients send their
prefetch never loads it.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from cds_service.config import FhirSettings
from cds_service.jsonio import JSONDecodeError, loads

if TYPE_CHECKING:
    import requests

_requests: Any = None


def _http() -> Any:
    """The ``requests`` module, imported on first use."""
    global _requests
    if _requests is None:
        import requests

        _requests = requests
    return _requests


MAX_PAGE_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024


LONG_URL = 2048  # a longer search is split into several searches by code (servers refuse URLs over ~8 KB)


def split_long_search(relative: str, limit: int | None = None) -> list[str]:
    """One search per chunk of the ``code=`` list when the URL is too long for common servers.

    The service asks for every code its criteria read (plus configured local codes), which makes an
    Observation search of ~11 KB; many servers cap request lines at 8 KB and not all support POST
    ``_search`` with paging. Results of the chunks are merged (the record drops duplicates by id).
    """
    limit = limit or LONG_URL
    if len(relative) <= limit or "?" not in relative:
        return [relative]
    path, query = relative.split("?", 1)
    params = query.split("&")
    code_at = next((i for i, p in enumerate(params) if p.startswith("code=")), None)
    if code_at is None:
        return [relative]
    codes = params[code_at][len("code="):].split(",")
    rest = "&".join(p for i, p in enumerate(params) if i != code_at)
    budget = max(limit - len(path) - len(rest) - 8, 256)
    chunks, current = [], []
    for c in codes:
        if current and len(",".join(current + [c])) > budget:
            chunks.append(current)
            current = []
        current.append(c)
    if current:
        chunks.append(current)
    return [f"{path}?code={','.join(chunk)}" + (f"&{rest}" if rest else "") for chunk in chunks]


class FetchError(Exception):
    """A fetch that failed; the message is safe to show (no token, no patient data)."""


class _Cancel(threading.Event):
    """Set when the hook stops waiting: also shuts the socket of the response being read, so the helper thread's
    blocked read returns at once instead of when a trickling server finishes."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._sock: Any = None

    def attach(self, resp: requests.Response) -> None:
        sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
        with self._lock:
            self._sock = sock
        if self.is_set():
            self._shut()

    def detach(self) -> None:
        with self._lock:
            self._sock = None

    def set(self) -> None:
        super().set()
        self._shut()

    def _shut(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def next_link(bundle: dict[str, Any]) -> str | None:
    """The Bundle's ``link[relation=next].url``; FetchError when the links are malformed (pages would be lost)."""
    links = bundle.get("link")
    if links is None:
        return None
    if not isinstance(links, list):
        raise FetchError("the Bundle's paging links are malformed (link is not a list)")
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if not isinstance(url, str) or not url.strip():
                raise FetchError("the Bundle's next-page link is not a URL")
            try:
                urlsplit(url)
            except ValueError:
                raise FetchError("the Bundle's next-page link is not a URL") from None
            return url
    return None


def bundle_entries(bundle: dict[str, Any]) -> list[Any]:
    entries = bundle.get("entry")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise FetchError("the Bundle is malformed (entry is not a list)")
    return entries


@dataclass
class FhirServer:
    base: str
    token: str | None
    settings: FhirSettings
    deadline: float  # time.monotonic() value after which no request starts

    def check_allowed(self) -> None:
        check_server_allowed(self.base, self.settings)

    def fetch_search(self, relative: str) -> list[dict[str, Any]]:
        """A search, split into several by code when its URL is too long (see split_long_search)."""
        out: list[dict[str, Any]] = []
        for part in split_long_search(relative):
            out.extend(self.fetch(part))
        return out

    def fetch(self, relative: str) -> list[dict[str, Any]]:
        """Resources of a read or search URL relative to the base, following next links (timed, counted)."""
        from cds_service import metrics

        _http()  # imported here, not in the helper thread under the deadline, and not timed as a fetch
        t0 = time.monotonic()
        try:
            return self._within_deadline(relative)
        except FetchError as exc:
            metrics.FHIR_FETCH_ERRORS.labels(_reason_class(str(exc))).inc()
            raise
        finally:
            metrics.FHIR_FETCH_SECONDS.observe(time.monotonic() - t0)

    def _within_deadline(self, relative: str) -> list[dict[str, Any]]:
        """``_fetch`` in a helper thread, waited for until the deadline and no longer."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0.05:
            raise FetchError("the hook deadline passed before the FHIR server answered")
        cancel = _Cancel()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = self._fetch(relative, cancel)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                box["error"] = exc

        helper = threading.Thread(target=run, name="fhir-fetch", daemon=True)
        helper.start()
        helper.join(remaining)
        if helper.is_alive():
            cancel.set()  # the helper's read is cut off (socket shut down); its answer is not waited for
            raise FetchError("the hook deadline passed before the FHIR server answered")
        if "error" in box:
            raise box["error"]
        return box["result"]

    def _fetch(self, relative: str, cancel: _Cancel | None = None) -> list[dict[str, Any]]:
        cancel = cancel or _Cancel()
        url = urljoin(self.base.rstrip("/") + "/", relative)
        base = urlsplit(self.base)
        host = base.netloc
        if (urlsplit(url).scheme, urlsplit(url).netloc) != (base.scheme, host):
            # an absolute URL (a prefetch Bundle's next link) must not carry the token past the allow-list
            raise FetchError("a paging link points to another host; not followed")
        out: list[dict[str, Any]] = []
        session = _http().Session()
        session.trust_env = False
        headers = {"Accept": "application/fhir+json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            for _ in range(self.settings.max_pages):
                body = self._get(session, url, headers, cancel)
                if body.get("resourceType") == "Bundle":
                    for e in bundle_entries(body):
                        if isinstance(e, dict) and isinstance(e.get("resource"), dict):
                            search = e.get("search")
                            if isinstance(search, dict) and search.get("mode") == "outcome":
                                continue
                            out.append(e["resource"])
                    nxt = next_link(body)
                    if not nxt:
                        break
                    url = urljoin(url, nxt)
                    if (urlsplit(url).scheme, urlsplit(url).netloc) != (base.scheme, host):
                        raise FetchError("a paging link points to another host; not followed")
                elif body.get("resourceType") == "OperationOutcome":
                    raise FetchError("the FHIR server answered with an OperationOutcome")
                else:
                    out.append(body)
                    break
        finally:
            session.close()
        return out

    def _get(self, session: requests.Session, url: str, headers: dict, cancel: _Cancel | None = None) -> dict:
        cancel = cancel or _Cancel()
        requests = _http()
        attempts = 0
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0.05 or cancel.is_set():
                raise FetchError("the hook deadline passed before the FHIR server answered")
            timeout = (min(self.settings.connect_timeout_s, remaining), min(self.settings.read_timeout_s, remaining))
            try:
                resp = session.get(url, headers=headers, timeout=timeout, allow_redirects=False, stream=True)
            except requests.Timeout:
                raise FetchError("the FHIR server did not answer in time") from None
            except requests.RequestException as exc:
                raise FetchError(f"the FHIR server could not be reached ({type(exc).__name__})") from None
            cancel.attach(resp)
            with resp:
                if resp.status_code in (429, 503) and attempts < 2:
                    attempts += 1
                    retry = resp.headers.get("Retry-After", "")
                    wait = min(float(retry) if retry.isdigit() else 0.2 * (2 ** attempts), 1.0)
                    if time.monotonic() + wait >= self.deadline:
                        raise FetchError(f"the FHIR server is busy (HTTP {resp.status_code})")
                    cancel.wait(wait)
                    continue
                if 300 <= resp.status_code < 400:
                    raise FetchError("the FHIR server answered with a redirect; not followed")
                if resp.status_code in (401, 403):
                    raise FetchError(f"the FHIR server refused the access token (HTTP {resp.status_code})")
                if resp.status_code == 404:
                    return {"resourceType": "Bundle", "entry": []}
                if resp.status_code >= 400:
                    raise FetchError(f"the FHIR server answered HTTP {resp.status_code}")
                content = self._read_body(resp, cancel)
            cancel.detach()
            try:
                body = loads(content)
            except JSONDecodeError:
                raise FetchError("the FHIR server answered with something that is not JSON") from None
            if not isinstance(body, dict):
                raise FetchError("the FHIR server answered with JSON that is not a resource")
            return body

    def _read_body(self, resp: requests.Response, cancel: _Cancel) -> bytes:
        """The body in chunks: stops when the deadline passes or the hook gave up, and beyond MAX_PAGE_BYTES."""
        requests = _http()
        length = resp.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_PAGE_BYTES:
            raise FetchError("the FHIR server's page is too large")
        chunks, size = [], 0
        try:
            for chunk in resp.iter_content(_CHUNK):
                if cancel.is_set() or time.monotonic() >= self.deadline:
                    raise FetchError("the FHIR server did not answer in time")
                size += len(chunk)
                if size > MAX_PAGE_BYTES:
                    raise FetchError("the FHIR server's page is too large")
                chunks.append(chunk)
        except requests.Timeout:
            raise FetchError("the FHIR server did not answer in time") from None
        except requests.RequestException as exc:
            raise FetchError(f"the FHIR server could not be reached ({type(exc).__name__})") from None
        return b"".join(chunks)


def check_server_allowed(base: str, settings: FhirSettings) -> None:
    try:
        parts = urlsplit(base)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:  # e.g. an unbalanced "[" (IPv6 literal) or a bad port
        raise FetchError("fhirServer is not an http(s) URL") from None
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise FetchError("fhirServer is not an http(s) URL")
    if parts.scheme == "http" and not settings.allow_http:
        raise FetchError("fhirServer must use https")
    allowed = {h.strip("[]").lower() for h in settings.allowed_hosts}
    if host.lower() not in allowed and parts.netloc.lower() not in allowed and "*" not in allowed:
        raise FetchError("fhirServer is not on the allow-list of FHIR servers")


def _reason_class(message: str) -> str:
    for key in ("deadline", "in time", "reached", "busy", "redirect", "refused", "HTTP", "JSON", "paging",
                "malformed", "too large"):
        if key in message:
            return key.lower().replace(" ", "_")
    return "other"
