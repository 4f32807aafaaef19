"""JWTs fuzzed: decoding, RS256 verification, ID-token helpers and PEM loading raise only
gcauth errors, and a token verifies only if its signature is genuine."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from hypothesis import example, given
from hypothesis import strategies as st

from gcauth import oauth2
from gcauth._protocol import jwt
from gcauth.exceptions import GCAuthError
from gcauth.flow import account_from_id_token as _account_from_id_token
from tests.kit.creds import T0, ec_pem, rsa_pem

from .strategies import FUZZ, json_values, only_gcauth_errors

SIGNER = jwt.RSASigner.from_pem(rsa_pem(), "kid-1")
PUBLIC = SIGNER.public_key()
PUBLIC_PEM = PUBLIC.public_bytes(serialization.Encoding.PEM,
                                 serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


segment_text = st.text(max_size=40) | st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/", max_size=60)
json_segment = (json_values | st.fixed_dictionaries({}, optional={
    "alg": st.sampled_from(["RS256", "none", "HS256", "rs256"]) | json_values,
    "kid": st.sampled_from(["kid-1", "other"]) | json_values,
    "typ": json_values, "exp": json_values, "aud": json_values, "email": json_values,
})).map(lambda v: b64(json.dumps(v).encode()))
#: Noise spliced into an otherwise valid segment: non-ASCII, padding, separators.
noise = st.sampled_from(["é", "\x00", "=", "==", ".", "+", "/", " ", "\u2024", "\ufeff"])


@st.composite
def tokens(draw: st.DrawFn) -> str:
    parts = [draw(json_segment | segment_text), draw(json_segment | segment_text),
             draw(st.binary(max_size=300).map(b64) | segment_text)]
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        index = draw(st.integers(min_value=0, max_value=2))
        at = draw(st.integers(min_value=0, max_value=len(parts[index])))
        parts[index] = parts[index][:at] + draw(noise) + parts[index][at:]
    count = draw(st.sampled_from([3, 3, 3, 2, 4, 1]))
    return ".".join((parts + ["", ""])[:count])


@st.composite
def signed_then_mutated(draw: st.DrawFn) -> tuple[str, str]:
    payload = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=4))
    token = jwt.encode(SIGNER, payload)
    if draw(st.booleans()):
        return token, token
    index = draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = draw(st.sampled_from("Aa0-_.=é"))
    return token, token[:index] + replacement + token[index + 1:]


@FUZZ
@given(tokens() | st.text(max_size=60))
@example("e30éé.e30.AAAA")  # non-ASCII that base64 decoding skips over
@example("W10.e30.AA")
@example("e30." + b64(b"[" * 5000) + ".AA")
def test_decode_and_verify_raise_only_gcauth_errors(token: str) -> None:
    only_gcauth_errors(lambda: jwt.decode(token))
    only_gcauth_errors(lambda: jwt.verify_rs256(token, PUBLIC))
    only_gcauth_errors(lambda: oauth2.decode_id_token(token))
    only_gcauth_errors(lambda: oauth2.verify_id_token(token, {"kid-1": PUBLIC_PEM}, now=T0))
    assert _account_from_id_token(token) is None or isinstance(_account_from_id_token(token), str)


@FUZZ
@given(signed_then_mutated())
def test_only_genuine_signatures_verify(pair: tuple[str, str]) -> None:
    original, token = pair
    try:
        claims = jwt.verify_rs256(token, PUBLIC)
    except GCAuthError:
        assert token != original
        return
    # accepted: then it says exactly what was signed (base64 decoding may ignore a stray char)
    assert claims == jwt.decode(original)[1]


@FUZZ
@given(st.text(max_size=80) | st.binary(max_size=80))
def test_b64url_decode(text: Any) -> None:
    only_gcauth_errors(lambda: jwt.b64url_decode(text))


PEM_NOISE = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda kind, body: f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n".encode(),
              st.sampled_from(["CERTIFICATE", "PUBLIC KEY", "RSA PUBLIC KEY", "PRIVATE KEY",
                               "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]),
              st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
                      max_size=300)),
    st.sampled_from([rsa_pem().encode(), ec_pem().encode(), PUBLIC_PEM.encode(),
                     rsa_pem().encode()[:200], PUBLIC_PEM.encode()[:-40]]),
)


@FUZZ
@given(PEM_NOISE)
def test_pem_loaders(data: bytes) -> None:
    only_gcauth_errors(lambda: jwt.load_public_key(data))
    only_gcauth_errors(lambda: jwt.RSASigner.from_pem(data))
    only_gcauth_errors(lambda: jwt.RSASigner.from_pem(data.decode("latin-1")))
