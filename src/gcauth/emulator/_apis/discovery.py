"""Discovery documents for the sample API (``GET /discovery/v1/apis/{api}/{version}/rest``).

googleapiclient builds its client from one of these (``discovery.build("sqladmin",
"v1beta4", discoveryServiceUrl=emu.url + "/discovery/v1/apis/{api}/{apiVersion}/rest")``):
``rootUrl`` is the emulator itself, so the client's requests come back here. Served for the
versions the emulator implements: ``v1beta4`` and ``v1beta3`` (the version Google's
server-to-server guide builds), each describing ``instances.list`` only.
"""

from __future__ import annotations

from typing import Any

from .._errors import GoogleError
from .._routing import Call
from .._state import CLOUD_PLATFORM, SQLSERVICE_ADMIN
from .._wire import Reply, json_reply

__all__ = ["VERSIONS", "rest"]

#: The sample API's versions, each with the path of ``instances.list``.
VERSIONS = {"v1beta4": "sql/v1beta4/projects/{project}/instances",
            "v1beta3": "sql/v1beta3/projects/{project}/instances"}

_SCOPES = [CLOUD_PLATFORM, SQLSERVICE_ADMIN]


def _query(kind: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "location": "query", "description": description, **extra}


#: The standard query parameters every Google API accepts.
_PARAMETERS = {
    "$.xgafv": _query("string", "Error format.", enum=["1", "2"]),
    "access_token": _query("string", "OAuth access token."),
    "alt": _query("string", "Response format.", default="json", enum=["json", "media", "proto"]),
    "callback": _query("string", "JSONP callback."),
    "fields": _query("string", "Fields to include in a partial response."),
    "key": _query("string", "API key."),
    "oauth_token": _query("string", "OAuth 2.0 token."),
    "prettyPrint": _query("boolean", "Indented response.", default="true"),
    "quotaUser": _query("string", "Quota user."),
    "uploadType": _query("string", "Legacy upload protocol."),
    "upload_protocol": _query("string", "Upload protocol."),
}


def document(version: str, root_url: str) -> dict[str, Any]:
    """The discovery document of ``sqladmin`` ``version``, rooted at ``root_url``."""
    path = VERSIONS[version]
    root = root_url.rstrip("/") + "/"
    return {
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": f"sqladmin:{version}",
        "name": "sqladmin",
        "canonicalName": "SQL Admin",
        "version": version,
        "revision": "gcauth-emulator",
        "title": "Cloud SQL Admin API (gcauth emulator)",
        "description": "The gcauth emulator's sample API: instances.list only.",
        "protocol": "rest",
        "rootUrl": root,
        "mtlsRootUrl": root,
        "servicePath": "",
        "baseUrl": root,
        "basePath": "",
        "batchPath": "batch",
        "parameters": _PARAMETERS,
        "auth": {"oauth2": {"scopes": {
            CLOUD_PLATFORM: {"description": "See, edit, configure and delete your Google Cloud "
                                            "data."},
            SQLSERVICE_ADMIN: {"description": "Manage your Google SQL Service instances."},
        }}},
        "schemas": {
            "InstancesListResponse": {
                "id": "InstancesListResponse", "type": "object",
                "properties": {
                    "kind": {"type": "string"},
                    "items": {"type": "array", "items": {"$ref": "DatabaseInstance"}},
                    "nextPageToken": {"type": "string"},
                },
            },
            "DatabaseInstance": {
                "id": "DatabaseInstance", "type": "object",
                "properties": {name: {"type": "string"} for name in (
                    "kind", "name", "instance", "project", "databaseVersion", "region",
                    "state", "instanceType", "connectionName", "selfLink")},
            },
        },
        "resources": {"instances": {"methods": {"list": {
            "id": "sql.instances.list",
            "description": "Lists instances under a given project.",
            "path": path,
            "flatPath": path,
            "httpMethod": "GET",
            "parameterOrder": ["project"],
            "parameters": {
                "project": {"type": "string", "location": "path", "required": True,
                            "description": "Project ID."},
                "filter": _query("string", "Filter expression."),
                "maxResults": _query("integer", "Page size.", format="uint32"),
                "pageToken": _query("string", "Page token."),
            },
            "response": {"$ref": "InstancesListResponse"},
            "scopes": _SCOPES,
        }}}},
    }


def rest(call: Call) -> Reply:
    """``GET /discovery/v1/apis/{api}/{version}/rest``."""
    if call.args["api"] != "sqladmin" or call.args["version"] not in VERSIONS:
        raise GoogleError(404, "Requested entity was not found.")
    return json_reply(200, document(call.args["version"], call.config.url))
