"""Fetches a prefetch key from the EHR's FHIR server when the client did not send it.

The bearer token goes only to an allow-listed host, over https unless plain http is allowed for local
testing; redirects are never followed (a redirect could carry the token elsewhere); paging follows
``Bundle.link[next]`` on the same host only; every request has connect and read timeouts and the whole
call has a deadline. The token is never logged and never appears in an error message.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from cds_service.config import FhirSettings
from cds_service.jsonio import JSONDecodeError, loads


class FetchError(Exception):
    """A fetch that failed; the message is safe to show (no token, no patient data)."""


@dataclass
class FhirServer:
    base: str
    token: str | None
    settings: FhirSettings
    deadline: float  # time.monotonic() value after which no request starts

    def check_allowed(self) -> None:
        check_server_allowed(self.base, self.settings)

    def fetch(self, relative: str) -> list[dict[str, Any]]:
        """Resources of a read or search URL relative to the base, following next links (timed, counted)."""
        from cds_service import metrics

        t0 = time.monotonic()
        try:
            return self._fetch(relative)
        except FetchError as exc:
            metrics.FHIR_FETCH_ERRORS.labels(_reason_class(str(exc))).inc()
            raise
        finally:
            metrics.FHIR_FETCH_SECONDS.observe(time.monotonic() - t0)

    def _fetch(self, relative: str) -> list[dict[str, Any]]:
        url = urljoin(self.base.rstrip("/") + "/", relative)
        host = urlsplit(self.base).netloc
        out: list[dict[str, Any]] = []
        session = requests.Session()
        session.trust_env = False
        headers = {"Accept": "application/fhir+json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            for _ in range(self.settings.max_pages):
                body = self._get(session, url, headers)
                if body.get("resourceType") == "Bundle":
                    for e in body.get("entry") or ():
                        if isinstance(e, dict) and isinstance(e.get("resource"), dict):
                            if (e.get("search") or {}).get("mode") == "outcome":
                                continue
                            out.append(e["resource"])
                    nxt = next((l.get("url") for l in body.get("link") or ()
                                if isinstance(l, dict) and l.get("relation") == "next"), None)
                    if not nxt:
                        break
                    if urlsplit(nxt).netloc not in ("", host):
                        raise FetchError("a paging link points to another host; not followed")
                    url = urljoin(url, nxt)
                elif body.get("resourceType") == "OperationOutcome":
                    raise FetchError("the FHIR server answered with an OperationOutcome")
                else:
                    out.append(body)
                    break
        finally:
            session.close()
        return out

    def _get(self, session: requests.Session, url: str, headers: dict) -> dict:
        attempts = 0
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0.05:
                raise FetchError("the hook deadline passed before the FHIR server answered")
            timeout = (min(self.settings.connect_timeout_s, remaining), min(self.settings.read_timeout_s, remaining))
            try:
                resp = session.get(url, headers=headers, timeout=timeout, allow_redirects=False)
            except requests.Timeout:
                raise FetchError("the FHIR server did not answer in time") from None
            except requests.RequestException as exc:
                raise FetchError(f"the FHIR server could not be reached ({type(exc).__name__})") from None
            if resp.status_code in (429, 503) and attempts < 2:
                attempts += 1
                retry = resp.headers.get("Retry-After", "")
                wait = min(float(retry) if retry.isdigit() else 0.2 * (2 ** attempts), 1.0)
                if time.monotonic() + wait >= self.deadline:
                    raise FetchError(f"the FHIR server is busy (HTTP {resp.status_code})")
                time.sleep(wait)
                continue
            if 300 <= resp.status_code < 400:
                raise FetchError("the FHIR server answered with a redirect; not followed")
            if resp.status_code in (401, 403):
                raise FetchError(f"the FHIR server refused the access token (HTTP {resp.status_code})")
            if resp.status_code == 404:
                return {"resourceType": "Bundle", "entry": []}
            if resp.status_code >= 400:
                raise FetchError(f"the FHIR server answered HTTP {resp.status_code}")
            try:
                body = loads(resp.content)
            except JSONDecodeError:
                raise FetchError("the FHIR server answered with something that is not JSON") from None
            if not isinstance(body, dict):
                raise FetchError("the FHIR server answered with JSON that is not a resource")
            return body


def check_server_allowed(base: str, settings: FhirSettings) -> None:
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise FetchError("fhirServer is not an http(s) URL")
    if parts.scheme == "http" and not settings.allow_http:
        raise FetchError("fhirServer must use https")
    host = parts.hostname or ""
    allowed = {h.strip("[]").lower() for h in settings.allowed_hosts}
    if host.lower() not in allowed and parts.netloc.lower() not in allowed and "*" not in allowed:
        raise FetchError("fhirServer is not on the allow-list of FHIR servers")


def _reason_class(message: str) -> str:
    for key in ("deadline", "in time", "reached", "busy", "redirect", "refused", "HTTP", "JSON", "paging"):
        if key in message:
            return key.lower().replace(" ", "_")
    return "other"
