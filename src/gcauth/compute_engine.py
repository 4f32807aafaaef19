"""Compute Engine credentials: tokens from the metadata server of the VM (or GKE, Cloud Run...).

::

    from gcauth import compute_engine
    credentials = compute_engine.Credentials()

Every request carries ``Metadata-Flavor: Google`` and every reply must carry it back. The server
address comes from ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP`` at call time.

Whether a metadata server is there is decided in one place, :func:`detect_metadata_server`:
both :func:`is_on_gce` and Application Default Credentials ask it, and ``gcauth explain``
shows its report.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._http import Flow, checked_timeout, run_sync
from ._protocol import metadata as _md
from ._retry import RetryPolicy
from ._sender import resolve_request
from ._value import Value
from .credentials import Scoped, _scope_tuple
from .tokens import Clock, Token

if TYPE_CHECKING:
    from ._http import Request

__all__ = [
    "Credentials",
    "MetadataDetection",
    "detect_metadata_server",
    "get_project_id",
    "is_on_gce",
]

DMI_PRODUCT_NAME = "/sys/class/dmi/id/product_name"
#: Serverless platforms that have a metadata server but no DMI.
_SERVERLESS_VARS = ("K_SERVICE", "FUNCTION_TARGET", "GAE_APPLICATION", "CLOUD_RUN_JOB")

Environ = Mapping[str, str]


# -- where the server is (the environment, read at call time) ---------------------------
def metadata_host(environ: Environ | None = None) -> str:
    """``host[:port]`` of the metadata server for data and token requests."""
    env = os.environ if environ is None else environ
    return env.get("GCE_METADATA_HOST") or env.get("GCE_METADATA_IP") or _md.DEFAULT_IP


def ping_host(environ: Environ | None = None) -> str:
    """``host[:port]`` the detection probe is sent to (``GCE_METADATA_IP`` first)."""
    env = os.environ if environ is None else environ
    return env.get("GCE_METADATA_IP") or env.get("GCE_METADATA_HOST") or _md.DEFAULT_IP


def _overridden(env: Environ) -> bool:
    return bool(env.get("GCE_METADATA_HOST") or env.get("GCE_METADATA_IP"))


def _check_disabled(env: Environ) -> bool:
    """``NO_GCE_CHECK`` set to a true value: never probe the metadata server."""
    return env.get("NO_GCE_CHECK", "").strip().lower() in ("1", "true", "yes", "on")


def _probe_timeout(default: float, env: Environ) -> float:
    raw = env.get("GCE_METADATA_TIMEOUT")
    if raw:
        try:
            value = float(raw)
        except ValueError:
            return default
        if value == value:  # not NaN
            return min(max(0.01, value), 60.0)
    return default


def detect_residency(environ: Environ | None = None, dmi_path: str = DMI_PRODUCT_NAME,
                     platform: str | None = None) -> tuple[str, str]:
    """Local evidence alone (no network): ``(residency, why)``, residency one of
    :class:`gcauth._protocol.metadata.Residency`'s values."""
    env = os.environ if environ is None else environ
    for name in _SERVERLESS_VARS:
        if env.get(name):
            return _md.Residency.ON, f"{name} is set (Google serverless runtime)"
    if (platform or sys.platform).startswith("linux"):
        try:
            with open(dmi_path, encoding="utf-8", errors="replace") as handle:
                product = handle.read(256)
        except OSError:
            return _md.Residency.UNKNOWN, f"{dmi_path} is not readable"
        return _md.residency_from_product_name(product)
    return _md.Residency.UNKNOWN, "no local evidence on this platform"


class MetadataDetection(Value):
    """What :func:`detect_metadata_server` decided and why.

    ``outcome`` is ``"found"``, ``"not found"`` (probed, nothing answered) or ``"skipped"``
    (not probed: ``NO_GCE_CHECK``, or local evidence says this is no Google VM); ``location``
    is the address data requests go to (or the probed one, when nothing answered).
    """

    __slots__ = ("available", "outcome", "location", "detail")
    available: bool
    outcome: str
    location: str
    detail: str

    def __init__(self, available: bool, outcome: str, location: str, detail: str):
        self._init(available=available, outcome=outcome, location=location, detail=detail)


def detect_metadata_server(
    request: object | None = None,
    timeout: float | None = None,
    *,
    environ: Environ | None = None,
    dmi_path: str = DMI_PRODUCT_NAME,
    platform: str | None = None,
) -> MetadataDetection:
    """Decide whether a metadata server is there: the one decision tree for ADC and
    :func:`is_on_gce`.

    Disabled (``NO_GCE_CHECK``) → skipped. An overridden address (``GCE_METADATA_HOST``/
    ``GCE_METADATA_IP``) is probed whatever the machine says. Otherwise local evidence first:
    a non-Google DMI product name means no probe at all. The probe is bounded by ``timeout``
    (default 0.5 s, or 3 s with three attempts on a machine that says it is a Google VM;
    ``GCE_METADATA_TIMEOUT`` overrides).
    """
    env = os.environ if environ is None else environ
    if timeout is not None:
        timeout = checked_timeout(timeout)
    where = metadata_host(env)
    if _check_disabled(env):
        return MetadataDetection(False, "skipped", where, "NO_GCE_CHECK is set")
    residency, why = _md.Residency.UNKNOWN, "GCE_METADATA_HOST/GCE_METADATA_IP is set"
    if not _overridden(env):
        residency, why = detect_residency(env, dmi_path, platform)
        if residency == _md.Residency.OFF:
            return MetadataDetection(False, "skipped", where, f"not probed: {why}")
    on = residency == _md.Residency.ON
    wait = timeout if timeout is not None else _probe_timeout(
        _md.ON_GCE_PROBE_TIMEOUT if on else _md.PROBE_TIMEOUT, env)
    attempts = _md.ON_GCE_PROBE_ATTEMPTS if on else 1
    probe = ping_host(env)
    found = run_sync(_md.ping_flow(probe, wait, attempts), resolve_request(request).send)
    if not found:
        return MetadataDetection(False, "not found", probe,
                                 f"no metadata server answered within {wait:g} s ({why})")
    return MetadataDetection(True, "found", where, why)


def is_on_gce(request: Request | None = None, timeout: float | None = None) -> bool:
    """Whether a metadata server answers (honours ``NO_GCE_CHECK``, ``GCE_METADATA_*``).

    See :func:`detect_metadata_server`, which also says why.
    """
    return detect_metadata_server(request, timeout).available


class Credentials(Scoped):
    """The VM's attached service account (``"default"``, or an email)."""

    def __init__(
        self,
        service_account_email: str = "default",
        quota_project_id: str | None = None,
        scopes: Sequence[str] | None = None,
        default_scopes: Sequence[str] | None = None,
        *,
        timeout: float = 3.0,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
    ):
        super().__init__(quota_project_id=quota_project_id, clock=clock)
        self._account = service_account_email
        self._scopes = _scope_tuple(scopes)
        self._default_scopes = _scope_tuple(default_scopes)
        self._timeout = checked_timeout(timeout)
        self._retry = retry
        self._email: str | None = None if service_account_email == "default" else \
            service_account_email
        self._vm_scopes: tuple[str, ...] | None = None

    @property
    def service_account_email(self) -> str:
        """The account's email once known (after :meth:`retrieve_info`), else the alias."""
        return self._email or self._account

    @property
    def vm_scopes(self) -> tuple[str, ...] | None:
        """The access scopes the VM grants this account (after :meth:`retrieve_info`)."""
        return self._vm_scopes

    @property
    def requires_scopes(self) -> bool:
        return False

    def retrieve_info(self, request: Request | None = None) -> None:
        """Ask the metadata server for the account's email and scopes."""
        info = run_sync(_md.info_flow(metadata_host(), self._account, timeout=self._timeout),
                        resolve_request(request).send)
        email = info.get("email")
        if isinstance(email, str):
            self._email = email
        scopes = info.get("scopes")
        if isinstance(scopes, list):
            self._vm_scopes = tuple(str(s) for s in scopes)

    def token_flow(self, now: datetime) -> Flow[Token]:
        reply = yield from _md.token_flow(metadata_host(), self._account,
                                          self.effective_scopes(), timeout=self._timeout,
                                          retry=self._retry)
        assert reply.access_token is not None
        return Token(reply.access_token, expiry=reply.expiry(now), scopes=reply.scope,
                     issued_at=now)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(type="compute_engine", account=self.service_account_email)
        return info

    def _describe(self) -> str:
        return f"account={self.service_account_email!r} scopes={self.effective_scopes()!r}"


def get_project_id(request: Request | None = None, timeout: float = 3.0) -> str:
    """The project id of the VM, from the metadata server."""
    return run_sync(_md.project_id_flow(metadata_host(), timeout=timeout),
                    resolve_request(request).send)
