"""The response timeline: a SMART on FHIR app served by the service under ``/smart/``.

Pages (one static page, ``static/index.html``, plain JS and SVG, nothing fetched from outside the service):

* ``GET /smart/launch`` — the launch URL to register in an EHR. EHR launch: ``?iss=<FHIR base>&launch=<opaque>``
  reads ``<iss>/.well-known/smart-configuration`` and goes to the EHR's authorization endpoint (authorization
  code with PKCE S256). Standalone: ``?iss=<FHIR base>`` with OAuth when the server offers it; when it offers no
  authorization code grant, ``?iss=<FHIR base>&patient=<id>`` opens the record without a token ("open sandbox"),
  only for hosts in ``fhir.allowed_hosts`` and only while ``fhir.allow_unauthenticated`` is on.
* ``GET /smart/app`` — the redirect URI and the app itself: exchanges the code (PKCE verifier), keeps the token in
  page memory only, reads the patient's data from the FHIR server with it, and posts the data to
* ``POST /smart/api/timeline`` — the hook's own pipeline on that data (:mod:`cds_service.smart.timeline`).
* ``GET /smart/api/config`` — client id, scopes, the allow-list and the FHIR queries (the hook's prefetch
  templates), so the app asks the FHIR server for exactly what the hook reads.

The token never reaches the service: the browser reads FHIR itself and sends only the resources.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Callable

from flask import Blueprint, Response, redirect, request, send_from_directory

from cds_service.config import Settings
from cds_service.errors import HookError
from cds_service.jsonio import JSONDecodeError, dumps, loads

STATIC = Path(__file__).with_name("static")
LAUNCH_PATH = "/smart/launch"
LINK_LABEL = "Response timeline (SMART app)"


def smart_link(settings: Settings, base_url: str | None) -> dict[str, str] | None:
    """The card link to the app ({label, url}), or None when the app or the link is off or no base URL is known."""
    if not (settings.smart.enabled and settings.cards.smart_link):
        return None
    base = (settings.public_url or base_url or "").rstrip("/")
    if not base.startswith(("https://", "http://")):
        return None
    return {"label": LINK_LABEL, "url": base + LAUNCH_PATH}


def _csp(settings: Settings) -> str:
    connect = "'self' https:" + (" http:" if settings.fhir.allow_http else "")
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'")


def make_blueprint(settings: Settings, today: Callable[[], date]) -> Blueprint:
    from cds_service.prefetch import templates
    from cds_service.smart.timeline import timeline

    bp = Blueprint("smart", __name__, static_folder=str(STATIC), static_url_path="/static")

    def _page() -> Response:
        resp = send_from_directory(STATIC, "index.html", max_age=0)
        resp.headers["Content-Security-Policy"] = _csp(settings)
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Referrer-Policy"] = "no-referrer"   # the URL carries the authorization code
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp

    @bp.get("/")
    def _root() -> Any:
        return redirect(request.script_root + "/smart/app" + (f"?{request.query_string.decode()}"
                                                              if request.query_string else ""))

    bp.add_url_rule("/launch", "launch", _page, methods=["GET"])
    bp.add_url_rule("/app", "app", _page, methods=["GET"])

    @bp.get("/api/config")
    def _config() -> Response:
        s = settings.smart
        scope = s.scope.split()
        standalone = ["launch/patient" if x == "launch" else x for x in scope]
        body = {"clientId": s.client_id, "scope": " ".join(scope), "standaloneScope": " ".join(standalone),
                "redirectPath": "/smart/app", "allowedHosts": list(settings.fhir.allowed_hosts),
                "allowHttp": settings.fhir.allow_http, "openSandbox": settings.fhir.allow_unauthenticated,
                "maxPages": settings.fhir.max_pages, "queries": templates(settings, today()),
                "asOf": today().isoformat()}
        return Response(dumps(body), mimetype="application/json", headers={"Cache-Control": "no-store"})

    @bp.post("/api/timeline")
    def _timeline() -> Response:
        raw = request.get_data(cache=False)
        if not raw:
            raise HookError(400, "required", "request body is empty; a FHIR Bundle or {patientId, prefetch} is required")
        try:
            body = loads(raw)
        except JSONDecodeError as exc:
            raise HookError(400, "structure", f"request body is not valid JSON ({exc.msg} at position {exc.pos})")
        out = timeline(body, settings, today(), request.args.get("patient") or None)
        return Response(dumps(out), mimetype="application/json", headers={"Cache-Control": "no-store"})

    return bp


__all__ = ["make_blueprint", "smart_link", "LAUNCH_PATH"]
