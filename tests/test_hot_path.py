"""Hook-call memory handling: the decoded body is freed (GC paused) after a WSGI server has sent the response."""
from __future__ import annotations

import gc

import pytest

from bench.generate import build_body

SERVER = {"SERVER_SOFTWARE": "gunicorn/test"}  # a WSGI server, which closes the response after sending it


def _post(client, body, **kw):
    return client.post("/cds-services/remission-status", data=body, content_type="application/json", **kw)


def _without_uuids(cards):
    return [{k: v for k, v in c.items() if k != "uuid"} | {"suggestions": [
        {k: v for k, v in s.items() if k != "uuid"} for s in c.get("suggestions", [])]} for c in cards]


@pytest.fixture()
def gc_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_under_a_server_the_body_is_freed_when_the_response_is_closed(client, gc_on):
    body = build_body(100)
    plain = _post(client, body)
    assert plain.status_code == 200 and gc.isenabled()
    resp = _post(client, body, environ_overrides=SERVER)
    assert resp.status_code == 200
    assert _without_uuids(resp.get_json()["cards"]) == _without_uuids(plain.get_json()["cards"])
    assert not gc.isenabled()  # still paused: the tree is alive until the server has sent the response
    resp.close()
    assert gc.isenabled()


def test_a_response_never_closed_is_released_by_the_next_request(client, gc_on):
    resp = _post(client, build_body(100), environ_overrides=SERVER)
    assert resp.status_code == 200 and not gc.isenabled()
    assert client.get("/healthz").status_code == 200
    assert gc.isenabled()
    resp.close()  # a late close() is harmless
    assert gc.isenabled()


@pytest.mark.parametrize("body", [b"{not json", b'{"hook": "patient-view"}', b"[]"])
def test_errors_leave_the_gc_on(client, gc_on, body):
    assert _post(client, body, environ_overrides=SERVER).status_code == 400
    assert gc.isenabled()
