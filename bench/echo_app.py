"""The yardstick: a trivial CDS Hooks endpoint served with the same gunicorn settings as the service.

It does what every CDS service must do and nothing more: read the whole body, decode it with orjson (the
cyclic GC paused until the decoded tree is freed, as the service does), touch ``prefetch.observations.entry``
and answer one small card. Anything the service costs beyond this is the price of its own work.

    .venv/bin/gunicorn -b 127.0.0.1:8099 -w 2 -k sync 'bench.echo_app:app'
"""
from __future__ import annotations

import gc

import orjson

_HEADERS = [("Content-Type", "application/json")]


def _answer(raw: bytes) -> bytes:
    doc = orjson.loads(raw)
    entries = ((doc.get("prefetch") or {}).get("observations") or {}).get("entry") or ()
    card = {"uuid": "00000000-0000-4000-8000-000000000000", "summary": f"echo: {len(entries)} observations",
            "indicator": "info", "source": {"label": "echo yardstick"}}
    return orjson.dumps({"cards": [card]})


def app(environ, start_response):  # noqa: ANN001, ANN201 (WSGI)
    if environ.get("REQUEST_METHOD") != "POST":
        body = b'{"status":"ok"}'
        start_response("200 OK", _HEADERS + [("Content-Length", str(len(body)))])
        return [body]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length)
    gc_was = gc.isenabled()
    gc.disable()
    try:
        body = _answer(raw)  # the decoded tree dies with _answer's frame, before the GC is back on
    finally:
        if gc_was:
            gc.enable()
    start_response("200 OK", _HEADERS + [("Content-Length", str(len(body)))])
    return [body]
