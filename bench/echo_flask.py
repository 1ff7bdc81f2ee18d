"""The yardstick of shared/reference/performance.md: a trivial CDS Hooks endpoint as a small Flask app.

The reference defines the goals' yardstick as ``echo-orjson`` (§6 "Yardstick"), a Flask app that decodes the body
with orjson, reads ``prefetch.observations.entry`` and answers one small card (§4 "App"); it measured the AHRQ CQL
service, the "light" path and fhir.resources validation against it. This is that app, in its faster GC-paused form
(``echo-orjson-nogc``: the cyclic GC is paused until the decoded tree is freed, as the service does). It is
served with the same gunicorn settings as the service; bench/echo_app.py is the same work without Flask.

    .venv/bin/gunicorn -b 127.0.0.1:8099 -w 2 -k sync 'bench.echo_flask:app'
"""
from __future__ import annotations

from flask import Flask, Response, request

from bench.echo_app import answer_gc_paused

app = Flask("echo_yardstick")


@app.get("/healthz")
def _healthz() -> Response:
    return Response(b'{"status":"ok"}', mimetype="application/json")


@app.post("/cds-services/<service_id>")
def _hook(service_id: str) -> Response:  # noqa: ARG001 - every service id answers the same
    return Response(answer_gc_paused(request.get_data()), mimetype="application/json")
