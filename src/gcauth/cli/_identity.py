"""Keyless identities on the command line.

* ``gcauth auth print-identity-token [--audiences=AUD] [--include-email]
  [--impersonate-service-account=[DELEGATE,...,]SA]`` -- print one ID token, and nothing
  else on stdout;
* what ``gcauth auth application-default login --impersonate-service-account=...`` writes:
  the same ``impersonated_service_account`` ADC file gcloud writes.

The service-account list is in gcloud's order: comma-separated, the *last* is the account to
act as, the ones before it the delegation chain (each needs the Token Creator role on the
next).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, TextIO
from urllib.parse import urlsplit

from ..exceptions import FlowError
from ._common import CLOUD_PLATFORM, EXIT_CODES, formatter

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]{1,128}@[A-Za-z0-9.\-]{1,255}")
GOOGLE_IAM = "https://iamcredentials.googleapis.com"


def parse_chain(value: str, option: str = "--impersonate-service-account",
                ) -> tuple[str, list[str]]:
    """``"d1,d2,target"`` → ``("target", ["d1", "d2"])``; anything that is not a list of
    emails is a :class:`FlowError` naming the option."""
    emails = [part.strip() for part in value.split(",")]
    if not emails or any(not _EMAIL.fullmatch(e) for e in emails):
        raise FlowError(f"{option} takes service-account emails, comma-separated (the last is "
                        "the account to impersonate, the ones before it the delegation chain), "
                        "e.g. app@my-project.iam.gserviceaccount.com.")
    return emails[-1], emails[:-1]


def iam_base_for(token_uri: str) -> str:
    """Where the IAM Credentials API is for a login made at ``token_uri``: Google's, or, for
    a loopback token endpoint (the gcauth emulator, which serves both), the same origin."""
    from .._endpoints import is_loopback_host

    parts = urlsplit(token_uri)
    if parts.scheme == "http" and is_loopback_host(parts.hostname or ""):
        return f"{parts.scheme}://{parts.netloc}"
    return GOOGLE_IAM


def impersonation_file(user_info: dict[str, Any], target: str, delegates: list[str],
                       token_uri: str) -> dict[str, Any]:
    """The ``impersonated_service_account`` ADC file gcloud writes, around a user login."""
    from .._protocol.iamcredentials import method_url

    source = dict(user_info)
    data: dict[str, Any] = {
        "delegates": list(delegates),
        "service_account_impersonation_url": method_url(iam_base_for(token_uri), target,
                                                        "generateAccessToken"),
        "source_credentials": source,
        "type": "impersonated_service_account",
    }
    quota = source.pop("quota_project_id", None)
    if quota:
        data["quota_project_id"] = quota
    return data


# -- print-identity-token -----------------------------------------------------------------
def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "print-identity-token", help="print an ID token (for Cloud Run, IAP...) from ADC",
        formatter_class=formatter,
        description="Get an OpenID Connect ID token for --audiences and print it on stdout "
                    "(and nothing else),\nfor `curl -H \"Authorization: Bearer $(gcauth auth "
                    "print-identity-token --audiences=URL)\" URL`.\nThe token follows ADC: a "
                    "service-account key, an impersonated_service_account file, the\nmetadata "
                    "server; or, with --impersonate-service-account, ADC impersonates that "
                    "account.\nA user login prints its own ID token only without --audiences "
                    "(its audience is the\nOAuth client). Treat the output as a password.",
        epilog=EXIT_CODES)
    parser.add_argument(
        "--audiences", metavar="AUDIENCE", default=None,
        help="the token's audience: the service's URL (Cloud Run) or OAuth client id (IAP)")
    parser.add_argument(
        "--include-email", action="store_true",
        help="put the account's email in the token (impersonation: IAM includeEmail)")
    parser.add_argument(
        "--impersonate-service-account", metavar="[DELEGATE,...,]SA", default=None,
        help="mint the token as this service account through IAM, with ADC as the caller "
             "(gcloud's order: the last email is the account, the ones before it delegates)")
    parser.set_defaults(handler=run_print_identity_token)


def _credentials(args: argparse.Namespace) -> Any:
    from .. import id_token, impersonated_credentials
    from .._default import default
    from ..authorized_user import Credentials as User
    from ..exceptions import DefaultCredentialsError

    audience = args.audiences
    if audience is not None and not audience.strip():
        raise FlowError("--audiences is empty. Fix: give the service's URL, e.g. "
                        "--audiences=https://my-service-abc123-uc.a.run.app")
    if args.impersonate_service_account:
        target, delegates = parse_chain(args.impersonate_service_account)
        if not audience:
            raise FlowError("--impersonate-service-account needs --audiences (the URL of the "
                            "service the token is for).")
        source, _ = default(default_scopes=[CLOUD_PLATFORM])
        token_uri = getattr(source, "token_uri", None)
        base = iam_base_for(token_uri) if isinstance(token_uri, str) else None
        impersonated = impersonated_credentials.Credentials(
            source, target, [CLOUD_PLATFORM], delegates, iam_endpoint_override=base)
        return impersonated_credentials.IDTokenCredentials(
            impersonated, audience, include_email=args.include_email)
    if audience:
        return id_token.fetch_id_token_credentials(audience,
                                                   include_email=args.include_email)
    credentials, _ = default(default_scopes=[CLOUD_PLATFORM])
    if isinstance(credentials, User) and credentials.client_id:
        return id_token.id_token_credentials_for(credentials, credentials.client_id)
    raise DefaultCredentialsError(
        "ADC holds service-account credentials, whose ID tokens need an audience. Fix: pass "
        "--audiences=URL (the Cloud Run service's URL, or the IAP OAuth client id).")


def run_print_identity_token(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    token = _credentials(args).get_token()
    out.write(token.access_token + "\n")
    out.flush()
    return 0
