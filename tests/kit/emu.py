"""Raw-HTTP toolkit for the emulator tests (imported by conftest and the tests).

The client side uses only ``http.client`` and ``cryptography`` (never gcauth's own
client library) so these tests check the emulator independently.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gcauth.emulator import Emulator

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


@dataclass
class Resp:
    """A fully read HTTP response."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@functools.lru_cache(maxsize=64)
def _load_key(pem: str) -> rsa.RSAPrivateKey:
    """Parse a PEM key once (loading validates the RSA key, which takes ~100 ms)."""
    loaded = serialization.load_pem_private_key(pem.encode(), None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    return loaded


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Kit:
    """Raw HTTP + JWT helpers bound to one emulator."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    # -- HTTP ------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> Resp:
        conn = http.client.HTTPConnection(self.emu.host, self.emu.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            r = conn.getresponse()
            return Resp(r.status, r.headers, r.read())
        finally:
            conn.close()

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Resp:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, form: Mapping[str, str] | list[tuple[str, str]],
             headers: Mapping[str, str] | None = None) -> Resp:
        h = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return self.request("POST", path, urlencode(form).encode(), h)

    def md(self, path: str, **headers: str) -> Resp:
        return self.get("/computeMetadata/v1/" + path, {"Metadata-Flavor": "Google", **headers})

    def api(self, bearer: str | None, project: str = "p1",
            headers: Mapping[str, str] | None = None) -> Resp:
        h = dict(headers or {})
        if bearer is not None:
            h["Authorization"] = f"Bearer {bearer}"
        return self.get(f"/sql/v1beta4/projects/{project}/instances", h)

    # -- JWTs ----------------------------------------------------------------
    @staticmethod
    def sign(info: Mapping[str, str], claims: Mapping[str, Any],
             header: Mapping[str, Any] | None = None,
             key: rsa.RSAPrivateKey | None = None) -> str:
        if key is None:
            key = _load_key(info["private_key"])
        hdr = {"alg": "RS256", "typ": "JWT", "kid": info["private_key_id"], **(header or {})}
        seg = b64url(json.dumps(hdr).encode()) + "." + b64url(json.dumps(dict(claims)).encode())
        sig = key.sign(seg.encode(), padding.PKCS1v15(), hashes.SHA256())
        return seg + "." + b64url(sig)

    @staticmethod
    def sa_claims(info: Mapping[str, str], **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": info["client_email"],
            "scope": CLOUD,
            "aud": GOOGLE_TOKEN_URI,
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def jwt_grant(self, info: Mapping[str, str], assertion: str | None = None,
                  **overrides: Any) -> Resp:
        if assertion is None:
            assertion = self.sign(info, self.sa_claims(info, **overrides))
        return self.post("/token", {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": assertion,
        })

    def sa_token(self, info: Mapping[str, str], scope: str = CLOUD) -> str:
        r = self.jwt_grant(info, scope=scope)
        assert r.status == 200, r.body
        return str(r.json()["access_token"])

    @staticmethod
    def decode(jwt: str) -> dict[str, Any]:
        payload = jwt.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))

    # -- browser flow ----------------------------------------------------------
    @staticmethod
    def pkce() -> tuple[str, str]:
        verifier = secrets.token_urlsafe(48)
        challenge = b64url(hashlib.sha256(verifier.encode()).digest())
        return verifier, challenge

    def consent(self, client_id: str, redirect_uri: str, *, scope: str = f"openid {EMAIL} {CLOUD}",
                challenge: str = "x" * 43, method: str = "S256", state: str = "st8",
                **extra: str) -> Resp:
        q = {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": method,
            "access_type": "offline",
            **extra,
        }
        return self.get("/o/oauth2/auth?" + urlencode(q))

    @staticmethod
    def pending_id(page: Resp) -> str:
        m = re.search(r'name="pending" value="([^"]+)"', page.text)
        assert m, page.text
        return m.group(1)

    def approve(self, page: Resp, decision: str = "allow",
                account: str = "alice@example.com") -> Resp:
        return self.post("/o/oauth2/approve", {
            "pending": self.pending_id(page), "decision": decision, "account": account})

    @staticmethod
    def redirect_params(resp: Resp) -> dict[str, str]:
        assert resp.status == 302, resp.text
        q = parse_qs(urlsplit(resp.headers["Location"]).query)
        return {k: v[0] for k, v in q.items()}

    def code_flow(self, secrets_: Mapping[str, Any], *, scope: str = f"openid {EMAIL} {CLOUD}",
                  redirect_uri: str = "http://127.0.0.1:9/cb") -> tuple[dict[str, str], str, str]:
        """Run consent → code; return (redirect params, verifier, redirect_uri)."""
        verifier, challenge = self.pkce()
        page = self.consent(secrets_["client_id"], redirect_uri, scope=scope, challenge=challenge)
        assert page.status == 200, page.text
        return self.redirect_params(self.approve(page)), verifier, redirect_uri

    def exchange(self, secrets_: Mapping[str, Any], code: str, verifier: str | None,
                 redirect_uri: str) -> Resp:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": secrets_["client_id"],
            "client_secret": secrets_["client_secret"],
        }
        if verifier is not None:
            form["code_verifier"] = verifier
        return self.post("/token", form)


