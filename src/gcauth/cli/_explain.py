"""``gcauth explain``: which Application Default Credentials source wins, and why.

Shows the winning source and the reason, the account, project (and where it came from),
quota project, scopes, the token's expiry (after fetching one, unless ``--no-token``) and
every source in ADC order with what happened there. Never prints a secret: no token,
refresh token, client secret or private key appears, in text or ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

from .._info import LOGIN_COMMAND
from ..exceptions import GCAuthError

#: ADC order (see :mod:`gcauth._default`).
SOURCES = ("GOOGLE_APPLICATION_CREDENTIALS", "gcloud ADC file", "metadata server")
_WHY = {
    "GOOGLE_APPLICATION_CREDENTIALS":
        "GOOGLE_APPLICATION_CREDENTIALS is set, and ADC checks it first",
    "gcloud ADC file":
        "GOOGLE_APPLICATION_CREDENTIALS is not set, and the gcloud ADC file exists "
        "(written by `gcauth auth application-default login`)",
    "metadata server":
        "no credential file was found, and a Compute Engine metadata server answered",
}


def register(commands: Any) -> None:
    from ._common import EXIT_CODES, formatter

    parser: argparse.ArgumentParser = commands.add_parser(
        "explain", help="show which ADC source wins and why (never prints secrets)",
        formatter_class=formatter,
        description="Run Application Default Credentials discovery and explain the result: "
                    "the source used and\nwhy, the account, project, quota project, scopes "
                    "and token expiry, and every source\nskipped. A source that was found but "
                    "cannot be used is marked BROKEN, with the reason.\nSecrets are never "
                    "printed.",
        epilog=EXIT_CODES + "\n  (explain exits 1 when no credentials are found, a source is "
                            "broken, or the token\n  cannot be fetched)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text (default), or json: one JSON object with machine values")
    parser.add_argument("--json", action="store_const", dest="format", const="json",
                        help="the same as --format json")
    parser.add_argument("--scopes", metavar="S,...", default=None,
                        help="scopes to ask for, full URLs or gcloud's short names (default: "
                             "what the credential allows; cloud-platform for service "
                             "accounts)")
    parser.add_argument("--no-token", action="store_true",
                        help="do not fetch a token (no network; expiry stays unknown)")
    parser.set_defaults(handler=run)


#: How the text output says what each machine ``type`` is.
_KIND_TEXT = {"authorized_user": "a user account",
              "service_account": "a service account key",
              "compute_engine": "the VM's attached service account",
              "impersonated_service_account": "a service account, impersonated",
              "service_account_id_token": "ID tokens from a service account key",
              "compute_engine_id_token": "ID tokens from the VM's attached service account",
              "impersonated_id_token": "ID tokens of an impersonated service account",
              "external_account": "workload or workforce identity federation",
              "external_account_authorized_user": "a workforce identity federation user"}
#: How the text output names an ``external_account`` credential's subject-token source.
_SOURCE_TEXT = {"file": "a file", "url": "a URL", "aws": "AWS credentials (signed "
                "GetCallerIdentity)", "executable": "an executable", "supplier": "a supplier"}
#: How the text output says where a project came from (``Resolution.project_source``).
_PROJECT_FROM = {"credential_file": "the credential file's project_id",
                 "gcloud_config": "gcloud's core/project",
                 "metadata_server": "the metadata server"}
_QUOTA_FROM = {"argument": "the quota_project_id argument",
               "credential_file": "the credential file"}
_NOT_CONSULTED = {
    "used": "an earlier source in the ADC order was used",
    "broken": "ADC stops at a source it cannot use: it never falls through to another "
              "identity",
}


def _timestamp(value: datetime | None) -> str | None:
    return value.replace(microsecond=0).isoformat() if value else None


def build_report(scopes: list[str] | None, fetch_token: bool,
                 environ: Any = None) -> dict[str, Any]:
    """Everything ``explain`` shows, as JSON-ready data with no secret in it. Machine
    fields (``type``, ``project_source``, ``quota_project_source``, ``outcome``) hold
    machine values; timestamps have no fractional seconds."""
    from .._default import find_default
    from ..credentials import Scoped
    from ..flow import account_from_id_token
    from ._common import CLOUD_PLATFORM

    env = os.environ if environ is None else environ
    res = find_default(scopes, default_scopes=[CLOUD_PLATFORM], environ=env, keep_errors=True)
    tried = [{"source": r.name, "location": r.location, "outcome": r.outcome,
              "detail": r.detail} for r in res.tried]
    seen = {r.name for r in res.tried}
    stopped_by = "broken" if res.error is not None else "used"
    for name in SOURCES:
        if name not in seen:
            tried.append({"source": name, "location": None, "outcome": "not consulted",
                          "detail": _NOT_CONSULTED[stopped_by]})
    report: dict[str, Any] = {"ok": res.credentials is not None, "source": res.source,
                              "location": res.source_location, "sources": tried}
    credentials = res.credentials
    if res.error is not None:
        broken = next(r for r in res.tried if r.outcome == "broken")
        report.update({
            "source": broken.name, "location": broken.location, "error": str(res.error),
            "why": f"{broken.name} was found but cannot be used",
            "fix": (f"fix or replace {broken.location}, or unset {broken.name} to let ADC look "
                    "elsewhere" if broken.name == SOURCES[0]
                    else f"run `{LOGIN_COMMAND}` to write {broken.location} again, or delete "
                         "it"),
        })
        return report
    if credentials is None:
        report["why"] = "no source produced credentials"
        report["fix"] = f"run `{LOGIN_COMMAND}`, or set " \
                        "GOOGLE_APPLICATION_CREDENTIALS to a service account key"
        return report
    if scopes is not None and isinstance(credentials, Scoped) and credentials.scopes is None:
        credentials = credentials.with_scopes(scopes, [CLOUD_PLATFORM])
    info = credentials.describe()
    report.update({
        "why": _WHY.get(res.source or "", ""),
        "type": str(info["type"]),
        "account": info.get("account"),
        "project_id": res.project_id,
        "project_source": res.project_source,
        "project_location": res.project_location,
        "quota_project_id": credentials.quota_project_id,
        "quota_project_source": res.quota_project_source,
        "scopes": info.get("scopes"),
        "token_uri": info.get("token_uri"),
        "token": None,
    })
    if info.get("chain"):  # impersonation: who acts as whom, through which delegates
        report["impersonation"] = {"chain": info["chain"], "iam_endpoint":
                                   info.get("iam_endpoint"), "source": info.get("source")}
    if info.get("type") == "external_account":
        where = (info.get("subject_token_file") or info.get("subject_token_url")
                 or info.get("executable") or info.get("aws_region_url"))
        report["federation"] = {
            "audience": info.get("audience"), "pool": info.get("pool"),
            "credential_source": info.get("credential_source"), "location": where,
            "subject_token_type": info.get("subject_token_type"),
            "impersonated_service_account": info.get("account"),
            "executables_allowed": info.get("executables_allowed")}
    if fetch_token:
        try:
            token = credentials.get_token()
        except GCAuthError as exc:
            report["ok"] = False
            report["token"] = {"error": str(exc)}
            return report
        now = datetime.now(timezone.utc)
        expiry = token.expiry
        report["token"] = {
            "state": token.state(now).value,
            "expiry": _timestamp(expiry),
            "expires_in_seconds": int((expiry - now).total_seconds()) if expiry else None,
            "scopes": list(token.scopes) if token.scopes else None,
        }
        if token.scopes:
            report["scopes"] = list(token.scopes)
        if not report["account"]:
            report["account"] = account_from_id_token(token.id_token)
    return report


def _project_text(report: dict[str, Any]) -> str:
    project = report.get("project_id")
    if not project:
        return ("not set. Fix: set GOOGLE_CLOUD_PROJECT, or run `gcauth config set project "
                "PROJECT`")
    source = report.get("project_source")
    origin = _PROJECT_FROM.get(source or "", source or "unknown")
    if report.get("project_location") and source == "gcloud_config":
        origin += f" in {report['project_location']}"
    return f"{project} (from {origin})"


def render(report: dict[str, Any]) -> str:
    lines = ["Application Default Credentials"]

    def row(label: str, value: object) -> None:
        lines.append(f"  {label + ':':<16}{value}")

    if report.get("error"):
        where = f" ({report['location']})" if report.get("location") else ""
        lines.append(f"  No usable credentials: {report['source']}{where} was found but "
                     "cannot be used (BROKEN below).")
        lines.append(f"  Fix: {report.get('fix')}")
    elif report.get("source"):
        where = f" ({report['location']})" if report.get("location") else ""
        row("source", f"{report['source']}{where}")
        row("why", report.get("why") or "-")
        kind = report.get("type")
        row("type", f"{kind} ({_KIND_TEXT[kind]})" if kind in _KIND_TEXT else kind or "-")
        row("account", report.get("account") or "unknown")
        row("project", _project_text(report))
        quota = report.get("quota_project_id")
        quota_source = report.get("quota_project_source") or ""
        row("quota project", f"{quota} (from {_QUOTA_FROM.get(quota_source, quota_source)})"
            if quota else "none (quota is billed to the API's project)")
        scopes = report.get("scopes")
        row("scopes", " ".join(scopes) if scopes else "all granted at login")
        if report.get("token_uri"):
            row("token endpoint", report["token_uri"])
        federation = report.get("federation")
        if federation:
            row("audience", federation["audience"])
            kind = federation["credential_source"]
            where = f" ({federation['location']})" if federation.get("location") else ""
            row("subject token", f"{_SOURCE_TEXT.get(kind, kind)}{where}, "
                                 f"{federation['subject_token_type']}")
            if federation.get("executables_allowed") is False:
                row("executables", "refused: set GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1 "
                                   "to let this file run its command")
            row("impersonation", federation.get("impersonated_service_account")
                or "none (the STS token is used directly)")
        if report.get("impersonation"):
            row("impersonation", " -> ".join(report["impersonation"]["chain"]))
            row("IAM endpoint", report["impersonation"]["iam_endpoint"])
        token = report.get("token")
        if token is None:
            row("token", "not fetched (--no-token)")
        elif "error" in token:
            row("token", f"could not be fetched: {token['error']}")
        elif token.get("expiry"):
            row("token", f"{token['state']}, expires {token['expiry']} (in "
                         f"{token['expires_in_seconds']} s); the token itself is never shown")
        else:
            row("token", f"{token['state']}, no expiry; the token itself is never shown")
    else:
        lines.append("  No credentials found.")
        lines.append(f"  Fix: {report.get('fix')}")
    lines.append("Sources, in ADC order:")
    for number, source in enumerate(report["sources"], 1):
        where = f" ({source['location']})" if source.get("location") else ""
        outcome = "BROKEN" if source["outcome"] == "broken" else source["outcome"]
        lines.append(f"  {number}. {source['source']}{where}: {outcome}, {source['detail']}")
    return "\n".join(lines)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from ._common import expand_scopes, parse_scopes, terminal_safe

    out = out or sys.stdout
    as_json = args.format == "json"
    scopes = (expand_scopes(parse_scopes(args.scopes, ())) if args.scopes is not None
              else None)
    try:
        report = build_report(scopes, not args.no_token)
    except GCAuthError as exc:
        if not as_json:
            raise
        report = {"ok": False, "error": str(exc)}
    if as_json:
        out.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    else:  # the report quotes files and servers (account, error_description...)
        out.write(terminal_safe(render(report), multiline=True) + "\n")
    if not report["ok"]:
        if not as_json:
            token = report.get("token") or {}
            reason = report.get("error") or (
                token.get("error") if isinstance(token, dict) else None)
            reason = terminal_safe(reason or "no Application Default Credentials found")
            print(f"gcauth: error: {reason}", file=sys.stderr)
        return 1
    return 0
