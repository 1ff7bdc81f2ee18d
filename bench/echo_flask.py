"""The yardstick of shared/reference/performance.md: a trivial CDS Hooks endpoint as a small Flask app.

``app`` is ``echo-orjson``, the yardstick the reference's goals are ratios to (§6 "Yardstick", §4 "App"): it decodes
the body with orjson, reads ``prefetch.observations.entry`` and answers one small card, the cyclic GC left as Python
sets it. The reference measured the AHRQ CQL service, the "light" path and fhir.resources validation against it.
``app_nogc`` is its variant ``echo-orjson-nogc`` (§4.3): the cyclic GC paused until the decoded tree is freed, as
the service does; faster, so the benchmark reports every ratio against it too. Both are served with the same
gunicorn settings as the service; bench/echo_app.py is the GC-paused work without Flask.

    .venv/bin/gunicorn -b 127.0.0.1:8099 -w 2 -k sync 'bench.echo_flask:app'
"""
from __future__ import annotations

from typing import Callable

from flask import Flask, Response, request

from bench.echo_app import answer, answer_gc_paused


def _make(name: str, answer_body: Callable[[bytes], bytes]) -> Flask:
    app = Flask(name)

    @app.get("/healthz")
    def _healthz() -> Response:
        return Response(b'{"status":"ok"}', mimetype="application/json")

    @app.post("/cds-services/<service_id>")
    def _hook(service_id: str) -> Response:  # noqa: ARG001 - every service id answers the same
        return Response(answer_body(request.get_data()), mimetype="application/json")

    return app


app = _make("echo_yardstick", answer)                  # echo-orjson: the yardstick
app_nogc = _make("echo_yardstick_nogc", answer_gc_paused)  # echo-orjson-nogc
