"""Application Default Credentials: an ordered list of sources, and what was tried.

Order (Google's documented precedence):

1. ``GOOGLE_APPLICATION_CREDENTIALS`` -- a credential file; if the variable is set, the file
   must load (a missing or broken file is an error naming the variable, never a fall-through);
2. the gcloud well-known file -- ``$CLOUDSDK_CONFIG/application_default_credentials.json``, else
   ``~/.config/gcloud/...`` (``%APPDATA%\\gcloud\\...`` on Windows);
3. the Compute Engine metadata server -- skipped without any network traffic when
   ``NO_GCE_CHECK`` is set or the machine is visibly not a Google VM; otherwise one bounded probe.

Project id: ``GOOGLE_CLOUD_PROJECT`` (or ``GCLOUD_PROJECT``) → the credential file's
``project_id`` → gcloud's ``core/project`` (``CLOUDSDK_CORE_PROJECT``, then the active
configuration's properties file, read directly: no subprocess) → the metadata server's
``project/project-id`` (only when credentials came from it).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _files
from ._checks import is_header_id
from ._info import ID_RULE, LOGIN_COMMAND, WELL_KNOWN
from ._value import Value
from .credentials import Credentials, Scoped
from .exceptions import DefaultCredentialsError, GCAuthError, MalformedCredentialsError, UsageError

__all__ = [
    "Resolution",
    "SourceReport",
    "default",
    "find_default",
    "gcloud_config_dir",
    "load_credentials_from_dict",
    "load_credentials_from_file",
    "well_known_file",
]

ENV_CREDENTIALS = "GOOGLE_APPLICATION_CREDENTIALS"
WELL_KNOWN_NAME = "application_default_credentials.json"
_CONFIG_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
KNOWN_TYPES = ("service_account", "authorized_user", "impersonated_service_account",
               "external_account", "external_account_authorized_user")
#: Types Google defines that gcauth does not load yet.
UNSUPPORTED_TYPES = ("gdch_service_account",)
#: The ``credential_source`` kinds ``allowed_types`` may name as ``external_account:KIND``.
EXTERNAL_SOURCE_KINDS = ("file", "url", "aws", "executable")


def type_name(info: Mapping[str, Any]) -> tuple[str, str | None]:
    """``(type, external_account:KIND or None)`` of a parsed credential file."""
    kind = info.get("type")
    name = kind if isinstance(kind, str) else "(no type)"
    if kind == "external_account":
        from .external_account import source_kind

        sub = source_kind(info)
        return name, f"external_account:{sub}" if sub else None
    return name, None


def check_allowed_type(info: Mapping[str, Any], allowed_types: Sequence[str] | None,
                       source: str) -> None:
    """Refuse a credential whose type the caller did not allow, before anything is fetched
    or run. ``allowed_types`` holds file types (``"service_account"``,
    ``"external_account"``...) or, for external accounts, ``"external_account:aws"`` /
    ``:file`` / ``:url`` / ``:executable``."""
    if allowed_types is None:
        return
    if isinstance(allowed_types, str):
        raise UsageError("allowed_types must be a list of type names, not one string: "
                         f"allowed_types=[{allowed_types!r}].")
    allowed = set(allowed_types)
    for name in allowed:
        base, _, part = str(name).partition(":")
        if base not in KNOWN_TYPES or (part and (base != "external_account"
                                                 or part not in EXTERNAL_SOURCE_KINDS)):
            raise UsageError(
                f"allowed_types names {name!r}, which is not a credential type; known: "
                f"{', '.join(KNOWN_TYPES)}, and external_account:"
                f"{{{','.join(EXTERNAL_SOURCE_KINDS)}}}.")
    kind, sub = type_name(info)
    if kind in allowed or (sub is not None and sub in allowed):
        return
    what = f"type {kind!r}" + (f" ({sub})" if sub else "")
    raise MalformedCredentialsError(
        f"{source} holds a credential of {what}, which this program does not accept (allowed: "
        f"{', '.join(sorted(allowed))}). Nothing was fetched or run. Use a credential of an "
        "allowed type.", source=source, field="type")


class SourceReport(Value):
    """One ADC source and what happened there (``outcome``: used, not found, skipped)."""

    __slots__ = ("name", "location", "outcome", "detail")
    name: str
    location: str | None
    outcome: str
    detail: str

    def __init__(self, name: str, location: str | None, outcome: str, detail: str):
        self._init(name=name, location=location, outcome=outcome, detail=detail)

    def line(self) -> str:
        where = f" ({self.location})" if self.location else ""
        return f"{self.name}{where}: {self.outcome}, {self.detail}"


class Resolution:
    """What :func:`find_default` decided, and why.

    ``project_source`` and ``quota_project_source`` are machine values (for scripts and
    ``gcauth explain --format json``); ``project_location`` is the file a project came from,
    when it came from one.
    """

    __slots__ = ("credentials", "error", "project_id", "project_location", "project_source",
                 "quota_project_source", "source", "source_location", "tried")

    def __init__(self) -> None:
        self.credentials: Credentials | None = None
        self.project_id: str | None = None
        self.source: str | None = None
        self.source_location: str | None = None
        #: where the project id came from: ``"GOOGLE_CLOUD_PROJECT"``, ``"GCLOUD_PROJECT"``,
        #: ``"credential_file"`` (its ``project_id``), ``"CLOUDSDK_CORE_PROJECT"``,
        #: ``"gcloud_config"`` (the properties file in ``project_location``),
        #: ``"metadata_server"``, or ``None`` (not found)
        self.project_source: str | None = None
        self.project_location: str | None = None
        #: where the quota project came from: ``"argument"`` (``quota_project_id=``),
        #: ``"GOOGLE_CLOUD_QUOTA_PROJECT"``, ``"credential_file"``, or ``None`` (none set)
        self.quota_project_source: str | None = None
        self.tried: list[SourceReport] = []
        #: with ``find_default(keep_errors=True)``: the error of a source that was found but
        #: cannot be used (ADC stops there); its report in ``tried`` has outcome ``"broken"``
        self.error: GCAuthError | None = None

    def __repr__(self) -> str:
        return (f"Resolution(source={self.source!r}, project_id={self.project_id!r}, "
                f"credentials={self.credentials!r})")


# -- locations ----------------------------------------------------------------------------
def gcloud_config_dir(environ: Mapping[str, str] | None = None,
                      platform: str | None = None) -> Path:
    """gcloud's configuration directory (``CLOUDSDK_CONFIG`` wins)."""
    env = os.environ if environ is None else environ
    override = env.get("CLOUDSDK_CONFIG")
    if override:
        return Path(override)
    if (platform or sys.platform).startswith("win"):
        appdata = env.get("APPDATA")
        base = Path(appdata) if appdata else Path(env.get("SystemDrive", "C:") + "\\")
        return base / "gcloud"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".config" / "gcloud"


def well_known_file(environ: Mapping[str, str] | None = None,
                    platform: str | None = None) -> Path:
    """Where ``gcloud auth application-default login`` (and gcauth's) writes user credentials."""
    return gcloud_config_dir(environ, platform) / WELL_KNOWN_NAME


# -- loading ------------------------------------------------------------------------------
def load_credentials_from_dict(
    info: Mapping[str, Any],
    scopes: Sequence[str] | None = None,
    default_scopes: Sequence[str] | None = None,
    quota_project_id: str | None = None,
    *,
    source: str = "<credentials dict>",
    allowed_types: Sequence[str] | None = None,
    **kwargs: Any,
) -> tuple[Credentials, str | None]:
    """Credentials from a parsed credential file, by its ``type``; returns ``(creds, project)``.

    ``allowed_types`` (e.g. ``("service_account", "external_account:aws")``) refuses any
    other type before anything is fetched or run: pass it when the file may come from
    someone else (see SECURITY.md)."""
    if not isinstance(info, Mapping):
        raise MalformedCredentialsError(
            f"{source}: a credential must be a JSON object, not {type(info).__name__}.",
            source=source)
    check_allowed_type(info, allowed_types, source)
    kind = info.get("type")
    credentials: Credentials
    project_id: str | None = None
    if kind == "service_account":
        from . import service_account

        sa = service_account.Credentials.from_service_account_info(
            info, source=source, scopes=scopes, default_scopes=default_scopes, **kwargs)
        credentials, project_id = sa, sa.project_id
    elif kind == "authorized_user":
        from . import authorized_user

        credentials = authorized_user.Credentials.from_authorized_user_info(
            info, scopes, source=source, default_scopes=default_scopes, **kwargs)
    elif kind == "impersonated_service_account":
        from . import impersonated_credentials

        credentials = impersonated_credentials.Credentials.from_impersonated_service_account_info(
            info, scopes, default_scopes=default_scopes, source=source, **kwargs)
    elif kind == "external_account":
        credentials = _external_account(info, scopes=scopes, default_scopes=default_scopes,
                                        source=source, **kwargs)
    elif kind == "external_account_authorized_user":
        from . import external_account_authorized_user as workforce

        credentials = workforce.Credentials.from_info(info, scopes=scopes, source=source,
                                                      **kwargs)
    elif kind in UNSUPPORTED_TYPES:
        raise MalformedCredentialsError(
            f"{source}: credential type {kind!r} is not supported by gcauth yet (supported: "
            f"{', '.join(KNOWN_TYPES)}). Use a service account key or "
            f"`{LOGIN_COMMAND}`.", source=source, field="type")
    else:
        got = "has no 'type' field" if kind is None else f"has unknown type {kind!r}"
        raise MalformedCredentialsError(
            f"{source} {got}; known types: {', '.join(KNOWN_TYPES)}. Use a service account JSON "
            f"key, or run `{LOGIN_COMMAND}`.", source=source, field="type")
    if quota_project_id:
        credentials = credentials.with_quota_project(quota_project_id)
    return credentials, project_id


def _external_account(info: Mapping[str, Any], **kwargs: Any) -> Credentials:
    """The class an ``external_account`` configuration needs, by its ``credential_source``:
    ``aws`` (``environment_id: aws1``), ``pluggable`` (``executable``), else
    ``identity_pool`` (``file``, ``url``; it names anything else it cannot read)."""
    from .external_account import source_kind

    kind = source_kind(info)
    if kind == "aws":
        from . import aws

        return aws.Credentials.from_info(info, **kwargs)
    if kind == "executable":
        from . import pluggable

        return pluggable.Credentials.from_info(info, **kwargs)
    from . import identity_pool

    return identity_pool.Credentials.from_info(info, **kwargs)


def load_credentials_from_file(
    filename: str | os.PathLike[str],
    scopes: Sequence[str] | None = None,
    default_scopes: Sequence[str] | None = None,
    quota_project_id: str | None = None,
    **kwargs: Any,
) -> tuple[Credentials, str | None]:
    """Credentials from a credential file of any supported type; returns ``(creds, project)``.
    ``allowed_types=`` restricts the types accepted (see :func:`load_credentials_from_dict`).
    An ``external_account`` file's project is not looked up here (``project`` is ``None``):
    ``credentials.get_project_id()`` does that when asked."""
    name = os.fspath(filename)
    info = _files.read_json_file(name, fix="point at a service account key or an ADC user file")
    return load_credentials_from_dict(info, scopes, default_scopes, quota_project_id,
                                      source=name, **kwargs)


# -- discovery ----------------------------------------------------------------------------
class _Broken(Exception):
    """A source was found but cannot be used (``find_default(keep_errors=True)``)."""


def _broken(res: Resolution, report: SourceReport, error: MalformedCredentialsError,
            keep: bool) -> _Broken:
    """Record a source that cannot be used, then raise ``error`` (or, when ``keep``, stop
    discovery with the error kept in ``res.error``)."""
    res.tried.append(report)
    if not keep:
        raise error from None
    res.error = error
    return _Broken()


def _from_env(env: Mapping[str, str], res: Resolution, load: Any, keep: bool = False) -> bool:
    path = env.get(ENV_CREDENTIALS)
    if not path:
        res.tried.append(
            SourceReport(ENV_CREDENTIALS, None, "not found", "the variable is not set"))
        return False
    try:
        creds, project = load(path)
    except MalformedCredentialsError as exc:
        error = MalformedCredentialsError(
            f"{ENV_CREDENTIALS} is set to {path!r}, but that file cannot be used: {exc} "
            f"Fix the file, or unset {ENV_CREDENTIALS} to let ADC look elsewhere.",
            source=exc.source, field=exc.field)
        raise _broken(res, SourceReport(ENV_CREDENTIALS, path, "broken", str(exc)), error,
                      keep) from None
    creds._source_via = ENV_CREDENTIALS  # error hints name the variable (and the file)
    res.credentials, res.project_id = creds, project
    res.source, res.source_location = ENV_CREDENTIALS, path
    res.tried.append(SourceReport(ENV_CREDENTIALS, path, "used", _kind(creds)))
    return True


def _from_well_known(env: Mapping[str, str], res: Resolution, load: Any,
                     keep: bool = False) -> bool:
    path = well_known_file(env)
    if not path.exists() and not path.is_symlink():
        res.tried.append(SourceReport("gcloud ADC file", str(path), "not found",
                                      f"no such file (create it with `{LOGIN_COMMAND}`)"))
        return False
    try:
        _files.check_link_inside(path, gcloud_config_dir(env), what="gcloud ADC file")
    except MalformedCredentialsError as exc:
        raise _broken(res, SourceReport("gcloud ADC file", str(path), "broken", str(exc)), exc,
                      keep) from None
    try:
        creds, project = load(path)
    except MalformedCredentialsError as exc:
        error = MalformedCredentialsError(
            f"The gcloud ADC file {path} cannot be used: {exc} Run `{LOGIN_COMMAND}` to "
            "write it again.", source=exc.source, field=exc.field)
        raise _broken(res, SourceReport("gcloud ADC file", str(path), "broken", str(exc)),
                      error, keep) from None
    creds._source_via = WELL_KNOWN
    res.credentials, res.project_id = creds, project
    res.source, res.source_location = "gcloud ADC file", str(path)
    res.tried.append(SourceReport("gcloud ADC file", str(path), "used", _kind(creds)))
    return True


def _from_metadata(env: Mapping[str, str], res: Resolution, request: Any,
                   scopes: Sequence[str] | None, default_scopes: Sequence[str] | None,
                   timeout: float | None) -> bool:
    from . import compute_engine

    found = compute_engine.detect_metadata_server(request, timeout, environ=env)
    if not found.available:
        res.tried.append(SourceReport("metadata server", found.location, found.outcome,
                                      found.detail))
        return False
    res.credentials = compute_engine.Credentials(scopes=scopes, default_scopes=default_scopes)
    res.source, res.source_location = "metadata server", found.location
    res.tried.append(SourceReport("metadata server", found.location, "used",
                                  "Compute Engine credentials"))
    return True


def _kind(creds: Credentials) -> str:
    info = creds.describe()
    account = info.get("account")
    return f"{str(info['type']).replace('_', ' ')} credentials" + (
        f" for {account}" if account else "")


def active_config_name(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The name of gcloud's active configuration and what chose it:
    ``CLOUDSDK_ACTIVE_CONFIG_NAME``, the ``active_config`` file, or ``"default"``. The name
    is returned as found; :func:`is_config_name` says whether gcloud would accept it."""
    env = os.environ if environ is None else environ
    if env.get("CLOUDSDK_ACTIVE_CONFIG_NAME"):
        return env["CLOUDSDK_ACTIVE_CONFIG_NAME"], "CLOUDSDK_ACTIVE_CONFIG_NAME"
    path = gcloud_config_dir(env) / "active_config"
    try:
        name = path.read_text(encoding="utf-8").strip()
    except (OSError, ValueError):  # ValueError: undecodable, or a NUL in the path
        return "default", "default"
    return (name, str(path)) if name else ("default", "default")


def is_config_name(name: str) -> bool:
    """gcloud's rule for configuration names (which also keeps paths inside the directory)."""
    return _CONFIG_NAME.fullmatch(name) is not None


def gcloud_project(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """gcloud's ``core/project`` without running gcloud: ``(project, where it came from)``."""
    import configparser

    env = os.environ if environ is None else environ
    if env.get("CLOUDSDK_CORE_PROJECT"):
        return env["CLOUDSDK_CORE_PROJECT"], "CLOUDSDK_CORE_PROJECT"
    config = gcloud_config_dir(env)
    name, _ = active_config_name(env)
    if not _CONFIG_NAME.fullmatch(name):  # gcloud's rule; also keeps the path inside config/
        name = "default"
    candidates = [config / "configurations" / f"config_{name}", config / "properties"]
    for path in candidates:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except (OSError, ValueError, configparser.Error):
            continue
        project = parser.get("core", "project", fallback="").strip()
        if project:
            return project, str(path)
    return None, None


def find_default(
    scopes: Sequence[str] | None = None,
    *,
    request: Any = None,
    quota_project_id: str | None = None,
    default_scopes: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    metadata_timeout: float | None = None,
    keep_errors: bool = False,
    allowed_types: Sequence[str] | None = None,
) -> Resolution:
    """Run ADC discovery and return everything it learned (``explain`` prints this).

    A credential file that is found but cannot be used ends discovery with an error (ADC
    never falls through to another identity); with ``keep_errors=True`` it is returned
    instead, in ``res.error``, with that source reported as ``"broken"`` in ``res.tried``.
    """
    env = os.environ if environ is None else environ
    res = Resolution()

    def load(path: str | os.PathLike[str]) -> tuple[Credentials, str | None]:
        return load_credentials_from_file(path, scopes, default_scopes,
                                          allowed_types=allowed_types)

    try:
        found = (_from_env(env, res, load, keep_errors)
                 or _from_well_known(env, res, load, keep_errors)
                 or _from_metadata(env, res, request, scopes, default_scopes,
                                   metadata_timeout))
    except _Broken:
        return res
    if not found:
        return res
    assert res.credentials is not None
    if quota_project_id:
        res.quota_project_source = "argument"
        res.credentials = res.credentials.with_quota_project(quota_project_id)
    elif env.get("GOOGLE_CLOUD_QUOTA_PROJECT"):
        if not is_header_id(env["GOOGLE_CLOUD_QUOTA_PROJECT"]):
            raise MalformedCredentialsError(
                f"GOOGLE_CLOUD_QUOTA_PROJECT is not a project id ({ID_RULE}). Fix: set it to "
                "the id of the project to bill, or unset it.",
                source="GOOGLE_CLOUD_QUOTA_PROJECT")
        res.quota_project_source = "GOOGLE_CLOUD_QUOTA_PROJECT"
        res.credentials = res.credentials.with_quota_project(env["GOOGLE_CLOUD_QUOTA_PROJECT"])
    elif res.credentials.quota_project_id:
        res.quota_project_source = "credential_file"
    file_project = res.project_id
    res.project_id = None
    for var in ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT"):
        if env.get(var):
            res.project_id, res.project_source = env[var], var
            break
    else:
        if file_project:
            res.project_id, res.project_source = file_project, "credential_file"
            res.project_location = res.source_location
        else:
            project, where = gcloud_project(env)
            if project and where == "CLOUDSDK_CORE_PROJECT":
                res.project_id, res.project_source = project, "CLOUDSDK_CORE_PROJECT"
            elif project:
                res.project_id, res.project_source = project, "gcloud_config"
                res.project_location = where
            elif res.source == "metadata server":
                from . import compute_engine

                try:
                    res.project_id = compute_engine.get_project_id(request)
                    res.project_source = "metadata_server"
                    res.project_location = res.source_location
                except GCAuthError:
                    res.project_source = None
    return res


def default(
    scopes: Sequence[str] | None = None,
    request: Any = None,
    quota_project_id: str | None = None,
    default_scopes: Sequence[str] | None = None,
    *,
    allowed_types: Sequence[str] | None = None,
) -> tuple[Credentials, str | None]:
    """Application Default Credentials: ``(credentials, project_id)``.

    Raises :class:`~gcauth.exceptions.DefaultCredentialsError` listing every source tried and
    how to fix it when nothing is found. ``allowed_types`` (credential file types, e.g.
    ``("service_account", "external_account")``) refuses a file of any other type before
    anything is fetched or run; the metadata server is not a file and stays allowed.
    """
    res = find_default(scopes, request=request, quota_project_id=quota_project_id,
                       default_scopes=default_scopes, allowed_types=allowed_types)
    if res.credentials is None:
        raise DefaultCredentialsError(not_found_message(res))
    credentials = res.credentials
    if isinstance(credentials, Scoped) and scopes is not None and credentials.scopes is None:
        credentials = credentials.with_scopes(scopes, default_scopes)
    return credentials, res.project_id


def not_found_message(res: Resolution) -> str:
    lines = ["Could not find Application Default Credentials. Tried, in order:"]
    lines += [f"  {n}. {report.line()}" for n, report in enumerate(res.tried, 1)]
    lines += [
        "Fix it with one of:",
        f"  - run `{LOGIN_COMMAND}` to use your own Google account;",
        f"  - set {ENV_CREDENTIALS}=/path/to/service-account-key.json;",
        "  - run on Google Cloud with a service account attached to the resource.",
        "See https://cloud.google.com/docs/authentication/provide-credentials-adc",
    ]
    return "\n".join(lines)
