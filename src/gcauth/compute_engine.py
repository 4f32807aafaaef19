"""Compute Engine credentials: tokens from the metadata server of the VM (or GKE, Cloud Run...).

::

    from gcauth import compute_engine
    credentials = compute_engine.Credentials()

Every request carries ``Metadata-Flavor: Google`` and every reply must carry it back. The server
address comes from ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP`` at call time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from ._http import Flow, run_sync
from ._protocol import metadata as _md
from ._retry import RetryPolicy
from .credentials import Scoped, _scope_tuple
from .tokens import Clock, Token

if TYPE_CHECKING:
    from .transport import Request

__all__ = ["Credentials", "get_project_id", "is_on_gce"]


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
        self._timeout = timeout
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
        from .transport import resolve_request

        info = run_sync(_md.info_flow(self._account, timeout=self._timeout),
                        resolve_request(request).send)
        email = info.get("email")
        if isinstance(email, str):
            self._email = email
        scopes = info.get("scopes")
        if isinstance(scopes, list):
            self._vm_scopes = tuple(str(s) for s in scopes)

    def token_flow(self, now: datetime) -> Flow[Token]:
        return _md.token_flow(self._account, self.effective_scopes(), now,
                              timeout=self._timeout, retry=self._retry)

    def _describe(self) -> str:
        return f"account={self.service_account_email!r} scopes={self.effective_scopes()!r}"


def is_on_gce(request: Request | None = None, timeout: float | None = None) -> bool:
    """Whether a metadata server answers (honours ``NO_GCE_CHECK``, ``GCE_METADATA_*``).

    Local evidence first: on Linux a non-Google DMI product name answers "no" without any
    network traffic. The probe itself is bounded by ``timeout`` (default 0.5 s, or 3 s on a
    machine that says it is a Google VM; ``GCE_METADATA_TIMEOUT`` overrides).
    """
    from .transport import resolve_request

    if _md.check_disabled():
        return False
    residency = _md.Residency.UNKNOWN
    if not _md.overridden():
        residency, _ = _md.detect_residency()
        if residency == _md.Residency.OFF:
            return False
    default = _md.ON_GCE_PROBE_TIMEOUT if residency == _md.Residency.ON else _md.PROBE_TIMEOUT
    wait = timeout if timeout is not None else _md.probe_timeout(default)
    attempts = 3 if residency == _md.Residency.ON else 1
    return run_sync(_md.ping_flow(wait, attempts=attempts), resolve_request(request).send)


def get_project_id(request: Request | None = None, timeout: float = 3.0) -> str:
    """The project id of the VM, from the metadata server."""
    from .transport import resolve_request

    return run_sync(_md.project_id_flow(timeout=timeout), resolve_request(request).send)
