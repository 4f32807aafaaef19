"""gcauth.aws credentials: where the AWS identity comes from, the signed GetCallerIdentity
subject token, and what is refused. Fake servers only, no sockets."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest

import gcauth
from gcauth import aws
from gcauth._http import HttpRequest, HttpResponse
from gcauth._protocol import sigv4
from gcauth._retry import RetryPolicy
from gcauth.exceptions import MalformedCredentialsError, RefreshError, UnsafeEndpointError
from tests.kit.creds import T0, drive, reply

AUDIENCE = ("//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/"
            "pool/providers/aws")
AWS4 = "urn:ietf:params:aws:token-type:aws4_request"
MD = "http://169.254.169.254"


def config(**source: Any) -> dict[str, Any]:
    credential_source = {
        "environment_id": "aws1", "region_url": f"{MD}/latest/meta-data/placement/"
        "availability-zone", "url": f"{MD}/latest/meta-data/iam/security-credentials",
        "regional_cred_verification_url": aws.DEFAULT_VERIFICATION_URL,
        "imdsv2_session_token_url": f"{MD}/latest/api/token"}
    credential_source.update(source)
    return {"type": "external_account", "audience": AUDIENCE, "subject_token_type": AWS4,
            "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {k: v for k, v in credential_source.items() if v is not None}}


@pytest.fixture(autouse=True)
def _no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


class Imds:
    """An IMDSv2 stand-in that insists on its session token."""

    def __init__(self) -> None:
        self.seen: list[HttpRequest] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(request)
        path = request.url.split("169.254.169.254", 1)[-1]
        if request.url.startswith("https://sts.googleapis.com"):
            return reply(body={"access_token": "ya29.aws", "expires_in": 3600,
                               "token_type": "Bearer"})
        if path == "/latest/api/token":
            assert request.method == "PUT"
            assert request.headers[aws.IMDSV2_TTL_HEADER] == "300"
            return reply(raw=b"imds-session")
        if request.headers.get(aws.IMDSV2_TOKEN_HEADER) != "imds-session":
            return reply(401, raw=b"")
        if path.endswith("availability-zone"):
            return reply(raw=b"eu-west-3b")
        if path.endswith("security-credentials"):
            return reply(raw=b"my-role\n")
        if path.endswith("security-credentials/my-role"):
            return reply(body={"Code": "Success", "AccessKeyId": "ASIAEXAMPLE",
                               "SecretAccessKey": "imds-secret-key", "Token": "imds-session-tok",
                               "Expiration": "2026-01-01T18:00:00Z"})
        return reply(404, raw=b"")


def subject_of(requests: list[HttpRequest]) -> dict[str, Any]:
    sts = [r for r in requests if r.url.startswith("https://sts.googleapis.com")][-1]
    assert sts.body is not None
    token = parse_qs(sts.body.decode())["subject_token"][0]
    return json.loads(unquote(token))  # type: ignore[no-any-return]


def verify(signed: dict[str, Any], secret: str) -> None:
    """Recompute the signature from the token's own headers (what Google's STS does)."""
    headers = {h["key"]: h["value"] for h in signed["headers"]}
    auth = sigv4.parse_authorization(headers.pop("Authorization"))
    canonical = sigv4.canonical_request(signed["method"], signed["url"], headers, b"",
                                        service="sts")
    to_sign = sigv4.string_to_sign(canonical, amz_date=headers["x-amz-date"],
                                   region=auth.region, service="sts")
    key = sigv4.signing_key(secret, headers["x-amz-date"][:8], auth.region, "sts")
    assert sigv4.signature(key, to_sign) == auth.signature


def test_imdsv2_credentials_and_region_sign_get_caller_identity() -> None:
    creds = gcauth.load_credentials_from_dict(config())[0]
    assert isinstance(creds, aws.Credentials)
    imds = Imds()
    token, requests, _ = drive(creds.token_flow(T0), imds)
    assert token.access_token == "ya29.aws"
    assert requests[0].method == "PUT"
    signed = subject_of(requests)
    assert signed["url"] == ("https://sts.eu-west-3.amazonaws.com?Action=GetCallerIdentity"
                             "&Version=2011-06-15")
    assert signed["method"] == "POST"
    headers = {h["key"].lower(): h["value"] for h in signed["headers"]}
    assert headers["x-goog-cloud-target-resource"] == AUDIENCE
    assert headers["x-amz-security-token"] == "imds-session-tok"
    assert headers["host"] == "sts.eu-west-3.amazonaws.com"
    assert headers["x-amz-date"] == "20260101T120000Z"
    assert "Credential=ASIAEXAMPLE/20260101/eu-west-3/sts/aws4_request" in headers[
        "authorization"]
    verify(signed, "imds-secret-key")


def test_environment_credentials_skip_the_metadata_service(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    creds = gcauth.load_credentials_from_dict(config())[0]
    imds = Imds()
    _, requests, _ = drive(creds.token_flow(T0), imds)
    assert len(requests) == 1  # only STS: no IMDS session, no metadata
    signed = subject_of(requests)
    headers = {h["key"].lower(): h["value"] for h in signed["headers"]}
    assert "x-amz-security-token" not in headers
    assert "us-west-2" in signed["url"]
    verify(signed, "env-secret")


def test_region_from_env_credentials_from_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    creds = gcauth.load_credentials_from_dict(config())[0]
    imds = Imds()
    _, requests, _ = drive(creds.token_flow(T0), imds)
    assert not any(r.url.endswith("availability-zone") for r in requests)
    assert "ap-south-1" in subject_of(requests)["url"]


def test_without_imdsv2_url_a_401_says_to_add_it() -> None:
    creds = gcauth.load_credentials_from_dict(
        config(imdsv2_session_token_url=None), retry=RetryPolicy(max_attempts=1))[0]
    with pytest.raises(RefreshError) as err:
        drive(creds.token_flow(T0), Imds())
    assert "imdsv2_session_token_url" in str(err.value)
    assert "169.254.169.254" in str(err.value)


def test_metadata_errors_name_the_field() -> None:
    creds = gcauth.load_credentials_from_dict(config(), retry=RetryPolicy(max_attempts=1))[0]

    def broken(request: HttpRequest) -> HttpResponse:
        if request.url.endswith("my-role"):
            return reply(raw=b"not json")
        return Imds()(request)

    with pytest.raises(RefreshError, match="AccessKeyId, SecretAccessKey"):
        drive(creds.token_flow(T0), broken)


@pytest.mark.parametrize(("field", "url"), [
    ("region_url", "http://evil.example.com/latest/meta-data/placement/availability-zone"),
    ("url", "http://10.0.0.1/latest/meta-data/iam/security-credentials"),
    ("imdsv2_session_token_url", "https://metadata.google.internal/latest/api/token"),
    ("regional_cred_verification_url", "https://sts.{region}.example.com?Action=x"),
])
def test_non_aws_urls_are_refused_at_load(field: str, url: str) -> None:
    with pytest.raises(UnsafeEndpointError) as err:
        gcauth.load_credentials_from_dict(config(**{field: url}))
    assert err.value.field == f"credential_source.{field}"


def test_aws_ipv6_metadata_and_loopback_accepted() -> None:
    creds = gcauth.load_credentials_from_dict(config(
        region_url="http://[fd00:ec2::254]/latest/meta-data/placement/availability-zone",
        url="http://127.0.0.1:8080/latest/meta-data/iam/security-credentials"))[0]
    assert creds.describe()["aws_region_url"].startswith("http://[fd00:ec2::254]")


def test_unknown_environment_id() -> None:
    with pytest.raises(MalformedCredentialsError) as err:
        gcauth.load_credentials_from_dict(config(environment_id="aws9"))
    assert err.value.field == "credential_source.environment_id"


class Supplier(aws.AwsSecurityCredentialsSupplier):
    def get_aws_security_credentials(self, context: Any, request: Any
                                     ) -> aws.AwsSecurityCredentials:
        assert context.audience == AUDIENCE
        return aws.AwsSecurityCredentials("AKIDSUP", "sup-secret", None)

    def get_aws_region(self, context: Any, request: Any) -> str:
        return "ca-central-1"


def test_supplier() -> None:
    creds = aws.Credentials(AUDIENCE, AWS4, aws_security_credentials_supplier=Supplier())
    _, requests, _ = drive(creds.token_flow(T0), Imds())
    signed = subject_of(requests)
    assert "ca-central-1" in signed["url"]
    verify(signed, "sup-secret")


def test_security_credentials_repr_hides_secrets() -> None:
    text = repr(aws.AwsSecurityCredentials("AKID", "the-secret", "the-session"))
    assert "the-secret" not in text and "the-session" not in text
