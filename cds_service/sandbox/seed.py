"""Load the sandbox patient library into any FHIR R4 server, idempotently.

Per patient: one ``batch`` of reads of every resource (by its stable id), then one ``transaction`` with a PUT for
each resource that is missing or differs. Loading the library twice writes nothing the second time (servers that
version every PUT see no new versions). Servers without batch support get the PUTs anyway (PUT with an id is
idempotent by itself); servers without transactions get one PUT per resource.

The token (``--token``) is sent as ``Authorization: Bearer`` and appears in no message.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import requests

from cds_service.sandbox.patients import SandboxPatient

Json = dict[str, Any]
TIMEOUT = (5.0, 60.0)
SERVER_META = ("versionId", "lastUpdated", "source")


class SeedError(RuntimeError):
    """The FHIR server refused the library; the message is safe to print (no token)."""


@dataclass
class SeedReport:
    patients: int = 0
    resources: int = 0
    written: int = 0
    unchanged: int = 0
    per_patient: dict[str, int] = field(default_factory=dict)   # patient id -> resources written


def _strip_server_meta(res: Any) -> Any:
    if not isinstance(res, dict):
        return res
    out = dict(res)
    meta = dict(out.get("meta") or {})
    for k in SERVER_META:
        meta.pop(k, None)
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


def _same(stored: Any, ours: Json) -> bool:
    """True when the server holds our content (server-side metadata and generated narrative ignored)."""
    if not isinstance(stored, dict):
        return False
    s = _strip_server_meta(stored)
    o = _strip_server_meta(ours)
    if "text" not in ours:
        s.pop("text", None)
    return s == o


class FhirWriter:
    def __init__(self, base_url: str, token: str | None = None, *, timeout: tuple[float, float] = TIMEOUT):
        if not base_url.startswith(("http://", "https://")):
            raise SeedError("--fhir-base must be an http(s) URL")
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"})
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.batch_ok = True
        self.transaction_ok = True

    def close(self) -> None:
        self.session.close()

    def _post(self, body: Json) -> requests.Response:
        try:
            return self.session.post(self.base, json=body, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise SeedError(f"the FHIR server at {self.base} could not be reached ({type(exc).__name__})") from None

    def _check_auth(self, resp: requests.Response) -> None:
        if resp.status_code in (401, 403):
            raise SeedError(f"the FHIR server refused the request (HTTP {resp.status_code}); "
                            "check --token and that it may write")

    def stored(self, resources: list[Json]) -> list[Any]:
        """What the server holds for each resource id (None when missing or not knowable)."""
        if not self.batch_ok:
            return [None] * len(resources)
        body = {"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}
        resp = self._post(body)
        self._check_auth(resp)
        try:
            out = resp.json() if resp.status_code == 200 else None
        except ValueError:
            out = None
        entries = (out or {}).get("entry") if isinstance(out, dict) else None
        if not isinstance(entries, list) or len(entries) != len(resources):
            self.batch_ok = False   # no batch reads here: write everything (PUT by id is idempotent anyway)
            return [None] * len(resources)
        return [e.get("resource") if isinstance(e, dict) and str((e.get("response") or {}).get("status", "200"))
                .startswith("200") else None for e in entries]

    def put_all(self, resources: list[Json]) -> None:
        if not resources:
            return
        if self.transaction_ok:
            body = {"resourceType": "Bundle", "type": "transaction", "entry": [
                {"fullUrl": f"{self.base}/{r['resourceType']}/{r['id']}", "resource": r,
                 "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}
            resp = self._post(body)
            self._check_auth(resp)
            if resp.status_code < 300:
                return
            if resp.status_code not in (400, 404, 405, 501):
                raise SeedError(f"the FHIR server rejected the transaction (HTTP {resp.status_code}): "
                                f"{_diagnostics(resp)}")
            self.transaction_ok = False   # no transactions here: one PUT each
        for r in resources:
            try:
                resp = self.session.put(f"{self.base}/{r['resourceType']}/{r['id']}", json=r, timeout=self.timeout,
                                        allow_redirects=False)
            except requests.RequestException as exc:
                raise SeedError(f"the FHIR server at {self.base} could not be reached ({type(exc).__name__})") \
                    from None
            self._check_auth(resp)
            if resp.status_code >= 300:
                raise SeedError(f"PUT {r['resourceType']}/{r['id']} failed (HTTP {resp.status_code}): "
                                f"{_diagnostics(resp)}")


def _diagnostics(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    issues = body.get("issue") if isinstance(body, dict) else None
    if isinstance(issues, list):
        return "; ".join(str(i.get("diagnostics") or i.get("code")) for i in issues[:5] if isinstance(i, dict))[:600]
    return str(body)[:300]


def seed(base_url: str, patients: Iterable[SandboxPatient], *, token: str | None = None,
         progress: Callable[[str], None] | None = None) -> SeedReport:
    """PUT every patient's resources that the server does not already hold; progress after each patient."""
    patients = list(patients)
    writer = FhirWriter(base_url, token)
    report = SeedReport()
    try:
        for i, p in enumerate(patients, 1):
            resources = p.resources
            stored = writer.stored(resources)
            todo = [r for r, s in zip(resources, stored) if not _same(s, r)]
            writer.put_all(todo)
            report.patients += 1
            report.resources += len(resources)
            report.written += len(todo)
            report.unchanged += len(resources) - len(todo)
            report.per_patient[p.id] = len(todo)
            if progress:
                what = f"{len(todo)} of {len(resources)} resources written" if todo else "unchanged"
                progress(f"{i}/{len(patients)} patients... {p.id} ({what})")
    finally:
        writer.close()
    return report
