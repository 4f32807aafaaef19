"""The emulator's settings (``Emulator.config``), read on every request."""

from __future__ import annotations

from dataclasses import dataclass

from ._state import CLOUD_PLATFORM, USERINFO_EMAIL

__all__ = ["Config"]


@dataclass
class Config:
    """Mutable emulator settings.  Change them at any time through ``emu.config``.

    The server limits (``max_body`` and the ``*_timeout`` values, in bytes and seconds)
    bound what one connection may cost: a request body larger than ``max_body`` is
    refused with 413; a request head that has not fully arrived ``header_timeout``
    seconds after its first byte (or after the connection was accepted), or a body not
    received within ``body_timeout``, is answered with 408 and the connection closed; an
    idle keep-alive connection is closed after ``idle_timeout``; a reply that cannot be
    written within ``write_timeout`` drops the connection.  At most ``max_connections``
    connections are served at once; more wait in the listen queue.
    """

    url: str = ""
    port: int = 0
    metadata_project_id: str = "emu-project"
    metadata_numeric_project_id: str = "123456789012"
    metadata_service_account_email: str = "123456789012-compute@developer.gserviceaccount.com"
    metadata_scopes: tuple[str, ...] = (CLOUD_PLATFORM, USERINFO_EMAIL)
    device_interval: float = 5
    device_expires_in: float = 1800
    token_lifetime: float = 3599.0
    accounts: tuple[str, ...] = ("alice@example.com", "bob@example.com")
    control: bool = False
    verbose: bool = False
    max_body: int = 1 << 20
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    idle_timeout: float = 60.0
    write_timeout: float = 10.0
    max_connections: int = 1000
    #: ``Cache-Control: max-age`` of the certificate documents (``/oauth2/v1/certs``...)
    certs_max_age: int = 3600
    #: the AWS "instance" the IMDS stand-in describes: its region (availability zone
    #: ``{aws_region}a``), account and instance role
    aws_region: str = "us-east-1"
    aws_account_id: str = "111122223333"
    aws_role: str = "emu-instance-role"

    @property
    def token_uri(self) -> str:
        """The emulator's token endpoint."""
        return self.url + "/token"
