"""Flask app factory: discovery, hook calls, feedback, health. Every error is an OperationOutcome."""
from __future__ import annotations

import gc
import time
from datetime import date, datetime, timezone
from typing import Any, Callable

from cds_service.logging_setup import structlog  # structlog without its console extras (rich)
from flask import Flask, Response, g, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_current_url

from cds_service import cards as card_builder
from cds_service import malloc_tuning, metrics
from cds_service.auth import AuthError, Authenticator
from cds_service.config import Settings, load_settings
from cds_service.errors import FHIR_JSON, HookError, error_body, error_response
from cds_service.feedback import open_store
from cds_service.hook_body import loads_hook_request
from cds_service.jsonio import JSONDecodeError, dumps, loads
from cds_service.logging_setup import configure_logging
from cds_service.models import FeedbackRequest, HookRequest, error_paths
from cds_service.openapi import openapi_document
from cds_service.prefetch import NO_SERVER, REQUIRED_KEYS, resolve
from cds_service.order_check import draft_orders, order_cards
from cds_service.reported import annotate as annotate_reported
from cds_service.remission import build_views, decorate_assessment_card, surveillance_card
from cds_service.services import SERVICES, ServiceDef, discovery, enabled_services
from cds_service.smart import make_blueprint as smart_blueprint, smart_link
from fhir_mappings.pipeline import assess_record
from fhir_mappings.record import PatientRecord
from fhir_mappings.units import warm_up

log = structlog.get_logger("remission_cds")


def _json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status=status, mimetype="application/json")


def today() -> date:
    """The only place the service reads the clock (rules take the date as a parameter)."""
    return datetime.now(timezone.utc).date()


def evaluate_request(body: dict[str, Any], settings: Settings, as_of: date,
                     service_id: str = "remission-status", base_url: str | None = None) -> tuple[int, dict]:
    """The whole hook pipeline for a validated request body: returns (status, JSON body).

    ``base_url`` is the service's root URL as the client called it (for the SMART app link when no
    ``public_url`` is configured)."""
    resolved = resolve(body, settings, as_of)
    missing_required = [k for k in REQUIRED_KEYS if k in resolved.unavailable]
    if missing_required:
        why = "; ".join(f"{k}: {resolved.unavailable[k]}" for k in missing_required)
        raise HookError(412, "not-found", f"required data could not be obtained ({why})",
                        [f"prefetch.{k}" for k in missing_required])
    patient_id = (body.get("context") or {}).get("patientId")
    record = PatientRecord(resolved.resources, patient_id)
    options = settings.mapping_options()
    results = assess_record(record, as_of, options)
    views = build_views(results, record, as_of, settings.surveillance_schedules(), settings.surveillance_done_codes)
    if service_id == "surveillance-order-check":
        context = body.get("context") or {}
        orders = draft_orders(context, body.get("hook", ""))
        return 200, {"cards": order_cards(views, record, orders, as_of, settings.surveillance_schedules())}
    cards = []
    app_link = smart_link(settings, base_url)
    for view in views:
        card = card_builder.card_for(view.result, show_insufficient=settings.cards.show_insufficient_data)
        if card is None:
            continue
        card = annotate_reported(card, view.result, record)
        if card_builder.has_assessment(view.result):
            card = decorate_assessment_card(card, view, patient_id,
                                            status_suggestion=settings.cards.show_disease_status_suggestion,
                                            links=settings.cards.links, smart_link=app_link)
        cards.append(card)
        surv = surveillance_card(view, patient_id) if settings.cards.show_surveillance else None
        if surv is not None:
            cards.append(surv)
    urgency = {"critical": 0, "warning": 1, "info": 2}
    cards.sort(key=lambda c: urgency.get(c["indicator"], 3))  # stable: loud alerts first
    # optional keys the EHR chose not to prefetch, with no FHIR server to ask, are not a fault worth a card;
    # keys that failed (an OperationOutcome, a FHIR error) are
    optional_unavailable = {k: v for k, v in resolved.unavailable.items()
                            if k not in REQUIRED_KEYS and k != "patient" and not v.endswith(NO_SERVER)}
    if optional_unavailable and cards:
        cards.insert(0, card_builder.unavailable_data_card(optional_unavailable))
    return 200, {"cards": cards}


HOOK_RULE = "/cds-services/<service_id>"


class _Sent(list):
    """A one-chunk WSGI response whose close() (called by the server once it is sent) frees the request."""

    def __init__(self, payload: bytes, release: Callable[[], None]) -> None:
        super().__init__((payload,))
        self._release = release

    def close(self) -> None:
        self._release()


def create_app(config: Any = None) -> Flask:
    settings = load_settings(config)
    configure_logging()
    app = Flask("remission_cds")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes - 1  # >= 16 MB -> 413
    app.extensions["remission_settings"] = settings
    store = open_store(settings.feedback_database_url)
    app.extensions["remission_feedback"] = store
    warm_up()
    malloc_tuning.tune()  # a hook call's few MB are reused by the next call, not returned and faulted in again
    relaxed = settings.relaxed_security()
    if relaxed:
        log.warning("security_relaxed", environment=settings.environment, relaxed=relaxed)
    service_ids = {s.id: s for s in SERVICES}
    if settings.smart.enabled:
        app.register_blueprint(smart_blueprint(settings, today), url_prefix="/smart")

    authenticator = Authenticator(settings.auth, settings.public_url, store)
    app.extensions["remission_auth"] = authenticator

    # The previous hook call's decoded body, when the server did not call close() on its response (see
    # _run_hook): freed, and the GC switched back on, before anything else.
    unreleased: list[Callable[[], None]] = []

    @app.before_request
    def _start() -> Response | None:
        while unreleased:
            unreleased[-1]()
        g.t0 = time.perf_counter()
        if authenticator.open or request.method == "OPTIONS" or not request.path.startswith("/cds-services"):
            return None
        try:
            authenticator.verify(request.headers.get("Authorization"),
                                 authenticator.audience_for(request.base_url, request.path))
        except AuthError as exc:
            _jwt_rejected(exc, request.url_rule.rule if request.url_rule else "?")
            return Response(status=401)
        return None

    @app.after_request
    def _access_log(resp: Response) -> Response:
        for name, value in _cors(request.headers.get("Origin"),
                                 request.headers.get("Access-Control-Request-Private-Network")):
            resp.headers[name] = value
        elapsed = (time.perf_counter() - g.get("t0", time.perf_counter())) * 1000
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        service = (request.view_args or {}).get("service_id", "") if request.url_rule else ""
        service = service if service in service_ids else ("" if not service else "unknown")
        _observe(request.method, rule, service, resp.status_code, elapsed)
        return resp

    def _cors(origin: str | None, private_network: str | None) -> list[tuple[str, str]]:
        if not origin or not ("*" in settings.cors_origins or origin in settings.cors_origins):
            return []
        out = [("Access-Control-Allow-Origin", origin if "*" not in settings.cors_origins else "*"),
               ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
               ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
               ("Vary", "Origin")]
        if private_network == "true":
            # a public page (the CDS Hooks Sandbox) calling a service on this machine (sandbox up):
            # browsers that enforce Private Network Access ask for this in the preflight
            out.append(("Access-Control-Allow-Private-Network", "true"))
        return out

    def _observe(method: str, rule: str, service: str, status: int, elapsed_ms: float) -> None:
        log.info("request", method=method, path=rule, status=status, ms=round(elapsed_ms, 1))
        if rule != "/metrics":
            metrics.REQUESTS.labels(rule, service, str(status)).inc()
            metrics.LATENCY.labels(rule, service).observe(elapsed_ms / 1000)

    def _jwt_rejected(exc: AuthError, rule: str) -> None:
        log.warning("jwt_rejected", reason=str(exc), path=rule)
        metrics.JWT_FAILURES.labels(str(exc)[:40]).inc()

    @app.errorhandler(HookError)
    def _hook_error(exc: HookError) -> Response:
        return error_response(exc.status, exc.code, exc.diagnostics, exc.expression)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported", 413: "too-long", 415: "not-supported"}.get(exc.code or 500,
                                                                                                   "processing")
        text = {404: "no such endpoint or service", 405: f"method {request.method} is not allowed here",
                413: f"request body is too large (limit {settings.max_body_bytes - 1} bytes)"}.get(exc.code or 0,
                                                                                                   exc.description)
        resp = error_response(exc.code or 500, code, text)
        if exc.code == 405:
            valid = getattr(exc, "valid_methods", None)
            if valid:
                resp.headers["Allow"] = ", ".join(valid)
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("unhandled_error", error_type=type(exc).__name__, path=request.path)
        return error_response(500, "exception", "internal error; the request was not processed")

    @app.get("/cds-services")
    def _discovery() -> Response:
        return _json(discovery(settings, today()))

    def _decode(raw: bytes, decoder: Callable[[bytes], Any] = loads) -> dict:
        """The request body as a JSON object; the caller has paused the GC (the tree is acyclic)."""
        if not raw:
            raise HookError(400, "required", "request body is empty; a JSON object is required")
        try:
            body = decoder(raw)
        except JSONDecodeError as exc:
            raise HookError(400, "structure", f"request body is not valid JSON ({exc.msg} at position {exc.pos})")
        if not isinstance(body, dict):
            raise HookError(400, "structure", "request body must be a JSON object")
        return body

    def _body() -> dict:
        raw = request.get_data(cache=False)
        gc_was = gc.isenabled()
        gc.disable()
        try:
            return _decode(raw)
        finally:
            if gc_was:
                gc.enable()

    def _answer(svc: ServiceDef, raw: bytes, base_url: Callable[[], str], kept: list[dict],
                after: list[Callable[[], None]]) -> bytes:
        """The cards of one hook call, encoded; raises HookError for what the client must fix. Book-keeping that
        the response does not wait for (the card metrics) is appended to ``after``."""
        body = _decode(raw, loads_hook_request)  # prefetch Bundles stay lazy: see fhir_mappings/rawjson.py
        kept.append(body)
        try:
            req = HookRequest.model_validate(body)
        except ValidationError as exc:
            paths = error_paths(exc)
            raise HookError(400, "invalid", "; ".join(f"{p}: {m}" for p, m in paths), [p for p, _ in paths])
        if req.hook not in svc.hooks:
            raise HookError(400, "invalid", f"service '{svc.id}' answers {', '.join(svc.hooks)}, not '{req.hook}'",
                            ["hook"])
        if not isinstance(req.context.get("patientId"), str) or not req.context.get("patientId"):
            raise HookError(400, "required", "context.patientId is required", ["context.patientId"])
        if svc.id == "surveillance-order-check" and not isinstance(req.context.get("draftOrders"), (dict, list)):
            raise HookError(400, "required", "context.draftOrders (a Bundle) is required for order hooks",
                            ["context.draftOrders"])
        # the request's root URL is needed only for the SMART link when no public URL is configured
        root = base_url() if settings.smart.enabled and settings.cards.smart_link and not settings.public_url else None
        status, out = evaluate_request(body, settings, today(), svc.id, root)
        cards = out.get("cards", [])
        after.append(lambda: metrics.record_cards(cards))
        return dumps(out)

    def _book(after: list[Callable[[], None]]) -> None:
        """Run the book-keeping of a hook call (metrics, access log). It runs after the response, maybe from the
        server's close(): a failure is logged by its type and never reaches the server or the other items."""
        while after:
            try:
                after.pop(0)()
            except Exception as exc:  # noqa: BLE001
                log.error("bookkeeping_failed", error_type=type(exc).__name__)

    def _run_hook(svc: ServiceDef, raw: Callable[[], bytes], base_url: Callable[[], str],
                  closes: bool, after: list[Callable[[], None]]) -> tuple[int, bytes, str, Callable[[], None] | None]:
        """(status, body, content type, release) of one hook call; ``release`` (when not None) frees the decoded
        request, then runs the book-keeping in ``after`` (metrics, the access log: what the client need not wait
        for), and must run once the response has been sent. When ``release`` is None, both are done.

        The decoded request (resource heads, the resources the criteria read, the record index built on them) is
        an acyclic structure that reference counting frees; a cyclic-GC pass over it would cost more than the
        assessment. So the GC stays paused from decode until it is gone, not only during the decode. Freeing it
        takes a while at large N: under a WSGI server, which calls close() on the response once it is sent (PEP
        3333, ``closes``), that happens after the response has left, not before.
        """
        gc_was = gc.isenabled()
        gc.disable()
        kept: list[dict] = []  # the decoded body, once _answer's locals are gone

        def free() -> None:
            kept.clear()
            if gc_was:
                gc.enable()

        def release() -> None:
            if release in unreleased:
                unreleased.remove(release)
            free()
            _book(after)

        try:
            payload = _answer(svc, raw(), base_url, kept, after)
        except HookError as exc:  # the client's mistake: nothing worth deferring
            free()
            after.clear()  # no cards were made
            return exc.status, error_body(exc.code, exc.diagnostics, exc.expression), FHIR_JSON, None
        except BaseException:  # the callers' error handlers answer (500, 413...); a shutdown goes through
            free()
            after.clear()
            raise
        if not closes:  # e.g. the test client, which closes only when asked
            free()
            _book(after)
            return 200, payload, "application/json", None
        unreleased.append(release)  # freed at the next request should close() never come
        return 200, payload, "application/json", release

    @app.route("/cds-services/<service_id>", methods=["POST", "OPTIONS"])
    def _hook(service_id: str) -> Response:
        """Hook calls the WSGI entry below does not take itself (no Content-Length, unknown service), and
        preflights."""
        if request.method == "OPTIONS":
            return Response(status=204)
        svc = hook_services.get(service_id)
        if svc is None:
            raise HookError(404, "not-found", f"unknown CDS service '{service_id}'", ["path"])
        status, payload, ctype, release = _run_hook(svc, lambda: request.get_data(cache=False),
                                                    lambda: request.url_root,
                                                    bool(request.environ.get("SERVER_SOFTWARE")), [])
        resp = Response(payload, status=status, mimetype=ctype)
        if release is not None:
            resp.call_on_close(release)
        return resp

    hook_services = {s.id: s for s in enabled_services(settings)}
    max_body = settings.max_body_bytes - 1

    def hook_wsgi(environ: dict, start_response: Callable) -> Any:
        """``POST /cds-services/<id>`` with a Content-Length, straight from WSGI.

        A hook call is the one request on the hot path: Flask's request context, routing and response object
        cost about as much as the echo yardstick's whole round trip at 100 Observations. This does what the
        Flask hooks do for it (JWT check, body limit, CORS, access log, metrics, OperationOutcome errors) and
        passes everything else, including odd hook calls, to Flask.
        """
        path = environ.get("PATH_INFO") or ""
        length = environ.get("CONTENT_LENGTH")
        if (environ.get("REQUEST_METHOD") != "POST" or not path.startswith("/cds-services/")
                or not isinstance(length, str) or not length.isdigit()):
            return flask_wsgi(environ, start_response)
        svc = hook_services.get(path[len("/cds-services/"):])
        if svc is None:
            return flask_wsgi(environ, start_response)
        while unreleased:
            unreleased[-1]()
        t0 = time.perf_counter()
        headers = _cors(environ.get("HTTP_ORIGIN"), environ.get("HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK"))
        release: Callable[[], None] | None = None
        after: list[Callable[[], None]] = []
        try:
            if not authenticator.open:
                authenticator.verify(environ.get("HTTP_AUTHORIZATION"),
                                     authenticator.audience_for(get_current_url(environ, strip_querystring=True),
                                                                path))
            if int(length) > max_body:
                status, ctype = 413, FHIR_JSON
                payload = error_body("too-long", f"request body is too large (limit {max_body} bytes)")
            else:
                status, payload, ctype, release = _run_hook(
                    svc, lambda: environ["wsgi.input"].read(int(length)), lambda: _root_url(environ),
                    bool(environ.get("SERVER_SOFTWARE")), after)
        except AuthError as exc:
            _jwt_rejected(exc, HOOK_RULE)
            status, payload, ctype = 401, b"", ""
        except Exception as exc:  # noqa: BLE001 - never a stack trace to the client
            log.error("unhandled_error", error_type=type(exc).__name__, path=path)
            status, ctype = 500, FHIR_JSON
            payload = error_body("exception", "internal error; the request was not processed")
        if ctype:
            headers.insert(0, ("Content-Type", ctype))
        headers.insert(1 if ctype else 0, ("Content-Length", str(len(payload))))
        elapsed_ms = (time.perf_counter() - t0) * 1000
        if release is None:
            _observe("POST", HOOK_RULE, svc.id, status, elapsed_ms)
        else:  # logged once the response has left (release runs ``after`` when the server closes it)
            after.append(lambda: _observe("POST", HOOK_RULE, svc.id, status, elapsed_ms))
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}", headers)
        return [payload] if release is None else _Sent(payload, release)

    roots: dict[tuple, str] = {}  # the root URL by the environ members it is made of (bounded: Host is the client's)

    def _root_url(environ: dict) -> str:
        """``get_current_url(environ, root_only=True)``, computed once per distinct scheme, host and script name."""
        key = (environ.get("wsgi.url_scheme"), environ.get("HTTP_HOST"), environ.get("SERVER_NAME"),
               environ.get("SERVER_PORT"), environ.get("SCRIPT_NAME"))
        url = roots.get(key)
        if url is None:
            url = get_current_url(environ, root_only=True)
            if len(roots) >= 64:
                roots.clear()
            roots[key] = url
        return url

    @app.route("/cds-services/<service_id>/feedback", methods=["POST", "OPTIONS"])
    def _feedback(service_id: str) -> Response:
        if request.method == "OPTIONS":
            return Response(status=204)
        if service_id not in service_ids:
            raise HookError(404, "not-found", f"unknown CDS service '{service_id}'", ["path"])
        body = _body()
        try:
            fb = FeedbackRequest.model_validate(body)
        except ValidationError as exc:
            paths = error_paths(exc)
            raise HookError(400, "invalid", "; ".join(f"{p}: {m}" for p, m in paths), [p for p, _ in paths])
        items = [f.model_dump(exclude_none=True) for f in fb.feedback]
        new = store.record(service_id, items, datetime.now(timezone.utc).isoformat())
        return _json({"received": len(items), "new": new})

    @app.get("/metrics")
    def _metrics() -> Response:
        payload, ctype = metrics.render()
        return Response(payload, mimetype=ctype.split(";")[0], content_type=ctype)

    @app.get("/healthz")
    def _healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    def _readyz() -> Response:
        ok = store.ping()
        return _json({"status": "ready" if ok else "not ready", "feedbackStore": ok}, 200 if ok else 503)

    @app.get("/openapi.json")
    def _openapi() -> Response:
        return _json(openapi_document(settings))

    flask_wsgi = app.wsgi_app
    app.wsgi_app = hook_wsgi  # type: ignore[method-assign]

    # everything built so far (code, UCUM tables, schedules, compiled patterns) lives as long as the process:
    # move it out of the cyclic GC's reach so full collections do not rescan it on a hook call
    gc.collect()
    gc.freeze()
    malloc_tuning.trim()  # hand what start-up freed back to the kernel once (the thresholds keep it thereafter)
    return app
