"""The AWS stand-ins over raw HTTP: the IMDSv2 instance metadata service, and the STS's
verification of ``aws4_request`` subject tokens (SigV4-signed GetCallerIdentity requests,
signed here with gcauth's SigV4 module as google-auth serializes them)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from gcauth._protocol.sigv4 import AwsSecurityCredentials, sign_request
from gcauth.emulator import Emulator
from tests.emulator.test_sts import AWS4, err, exchange
from tests.kit.emu import Kit, Resp

VERIFY = "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"


def imds_token(kit: Kit, ttl: str | None = "300", **headers: str) -> Resp:
    h = dict(headers)
    if ttl is not None:
        h["X-aws-ec2-metadata-token-ttl-seconds"] = ttl
    return kit.request("PUT", "/latest/api/token", b"", h)


def imds_get(kit: Kit, path: str, token: str | None) -> Resp:
    headers = {} if token is None else {"X-aws-ec2-metadata-token": token}
    return kit.get("/latest/meta-data/" + path, headers)


# -- IMDSv2 ------------------------------------------------------------------------------------
def test_imds_v2_session_and_credentials(kit: Kit, emu: Emulator) -> None:
    r = imds_token(kit, "21600")
    assert r.status == 200 and r.headers["X-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    token = r.text
    assert imds_get(kit, "placement/availability-zone", token).text == "us-east-1a"
    assert imds_get(kit, "placement/region", token).text == "us-east-1"
    role = imds_get(kit, "iam/security-credentials/", token).text
    assert role == emu.config.aws_role == imds_get(kit, "iam/security-credentials", token).text
    creds = imds_get(kit, f"iam/security-credentials/{role}", token).json()
    assert creds["Code"] == "Success" and creds["Type"] == "AWS-HMAC"
    assert creds["AccessKeyId"].startswith("ASIA") and creds["SecretAccessKey"]
    assert creds["Token"] and creds["Expiration"].endswith("Z")
    again = imds_get(kit, f"iam/security-credentials/{role}", token).json()
    assert again["AccessKeyId"] == creds["AccessKeyId"]  # the same until near expiry
    assert imds_get(kit, "iam/security-credentials/other-role", token).status == 404
    assert imds_get(kit, "instance-id", token).status == 404
    assert emu.counts["aws_imds"] == 9


@pytest.mark.parametrize("path", ["placement/availability-zone", "iam/security-credentials/",
                                  "iam/security-credentials/emu-instance-role", "instance-id"])
def test_imds_gets_need_a_live_session_token(kit: Kit, emu: Emulator, path: str) -> None:
    assert imds_get(kit, path, None).status == 401
    assert imds_get(kit, path, "made-up").status == 401
    token = imds_token(kit, "60").text
    emu.set_clock_skew(61)
    assert imds_get(kit, path, token).status == 401


def test_imds_session_token_rules(kit: Kit) -> None:
    for ttl in (None, "0", "21601", "abc", "-5"):
        assert imds_token(kit, ttl).status == 400, ttl
    assert imds_token(kit, "60", **{"X-Forwarded-For": "10.0.0.1"}).status == 403
    assert kit.get("/latest/api/token").status == 405


# -- aws4_request subject tokens ---------------------------------------------------------------
@pytest.fixture
def aws_pool(emu: Emulator) -> dict[str, Any]:
    return emu.create_workload_identity_pool("aws")


def subject_token(creds: dict[str, str], audience: str, *, region: str = "us-east-1",
                  url: str | None = None, method: str = "POST", now: float | None = None,
                  secret: str | None = None, edit: Any = None) -> str:
    """A GetCallerIdentity request signed and serialized as google-auth does."""
    url = url or VERIFY.replace("{region}", region)
    signer = AwsSecurityCredentials(creds["AWS_ACCESS_KEY_ID"],
                                    secret or creds["AWS_SECRET_ACCESS_KEY"],
                                    creds["AWS_SESSION_TOKEN"])
    headers = sign_request(method, url, None, b"", signer, region, "sts",
                           time.time() if now is None else now)
    headers["x-goog-cloud-target-resource"] = audience
    if edit is not None:
        edit(headers)
    doc = {"url": url, "method": method,
           "headers": [{"key": k, "value": v} for k, v in headers.items()]}
    return quote(json.dumps(doc, separators=(",", ":"), sort_keys=True))


def aws_exchange(kit: Kit, pool: dict[str, Any], token: str) -> Resp:
    return exchange(kit, pool["audience"], token, token_type=AWS4)


def test_aws_exchange_with_imds_credentials(kit: Kit, emu: Emulator,
                                            aws_pool: dict[str, Any]) -> None:
    source = aws_pool["credential_source"]
    assert aws_pool["subject_token_type"] == AWS4
    assert source == {
        "environment_id": "aws1",
        "region_url": emu.url + "/latest/meta-data/placement/availability-zone",
        "url": emu.url + "/latest/meta-data/iam/security-credentials",
        "regional_cred_verification_url": VERIFY,
        "imdsv2_session_token_url": emu.url + "/latest/api/token"}
    session = imds_token(kit).text
    doc = imds_get(kit, "iam/security-credentials/emu-instance-role", session).json()
    creds = {"AWS_ACCESS_KEY_ID": doc["AccessKeyId"],
             "AWS_SECRET_ACCESS_KEY": doc["SecretAccessKey"], "AWS_SESSION_TOKEN": doc["Token"]}
    r = aws_exchange(kit, aws_pool, subject_token(creds, aws_pool["audience"]))
    assert r.status == 200, r.text
    rec = emu.access_token_info(r.json()["access_token"])
    assert rec is not None and rec.sub is not None
    assert rec.sub.startswith("arn:aws:sts::111122223333:assumed-role/emu-instance-role/i-")
    assert kit.api(r.json()["access_token"]).status == 200


def test_aws_exchange_with_env_credentials_and_the_global_endpoint(
        kit: Kit, emu: Emulator, aws_pool: dict[str, Any]) -> None:
    creds = emu.create_aws_credentials(role="deployer")
    assert set(creds) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                          "AWS_REGION"}
    assert creds["AWS_REGION"] == "us-east-1"
    r = aws_exchange(kit, aws_pool, subject_token(creds, aws_pool["audience"]))
    assert r.status == 200, r.text
    sub = emu.access_token_info(r.json()["access_token"]).sub  # type: ignore[union-attr]
    assert sub == "arn:aws:sts::111122223333:assumed-role/deployer/emu-session"
    global_url = "https://sts.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
    r = aws_exchange(kit, aws_pool, subject_token(creds, aws_pool["audience"], url=global_url))
    assert r.status == 200, r.text


def test_aws_attribute_condition_on_the_role(kit: Kit, emu: Emulator) -> None:
    pool = emu.create_workload_identity_pool(
        "aws", attribute_condition="attribute.aws_role == "
        "'arn:aws:sts::111122223333:assumed-role/deployer'")
    ok = emu.create_aws_credentials(role="deployer")
    assert aws_exchange(kit, pool, subject_token(ok, pool["audience"])).status == 200
    other = emu.create_aws_credentials(role="intruder")
    err(aws_exchange(kit, pool, subject_token(other, pool["audience"])), 400,
        "unauthorized_client", "attribute condition")


def test_aws_rejections(kit: Kit, emu: Emulator, aws_pool: dict[str, Any]) -> None:
    creds = emu.create_aws_credentials()
    aud = aws_pool["audience"]

    def check(token: str, *words: str) -> None:
        err(aws_exchange(kit, aws_pool, token), 400, "invalid_grant", *words)

    check(subject_token(creds, aud, region="eu-west-1"), "region", "eu-west-1")
    check(subject_token(creds, aud, url="https://sts.us-east-1.amazonaws.com"
                        "?Action=GetSessionToken&Version=2011-06-15"), "GetCallerIdentity")
    check(subject_token(creds, aud, url="https://sts.us-east-1.amazonaws.com/x"
                        "?Action=GetCallerIdentity&Version=2011-06-15"), "GetCallerIdentity")
    check(subject_token(creds, aud, url="https://evil.example.com"
                        "?Action=GetCallerIdentity&Version=2011-06-15"), "evil.example.com")
    check(subject_token(creds, aud, method="GET"), "POST")
    check(subject_token(creds, aud, now=time.time() - 16 * 60), "Signature expired")
    check(subject_token(creds, aud, now=time.time() + 16 * 60), "Signature expired")
    check(subject_token(creds, aud, secret="wrong-secret"), "SignatureDoesNotMatch")
    check(subject_token(creds, "//iam.googleapis.com/other"), "x-goog-cloud-target-resource")

    def later_date(h: dict[str, str]) -> None:  # a signed header changed after signing
        date = h["x-amz-date"]  # YYYYMMDDTHHMMSSZ: change the seconds
        h["x-amz-date"] = date[:13] + ("00" if date[13:15] != "00" else "01") + "Z"

    check(subject_token(creds, aud, edit=later_date), "SignatureDoesNotMatch")

    def flip_signature(h: dict[str, str]) -> None:
        auth = h["Authorization"]
        h["Authorization"] = auth[:-1] + ("0" if auth[-1] != "0" else "1")

    check(subject_token(creds, aud, edit=flip_signature), "SignatureDoesNotMatch")

    def drop_token(h: dict[str, str]) -> None:
        del h["x-amz-security-token"]

    check(subject_token(creds, aud, edit=drop_token), "InvalidClientTokenId")

    def drop_auth(h: dict[str, str]) -> None:
        del h["Authorization"]

    check(subject_token(creds, aud, edit=drop_auth), "MissingAuthenticationToken")

    def garble_auth(h: dict[str, str]) -> None:
        h["Authorization"] = "AWS4-HMAC-SHA256 nonsense"

    check(subject_token(creds, aud, edit=garble_auth), "IncompleteSignature")
    unknown = {**creds, "AWS_ACCESS_KEY_ID": "ASIAUNKNOWNKEY000000"}
    check(subject_token(unknown, aud), "InvalidClientTokenId")
    check(quote("not json"), "URL-encoded JSON")
    check(quote(json.dumps({"url": 1})), '"url"')


def test_aws_expired_credentials_and_other_accounts(kit: Kit, emu: Emulator,
                                                    aws_pool: dict[str, Any]) -> None:
    short = emu.create_aws_credentials(lifetime=60)
    emu.set_clock_skew(120)
    token = subject_token(short, aws_pool["audience"], now=time.time() + 120)
    err(aws_exchange(kit, aws_pool, token), 400, "invalid_grant", "ExpiredToken")
    emu.set_clock_skew(0)
    foreign = emu.create_aws_credentials(account_id="999999999999")
    err(aws_exchange(kit, aws_pool, subject_token(foreign, aws_pool["audience"])), 400,
        "invalid_grant", "999999999999")


def test_aws_pool_region_is_configurable(kit: Kit, emu: Emulator) -> None:
    pool = emu.create_workload_identity_pool("aws", aws_region="eu-west-1")
    creds = emu.create_aws_credentials(region="eu-west-1")
    assert creds["AWS_REGION"] == "eu-west-1"
    token = subject_token(creds, pool["audience"], region="eu-west-1")
    assert aws_exchange(kit, pool, token).status == 200
    token = subject_token(creds, pool["audience"], region="us-east-1")
    err(aws_exchange(kit, pool, token), 400, "invalid_grant", "region")
