"""The floor: the yardstick's work (bench/echo_flask.py) as a bare WSGI callable, without a web framework.

It does what every CDS service must do and nothing more: read the whole body, decode it with orjson (the cyclic
GC paused until the decoded tree is freed, as the service does), touch ``prefetch.observations.entry`` and answer
one small card. The goals are ratios to the Flask yardstick of shared/reference/performance.md
(bench/echo_flask.py ``app``, which runs :func:`answer` with the GC as Python sets it); this bare form is reported
next to it as the lowest a Python WSGI service can go (the service answers hook calls through its own WSGI fast
path, cds_service/app.py ``hook_wsgi``).

    .venv/bin/gunicorn -b 127.0.0.1:8098 -w 2 -k sync 'bench.echo_app:app'
"""
from __future__ import annotations

import gc

import orjson

_HEADERS = [("Content-Type", "application/json")]


def answer(raw: bytes) -> bytes:
    """The echo's work: decode the body, read the Observations, answer one small card (the GC as Python sets it)."""
    doc = orjson.loads(raw)
    entries = ((doc.get("prefetch") or {}).get("observations") or {}).get("entry") or ()
    card = {"uuid": "00000000-0000-4000-8000-000000000000", "summary": f"echo: {len(entries)} observations",
            "indicator": "info", "source": {"label": "echo yardstick"}}
    return orjson.dumps({"cards": [card]})


def answer_gc_paused(raw: bytes) -> bytes:
    gc_was = gc.isenabled()
    gc.disable()
    try:
        return answer(raw)  # the decoded tree dies with answer's frame, before the GC is back on
    finally:
        if gc_was:
            gc.enable()


def app(environ, start_response):  # noqa: ANN001, ANN201 (WSGI)
    if environ.get("REQUEST_METHOD") != "POST":
        body = b'{"status":"ok"}'
        start_response("200 OK", _HEADERS + [("Content-Length", str(len(body)))])
        return [body]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = answer_gc_paused(environ["wsgi.input"].read(length))
    start_response("200 OK", _HEADERS + [("Content-Length", str(len(body)))])
    return [body]

