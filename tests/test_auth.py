"""CDS-client JWT authentication: every endpoint, every refusal is a bare 401."""
from __future__ import annotations

import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cds_service.sandbox.vignettes import to_patient
from conftest import load_vignettes

BASE = "https://cds.example.org/cds-services"
ISS = "https://ehr.example.org"


@pytest.fixture(scope="module")
def keys():
    ec_key = ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk_ec = jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True) | {"kid": "ec1", "alg": "ES384",
                                                                                       "use": "sig"}
    jwk_rsa = jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True) | {"kid": "rsa1", "alg": "RS384",
                                                                                         "use": "sig"}
    return {"ec": ec_key, "rsa": rsa_key, "jwks": {"keys": [jwk_ec, jwk_rsa]}}


@pytest.fixture()
def secured(tmp_path, keys):
    from cds_service import create_app

    app = create_app({
        "feedback_database_url": f"sqlite:///{tmp_path}/fb.sqlite3", "public_url": BASE,
        "auth": {"mode": "jwt", "trusted_issuers": [{"iss": ISS, "jwks": keys["jwks"]}]},
    })
    return app.test_client()


def token(keys, aud, *, alg="ES384", kid="ec1", iss=ISS, exp_in=300, iat_shift=0, jti=None, key=None, **extra):
    now = int(time.time())
    claims = {"iss": iss, "aud": aud, "exp": now + exp_in, "iat": now + iat_shift, "jti": jti or str(uuid.uuid4()),
              **extra}
    signing = key if key is not None else (keys["ec"] if alg.startswith("ES") else keys["rsa"])
    return jwt.encode(claims, signing, algorithm=alg, headers={"kid": kid})


def hook_body():
    return to_patient(next(v for v in load_vignettes() if v["id"] == "RECIST-01")).hook_request()


def test_valid_es384_and_rs384_tokens_are_accepted(secured, keys):
    h = {"Authorization": f"Bearer {token(keys, BASE)}"}
    assert secured.get("/cds-services", headers=h).status_code == 200
    t = token(keys, f"{BASE}/remission-status", alg="RS384", kid="rsa1")
    assert secured.post("/cds-services/remission-status", json=hook_body(),
                        headers={"Authorization": f"Bearer {t}"}).status_code == 200


@pytest.mark.parametrize("case", ["missing", "none_alg", "hs256", "wrong_iss", "wrong_aud", "expired", "future_iat",
                                  "wrong_key", "garbage"])
def test_bad_tokens_get_a_bare_401(secured, keys, case):
    aud = f"{BASE}/remission-status"
    if case == "missing":
        headers = {}
    elif case == "none_alg":
        headers = {"Authorization": "Bearer " + jwt.encode({"iss": ISS, "aud": aud, "exp": int(time.time()) + 60,
                                                            "iat": int(time.time()), "jti": "x"}, None,
                                                           algorithm="none")}
    elif case == "hs256":
        headers = {"Authorization": "Bearer " + jwt.encode({"iss": ISS, "aud": aud, "exp": int(time.time()) + 60,
                                                            "iat": int(time.time()), "jti": "y"}, "k" * 48,
                                                           algorithm="HS256")}
    elif case == "wrong_iss":
        headers = {"Authorization": f"Bearer {token(keys, aud, iss='https://evil.example')}"}
    elif case == "wrong_aud":
        headers = {"Authorization": f"Bearer {token(keys, BASE + '/other')}"}
    elif case == "expired":
        headers = {"Authorization": f"Bearer {token(keys, aud, exp_in=-60)}"}
    elif case == "future_iat":
        headers = {"Authorization": f"Bearer {token(keys, aud, iat_shift=120)}"}
    elif case == "wrong_key":
        other = ec.generate_private_key(ec.SECP384R1())
        headers = {"Authorization": f"Bearer {token(keys, aud, key=other)}"}
    else:
        headers = {"Authorization": "Bearer not.a.jwt"}
    resp = secured.post("/cds-services/remission-status", json=hook_body(), headers=headers)
    assert resp.status_code == 401
    assert resp.get_data() == b""


def test_iat_within_five_seconds_leeway_is_accepted(secured, keys):
    t = token(keys, f"{BASE}/remission-status", iat_shift=4)
    assert secured.post("/cds-services/remission-status", json=hook_body(),
                        headers={"Authorization": f"Bearer {t}"}).status_code == 200


def test_replayed_jti_is_refused(secured, keys):
    t = token(keys, f"{BASE}/remission-status", jti="once")
    h = {"Authorization": f"Bearer {t}"}
    assert secured.post("/cds-services/remission-status", json=hook_body(), headers=h).status_code == 200
    assert secured.post("/cds-services/remission-status", json=hook_body(), headers=h).status_code == 401


def test_feedback_needs_a_token_for_its_own_url(secured, keys):
    body = {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}
    url = "/cds-services/remission-status/feedback"
    assert secured.post(url, json=body).status_code == 401
    t = token(keys, f"{BASE}/remission-status/feedback")
    assert secured.post(url, json=body, headers={"Authorization": f"Bearer {t}"}).status_code == 200


def test_open_mode_needs_no_token(client):
    assert client.get("/cds-services").status_code == 200


def test_production_refuses_open_mode():
    from cds_service.config import load_settings

    with pytest.raises(Exception, match="auth.mode must be jwt"):
        load_settings({"environment": "production"})


def test_health_endpoints_need_no_token(secured):
    assert secured.get("/healthz").status_code == 200
