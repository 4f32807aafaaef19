"""``gcauth auth application-default ...``: gcloud's commands for the ADC user file.

* ``login`` -- sign in (browser on this machine, a browser elsewhere, or the device flow) and
  write the ADC file (``type: authorized_user``) atomically with mode 0600;
* ``print-access-token`` -- the only command that ever prints a token;
* ``revoke`` -- revoke the refresh token at the server (RFC 7009) and delete the file;
* ``set-quota-project`` -- set ``quota_project_id`` in the file (AIP-4113).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from ..exceptions import DefaultCredentialsError, FlowError, GCAuthError
from ._common import (
    CLOUD_PLATFORM,
    EXIT_CODES,
    SafeText,
    formatter,
    parse_scopes,
    seconds,
    terminal_safe,
)

#: What gcloud's ``application-default login`` asks for, minus its Cloud SQL extra.
DEFAULT_SCOPES = ("openid", "https://www.googleapis.com/auth/userinfo.email", CLOUD_PLATFORM)
CLIENT_ENV = "GCAUTH_CLIENT_ID_FILE"
LOGIN_TIMEOUT = 300.0


def register(commands: Any) -> None:
    auth: argparse.ArgumentParser = commands.add_parser(
        "auth", help="log in and manage Application Default Credentials (gcloud's names)",
        description="Manage the Application Default Credentials (ADC) of your user account.")
    auth_commands = auth.add_subparsers(dest="auth_command", metavar="COMMAND")
    auth_commands.required = True
    adc: argparse.ArgumentParser = auth_commands.add_parser(
        "application-default", help="the ADC user file: login, print-access-token, revoke, "
                                    "set-quota-project",
        description="Manage the ADC file that every Google client library on this machine "
                    "finds (AIP-4113), like `gcloud auth application-default`.")
    adc_commands = adc.add_subparsers(dest="adc_command", metavar="COMMAND")
    adc_commands.required = True
    _register_login(adc_commands)
    _register_print_access_token(adc_commands)
    _register_revoke(adc_commands)
    _register_set_quota_project(adc_commands)
    from . import _identity

    _identity.register(auth_commands)  # gcauth auth print-identity-token


# -- login --------------------------------------------------------------------------------
def _register_login(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "login", help="sign in with your user account and write the ADC file",
        formatter_class=formatter,
        description="Sign in with your own account and save the result where Application "
                    "Default Credentials look for it:\n  $CLOUDSDK_CONFIG/"
                    "application_default_credentials.json (default ~/.config/gcloud/...)\n\n"
                    "By default a browser opens on this machine and the sign-in returns to a "
                    "loopback address (RFC 8252).\nWithout a usable browser here, use "
                    "--no-launch-browser (open the URL yourself on this machine),\n"
                    "--no-browser (browser on another machine; paste the final address back) "
                    "or --device\n(enter a code on any device).",
        epilog="gcauth has no built-in OAuth client: pass --client-id-file with your OAuth "
               f"client's JSON\n(type 'Desktop app'), or set {CLIENT_ENV}.\n\n" + EXIT_CODES)
    parser.add_argument(
        "--client-id-file", metavar="FILE", default=None,
        help=f"the OAuth client's client_secrets.json (default: ${CLIENT_ENV})")
    parser.add_argument(
        "--scopes", metavar="S,...", default=None,
        help="comma-separated OAuth scopes (default: openid, userinfo.email, cloud-platform)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--no-launch-browser", dest="mode", action="store_const", const="no-launch",
        help="print the sign-in URL instead of opening a browser; open it in a browser on "
             "this machine")
    mode.add_argument(
        "--no-browser", dest="mode", action="store_const", const="console",
        help="for a browser on another machine: print the URL, then paste back the address "
             "the browser ends on")
    mode.add_argument(
        "--device", dest="mode", action="store_const", const="device",
        help="device flow (RFC 8628): enter a short code at a URL on any device")
    parser.add_argument(
        "--quota-project", metavar="PROJECT", default=None,
        help="project to bill for API quota, saved as quota_project_id")
    parser.add_argument(
        "--impersonate-service-account", metavar="[DELEGATE,...,]SA", default=None,
        help="save credentials that impersonate this service account with your login (an "
             "impersonated_service_account file, as gcloud writes it; the last email is the "
             "account, the ones before it the delegation chain)")
    parser.add_argument(
        "--timeout", metavar="SECONDS", type=seconds, default=LOGIN_TIMEOUT,
        help=f"give up waiting for the browser after this long (default {LOGIN_TIMEOUT:g})")
    parser.set_defaults(handler=run_login, mode="browser")


def check_project(value: str, option: str) -> str:
    """A quota project is an id (``my-project``) or number; refuse what cannot be one."""
    if (not value or len(value) > 100
            or any(c.isspace() or not c.isprintable() or c in "/\\\"'" for c in value)):
        raise FlowError(f"{option} {value!r} is not a project id. Fix: give an id such as "
                        "my-project-123.")
    return value


def _can_launch_browser() -> bool:
    """False where opening a browser would fail or take over the terminal (SSH, no display)."""
    if sys.platform.startswith(("win", "darwin")) or os.environ.get("BROWSER"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_login(args: argparse.Namespace, out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    from .. import _default
    from ..flow import DeviceFlow, InstalledAppFlow

    out = out or sys.stdout
    err = err or sys.stderr
    shown = SafeText(out).stream()  # what the flows print comes partly from the server
    client_file = args.client_id_file or os.environ.get(CLIENT_ENV)
    if not client_file:
        raise FlowError(
            "login needs your OAuth client: gcauth has no built-in one (gcloud uses its own). "
            "Fix: pass --client-id-file=client_secrets.json (an OAuth client of type 'Desktop "
            f"app'), or set {CLIENT_ENV}. To try it locally: `gcauth emulator --state-dir DIR` "
            "writes DIR/client_secrets.json.")
    scopes = parse_scopes(args.scopes, DEFAULT_SCOPES)
    quota = check_project(args.quota_project, "--quota-project") if args.quota_project else None
    chain = None
    if args.impersonate_service_account:  # checked before the sign-in, not after
        from ._identity import parse_chain

        chain = parse_chain(args.impersonate_service_account)
    mode = args.mode
    flow: DeviceFlow | InstalledAppFlow
    if mode == "device":
        flow = DeviceFlow.from_client_secrets_file(client_file, scopes)
        credentials = flow.run(out=shown)
    else:
        flow = InstalledAppFlow.from_client_secrets_file(client_file, scopes)
        if mode == "console":
            credentials = flow.run_console(
                authorization_prompt_message="Open this URL in a browser on any machine and "
                                             "sign in:\n{url}\n", out=shown)
        else:
            launch = mode == "browser" and _can_launch_browser()
            if mode == "browser" and not launch:
                err.write("gcauth: no browser can be opened here (no display); open the URL "
                          "below yourself, or use --no-browser or --device from another "
                          "machine.\n")
            if launch:
                prompt = ("Your browser should open. If it does not, open this URL in a "
                          "browser on this machine:\n{url}\n")
            else:
                prompt = "Open this URL in a browser on this machine:\n{url}\n"
            credentials = flow.run_local_server(
                open_browser=launch, timeout_seconds=args.timeout,
                authorization_prompt_message=prompt, out=shown)
    if not credentials.refresh_token:
        raise FlowError("the server issued no refresh token, so nothing can be saved for later "
                        "use. Fix: revoke this app's access in your account settings and log "
                        "in again.")
    missing = sorted(set(scopes) - set(credentials.granted_scopes or scopes))
    if missing:
        err.write(f"gcauth: warning: these scopes were not granted: {' '.join(missing)}\n")
    if quota:
        credentials = credentials.with_quota_project(quota)
    path = _default.well_known_file()
    data = None
    if chain is not None:
        from ._identity import impersonation_file

        data = impersonation_file(json.loads(credentials.to_json()), chain[0], chain[1],
                                  credentials.token_uri)
    _save_or_revoke(path, credentials, flow.client_config.revoke_uri, data)
    who = f" for {terminal_safe(credentials.account)}" if credentials.account else ""
    out.write(f"\nCredentials saved to file: [{path}]{who}\n\n"
              "These credentials will be used by any library that requests Application "
              "Default Credentials (ADC).\n")
    if chain is not None:
        via = f" (through {', '.join(chain[1])})" if chain[1] else ""
        out.write(f"They impersonate {chain[0]}{via}: your account needs the Service Account "
                  "Token Creator role on it.\n")
    if quota:
        out.write(f'Quota project "{quota}" was added to ADC and will be billed for API '
                  "quota.\n")
    if os.environ.get(_default.ENV_CREDENTIALS):
        err.write(f"gcauth: warning: {_default.ENV_CREDENTIALS} is set, so ADC uses "
                  f"{os.environ[_default.ENV_CREDENTIALS]} instead of this file; unset it to "
                  "use your login.\n")
    out.flush()
    return 0


def _save_or_revoke(path: Path, credentials: Any, revoke_uri: str | None,
                    data: dict[str, Any] | None = None) -> None:
    """Write the new login (or ``data``, the file that wraps it) to ``path``; if that fails,
    revoke its refresh token rather than leave a live grant nobody holds, and say so in one
    line."""
    from .. import _files

    try:
        # an ADC file as gcloud writes it: no access token in it
        _files.write_private_json(path, data if data is not None else json.loads(
            credentials.to_json(strip=("token", "expiry"))))
        return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        fix = _save_fix(exc, path.parent)
    try:
        if not revoke_uri:
            raise FlowError("the OAuth client has no revocation endpoint")
        _revoke(revoke_uri, credentials.refresh_token)
        outcome = "so the new login was revoked at the server instead of being left valid"
    except GCAuthError as exc:
        outcome = ("and revoking the new login at the server failed too ("
                   f"{terminal_safe(str(exc))[:200]}), so it stays valid until you remove "
                   "this app's access in your account settings "
                   "(https://myaccount.google.com/permissions)")
    raise FlowError(f"the credentials could not be saved to {path} ({reason}), {outcome}. "
                    f"Fix: {fix}, or set CLOUDSDK_CONFIG to a writable directory; then log in "
                    "again.", error="not_saved") from None


def _save_fix(exc: OSError, directory: Path) -> str:
    if exc.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1)):
        return f"free some space on the disk holding {directory}"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"{directory} must be a directory, but part of that path is a file"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"make {directory} writable"
    return f"make sure {directory} is a writable directory"


def _revoke(revoke_uri: str, refresh_token: str) -> bool:
    """Revoke ``refresh_token`` (RFC 7009); ``False`` if the server already did not know it."""
    from .._http import run_sync
    from .._protocol.rfc7009 import revoke_flow
    from ..transport import resolve_request

    revoked: bool = run_sync(revoke_flow(revoke_uri, refresh_token,
                                         token_type_hint="refresh_token"),
                             resolve_request(None).send)
    return revoked


# -- print-access-token -------------------------------------------------------------------
def _register_print_access_token(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "print-access-token", help="print an access token from ADC (the only command that "
                                   "prints a secret)",
        formatter_class=formatter,
        description="Find Application Default Credentials, get an access token and print it "
                    "on stdout,\nfor `curl -H \"Authorization: Bearer $(gcauth auth "
                    "application-default print-access-token)\"`.\nTreat the output as a "
                    "password.",
        epilog=EXIT_CODES)
    parser.add_argument(
        "--scopes", metavar="S,...", default=None,
        help="comma-separated scopes to ask for (default: what the credential allows; "
             "cloud-platform for service accounts)")
    parser.set_defaults(handler=run_print_access_token)


def run_print_access_token(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from .._default import default

    out = out or sys.stdout
    scopes = parse_scopes(args.scopes, ()) if args.scopes is not None else None
    credentials, _ = default(scopes=scopes, default_scopes=[CLOUD_PLATFORM])
    token = credentials.get_token()
    out.write(token.access_token + "\n")
    out.flush()
    return 0


# -- revoke -------------------------------------------------------------------------------
def _register_revoke(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "revoke", help="revoke the ADC user credentials at the server and delete the file",
        formatter_class=formatter,
        description="Revoke the refresh token in the ADC file (RFC 7009) so it can never be "
                    "used again,\nthen delete the file. Service-account files are not "
                    "touched.",
        epilog=EXIT_CODES)
    parser.set_defaults(handler=run_revoke)


def _load_user_file(path: Path, action: str) -> dict[str, Any]:
    """The ADC user file, read without following a link out of the gcloud directory (as
    discovery reads it)."""
    from .. import _files
    from .._default import gcloud_config_dir
    from .._info import LOGIN_COMMAND

    if not path.exists():
        raise DefaultCredentialsError(
            f"there is no ADC file at {path}, so there is nothing to {action}. Fix: run "
            f"`{LOGIN_COMMAND}` first (CLOUDSDK_CONFIG moves the file).")
    info = _files.read_json_file(path, what="ADC file",
                                 fix=f"run `{LOGIN_COMMAND}` to write it again",
                                 inside=gcloud_config_dir())
    kind = info.get("type")
    if kind != "authorized_user":
        raise DefaultCredentialsError(
            f"the ADC file {path} holds {kind!r} credentials, not a user login; only files "
            f"written by `{LOGIN_COMMAND}` can be used here. Fix: delete or replace the file "
            "yourself.")
    return info


def run_revoke(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from .. import _files
    from .._default import well_known_file
    from .._endpoints import check_endpoint
    from ..authorized_user import Credentials
    from ..flow import REVOKE_PATH, ClientConfig

    out = out or sys.stdout
    path = well_known_file()
    info = _load_user_file(path, "revoke")
    credentials = Credentials.from_authorized_user_info(info, source=str(path))
    token = credentials.refresh_token
    assert token is not None
    revoke_uri = check_endpoint(
        ClientConfig.derived_endpoint(credentials.token_uri, REVOKE_PATH), field="revoke_uri",
        source=str(path))
    revoked = _revoke(revoke_uri, token)
    # A login may have replaced the file meanwhile: delete it only if it still holds the
    # token just revoked.
    deleted = _files.remove_file_if(path, lambda now: now.get("refresh_token") == token,
                                    what="ADC file")
    _files.remove_stale_temps(path)  # what killed writes left, which may hold a token too
    first = ("Credentials revoked" if revoked
             else "The server already considered these credentials invalid")
    if deleted:
        out.write(f"{first}, and {path} deleted.\n" if revoked
                  else f"{first}; {path} deleted.\n")
    elif path.exists():
        out.write(f"{first}. {path} now holds a newer login, so it was left in place.\n")
    else:
        out.write(f"{first}. {path} was already gone.\n")
    return 0


# -- set-quota-project --------------------------------------------------------------------
def _register_set_quota_project(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "set-quota-project", help="set the quota project in the ADC user file",
        formatter_class=formatter,
        description="Record PROJECT as quota_project_id in the ADC user file; client "
                    "libraries then send\nit as X-Goog-User-Project so API quota and billing "
                    "go to it (AIP-4113).",
        epilog=EXIT_CODES)
    parser.add_argument("project", metavar="PROJECT", help="the project id to bill")
    parser.set_defaults(handler=run_set_quota_project)


def run_set_quota_project(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from .. import _files
    from .._default import well_known_file

    out = out or sys.stdout
    project = check_project(args.project, "PROJECT")
    path = well_known_file()
    info = _load_user_file(path, "update")
    info["quota_project_id"] = project
    _files.write_private_json(path, info)
    out.write(f"Credentials saved to file: [{path}]\n"
              f'Quota project "{project}" was added to ADC and will be billed for API '
              "quota.\n")
    return 0
