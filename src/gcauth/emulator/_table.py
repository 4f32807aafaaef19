"""The emulator's route table: every endpoint, in match order.

One line per route: ``Route(path, handler, api=..., methods=..., counts=..., group=...,
local=..., control=...)`` (see :class:`~._routing.Route`).  The first pattern that matches
the path wins; among the routes of one pattern, the first that allows the method.  The
``counts`` names are public (``Emulator.counts``; users' tests assert on them), so never
rename one; fault groups are public too (``emu.faults.add(group, ...)``).

To add an API: write ``_apis/<name>.py`` with its handlers (and an ``Api`` if it needs its
own error shape, headers or guard), then add its routes here.
"""

from __future__ import annotations

from functools import partial

from ._apis import (
    aws,
    consent,
    control,
    diagnostics,
    discovery,
    iamcredentials,
    metadata,
    oidc,
    resourcemanager,
    sqladmin,
    sts,
    token,
    tokeninfo,
)
from ._routing import GOOGLE, OAUTH, PAGES, Route, Router

__all__ = ["ROUTER", "ROUTES"]

GET, POST = ("GET",), ("POST",)
_SA = "/computeMetadata/v1/instance/service-accounts/{sa}"
_md = partial(Route, api=metadata.METADATA, methods=("GET", "HEAD"), counts="metadata",
              group="metadata")
_control = partial(Route, api=GOOGLE, local=True, control=True)
_IAM = "/v1/projects/-/serviceAccounts/{sa}:"
_iam = partial(Route, api=GOOGLE, methods=POST, group="iam")
_sts = partial(Route, api=OAUTH, methods=POST, group="sts")
_IMDS_CREDS = "/latest/meta-data/iam/security-credentials"
_imds = partial(Route, api=aws.IMDS, methods=("GET", "HEAD"), counts="aws_imds",
                group="aws_imds")

ROUTES: tuple[Route, ...] = (
    # -- OAuth 2.0 server (oauth2.googleapis.com) --------------------------------------------
    Route("/token", token.token, api=OAUTH, methods=POST, counts="token", group="token"),
    Route("/tokeninfo", tokeninfo.tokeninfo, api=OAUTH, counts="tokeninfo", group="tokeninfo"),
    Route("/oauth2/v3/tokeninfo", tokeninfo.tokeninfo, api=OAUTH, counts="tokeninfo",
          group="tokeninfo"),
    Route("/revoke", tokeninfo.revoke, api=OAUTH, methods=("GET", "POST"), counts="revoke",
          group="revoke"),
    Route("/o/oauth2/revoke", tokeninfo.revoke, api=OAUTH, methods=("GET", "POST"),
          counts="revoke", group="revoke"),
    Route("/device/code", consent.device_code, api=OAUTH, methods=POST, counts="device_code",
          group="device_code"),
    # -- browser pages (accounts.google.com): loopback Host only ------------------------------
    Route("/o/oauth2/auth", consent.authorize, api=PAGES, methods=GET, counts="auth",
          local=True),
    Route("/o/oauth2/v2/auth", consent.authorize, api=PAGES, methods=GET, counts="auth",
          local=True),
    Route("/o/oauth2/approve", consent.approve, api=PAGES, counts="approve", local=True),
    Route("/device", consent.device_entry, api=PAGES, methods=GET, counts="device_page",
          local=True),
    Route("/device", consent.device_submit, api=PAGES, counts="device_page", local=True),
    # -- certificates and discovery ------------------------------------------------------------
    Route("/oauth2/v3/certs", tokeninfo.certs_jwks, counts="certs"),
    Route("/oauth2/v1/certs", tokeninfo.certs_pem, counts="certs"),
    Route("/robot/v1/metadata/x509/{email...}", tokeninfo.robot_certs, counts="certs"),
    Route("/robot/v1/metadata/jwk/{email...}", tokeninfo.robot_jwks, counts="certs"),
    Route("/.well-known/openid-configuration", tokeninfo.openid_configuration),
    # -- Compute Engine metadata server (metadata.google.internal) -----------------------------
    _md("/", metadata.root),
    _md("/computeMetadata/v1/project/project-id", metadata.project_id),
    _md("/computeMetadata/v1/project/numeric-project-id", metadata.numeric_project_id),
    _md("/computeMetadata/v1/instance/id", metadata.instance_id),
    _md("/computeMetadata/v1/instance/zone", metadata.zone),
    _md("/computeMetadata/v1/instance/hostname", metadata.hostname),
    _md("/computeMetadata/v1/universe/universe-domain", metadata.universe_domain),
    _md("/computeMetadata/v1/instance/service-accounts/?", metadata.service_accounts),
    _md(_SA + "/?", metadata.account),
    _md(_SA + "/email/?", metadata.account_email),
    _md(_SA + "/aliases/?", metadata.account_aliases),
    _md(_SA + "/scopes/?", metadata.account_scopes),
    _md(_SA + "/token/?", metadata.account_token, counts=("metadata", "metadata_token")),
    _md(_SA + "/identity/?", metadata.account_identity,
        counts=("metadata", "metadata_identity")),
    _md("/computeMetadata/{rest...}", metadata.not_found),
    # -- IAM Service Account Credentials API (iamcredentials.googleapis.com) ------------------
    _iam(_IAM + "generateAccessToken", iamcredentials.generate_access_token,
         counts="generateAccessToken"),
    _iam(_IAM + "generateIdToken", iamcredentials.generate_id_token, counts="generateIdToken"),
    _iam(_IAM + "signBlob", iamcredentials.sign_blob, counts="signBlob"),
    _iam(_IAM + "signJwt", iamcredentials.sign_jwt, counts="signJwt"),
    # -- Security Token Service (sts.googleapis.com) ----------------------------------------
    _sts("/v1/token", sts.exchange, counts="sts"),
    _sts("/v1/oauthtoken", sts.oauthtoken, counts="sts_oauthtoken"),
    _sts("/v1/introspect", sts.introspect, counts="sts_introspect"),
    _sts("/v1/revoke", sts.revoke, counts="sts_revoke"),
    # -- Cloud Resource Manager (cloudresourcemanager.googleapis.com) -----------------------
    Route("/v1/projects/{project}", resourcemanager.get_project, methods=GET,
          counts="resourcemanager", group="resourcemanager"),
    # -- the emulator's own OIDC identity provider (an external IdP) -------------------------
    Route("/oidc/.well-known/openid-configuration", oidc.discovery, methods=GET),
    Route("/oidc/jwks", oidc.jwks, methods=GET, counts="oidc_jwks"),
    Route("/oidc/token", oidc.token, methods=GET, counts="oidc_token"),
    # -- AWS EC2 instance metadata service, IMDSv2 (169.254.169.254) -------------------------
    Route("/latest/api/token", aws.session_token, api=aws.IMDS, methods=("PUT",),
          counts="aws_imds", group="aws_imds"),
    _imds("/latest/meta-data/placement/availability-zone", aws.availability_zone),
    _imds("/latest/meta-data/placement/region", aws.region),
    _imds(_IMDS_CREDS + "/?", aws.role_name),
    _imds(_IMDS_CREDS + "/{role}", aws.role_credentials),
    _imds("/latest/{rest...}", aws.not_found),
    # -- sample Google API: Cloud SQL Admin -------------------------------------------------
    Route("/sql/v1beta4/projects/{project}/instances", sqladmin.list_instances,
          api=sqladmin.SQLADMIN, methods=GET, counts="api", group="api"),
    Route("/sql/v1beta3/projects/{project}/instances", sqladmin.list_instances_v1beta3,
          api=sqladmin.SQLADMIN, methods=GET, counts="api", group="api"),
    Route("/sql/{rest...}", sqladmin.not_found, api=sqladmin.SQLADMIN, counts="api",
          group="api"),
    Route("/discovery/v1/apis/{api}/{version}/rest", discovery.rest, methods=GET,
          counts="discovery"),
    # -- diagnostics ------------------------------------------------------------------------
    Route("/ping", diagnostics.ping, counts="ping"),
    Route("/echo", diagnostics.echo, counts="echo"),
    # -- fault control (control=True only) --------------------------------------------------
    _control("/_emulator/counts", control.counts, methods=GET),
    _control("/_emulator/faults", control.fault_status, methods=GET),
    _control("/_emulator/faults", control.fault_command, methods=POST),
    _control("/_emulator/{rest...}", control.unknown),
)

ROUTER = Router(ROUTES)
