"""The sample Google API: Cloud SQL Admin ``instances.list``
(``GET /sql/v1beta4/projects/{project}/instances``, and the same under ``v1beta3``, the
version Google's server-to-server guide uses), authenticated like Google's APIs: a live
access token or a self-signed service-account JWT (AIP-4111). Its discovery documents are in
:mod:`.discovery`."""

from __future__ import annotations

from urllib.parse import quote

from ..._endpoints import DEFAULT_UNIVERSE_DOMAIN
from .._errors import GoogleError
from .._jwt import JWTError, check_times, decode_unverified, verify_signature
from .._routing import Api, Call, GoogleErrors
from .._state import CLOUD_PLATFORM, SQLSERVICE_ADMIN
from .._wire import Reply, json_reply

__all__ = ["SQLADMIN", "list_instances", "list_instances_v1beta3", "not_found"]

SQLADMIN_AUDIENCE = "https://sqladmin.googleapis.com/"
API_SCOPES = frozenset({CLOUD_PLATFORM, SQLSERVICE_ADMIN})
MISSING_CREDENTIAL = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
INVALID_CREDENTIAL = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_CHALLENGE = 'Bearer realm="https://accounts.google.com/"'


def _record_quota_project(call: Call) -> None:
    call.state.quota_projects_seen.append(call.req.header("x-goog-user-project"))


#: Every ``/sql/...`` request records its ``X-Goog-User-Project`` (the guard).
SQLADMIN = Api("sqladmin", GoogleErrors(), guard=_record_quota_project)


def list_instances(call: Call) -> Reply:
    """``instances.list``: one RUNNABLE instance in ``{project}``."""
    return _list_instances(call, "v1beta4")


def list_instances_v1beta3(call: Call) -> Reply:
    """``instances.list`` in ``v1beta3``, whose instances also carry ``instance`` (that
    version's name field)."""
    return _list_instances(call, "v1beta3")


def _list_instances(call: Call, version: str) -> Reply:
    auth = call.req.header("authorization") or ""
    if auth[:7].lower() != "bearer " or not auth[7:].strip():
        raise GoogleError(401, MISSING_CREDENTIAL, [("WWW-Authenticate", _CHALLENGE)])
    verdict = _check_bearer(call, auth[7:].strip())
    if verdict == "invalid":
        raise GoogleError(401, INVALID_CREDENTIAL,
                          [("WWW-Authenticate", _CHALLENGE + ', error="invalid_token"')])
    if verdict == "scope":
        raise GoogleError(
            403, "Request had insufficient authentication scopes.",
            [("WWW-Authenticate", _CHALLENGE + ', error="insufficient_scope", '
              f'scope="{CLOUD_PLATFORM} {SQLSERVICE_ADMIN}"')],
            details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                      "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                      "domain": DEFAULT_UNIVERSE_DOMAIN,
                      "metadata": {"service": "sqladmin.googleapis.com",
                                   "method": "cloudsql.instances.list"}}],
        )
    project = call.args["project"]
    instance = {
        "kind": "sql#instance",
        "name": "emu-instance-1",
        "project": project,
        "databaseVersion": "POSTGRES_16",
        "region": "us-central1",
        "state": "RUNNABLE",
        "instanceType": "CLOUD_SQL_INSTANCE",
        "connectionName": f"{project}:us-central1:emu-instance-1",
        "selfLink": f"{call.config.url}/sql/{version}/projects/{quote(project)}"
                    "/instances/emu-instance-1",
    }
    if version == "v1beta3":
        instance["instance"] = instance["name"]
    return json_reply(200, {"kind": "sql#instancesList", "items": [instance]})


def _check_bearer(call: Call, bearer: str) -> str:
    """Classify a bearer token: "ok", "invalid" or "scope" (insufficient scopes)."""
    state = call.state
    if bearer.count(".") != 2:
        rec = state.live_access_token(bearer, call.now)
        if rec is None:
            return "invalid"
        return "ok" if API_SCOPES.intersection(rec.scopes) else "scope"
    # A self-signed service-account JWT (AIP-4111).
    try:
        parsed = decode_unverified(bearer)
    except JWTError:
        return "invalid"
    kid = parsed.header.get("kid")
    sa = state.keys_by_kid.get(kid) if isinstance(kid, str) else None
    if sa is None or not verify_signature(parsed, sa.keys[str(kid)].public_key):
        return "invalid"
    c = parsed.claims
    if c.get("iss") != sa.email or c.get("sub") != sa.email:
        return "invalid"
    try:
        check_times(c, call.now)
    except JWTError:
        return "invalid"
    scope = c.get("scope")
    if scope is not None:
        if not isinstance(scope, str):
            return "invalid"
        return "ok" if API_SCOPES.intersection(scope.split()) else "scope"
    return "ok" if c.get("aud") == SQLADMIN_AUDIENCE else "invalid"


def not_found(call: Call) -> Reply:
    """Any other ``/sql/...`` path."""
    raise GoogleError(404, "The requested URL was not found on this server.")
