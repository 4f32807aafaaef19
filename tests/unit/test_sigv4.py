"""AWS Signature Version 4: AWS's published test suite, the STS request WIF sends, bad input.

The vectors live in tests/data/sigv4 (AWS's data, see its README); every stored vector runs.
"""

from __future__ import annotations

import datetime
import hashlib
import pickle
from pathlib import Path

import pytest

from gcauth._protocol import sigv4
from gcauth._protocol.sigv4 import AwsSecurityCredentials
from gcauth.exceptions import GCAuthError, UsageError

DATA = Path(__file__).resolve().parents[1] / "data" / "sigv4"
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
SERVICE = "service"
WHEN = datetime.datetime(2015, 8, 30, 12, 36, 0, tzinfo=datetime.timezone.utc)
# AWS's example session token, from post-sts-token/readme.txt
STS_TOKEN = (DATA / "post-sts-token" / "readme.txt").read_text().strip().splitlines()[-1]


def _vectors() -> list[Path]:
    return sorted(p.parent for p in DATA.rglob("*.req"))


VECTORS = _vectors()

#: Known inconsistencies in AWS's data, kept as published (see tests/data/sigv4/README.md):
#: each vector's .creq matches its .req, but its .sts (and so the signature) was computed from
#: the request with these header changes (``None``: the header left out).
ERRATA: dict[str, dict[str, str | None]] = {
    "post-x-www-form-urlencoded": {"content-length": None},
    "post-x-www-form-urlencoded-parameters": {
        "content-length": None,
        "content-type": "application/x-www-form-urlencoded; charset=utf8"},
}
#: ... and this vector's .authz lists content-length in SignedHeaders although its signature
#: (the .sreq's too) is of the request without it: its .sreq Authorization is the reference.
AUTHZ_FROM_SREQ = {"post-x-www-form-urlencoded-parameters"}


def _as_signed(name: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    edits = ERRATA.get(name, {})
    out = []
    for header, value in pairs:
        if header.lower() in edits:
            replacement = edits[header.lower()]
            if replacement is None:
                continue
            value = replacement
        out.append((header, value))
    return out


def _authz(vector: Path) -> str:
    if vector.name in AUTHZ_FROM_SREQ:
        line = next(x for x in _read(vector, "sreq").split("\n") if x.startswith("Authorization:"))
        return line.partition(":")[2].strip()
    return _read(vector, "authz")


class Req:
    """A .req file: method, URL, header pairs (a folded value keeps its line breaks), body."""

    def __init__(self, text: str):
        head, _, body = text.partition("\n\n")
        lines = head.split("\n")
        method, _, rest = lines[0].partition(" ")
        target = rest.rsplit(" ", 1)[0]   # "/example space/ HTTP/1.1": the target has spaces
        self.pairs: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t"):
                name, value = self.pairs.pop()
                self.pairs.append((name, value + "\n" + line))
            else:
                name, _, value = line.partition(":")
                self.pairs.append((name, value))
        host = next(v for n, v in self.pairs if n.lower() == "host")
        self.method = method
        self.url = "https://" + host + target
        self.body = body.encode() if body else None


def _read(vector: Path, ext: str) -> str:
    return (vector / f"{vector.name}.{ext}").read_text(encoding="utf-8")


def test_the_suite_is_all_there() -> None:
    names = {v.name for v in VECTORS}
    assert len(VECTORS) >= 30
    for name in ("get-vanilla", "get-vanilla-query-order-key-case", "get-unreserved",
                 "get-utf8", "get-space", "get-vanilla-empty-query-key", "get-slashes",
                 "get-relative-relative", "post-header-key-case", "post-header-value-case",
                 "post-x-www-form-urlencoded", "post-sts-header-before",
                 "post-sts-header-after", "get-header-value-trim", "get-header-key-duplicate",
                 "get-header-value-multiline", "get-vanilla-utf8-query"):
        assert name in names
    for vector in VECTORS:
        for ext in ("req", "creq", "sts", "authz", "sreq"):
            assert (vector / f"{vector.name}.{ext}").is_file()


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_vector_pieces(vector: Path) -> None:
    req = Req(_read(vector, "req"))
    canonical = sigv4.canonical_request(req.method, req.url, req.pairs, req.body,
                                        service=SERVICE)
    assert canonical == _read(vector, "creq")
    if vector.name in ERRATA:
        req.pairs = _as_signed(vector.name, req.pairs)
        canonical = sigv4.canonical_request(req.method, req.url, req.pairs, req.body,
                                            service=SERVICE)
    to_sign = sigv4.string_to_sign(canonical, amz_date="20150830T123600Z", region=REGION,
                                   service=SERVICE)
    assert to_sign == _read(vector, "sts")
    key = sigv4.signing_key(SECRET, "20150830", REGION, SERVICE)
    signed = canonical.split("\n")[-2]
    authz = (f"AWS4-HMAC-SHA256 Credential={KEY_ID}/"
             f"{sigv4.credential_scope('20150830', REGION, SERVICE)}, "
             f"SignedHeaders={signed}, Signature={sigv4.signature(key, to_sign)}")
    assert authz == _authz(vector)
    # a verifier reads the header back and gets the same pieces
    parsed = sigv4.parse_authorization(_authz(vector))
    assert parsed == (KEY_ID, "20150830", REGION, SERVICE, tuple(signed.split(";")),
                      authz.rsplit("=", 1)[1])


def _sreq_headers(vector: Path) -> dict[str, str]:
    head = _read(vector, "sreq").partition("\n\n")[0]
    out: dict[str, str] = {}
    for line in head.split("\n")[1:]:
        name, _, value = line.partition(":")
        out[name.lower()] = value.strip()
    return out


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_vector_sign_request(vector: Path) -> None:
    """sign_request end to end: a name given several times becomes one comma-joined value
    (RFC 9110 §5.3); a folded (multi-line) value cannot be sent and is refused."""
    req = Req(_read(vector, "req"))
    headers: dict[str, str] = {}
    for name, value in _as_signed(vector.name, req.pairs):
        key = next((k for k in headers if k.lower() == name.lower()), name)
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    token = STS_TOKEN if vector.name == "post-sts-header-before" else None
    creds = AwsSecurityCredentials(KEY_ID, SECRET, token)
    if any("\n" in v for v in headers.values()):
        with pytest.raises(UsageError, match="CR, LF or NUL"):
            sigv4.sign_request(req.method, req.url, headers, req.body, creds, REGION,
                               SERVICE, WHEN)
        return
    out = sigv4.sign_request(req.method, req.url, headers, req.body, creds, REGION, SERVICE,
                             WHEN)
    assert out["Authorization"] == _authz(vector)
    expected = _sreq_headers(vector)
    if vector.name == "post-sts-header-after":   # the token added after signing
        del expected["x-amz-security-token"]
    if vector.name in ERRATA:
        expected.update({k: v for k, v in ERRATA[vector.name].items() if v is not None})
    got = {k.lower(): v.strip() for k, v in out.items()}
    for name in ("my-header1",):                  # the .sreq repeats the header lines
        if name in got:
            expected[name] = got[name]
    assert got == expected


def test_host_and_date_are_added_when_absent() -> None:
    creds = AwsSecurityCredentials(KEY_ID, SECRET)
    vector = DATA / "get-vanilla"
    for now in (WHEN, WHEN.timestamp(),
                WHEN.astimezone(datetime.timezone(datetime.timedelta(hours=-7)))):
        out = sigv4.sign_request("GET", "https://example.amazonaws.com/", None, None, creds,
                                 REGION, SERVICE, now)
        assert out == {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z",
                       "Authorization": _read(vector, "authz")}


def test_the_signature_changes_with_every_input() -> None:
    creds = AwsSecurityCredentials(KEY_ID, SECRET)
    base = dict(method="GET", url="https://example.amazonaws.com/", headers=None, body=None,
                credentials=creds, region=REGION, service=SERVICE, now=WHEN)
    reference = sigv4.sign_request(**base)["Authorization"]  # type: ignore[arg-type]
    for change in ({"method": "POST"}, {"url": "https://example.amazonaws.com/a"},
                   {"url": "https://example.amazonaws.com/?a=b"},
                   {"headers": {"x-a": "b"}}, {"body": b"x"},
                   {"credentials": AwsSecurityCredentials(KEY_ID, SECRET + "x")},
                   {"region": "us-west-2"}, {"service": "sts"}, {"now": WHEN.timestamp() + 1}):
        assert sigv4.sign_request(**{**base, **change})["Authorization"] != reference  # type: ignore[arg-type]


def test_signing_keys_of_awss_documentation() -> None:
    # AWS's documented derivation examples (secret wJalr..., us-east-1, iam)
    assert sigv4.signing_key(SECRET, "20150830", "us-east-1", "iam").hex() == \
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    assert sigv4.signing_key(SECRET, "20120215", "us-east-1", "iam").hex() == \
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


# --- canonicalisation details beyond the suite ---------------------------------------------

def _creq(url: str, service: str = SERVICE) -> list[str]:
    return sigv4.canonical_request("GET", url, {"host": "h"}, None,
                                   service=service).split("\n")


@pytest.mark.parametrize(("path", "canonical"), [
    ("", "/"),
    ("/a%20b", "/a%2520b"),           # non-S3: an encoded path is encoded again
    ("/a b", "/a%20b"),
    ("/a/./b/../c/", "/a/c/"),
    ("/a/b/..", "/a/"),
    ("/..", "/"),
    ("/a+b!*'()", "/a%2Bb%21%2A%27%28%29"),
    ("/%7E", "/%257E"),
])
def test_canonical_uri(path: str, canonical: str) -> None:
    assert _creq("https://h" + path)[1] == canonical


@pytest.mark.parametrize(("path", "canonical"), [
    ("/my-object//example//photo.user", "/my-object//example//photo.user"),
    ("/a%20b", "/a%20b"),            # S3: encoded once
    ("/a b/./c", "/a%20b/./c"),
    ("/%7e%2f", "/~%2F"),
])
def test_canonical_uri_s3(path: str, canonical: str) -> None:
    assert _creq("https://h" + path, "s3")[1] == canonical


@pytest.mark.parametrize(("query", "canonical"), [
    ("b=2&a=1&a=0", "a=0&a=1&b=2"),
    ("a&b=", "a=&b="),
    ("a=1&&b=2&", "a=1&b=2"),
    ("k=a%20b", "k=a%20b"),          # the query is encoded once only
    ("k=a b", "k=a%20b"),
    ("k=a+b", "k=a%2Bb"),
    ("k=a/b=c", "k=a%2Fb%3Dc"),
    ("%41=%7e", "A=~"),
    ("B=1&a=2", "B=1&a=2"),          # code-point order: upper case first
    ("=x", "=x"),
])
def test_canonical_query(query: str, canonical: str) -> None:
    assert _creq("https://h/?" + query)[2] == canonical


def test_header_values_are_trimmed_and_collapsed() -> None:
    canonical = sigv4.canonical_request(
        "GET", "https://h/", [("Host", "h"), ("X-A", "  a \t  b  "), ("x-a", "c"),
                              ("X-B", "")], None, service=SERVICE)
    assert canonical.split("\n")[3:6] == ["host:h", "x-a:a b,c", "x-b:"]
    assert canonical.split("\n")[-2] == "host;x-a;x-b"


def test_only_the_signed_headers_a_verifier_names() -> None:
    pairs = [("Host", "h"), ("User-Agent", "x"), ("X-Amz-Date", "20150830T123600Z")]
    canonical = sigv4.canonical_request("GET", "https://h/", pairs, None, service=SERVICE,
                                        signed_headers=["host", "x-amz-date"])
    assert "user-agent" not in canonical
    with pytest.raises(UsageError, match="x-missing"):
        sigv4.canonical_request("GET", "https://h/", pairs, None, service=SERVICE,
                                signed_headers=["host", "x-missing"])


@pytest.mark.parametrize(("url", "host"), [
    ("https://sts.amazonaws.com", "sts.amazonaws.com"),
    ("https://STS.amazonaws.com:443/", "sts.amazonaws.com"),
    ("http://h:80/", "h"),
    ("https://h:8443/", "h:8443"),
    ("http://[::1]:9000/", "[::1]:9000"),
])
def test_host_header_from_the_url(url: str, host: str) -> None:
    out = sigv4.sign_request("GET", url, None, None, AwsSecurityCredentials(KEY_ID, SECRET),
                             REGION, SERVICE, WHEN)
    assert out["host"] == host


def test_payload_hash() -> None:
    assert sigv4.payload_hash(None) == hashlib.sha256(b"").hexdigest()
    assert sigv4.payload_hash("é") == hashlib.sha256("é".encode()).hexdigest()
    assert sigv4.payload_hash(b"\x00") == hashlib.sha256(b"\x00").hexdigest()


# --- the request workload identity federation sends -----------------------------------------

STS_URL = "https://sts.us-east-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
TARGET = ("//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/"
          "providers/aws")


def test_get_caller_identity_request_verifies() -> None:
    creds = AwsSecurityCredentials("ASIAEXAMPLE", "secret/KEY+1", "session-TOKEN+/=")
    now = datetime.datetime(2026, 12, 1, 9, 30, 5, tzinfo=datetime.timezone.utc)
    out = sigv4.sign_request("POST", STS_URL, {"x-goog-cloud-target-resource": TARGET}, None,
                             creds, "us-east-1", "sts", now)
    assert set(out) == {"x-goog-cloud-target-resource", "host", "x-amz-date",
                        "x-amz-security-token", "Authorization"}
    assert out["host"] == "sts.us-east-1.amazonaws.com"
    assert out["x-amz-date"] == "20261201T093005Z"
    assert out["x-amz-security-token"] == "session-TOKEN+/="
    assert out["x-goog-cloud-target-resource"] == TARGET
    assert out["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261201/us-east-1/sts/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-security-token;x-goog-cloud-target-resource, "
        "Signature=")

    # the verifier's side (the emulator): parse, rebuild from what was received, compare
    received = {k: v for k, v in out.items() if k != "Authorization"}
    received["User-Agent"] = "not signed"
    auth = sigv4.parse_authorization(out["Authorization"])
    assert auth.access_key_id == "ASIAEXAMPLE" and auth.service == "sts"
    canonical = sigv4.canonical_request("POST", STS_URL, received, None, service=auth.service,
                                        signed_headers=auth.signed_headers)
    assert canonical.split("\n")[:3] == ["POST", "/", "Action=GetCallerIdentity&"
                                         "Version=2011-06-15"]
    to_sign = sigv4.string_to_sign(canonical, amz_date=received["x-amz-date"],
                                   region=auth.region, service=auth.service)
    key = sigv4.signing_key("secret/KEY+1", auth.date, auth.region, auth.service)
    assert sigv4.signature(key, to_sign) == auth.signature
    # a tampered request or the wrong secret does not verify
    wrong = sigv4.signing_key("secret/KEY+2", auth.date, auth.region, auth.service)
    assert sigv4.signature(wrong, to_sign) != auth.signature
    received["x-goog-cloud-target-resource"] += "x"
    tampered = sigv4.canonical_request("POST", STS_URL, received, None, service="sts",
                                       signed_headers=auth.signed_headers)
    assert sigv4.signature(key, sigv4.string_to_sign(
        tampered, amz_date=received["x-amz-date"], region="us-east-1",
        service="sts")) != auth.signature


def test_a_given_session_token_header_is_not_duplicated() -> None:
    creds = AwsSecurityCredentials(KEY_ID, SECRET, "tok")
    out = sigv4.sign_request("POST", STS_URL, {"X-Amz-Security-Token": "tok"}, None, creds,
                             REGION, "sts", WHEN)
    assert [k for k in out if k.lower() == "x-amz-security-token"] == ["X-Amz-Security-Token"]


# --- credentials and secrets ------------------------------------------------------------------

def test_credentials_repr_hides_secrets() -> None:
    creds = AwsSecurityCredentials("AKIDEXAMPLE", "s3cr3t-VALUE", "t0ken-VALUE")
    text = repr(creds)
    assert "AKIDEXAMPLE" in text
    assert "s3cr3t" not in text and "t0ken" not in text
    assert (creds.access_key_id, creds.secret_access_key, creds.session_token) == \
        ("AKIDEXAMPLE", "s3cr3t-VALUE", "t0ken-VALUE")
    assert AwsSecurityCredentials("a", "b").session_token is None
    assert pickle.loads(pickle.dumps(creds)) == creds
    with pytest.raises(AttributeError):
        creds.access_key_id = "x"


@pytest.mark.parametrize("args", [
    ("", "s"), ("a", ""), (None, "s"), ("a", b"s"), ("a", "s", ""), ("a", "s", 1),
    ("a b", "s"), ("a/b", "s"), ("a", "s", "t\r\nx: y"),
])
def test_bad_credentials(args: tuple[object, ...]) -> None:
    with pytest.raises(UsageError) as info:
        AwsSecurityCredentials(*args)  # type: ignore[arg-type]
    assert "s\r" not in str(info.value)


def test_errors_never_quote_the_secret() -> None:
    creds = AwsSecurityCredentials(KEY_ID, "TOP-SECRET", "SESSION-SECRET")
    changes: list[dict[str, object]] = [{"region": ""}, {"url": "ftp://h/"},
                                        {"headers": {"a": 1}}]
    for bad in changes:
        kwargs: dict[str, object] = dict(method="GET", url="https://h/", headers=None, body=None,
                      credentials=creds, region=REGION, service=SERVICE, now=WHEN)
        kwargs.update(bad)
        with pytest.raises(UsageError) as info:
            sigv4.sign_request(**kwargs)  # type: ignore[arg-type]
        assert "SECRET" not in str(info.value)


# --- bad input ------------------------------------------------------------------------------

CREDS = AwsSecurityCredentials(KEY_ID, SECRET)


@pytest.mark.parametrize(("change", "match"), [
    ({"url": "ftp://h/"}, "http"),
    ({"url": "file:///etc/passwd"}, "http"),
    ({"url": "/relative"}, "http"),
    ({"url": "https://"}, "http"),
    ({"url": "https://h:99999/"}, "cannot be parsed"),
    ({"url": "https://u:p@h/"}, "user information"),
    ({"url": "https://bücher.example/"}, "ASCII"),
    ({"url": "https://h%0a/"}, "ASCII"),
    ({"url": "https://h/#f"}, "fragment"),
    ({"url": "https://h/\r\nX: y"}, "control character"),
    ({"url": b"https://h/"}, "string"),
    ({"method": "GE T"}, "method"),
    ({"headers": {"x-a": 1}}, "must be a string"),
    ({"headers": {"x-a": b"v"}}, "must be a string"),
    ({"headers": {"bad name": "v"}}, "header name"),
    ({"headers": {"x-a": "v\r\nx-b: w"}}, "CR, LF or NUL"),
    ({"headers": {"x-a": "v\0"}}, "CR, LF or NUL"),
    ({"headers": {"Authorization": "Bearer x"}}, "Authorization"),
    ({"headers": {"x-amz-date": "yesterday"}}, "YYYYMMDDTHHMMSSZ"),
    ({"body": 5}, "body"),
    ({"body": ["x"]}, "body"),
    ({"credentials": ("AKID", "secret")}, "AwsSecurityCredentials"),
    ({"credentials": None}, "AwsSecurityCredentials"),
    ({"region": ""}, "region"),
    ({"region": None}, "region"),
    ({"region": "us/east"}, "region"),
    ({"service": ""}, "service"),
    ({"service": "s t s"}, "service"),
    ({"now": datetime.datetime(2015, 8, 30)}, "naive"),
    ({"now": float("nan")}, "finite"),
    ({"now": float("inf")}, "finite"),
    ({"now": 1e20}, "outside"),
    ({"now": True}, "aware datetime or a POSIX timestamp"),
    ({"now": "20150830T123600Z"}, "aware datetime or a POSIX timestamp"),
])
def test_bad_input_is_a_usage_error(change: dict[str, object], match: str) -> None:
    kwargs: dict[str, object] = dict(method="GET", url="https://h/", headers=None, body=None,
                                     credentials=CREDS, region=REGION, service=SERVICE,
                                     now=WHEN)
    kwargs.update(change)
    with pytest.raises(UsageError, match=match) as info:
        sigv4.sign_request(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, GCAuthError)


GOOD = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")


def test_parse_authorization_accepts_compact_commas() -> None:
    assert sigv4.parse_authorization(GOOD.replace(", ", ",")) == sigv4.parse_authorization(GOOD)


@pytest.mark.parametrize(("value", "match"), [
    (GOOD.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"), "start with"),
    ("Bearer abc", "start with"),
    ("", "start with"),
    (GOOD.replace("SignedHeaders", "Signed"), "component"),
    (GOOD + ", Signature=" + "0" * 64, "twice"),
    (GOOD.replace(", Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
                  ""), "lacks Signature"),
    (GOOD.replace("/aws4_request", "/aws5_request"), "Credential"),
    (GOOD.replace("AKIDEXAMPLE/", ""), "Credential"),
    (GOOD.replace("/20150830/", "/2015-08-30/"), "YYYYMMDD"),
    (GOOD.replace("/us-east-1/", "//"), "region"),
    (GOOD.replace("host;x-amz-date", "x-amz-date;host"), "sorted"),
    (GOOD.replace("host;x-amz-date", "host;host"), "sorted"),
    (GOOD.replace("host;x-amz-date", "Host;x-amz-date"), "lower-case"),
    (GOOD.replace("host;x-amz-date", ""), "lower-case"),
    (GOOD[:-1], "64"),
    (GOOD.upper().replace("AWS4-HMAC-SHA256 CREDENTIAL", "AWS4-HMAC-SHA256 Credential"),
     "component"),
    (GOOD[:-2] + "zz", "64"),
])
def test_parse_authorization_rejects(value: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        sigv4.parse_authorization(value)


def test_parse_authorization_rejects_non_strings() -> None:
    with pytest.raises(UsageError):
        sigv4.parse_authorization(None)  # type: ignore[arg-type]


def test_string_to_sign_and_signing_key_check_their_input() -> None:
    with pytest.raises(UsageError, match="YYYYMMDDTHHMMSSZ"):
        sigv4.string_to_sign("x", amz_date="20150830", region=REGION, service=SERVICE)
    with pytest.raises(UsageError, match="secret"):
        sigv4.signing_key("", "20150830", REGION, SERVICE)
    with pytest.raises(UsageError, match="YYYYMMDD"):
        sigv4.signing_key(SECRET, "2015083", REGION, SERVICE)
