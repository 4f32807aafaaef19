"""AWS workload identity federation: an AWS identity, proven by a signed ``GetCallerIdentity``.

::

    from gcauth import aws
    credentials = aws.Credentials.from_file("aws-wif.json")   # environment_id: aws1

The subject token is a request to AWS STS ``GetCallerIdentity`` signed with AWS Signature
Version 4 (never sent to AWS by gcauth: Google's STS sends it and learns who signed it). The
AWS credentials and region come from, in order:

* ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``) and
  ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` -- read at every refresh;
* otherwise the EC2 instance metadata service named by the configuration (``url``,
  ``region_url``), with an IMDSv2 session token first when ``imdsv2_session_token_url`` is
  set (required on instances that enforce IMDSv2);
* or your own :class:`AwsSecurityCredentialsSupplier` (``aws_security_credentials_supplier=``,
  google-auth's interface).

:func:`sign_request` is the SigV4 signer itself, public so you can check it::

    headers = aws.sign_request("POST", url, {"x-goog-cloud-target-resource": audience}, b"",
                               aws.AwsSecurityCredentials(key_id, secret, session_token),
                               "us-east-1", "sts", now=datetime.now(timezone.utc))
"""

from __future__ import annotations

import abc
import json
import os
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast
from urllib.parse import quote

from ._checks import terminal_safe
from ._endpoints import check_aws_endpoint
from ._http import Flow, HttpRequest
from ._json import loads as json_loads
from ._protocol.sigv4 import AwsSecurityCredentials, sign_request
from ._retry import with_retries
from ._sender import resolve_request
from .exceptions import GCAuthError, RefreshError
from .external_account import GOOGLE_STS_TOKEN_URL, SupplierContext, _malformed, blocking_step
from .external_account import Credentials as _External

__all__ = ["AwsSecurityCredentials", "AwsSecurityCredentialsSupplier", "Credentials",
           "SupplierContext", "sign_request"]

DEFAULT_VERIFICATION_URL = (
    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15")
IMDSV2_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
IMDSV2_TOKEN_HEADER = "X-aws-ec2-metadata-token"
IMDSV2_TTL = "300"
_REGION = re.compile(r"[a-z]{2}(?:-[a-z0-9]+){1,4}")
_ROLE = re.compile(r"[\w+=,.@-]{1,128}")
_ON_AWS = ("Is this running on AWS (EC2, ECS, EKS...)? Off AWS, set AWS_ACCESS_KEY_ID, "
           "AWS_SECRET_ACCESS_KEY and AWS_REGION instead. In a container on EC2, the IMDSv2 "
           "hop limit may need to be 2.")


class AwsSecurityCredentialsSupplier(abc.ABC):
    """Your own source of AWS credentials and region (google-auth's interface)."""

    @abc.abstractmethod
    def get_aws_security_credentials(self, context: SupplierContext,
                                     request: Any) -> AwsSecurityCredentials:
        """Current AWS credentials."""

    @abc.abstractmethod
    def get_aws_region(self, context: SupplierContext, request: Any) -> str:
        """The AWS region, e.g. ``us-east-1``."""


class Credentials(_External):
    """``external_account`` credentials backed by an AWS identity."""

    source_kind = "aws"

    def __init__(
        self,
        audience: str,
        subject_token_type: str,
        token_url: str = GOOGLE_STS_TOKEN_URL,
        credential_source: Mapping[str, Any] | None = None,
        *args: Any,
        aws_security_credentials_supplier: AwsSecurityCredentialsSupplier | None = None,
        **kwargs: Any,
    ):
        super().__init__(audience, subject_token_type, token_url, credential_source, *args,
                         **kwargs)
        source = self._where
        self._supplier = aws_security_credentials_supplier
        self._region_url = self._cred_url = self._imdsv2_url = None
        self._verification_url = DEFAULT_VERIFICATION_URL
        if aws_security_credentials_supplier is not None:
            if credential_source is not None:
                raise _malformed(source, "credential_source", "cannot be given together with "
                                 "aws_security_credentials_supplier.")
            for method in ("get_aws_security_credentials", "get_aws_region"):
                if not callable(getattr(aws_security_credentials_supplier, method, None)):
                    raise _malformed(source, "aws_security_credentials_supplier",
                                     f"must have a {method}(context, request) method.")
            return
        if not isinstance(credential_source, Mapping):
            raise _malformed(source, "credential_source",
                             "is missing (an AWS source: {'environment_id': 'aws1', ...}).")
        env_id = credential_source.get("environment_id")
        if not isinstance(env_id, str) or not re.fullmatch(r"aws[0-9]+", env_id):
            raise _malformed(source, "credential_source.environment_id",
                             "must be 'aws1' for an AWS source.")
        if env_id != "aws1":
            raise _malformed(source, "credential_source.environment_id",
                             f"is {env_id!r}; gcauth (like Google's libraries) supports "
                             "'aws1'.")
        hosts = self._allowed_hosts

        def url(field: str) -> str | None:
            value = credential_source.get(field)
            if value is None or value == "":
                return None
            return check_aws_endpoint(value, field=f"credential_source.{field}", source=source,
                                      allowed_hosts=hosts)

        self._region_url = url("region_url")
        self._cred_url = url("url")
        self._imdsv2_url = url("imdsv2_session_token_url")
        verification = url("regional_cred_verification_url")
        if verification is not None:
            self._verification_url = verification

    @property
    def aws_security_credentials_supplier(self) -> AwsSecurityCredentialsSupplier | None:
        return self._supplier

    # -- the subject token --------------------------------------------------------------
    def subject_token_flow(self, now: datetime) -> Flow[str]:
        if self._supplier is not None:
            region, credentials = yield from self._supplied()
        else:
            region, credentials = yield from self._from_environment_or_metadata()
        url = self._verification_url.replace("{region}", region)
        try:
            headers = sign_request("POST", url, {"x-goog-cloud-target-resource": self._audience},
                                   b"", credentials, region, "sts", now)
        except GCAuthError as exc:
            raise RefreshError(f"signing the AWS GetCallerIdentity request failed: {exc} "
                               f"(credential_source of {self._where})") from None
        signed = {"url": url, "method": "POST",
                  "headers": [{"key": key, "value": value}
                              for key, value in sorted(headers.items())]}
        return quote(json.dumps(signed, sort_keys=True, separators=(",", ":")), safe="")

    def _supplied(self) -> Flow[tuple[str, AwsSecurityCredentials]]:
        supplier = self._supplier
        assert supplier is not None
        context = SupplierContext(self._subject_token_type, self._audience)
        where = f"the AWS credentials supplier {type(supplier).__qualname__}"

        def call() -> tuple[object, object]:
            request = resolve_request(None)
            return (supplier.get_aws_region(context, request),
                    supplier.get_aws_security_credentials(context, request))

        try:
            region, credentials = cast("tuple[object, object]", (yield blocking_step(call)))
        except RefreshError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code: named, not echoed
            raise RefreshError(f"{where} raised {type(exc).__name__}: "
                               f"{terminal_safe(str(exc)[:200])}") from exc
        if not isinstance(credentials, AwsSecurityCredentials):
            raise RefreshError(f"{where} returned {type(credentials).__name__}, not "
                               "gcauth.aws.AwsSecurityCredentials.")
        return _checked_region(region, where), credentials

    def _from_environment_or_metadata(self) -> Flow[tuple[str, AwsSecurityCredentials]]:
        env = os.environ
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        from_env = (AwsSecurityCredentials(key_id, secret, env.get("AWS_SESSION_TOKEN") or None)
                    if key_id and secret else None)
        headers: dict[str, str] = {}
        if (region is None or from_env is None) and self._imdsv2_url is not None:
            session = yield from self._get_text(
                HttpRequest("PUT", self._imdsv2_url, {IMDSV2_TTL_HEADER: IMDSV2_TTL}, None,
                            self._timeout), "imdsv2_session_token_url")
            headers[IMDSV2_TOKEN_HEADER] = session
        if region is None:
            if self._region_url is None:
                raise RefreshError(
                    "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or give "
                    f"credential_source.region_url in {self._where}.")
            zone = yield from self._get_text(
                HttpRequest("GET", self._region_url, headers, None, self._timeout),
                "region_url")
            region = zone[:-1]  # the availability zone, e.g. us-east-1b
        region = _checked_region(region, "the AWS region")
        credentials = from_env
        if credentials is None:
            credentials = yield from self._from_metadata(headers)
        return region, credentials

    def _from_metadata(self, headers: Mapping[str, str]) -> Flow[AwsSecurityCredentials]:
        if self._cred_url is None:
            raise RefreshError(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give "
                f"credential_source.url (the instance metadata's security-credentials URL) in "
                f"{self._where}.")
        base = self._cred_url.rstrip("/")
        role = yield from self._get_text(HttpRequest("GET", base, dict(headers), None,
                                                     self._timeout), "url")
        role = role.splitlines()[0].strip() if role.strip() else ""
        if not _ROLE.fullmatch(role):
            raise RefreshError(f"the AWS metadata service at {base} (credential_source.url) "
                               "named no usable IAM role. Attach an IAM role (instance "
                               "profile) to the instance.")
        url = f"{base}/{role}"
        text = yield from self._get_text(HttpRequest("GET", url, dict(headers), None,
                                                     self._timeout), "url")
        try:
            data = json_loads(text)
        except ValueError:
            data = None
        fields = ("AccessKeyId", "SecretAccessKey", "Token")
        if not isinstance(data, dict) or not all(
                isinstance(data.get(f), str) and data.get(f) for f in fields[:2]) or \
                not isinstance(data.get("Token", ""), str):
            raise RefreshError(f"the AWS metadata service at {url} (credential_source.url) "
                               "did not answer with AccessKeyId, SecretAccessKey and Token.",
                               endpoint=url)
        return AwsSecurityCredentials(data["AccessKeyId"], data["SecretAccessKey"],
                                      data.get("Token") or None)

    def _get_text(self, request: HttpRequest, field: str) -> Flow[str]:
        where = f"the AWS metadata service at {request.endpoint} (credential_source.{field} " \
                f"of {self._where})"

        def attempt() -> Flow[str]:
            response = yield request
            assert response is not None
            if response.status != 200:
                hint = (" It requires an IMDSv2 session token: add imdsv2_session_token_url "
                        "to the credential_source."
                        if response.status == 401 and IMDSV2_TOKEN_HEADER not in request.headers
                        else "")
                raise RefreshError(f"{where} answered HTTP {response.status}.{hint} {_ON_AWS}",
                                   status=response.status, endpoint=request.endpoint,
                                   retryable=response.status in (429, 500, 502, 503, 504))
            try:
                text = response.body.decode("utf-8").strip()
            except UnicodeDecodeError:
                text = ""
            if not text or not text.isprintable():
                raise RefreshError(f"{where} answered with an empty or unreadable body.",
                                   endpoint=request.endpoint)
            return text

        try:
            return (yield from with_retries(attempt, self._retry))
        except RefreshError:
            raise
        except GCAuthError as exc:  # TransportError: nothing answered
            raise RefreshError(f"{where} did not answer: {exc} {_ON_AWS}",
                               endpoint=request.endpoint, retryable=True) from None

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(aws_region_url=self._region_url, aws_credentials_url=self._cred_url,
                    imdsv2=self._imdsv2_url is not None,
                    regional_cred_verification_url=self._verification_url)
        return info


def _checked_region(value: object, where: str) -> str:
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        raise RefreshError(f"{where} is not an AWS region like us-east-1.")
    return value
