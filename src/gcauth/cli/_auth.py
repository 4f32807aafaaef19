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

from .._info import LIMITED_INPUT
from ..exceptions import DefaultCredentialsError, FlowError, GCAuthError, UsageError
from ._common import (
    CLOUD_PLATFORM,
    EXIT_CODES,
    SCOPE_ALIASES,
    SafeText,
    expand_scopes,
    formatter,
    parse_scopes,
    seconds,
    terminal_safe,
)

#: What gcloud's ``application-default login`` asks for, minus its Cloud SQL extra.
DEFAULT_SCOPES = ("openid", "https://www.googleapis.com/auth/userinfo.email", CLOUD_PLATFORM)
CLIENT_ENV = "GCAUTH_CLIENT_ID_FILE"
LOGIN_TIMEOUT = 300.0
#: What the loopback modes print while they wait (not with --quiet).
WAITING = "Waiting for the browser... (Ctrl-C to cancel)"


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
                    "By default a browser opens on this machine (the BROWSER variable picks "
                    "which one) and the sign-in\nreturns to a loopback address (RFC 8252). "
                    "Without a usable browser here, use --no-launch-browser\n(open the URL "
                    "yourself on this machine), --no-browser (browser on another machine; "
                    "paste the\nfinal address back) or --device (enter a code on any "
                    "device).",
        epilog="gcauth has no built-in OAuth client: pass --client-id-file with your OAuth "
               f"client's JSON\n(type 'Desktop app'; for --device, type '{LIMITED_INPUT}'), "
               f"or set {CLIENT_ENV}.\n\n"
               "The quota project is gcloud's core/project (`gcauth config set project P`), "
               "as gcloud does;\n--quota-project overrides it, --disable-quota-project leaves "
               "it out.\n\nShort scope names: " + ", ".join(sorted(SCOPE_ALIASES)) + ",\n"
               "openid, email, profile; anything else as a full URL.\n\n" + EXIT_CODES)
    parser.add_argument(
        "--client-id-file", metavar="FILE", default=None,
        help=f"the OAuth client's client_secrets.json (default: ${CLIENT_ENV})")
    parser.add_argument(
        "--scopes", metavar="S,...", default=None,
        help="comma-separated OAuth scopes, full URLs or gcloud's short names (default: "
             "openid, userinfo.email, cloud-platform)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--launch-browser", dest="mode", action="store_const", const="browser",
        help="open a browser on this machine (the default)")
    mode.add_argument(
        "--no-launch-browser", dest="mode", action="store_const", const="no-launch",
        help="print the sign-in URL instead of opening a browser; open it in a browser on "
             "this machine")
    mode.add_argument(
        "--no-browser", dest="mode", action="store_const", const="console",
        help="for a browser on another machine: print the URL, then paste back the address "
             "the browser ends on. (gcloud's --no-browser instead prints a command to run "
             "with --remote-bootstrap on a machine that has gcloud and a browser; gcauth "
             "needs nothing installed there.)")
    mode.add_argument(
        "--device", dest="mode", action="store_const", const="device",
        help="device flow (RFC 8628): enter a short code at a URL on any device. Google "
             f"requires an OAuth client of type '{LIMITED_INPUT}' for it")
    quota = parser.add_mutually_exclusive_group()
    quota.add_argument(
        "--quota-project", metavar="PROJECT", default=None,
        help="project to bill for API quota, saved as quota_project_id (default: gcloud's "
             "core/project)")
    quota.add_argument(
        "--disable-quota-project", action="store_true",
        help="save no quota project (not even gcloud's core/project)")
    parser.add_argument(
        "--timeout", metavar="SECONDS", type=seconds, default=LOGIN_TIMEOUT,
        help=f"give up waiting for the browser after this long (default {LOGIN_TIMEOUT:g})")
    parser.add_argument(
        "--quiet", "-q", action="store_true",
        help="print only errors, warnings and what you must act on (the URL or code when no "
             "browser is opened)")
    parser.add_argument(
        "--impersonate-service-account", metavar="[DELEGATE,...,]SA", default=None,
        help="save credentials that impersonate this service account with your login (an "
             "impersonated_service_account file, as gcloud writes it; the last email is the "
             "account, the ones before it the delegation chain)")
    parser.set_defaults(handler=run_login, mode="browser")


def check_project(value: str, option: str) -> str:
    """A quota project is an id (``my-project``) or number; refuse what cannot be one."""
    from .._checks import is_header_id

    if not is_header_id(value) or "/" in value:
        raise UsageError(f"{option} {terminal_safe(value)[:100]!r} is not a project id. Fix: "
                         "give an id such as my-project-123.")
    return value


def _can_launch_browser() -> bool:
    """False where opening a browser would fail or take over the terminal (SSH, no display)."""
    if sys.platform.startswith(("win", "darwin")) or os.environ.get("BROWSER"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _login_quota_project(args: argparse.Namespace, err: TextIO) -> tuple[str | None, str]:
    """The quota project a login saves, and where it came from: ``--quota-project``, else
    gcloud's ``core/project`` (AIP-4113: "retrieved from gcloud's context"), unless
    ``--disable-quota-project``."""
    from .._checks import is_header_id
    from .._default import gcloud_project

    if args.disable_quota_project:
        return None, ""
    if args.quota_project:
        return check_project(args.quota_project, "--quota-project"), "--quota-project"
    project, where = gcloud_project()
    if not project:
        return None, ""
    if not is_header_id(project):
        err.write(f"gcauth: warning: gcloud's core/project in {where} is not a project id, so "
                  "no quota project was saved; fix it with `gcauth config set project "
                  "PROJECT`.\n")
        return None, ""
    origin = where if where == "CLOUDSDK_CORE_PROJECT" else f"core/project in {where}"
    return project, f"gcloud's {origin}"


class _Login:
    """What a login does once the flow has credentials: check them, add the quota project,
    save them (or revoke them if they cannot be saved) and say so."""

    def __init__(self, scopes: list[str], quota: str | None, revoke_uri: str | None,
                 err: TextIO, chain: tuple[str, list[str]] | None = None):
        from .. import _default

        self.scopes = scopes
        self.quota = quota
        self.chain = chain
        self.revoke_uri = revoke_uri
        self.err = err
        self.path = _default.well_known_file()
        self.credentials: Any = None

    def save(self, credentials: Any) -> Any:
        if not credentials.refresh_token:
            raise FlowError("the server issued no refresh token, so nothing can be saved for "
                            "later use. Fix: revoke this app's access in your account settings "
                            "and log in again.")
        missing = sorted(set(self.scopes) - set(credentials.granted_scopes or self.scopes))
        if missing:
            self.err.write(f"gcauth: warning: these scopes were not granted: "
                           f"{' '.join(missing)}\n")
        if self.quota:
            credentials = credentials.with_quota_project(self.quota)
        data = None
        if self.chain is not None:
            from ._identity import impersonation_file

            data = impersonation_file(json.loads(credentials.to_json()), self.chain[0],
                                      self.chain[1], credentials.token_uri)
        _save_or_revoke(self.path, credentials, self.revoke_uri, data)
        self.credentials = credentials
        return credentials

    def page(self, credentials: Any) -> Any:
        """The loopback success page: saved first, so that it can say where."""
        from .._loopback import Page

        credentials = self.save(credentials)
        account = terminal_safe(credentials.account or "") or "your account"
        facts = [("Account", account), ("Saved to", str(self.path))]
        if self.quota:
            facts.append(("Quota project", self.quota))
        return Page(200, "Signed in",
                    f"You are signed in as {account}, and the credentials are saved where "
                    "Application Default Credentials find them. You can close this tab and "
                    "return to the terminal.", ok=True, facts=tuple(facts))


def run_login(args: argparse.Namespace, out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    from .. import _default
    from ..flow import DeviceFlow, InstalledAppFlow

    out = out or sys.stdout
    err = err or sys.stderr
    quiet = args.quiet
    shown = SafeText(out).stream()  # what the flows print comes partly from the server
    client_file = args.client_id_file or os.environ.get(CLIENT_ENV)
    if not client_file:
        raise FlowError(
            "login needs your OAuth client: gcauth has no built-in one (gcloud uses its own). "
            "Fix: pass --client-id-file=client_secrets.json (an OAuth client of type 'Desktop "
            f"app'), or set {CLIENT_ENV}. To try it locally: `gcauth emulator --state-dir DIR` "
            "writes DIR/client_secrets.json.")
    scopes = expand_scopes(parse_scopes(args.scopes, DEFAULT_SCOPES))
    quota, quota_from = _login_quota_project(args, err)
    chain = None
    if args.impersonate_service_account:  # checked before the sign-in, not after
        from ._identity import parse_chain

        chain = parse_chain(args.impersonate_service_account)
    mode = args.mode
    flow: DeviceFlow | InstalledAppFlow
    if mode == "device":
        flow = DeviceFlow.from_client_secrets_file(client_file, scopes)
        login = _Login(scopes, quota, flow.client_config.revoke_uri, err, chain)
        try:
            credentials = flow.run(out=shown)  # the code is shown even with --quiet
        except FlowError as exc:
            if exc.error not in ("invalid_client", "unauthorized_client"):
                raise
            raise FlowError(f"{exc} Then pass that file with --client-id-file (or "
                            f"{CLIENT_ENV}), or drop --device to sign in with a browser.",
                            error=exc.error) from None
        login.save(credentials)
    else:
        flow = InstalledAppFlow.from_client_secrets_file(client_file, scopes)
        login = _Login(scopes, quota, flow.client_config.revoke_uri, err, chain)
        if mode == "console":
            credentials = flow.run_console(
                authorization_prompt_message="Open this URL in a browser on any machine and "
                                             "sign in:\n{url}\n", out=shown)
            login.save(credentials)
        else:
            launch = mode == "browser" and _can_launch_browser()
            if mode == "browser" and not launch:
                err.write("gcauth: no browser can be opened here (no display); open the URL "
                          "below yourself, or use --no-browser or --device from another "
                          "machine.\n")
            prompt: str | None
            if launch:
                # with --quiet the URL is printed only if the browser cannot be opened
                prompt = None if quiet else ("Your browser should open. If it does not, open "
                                             "this URL in a browser on this machine:\n{url}\n")
            else:
                prompt = "Open this URL in a browser on this machine:\n{url}\n"
            flow.run_local_server(
                open_browser=launch, timeout_seconds=args.timeout,
                authorization_prompt_message=prompt, out=shown, success_page=login.page,
                waiting_message=None if quiet else WAITING)
    credentials = login.credentials
    if not quiet:
        who = f" for {terminal_safe(credentials.account)}" if credentials.account else ""
        out.write(f"\nCredentials saved to file: [{login.path}]{who}\n\n"
                  "These credentials will be used by any library that requests Application "
                  "Default Credentials (ADC).\n")
        if chain is not None:
            via = f" (through {', '.join(chain[1])})" if chain[1] else ""
            out.write(f"They impersonate {chain[0]}{via}: your account needs the Service "
                      "Account Token Creator role on it.\n")
        if quota:
            out.write(f'Quota project "{quota}" (from {quota_from}) was added to ADC and will '
                      "be billed for API quota.\n")
    if os.environ.get(_default.ENV_CREDENTIALS):
        err.write(f"gcauth: warning: {_default.ENV_CREDENTIALS} is set, so ADC uses "
                  f"{terminal_safe(os.environ[_default.ENV_CREDENTIALS])} instead of this file; "
                  "unset it to use your login.\n")
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
def _lifetime(value: str) -> int:
    """An ``argparse`` type: a token lifetime in whole seconds, 1 to 43200 (12 h)."""
    try:
        number = int(value, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < number <= 43200:
        raise argparse.ArgumentTypeError(f"{value!r} is not between 1 and 43200 seconds")
    return number


def _register_print_access_token(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "print-access-token", help="print an access token from ADC (the only command that "
                                   "prints a secret)",
        formatter_class=formatter,
        description="Find Application Default Credentials, get an access token and print it "
                    "on stdout,\nfor `curl -H \"Authorization: Bearer $(gcauth auth "
                    "application-default print-access-token)\"`.\nTreat the output as a "
                    "password. --format json prints {\"token\", \"expiry\", \"token_type\", "
                    "\"scopes\"}.",
        epilog=EXIT_CODES)
    parser.add_argument(
        "--scopes", metavar="S,...", default=None,
        help="comma-separated scopes to ask for, full URLs or gcloud's short names (default: "
             "what the credential allows; cloud-platform for service accounts)")
    parser.add_argument(
        "--lifetime", metavar="SECONDS", type=_lifetime, default=None,
        help="the token's lifetime, for credentials that let the caller choose it "
             "(impersonated service accounts); any other credential refuses it, since its "
             "server sets the lifetime (about an hour)")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text",
        help="text: the token alone (default); json: the token with its expiry")
    parser.set_defaults(handler=run_print_access_token)


def run_print_access_token(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from .._default import find_default, not_found_message
    from ..credentials import Scoped

    out = out or sys.stdout
    scopes = expand_scopes(parse_scopes(args.scopes, ())) if args.scopes is not None else None
    res = find_default(scopes, default_scopes=[CLOUD_PLATFORM])
    if res.credentials is None:
        raise DefaultCredentialsError(not_found_message(res))
    credentials = res.credentials
    if isinstance(credentials, Scoped) and scopes is not None and credentials.scopes is None:
        credentials = credentials.with_scopes(scopes, [CLOUD_PLATFORM])
    if args.lifetime is not None:
        with_lifetime = getattr(credentials, "with_lifetime", None)
        if not callable(with_lifetime):
            kind = credentials.describe()["type"]
            raise UsageError(
                f"--lifetime does not apply to {kind} credentials (from {res.source}): their "
                "token endpoint decides how long a token lives (about an hour). It applies "
                "only to impersonated service-account tokens.\nFix: drop --lifetime.")
        credentials = with_lifetime(args.lifetime)
    token = credentials.get_token()
    if args.format == "json":
        expiry = token.expiry
        out.write(json.dumps({
            "token": token.access_token,
            "token_type": token.token_type,
            "expiry": expiry.replace(microsecond=0).isoformat() if expiry else None,
            "scopes": list(token.scopes) if token.scopes else None,
        }, indent=2) + "\n")
    else:
        out.write(token.access_token + "\n")
    out.flush()
    return 0


# -- revoke -------------------------------------------------------------------------------
def _register_revoke(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "revoke", help="revoke the ADC user credentials at the server and delete the file",
        formatter_class=formatter,
        description="Revoke the refresh token in the ADC file (RFC 7009) so it can never be "
                    "used again,\nthen delete the file (a workforce identity user's "
                    "file is revoked at its revoke_url).\nService-account files are not "
                    "touched. --local-only deletes the file\nwithout contacting anyone (for a "
                    "server that is gone, e.g. an emulator that was stopped).",
        epilog=EXIT_CODES)
    parser.add_argument(
        "--local-only", action="store_true",
        help="only delete the file: the refresh token is not revoked and stays valid at its "
             "server until it expires or you remove the app's access")
    parser.set_defaults(handler=run_revoke, local_only=False)


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
    if _user_part(info) is None:
        raise DefaultCredentialsError(
            f"the ADC file {path} holds {info.get('type')!r} credentials, not a user login; "
            f"only files written by `{LOGIN_COMMAND}` (with or without "
            "--impersonate-service-account) can be used here. Fix: delete or replace the file "
            "yourself.")
    return info


def _user_part(info: Any) -> dict[str, Any] | None:
    """The user login in an ADC file: the file itself (``authorized_user``), or the source
    credentials of an ``impersonated_service_account`` file that a login wrote."""
    if not isinstance(info, dict):
        return None
    if info.get("type") == "authorized_user":
        return info
    source = info.get("source_credentials")
    if (info.get("type") == "impersonated_service_account" and isinstance(source, dict)
            and source.get("type") == "authorized_user"):
        return source
    return None


def run_revoke(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from .. import _files
    from .._default import well_known_file
    from .._endpoints import check_endpoint
    from ..authorized_user import Credentials
    from ..exceptions import TransportError
    from ..flow import REVOKE_PATH, ClientConfig

    out = out or sys.stdout
    path = well_known_file()
    if path.exists():
        from .._default import gcloud_config_dir

        raw = _files.read_json_file(path, what="ADC file", fix="write it again",
                                    inside=gcloud_config_dir())
        if raw.get("type") == "external_account_authorized_user":
            return _revoke_workforce_user(path, raw, bool(getattr(args, "local_only", False)),
                                          out)
    info = _load_user_file(path, "revoke")
    user = _user_part(info)
    assert user is not None
    credentials = Credentials.from_authorized_user_info(user, source=str(path))
    token = credentials.refresh_token
    assert token is not None
    revoke_uri = check_endpoint(
        ClientConfig.derived_endpoint(credentials.token_uri, REVOKE_PATH), field="revoke_uri",
        source=str(path))
    revoked: bool | None = None
    if not getattr(args, "local_only", False):
        try:
            revoked = _revoke(revoke_uri, token)
        except TransportError as exc:
            from .._info import unreachable_fix

            raise TransportError(
                f"{exc}. The refresh token in {path} could not be revoked, and the file was "
                f"left in place. Fix: {unreachable_fix(revoke_uri)}; or run `gcauth auth "
                "application-default revoke --local-only` to delete the file without "
                "contacting anyone.", url=exc.url, timeout=exc.timeout) from None
    # A login may have replaced the file meanwhile: delete it only if it still holds the
    # token just revoked.
    deleted = _files.remove_file_if(
        path, lambda now: (_user_part(now) or {}).get("refresh_token") == token,
        what="ADC file")
    _files.remove_stale_temps(path)  # what killed writes left, which may hold a token too
    if revoked is None:
        first = "Not revoked (--local-only): nothing was contacted"
        if deleted:
            out.write(f"{first}; {path} deleted. Its refresh token stays valid at "
                      f"{credentials.token_uri} until it expires or you remove this app's "
                      "access in your account settings.\n")
            return 0
    else:
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


def _revoke_workforce_user(path: Path, info: dict[str, Any], local_only: bool,
                           out: TextIO) -> int:
    """``revoke`` of a workforce identity user's ADC file (``gcloud auth application-default
    login --login-config``): the refresh token is revoked at the file's ``revoke_url``, then
    the file is deleted if it still holds that token."""
    from .. import _files
    from ..exceptions import TransportError
    from ..external_account_authorized_user import Credentials

    credentials = Credentials.from_info(info, source=str(path))
    token = credentials.refresh_token
    if not local_only:
        if not credentials.revoke_url:
            raise DefaultCredentialsError(
                f"the ADC file {path} has no revoke_url, so its refresh token cannot be "
                "revoked. Fix: run `gcauth auth application-default revoke --local-only` to "
                "delete the file, and end the session with your identity provider.")
        try:
            credentials.revoke()
        except TransportError as exc:
            from .._info import unreachable_fix

            raise TransportError(
                f"{exc}. The refresh token in {path} could not be revoked, and the file was "
                f"left in place. Fix: {unreachable_fix(credentials.revoke_url)}; or run "
                "`gcauth auth application-default revoke --local-only`.", url=exc.url,
                timeout=exc.timeout) from None
    deleted = _files.remove_file_if(
        path, lambda now: isinstance(now, dict) and now.get("refresh_token") == token,
        what="ADC file")
    _files.remove_stale_temps(path)
    first = ("Not revoked (--local-only): nothing was contacted" if local_only
             else "Workforce credentials revoked")
    if deleted:
        out.write(f"{first}; {path} deleted.\n")
    else:
        out.write(f"{first}. {path} now holds another login, so it was left in place.\n")
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
