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
