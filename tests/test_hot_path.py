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


# --- card clean-up and markdown escaping: the faster forms give what the plain ones gave ------------------------

import re  # noqa: E402
from decimal import Decimal  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cds_service import cards  # noqa: E402


def _reference_clean(obj):
    if isinstance(obj, dict):
        out = {k: _reference_clean(v) for k, v in obj.items()}
        return {k: v for k, v in out.items() if v is not None and v != [] and v != {} and v != ""}
    if isinstance(obj, list):
        return [x for x in (_reference_clean(v) for v in obj) if x is not None and x != [] and x != {} and x != ""]
    return obj


class _Str(str):
    pass


_LEAVES = st.one_of(st.none(), st.just(""), st.just(_Str("")), st.text(max_size=3), st.integers(-1, 1),
                    st.just(0.0), st.booleans(), st.just(Decimal(0)), st.just(()), st.just(Decimal("NaN")))
_TREES = st.recursive(_LEAVES, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                      st.dictionaries(st.text(max_size=2), kids, max_size=4)),
                      max_leaves=25)


@settings(max_examples=400, deadline=None)
@given(_TREES)
def test_clean_is_the_reference_clean(tree):
    got, want = cards._clean(tree), _reference_clean(tree)
    assert repr(got) == repr(want)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab \\`*_[]|<>~\n\u2212\u212a%")), max_size=40))
def test_md_escape_is_the_regex_escape(text):
    assert cards.md_escape(text) == re.sub(r"([\\`*_\[\]|<>~])", r"\\\1", text)
    assert cards.md_escape(_Str(text)) == re.sub(r"([\\`*_\[\]|<>~])", r"\\\1", text)


# --- the hook's WSGI entry (cds_service/app.py hook_wsgi) answers as the Flask route does -----------------------

def _hook_environ(body: bytes, **overrides) -> dict:
    """The WSGI environ of a hook call with a Content-Length, as gunicorn passes it (it closes the response)."""
    import io

    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/cds-services/remission-status", "SCRIPT_NAME": "",
               "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
               "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
               "SERVER_SOFTWARE": "gunicorn/test"}
    environ.update(overrides)
    return environ


def _raw_call(app, body: bytes, *, chunked: bool = False, headers: dict | None = None, path: str | None = None):
    """Call the WSGI app directly, with or without a Content-Length (without one the Flask route answers)."""
    environ = _hook_environ(body, PATH_INFO=path or "/cds-services/remission-status", **(headers or {}))
    if chunked:
        del environ["CONTENT_LENGTH"]
        environ["wsgi.input_terminated"] = True
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    seen = {}

    def start_response(status, hdrs, exc_info=None):
        seen["status"], seen["headers"] = status, dict(hdrs)

    it = app(environ, start_response)
    try:
        payload = b"".join(it)
    finally:
        if hasattr(it, "close"):
            it.close()
    return seen["status"], seen["headers"], payload


CORS = {"HTTP_ORIGIN": "https://sandbox.cds-hooks.org", "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK": "true"}


@pytest.mark.parametrize("body", [build_body(100), b"{not json", b'{"hook": "patient-view"}', b"",
                                  b'{"hook": "patient-view", "hookInstance": "x", "context": {}}'])
def test_direct_entry_and_flask_route_give_the_same_answer(app, gc_on, body):
    import orjson

    fast = _raw_call(app, body, headers=CORS)
    routed = _raw_call(app, body, chunked=True, headers=CORS)
    assert fast[0] == routed[0]
    for name in ("Content-Type", "Access-Control-Allow-Origin", "Access-Control-Allow-Headers",
                 "Access-Control-Allow-Methods", "Vary", "Access-Control-Allow-Private-Network"):
        assert fast[1].get(name) == routed[1].get(name), name
    assert fast[1]["Content-Length"] == str(len(fast[2]))
    a, b = orjson.loads(fast[2]), orjson.loads(routed[2])
    if "cards" in a:
        assert _without_uuids(a["cards"]) == _without_uuids(b["cards"]) and a["cards"]
    else:
        assert a == b and a["resourceType"] == "OperationOutcome"
    assert gc.isenabled()  # both released once the response was closed


def test_direct_entry_unknown_service_and_oversized_body(app, gc_on):
    status, headers, payload = _raw_call(app, b"{}", path="/cds-services/no-such-service")
    assert status.startswith("404") and b"unknown CDS service" in payload
    big = b" " * (app.extensions["remission_settings"].max_body_bytes + 10)
    status, headers, payload = _raw_call(app, big)
    assert status.startswith("413") and headers["Content-Type"] == "application/fhir+json"
    assert b"too large" in payload


def test_direct_entry_internal_error_is_an_operation_outcome_without_a_trace(app, gc_on, monkeypatch):
    import cds_service.app as appmod

    def boom(*a, **k):
        raise RuntimeError("secret detail Patient/123")

    monkeypatch.setattr(appmod, "assess_record", boom)
    status, headers, payload = _raw_call(app, build_body(100))
    assert status.startswith("500") and headers["Content-Type"] == "application/fhir+json"
    assert b"internal error" in payload and b"secret" not in payload and b"Traceback" not in payload
    assert gc.isenabled()


def test_direct_entry_counts_the_call_in_the_metrics(app, client):
    from cds_service import metrics

    def count():
        return metrics.REQUESTS.labels("/cds-services/<service_id>", "remission-status", "200")._value.get()

    before = count()
    assert _raw_call(app, build_body(100))[0].startswith("200")
    assert count() == before + 1


def test_direct_entry_books_the_call_once_the_response_is_closed(app, gc_on, capsys):
    """Under a server, the access log line and the metrics come after the response was sent (close()), not
    before: the client does not wait for them; a response never closed is booked by the next request."""
    import io

    from cds_service import metrics

    def count():
        return metrics.REQUESTS.labels("/cds-services/<service_id>", "remission-status", "200")._value.get()

    def cards_count():
        return metrics.CARDS.labels("RECIST 1.1", "PR")._value.get()

    body = build_body(100)
    environ = _hook_environ(body)
    capsys.readouterr()
    before, cards_before = count(), cards_count()
    it = app(environ, lambda status, headers, exc_info=None: None)
    assert b"".join(it)
    assert count() == before and cards_count() == cards_before  # not yet: the response is still being sent
    assert '"event":"request"' not in capsys.readouterr().err.replace(" ", "")
    it.close()
    assert count() == before + 1 and cards_count() == cards_before + 1
    line = [ln for ln in capsys.readouterr().err.splitlines() if '"request"' in ln]
    assert len(line) == 1 and '"status": 200' in line[0].replace('"status":200', '"status": 200')

    environ["wsgi.input"] = io.BytesIO(body)
    it = app(environ, lambda status, headers, exc_info=None: None)
    b"".join(it)  # never closed
    assert count() == before + 1
    assert app.test_client().get("/healthz").status_code == 200  # the next request releases and books it
    assert count() == before + 2
    it.close()  # a late close() books nothing twice
    assert count() == before + 2


def test_the_root_url_for_the_smart_link_follows_the_host(app):
    """The SMART link's root URL (no public_url configured) is computed per scheme and host, not once."""
    import orjson

    body = build_body(100)
    links = []
    for host in ("a.example.org", "b.example.org:8443"):
        environ = _hook_environ(body, HTTP_HOST=host, **{"wsgi.url_scheme": "https"})
        del environ["SERVER_SOFTWARE"]  # a caller that does not close: the answer is complete on return
        out = orjson.loads(b"".join(app(environ, lambda *a: None)))
        links.append([link["url"] for c in out["cards"] for link in c.get("links", []) if link["type"] == "smart"])
    assert links[0] and links[1]
    assert links[0][0].startswith("https://a.example.org/") and links[1][0].startswith("https://b.example.org:8443/")


def test_a_failing_metric_never_reaches_the_server_and_the_call_is_still_logged(app, gc_on, capsys, monkeypatch):
    """Book-keeping runs from the server's close(): a failure there is logged by its type, the rest still runs."""
    from cds_service import metrics

    def boom(cards):
        raise ValueError("secret Patient/123")

    monkeypatch.setattr(metrics, "record_cards", boom)
    body = build_body(100)
    environ = _hook_environ(body)
    capsys.readouterr()
    it = app(environ, lambda status, headers, exc_info=None: None)
    assert b"".join(it)
    it.close()  # does not raise
    assert gc.isenabled()
    err = capsys.readouterr().err
    assert "bookkeeping_failed" in err and "ValueError" in err and "secret" not in err
    assert '"request"' in err  # the access log line after it was still written
