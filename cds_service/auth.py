"""CDS-client authentication (CDS Hooks 2.0 "Trusting CDS Clients"): a signed JWT on every call.

Checks: ``alg`` ES384 or RS384 only (never ``none`` or HS*); ``iss`` in the configured trust list; the key from
that issuer's JWKS (URL with a cached refresh, inline, or file) or from an allow-listed ``jku``; ``aud`` equal to
the URL of the endpoint called; ``exp``; ``iat`` not in the future (leeway ≥ 5 s); ``jti`` not seen before within
its lifetime (kept in the feedback database, so every worker of the host shares it). Any failure is a bare 401:
no body, no hint, nothing logged but the reason class.

PyJWT (and the ``cryptography`` bindings under it, about 9 MiB of resident memory per worker) is imported only when
a JWT is checked: at start in ``jwt`` mode, never in ``open`` mode (a sandbox), where no token is ever read.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cds_service.config import AuthSettings, TrustedIssuer

if TYPE_CHECKING:
    from jwt import PyJWKClient, PyJWKSet

ALGORITHMS = ["ES384", "RS384"]

_jwt: Any = None


def _pyjwt() -> Any:
    """The ``jwt`` module (PyJWT), imported on first use."""
    global _jwt
    if _jwt is None:
        import jwt

        _jwt = jwt
    return _jwt


class AuthError(Exception):
    """Why a token was refused (a short class name for logs/metrics; never the token)."""


class Authenticator:
    def __init__(self, settings: AuthSettings, public_url: str | None, jti_store: Any) -> None:
        self.settings = settings
        self.public_url = (public_url or "").rstrip("/")
        self.jti_store = jti_store
        self._issuers = {i.iss: i for i in settings.trusted_issuers}
        self._clients: dict[str, PyJWKClient] = {}
        self._static: dict[str, PyJWKSet] = {}
        self._lock = threading.Lock()
        if not self.open:
            _pyjwt()  # now, not on the first hook call (and before gunicorn forks, with preload_app)

    @property
    def open(self) -> bool:
        return self.settings.mode == "open"

    def audience_for(self, request_url: str, path: str) -> str:
        """The aud the client must use: public base URL + the endpoint path (or the request URL without query)."""
        if self.public_url:
            base = self.public_url
            if base.endswith("/cds-services"):
                base = base[: -len("/cds-services")]
            return base + path
        return request_url.split("?", 1)[0]

    def verify(self, authorization: str | None, audience: str) -> dict[str, Any]:
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing bearer token")
        token = authorization[len("Bearer "):].strip()
        jwt = _pyjwt()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None
        if header.get("alg") not in ALGORITHMS:
            raise AuthError("algorithm not allowed")
        issuer = self._issuers.get(unverified.get("iss"))
        if issuer is None:
            raise AuthError("issuer not trusted")
        key = self._key(issuer, header)
        try:
            claims = jwt.decode(
                token, key=key, algorithms=ALGORITHMS, audience=audience, issuer=issuer.iss,
                leeway=self.settings.leeway_s, options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("wrong audience") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token issued in the future") from None
        except jwt.PyJWTError as exc:
            raise AuthError(type(exc).__name__) from None
        if int(claims["iat"]) > time.time() + self.settings.leeway_s:
            raise AuthError("token issued in the future")
        if not self.jti_store.remember_jti(f"{issuer.iss}|{claims['jti']}", int(claims["exp"])):
            raise AuthError("token replayed")
        return claims

    def _key(self, issuer: TrustedIssuer, header: dict[str, Any]):
        kid = header.get("kid")
        jku = header.get("jku")
        if jku:
            if jku not in issuer.jku_allowlist:
                raise AuthError("jku not allow-listed")
            return self._from_url(jku, kid)
        if issuer.jwks_url:
            return self._from_url(issuer.jwks_url, kid)
        keyset = self._static_set(issuer)
        for k in keyset.keys:
            if kid is None or k.key_id == kid:
                return k.key
        raise AuthError("no matching key")

    def _from_url(self, url: str, kid: str | None):
        jwt = _pyjwt()
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                client = jwt.PyJWKClient(url, cache_keys=True, lifespan=self.settings.jwks_cache_s, timeout=3)
                self._clients[url] = client
        try:
            if kid:
                return client.get_signing_key(kid).key
            keys = client.get_signing_keys()
            if len(keys) != 1:
                raise AuthError("token has no kid and the JWKS has several keys")
            return keys[0].key
        except jwt.PyJWKClientError:
            raise AuthError("key not found in JWKS") from None

    def _static_set(self, issuer: TrustedIssuer) -> PyJWKSet:
        cached = self._static.get(issuer.iss)
        if cached is None:
            data = issuer.jwks if issuer.jwks is not None else json.loads(Path(issuer.jwks_file).read_text())
            cached = _pyjwt().PyJWKSet.from_dict(data)
            self._static[issuer.iss] = cached
        return cached
