"""Cloud Resource Manager v1 ``projects.get`` (``GET /v1/projects/{projectNumberOrId}``):
what google-auth's external-account credentials call to turn the audience's project
number into a project id. The caller needs a live access token with ``cloud-platform``
(or ``cloud-platform.read-only``); an unknown project is 403, as Google answers for
projects the caller may not see."""

from __future__ import annotations

from .._errors import GoogleError
from .._routing import Call
from .._state import CLOUD_PLATFORM
from .._wire import Reply, json_reply
from .sqladmin import INVALID_CREDENTIAL, MISSING_CREDENTIAL

__all__ = ["get_project"]

READ_ONLY = CLOUD_PLATFORM + ".read-only"
SCOPES = frozenset({CLOUD_PLATFORM, READ_ONLY})
_CHALLENGE = 'Bearer realm="https://accounts.google.com/"'
#: Fixed, so replies are stable (the emulator's projects all exist "since" then).
CREATE_TIME = "2024-01-01T00:00:00.000Z"


def get_project(call: Call) -> Reply:
    """``projects.get`` → ``{"projectNumber", "projectId", "lifecycleState", "name",
    "createTime"}``."""
    auth = call.req.header("authorization") or ""
    if auth[:7].lower() != "bearer " or not auth[7:].strip():
        raise GoogleError(401, MISSING_CREDENTIAL, [("WWW-Authenticate", _CHALLENGE)])
    rec = call.state.live_access_token(auth[7:].strip(), call.now)
    if rec is None:
        raise GoogleError(401, INVALID_CREDENTIAL,
                          [("WWW-Authenticate", _CHALLENGE + ', error="invalid_token"')])
    if not SCOPES.intersection(rec.scopes):
        raise GoogleError(403, "Request had insufficient authentication scopes.",
                          [("WWW-Authenticate", _CHALLENGE + ', error="insufficient_scope"')])
    name = call.args["project"]
    found = call.state.project_id_for(name)
    if found is None:
        raise GoogleError(403, "The caller does not have permission")
    number, project_id = found
    return json_reply(200, {"projectNumber": number, "projectId": project_id,
                            "lifecycleState": "ACTIVE", "name": project_id,
                            "createTime": CREATE_TIME})
