"""The public :class:`Emulator` object: lifecycle, addresses, factories and inspection."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import shutil
import socket
import tempfile
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar, overload
from urllib.parse import quote, urlencode

from .._endpoints import DEFAULT_UNIVERSE_DOMAIN
from .._files import write_private_text
from . import _cel
from ._apis import aws as _aws
from ._apis import oidc as _oidc
from ._clock import Clock
from ._config import Config
from ._faults import FaultInjector
from ._routing import App
from ._server import Server
from ._state import (
    AWS4_TOKEN_TYPE,
    CLIENT_KINDS,
    CLOUD_PLATFORM,
    DEFAULT_APPLICATION_NAME,
    IAM_HOST,
    JWT_TOKEN_TYPE,
    USERINFO_EMAIL,
    AccessToken,
    AwsCredentials,
    IdentityPool,
    RefreshToken,
    State,
    normalize_scopes,
)
from ._table import ROUTER

__all__ = ["Emulator"]

T = TypeVar("T")


class _ConfigField(Generic[T]):
    """An ``Emulator`` attribute that reads and writes ``emulator.config.<name>`` (the
    settings that were properties before ``Emulator.config`` existed)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _ConfigField[T]: ...
    @overload
    def __get__(self, obj: Emulator, owner: type) -> T: ...
    def __get__(self, obj: Emulator | None, owner: type) -> T | _ConfigField[T]:
        if obj is None:
            return self
        value: T = getattr(obj.config, self.name)
        return value

    def __set__(self, obj: Emulator, value: T) -> None:
        if self.name == "metadata_scopes":
            value = tuple(value)  # type: ignore[arg-type,assignment]
        setattr(obj.config, self.name, value)


def _check_loopback(host: str) -> int:
    """Return the address family for ``host``; refuse anything but loopback."""
    if host == "localhost":
        return socket.AF_INET
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError as exc:
        raise ValueError(f"emulator host must be a loopback IP address, got {host!r}") from exc
    if not addr.is_loopback:
        raise ValueError(f"emulator refuses to bind non-loopback address {host!r}")
    return socket.AF_INET6 if addr.version == 6 else socket.AF_INET


class Emulator:
    """A local, offline stand-in for Google's OAuth 2.0 server, the GCE metadata
    server and a sample API (Cloud SQL Admin ``instances.list``), on one loopback port.

    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = False,
        control: bool = False,
        metadata_project_id: str = "emu-project",
        metadata_numeric_project_id: str = "123456789012",
        metadata_service_account_email: str | None = None,
        metadata_scopes: tuple[str, ...] = (CLOUD_PLATFORM, USERINFO_EMAIL),
        device_interval: float = 5,
        device_expires_in: float = 1800,
        token_lifetime: float = 3599,
        accounts: tuple[str, ...] = ("alice@example.com", "bob@example.com"),
    ) -> None:
        self._family = _check_loopback(host)
        self.host = "127.0.0.1" if host == "localhost" else host.strip("[]")
        self._requested_port = port
        email = metadata_service_account_email or (
            f"{metadata_numeric_project_id}-compute@developer.gserviceaccount.com"
        )
        #: The settings, read on every request; change them at any time.
        self.config = Config(
            metadata_project_id=metadata_project_id,
            metadata_numeric_project_id=metadata_numeric_project_id,
            metadata_service_account_email=email,
            metadata_scopes=tuple(metadata_scopes),
            device_interval=device_interval,
            device_expires_in=device_expires_in,
            token_lifetime=float(token_lifetime),
            accounts=tuple(accounts),
            control=control,
            verbose=verbose,
        )
        self.clock = Clock()
        self.faults = FaultInjector(ROUTER.fault_groups)
        self._state = State(self.config, self.clock)
        self._stopping = threading.Event()
        self._app = App(ROUTER, self._state, self.config, self.faults, self._stopping)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._token_dir: Path | None = None
        self._pool_serial = 0
        self.port = 0

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<Emulator {where}>"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Emulator:
        """Bind and serve in a daemon thread.  Returns self."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._stopping.clear()
        server = Server((self.host, self._requested_port), self._family, self._app, self.config,
                        self._stopping)
        self._server = server
        self.port = int(server.server_address[1])
        self.config.url, self.config.port = self.url, self.port
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1},
            name="gcauth-emulator", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        if self._token_dir is not None:
            shutil.rmtree(self._token_dir, ignore_errors=True)
            self._token_dir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses
    @property
    def metadata_host(self) -> str:
        """``host:port`` for ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP``."""
        host = f"[{self.host}]" if self._family == socket.AF_INET6 else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.metadata_host}"

    @property
    def token_uri(self) -> str:
        """OAuth token endpoint."""
        return self.url + "/token"

    @property
    def auth_uri(self) -> str:
        """Browser authorization (consent) endpoint."""
        return self.url + "/o/oauth2/auth"

    @property
    def revoke_uri(self) -> str:
        """Token revocation endpoint."""
        return self.url + "/revoke"

    @property
    def device_authorization_uri(self) -> str:
        """RFC 8628 device authorization endpoint."""
        return self.url + "/device/code"

    @property
    def device_verification_url(self) -> str:
        """The page where a user enters a device ``user_code``."""
        return self.url + "/device"

    @property
    def tokeninfo_uri(self) -> str:
        """Token introspection endpoint."""
        return self.url + "/tokeninfo"

    @property
    def certs_uri(self) -> str:
        """JWKS of the key that signs the emulator's ID tokens."""
        return self.url + "/oauth2/v3/certs"

    @property
    def pem_certs_uri(self) -> str:
        """``{kid: PEM certificate}`` of the key that signs the emulator's ID tokens."""
        return self.url + "/oauth2/v1/certs"

    @property
    def iam_endpoint(self) -> str:
        """Base URL of the IAM Credentials API (``iam_endpoint_override=``)."""
        return self.url

    @property
    def api_url(self) -> str:
        """Base URL of the sample API (``{api_url}/sql/v1beta4/projects/P/instances``)."""
        return self.url

    @property
    def sts_token_url(self) -> str:
        """The STS token-exchange endpoint (``token_url`` of external-account files)."""
        return self.url + "/v1/token"

    @property
    def oidc_issuer(self) -> str:
        """The ``iss`` of the emulator's own OIDC identity provider
        (``{issuer}/.well-known/openid-configuration``, JWKS at ``{issuer}/jwks``)."""
        return _oidc.issuer(self.url)

    def env(self) -> dict[str, str]:
        """Environment variables that point a process's metadata lookups here."""
        return {"GCE_METADATA_HOST": self.metadata_host, "GCE_METADATA_IP": self.metadata_host}

    # ------------------------------------------------------------------ settings
    # Shortcuts for ``emu.config.<name>`` (readable and settable at any time).
    verbose: _ConfigField[bool] = _ConfigField()
    metadata_project_id: _ConfigField[str] = _ConfigField()
    metadata_numeric_project_id: _ConfigField[str] = _ConfigField()
    metadata_service_account_email: _ConfigField[str] = _ConfigField()
    metadata_scopes: _ConfigField[tuple[str, ...]] = _ConfigField()
    device_interval: _ConfigField[float] = _ConfigField()
    device_expires_in: _ConfigField[float] = _ConfigField()

    def set_token_lifetime(self, seconds: float) -> None:
        """Lifetime of access tokens (``expires_in``) and ID tokens issued from now on."""
        if seconds < 0:
            raise ValueError("lifetime must be >= 0")
        with self._state.lock:
            self.config.token_lifetime = float(seconds)

    def set_clock_skew(self, seconds: float) -> None:
        """Shift the server clock (JWT iat/exp checks, issued expiries) by ``seconds``."""
        with self._state.lock:
            self.clock.skew = float(seconds)

    # ------------------------------------------------------------------ factories
    def create_service_account(
        self,
        project_id: str = "emu-project",
        domain_wide_delegation: bool = False,
        name: str | None = None,
        *,
        with_key: bool = True,
    ) -> dict[str, str]:
        """Create a service account (or a new key for an existing ``name``) and return a
        dict shaped exactly like a Google service-account JSON key file.

        ``with_key=False`` creates a keyless account (as organisations with
        ``iam.disableServiceAccountKeyCreation`` have them): the same dict without
        ``private_key`` and ``private_key_id``; such an account is reached through
        impersonation (:meth:`grant_token_creator`)."""
        sa, key = self._state.new_service_account(project_id, name, domain_wide_delegation,
                                                  with_key)
        info = {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": key.kid if key is not None else "",
            "private_key": key.private_pem() if key is not None else "",
            "client_email": sa.email,
            "client_id": sa.unique_id,
            "auth_uri": self.auth_uri,
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": self.url + "/oauth2/v1/certs",
            "client_x509_cert_url": self.url + "/robot/v1/metadata/x509/" + quote(sa.email),
            "universe_domain": DEFAULT_UNIVERSE_DOMAIN,
        }
        if key is None:
            del info["private_key_id"], info["private_key"]
        return info

    def grant_token_creator(self, member: str, service_account_email: str) -> None:
        """Give ``member`` (``user:alice@example.com``, ``serviceAccount:EMAIL``, or a
        federated ``principal://iam.googleapis.com/.../subject/SUB`` or
        ``principalSet://iam.googleapis.com/.../POOL/*``) the
        Service Account Token Creator role on ``service_account_email``: it may then call
        the IAM Credentials API (generateAccessToken, generateIdToken, signBlob, signJwt) as
        that account, or use it as a delegate on the way to another. ``KeyError`` for an
        account the emulator does not know (the metadata server's instance account is
        known)."""
        federated = member.startswith(("principal://", "principalSet://"))
        if not federated and (not member.startswith(("user:", "serviceAccount:"))
                              or "@" not in member):
            raise ValueError("member must be 'user:EMAIL', 'serviceAccount:EMAIL' or a "
                             "federated 'principal://...' / 'principalSet://...'")
        sa = self._state.account(service_account_email)
        if sa is None:
            raise KeyError(f"unknown service account {service_account_email!r}")
        with self._state.lock:
            self._state.token_creators.add((member, sa.email))

    def revoke_token_creator(self, member: str, service_account_email: str) -> None:
        """Take back :meth:`grant_token_creator` (nothing happens if it was not granted)."""
        with self._state.lock:
            self._state.token_creators.discard((member, service_account_email))

    def create_oauth_client(
        self,
        kind: str = "installed",
        *,
        redirect_uris: list[str] | None = None,
        project_id: str = "emu-project",
        name: str | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Register an OAuth client and return its ``client_secrets.json`` content, shaped
        like the JSON the Cloud console downloads for that client type.

        ``kind`` is one of the console's client types:

        * ``"installed"`` -- *Desktop app*: loopback redirects on any port (RFC 8252), plus
          ``redirect_uris``; the device flow is refused, as at Google;
        * ``"web"`` -- *Web application*: only the registered ``redirect_uris``, exactly
          (anything else is ``redirect_uri_mismatch``, loopback included);
        * ``"limited-input"`` -- *TVs and Limited Input devices*: the client the device flow
          (RFC 8628) needs. Its file has an ``installed`` section without ``redirect_uris``,
          like Google's.

        ``name`` is the application name the consent page shows (default
        ``"Emulator test app"``).
        """
        if kind not in CLIENT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, CLIENT_KINDS))}")
        if redirect_uris is None:
            redirect_uris = {"installed": ["http://localhost"],
                             "web": ["http://localhost:8080/oauth2callback"]}.get(kind, [])
        client = self._state.new_client(kind, project_id, tuple(redirect_uris),
                                        name or DEFAULT_APPLICATION_NAME)
        section: dict[str, Any] = {
            "client_id": client.client_id,
            "project_id": project_id,
            "auth_uri": self.auth_uri,
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": self.url + "/oauth2/v1/certs",
            "client_secret": client.client_secret,
        }
        if kind != "limited-input":
            section["redirect_uris"] = list(redirect_uris)
        return {"web" if kind == "web" else "installed": section}

    def create_refresh_token(
        self, client_id: str, account: str = "alice@example.com",
        scopes: tuple[str, ...] = (CLOUD_PLATFORM, "openid", USERINFO_EMAIL),
    ) -> str:
        """Record a user grant for an existing client and return its refresh token."""
        if client_id not in self._state.clients:
            raise KeyError("unknown client_id")
        return self._state.new_refresh_token(client_id, account,
                                             tuple(normalize_scopes(list(scopes))))

    def create_authorized_user(
        self,
        account: str = "alice@example.com",
        scopes: tuple[str, ...] = (CLOUD_PLATFORM, "openid", USERINFO_EMAIL),
        quota_project_id: str | None = None,
    ) -> dict[str, str]:
        """Create an OAuth client plus a refresh token for ``account`` and return the
        content of an ADC ``authorized_user`` file.

        The dict also carries ``token_uri`` (the emulator's), which Google's file omits:
        gcauth honours it and sends the refresh token to the emulator. google-auth does
        not: its ``from_authorized_user_info`` always uses Google's token URL, so hand
        Google's libraries ``gcauth.compat.google_auth.to_google_auth(credentials)`` for
        credentials gcauth loaded from this dict, never google-auth's own loader.
        """
        secrets_ = self.create_oauth_client("installed")["installed"]
        refresh = self.create_refresh_token(secrets_["client_id"], account, scopes)
        info = {
            "type": "authorized_user",
            "client_id": secrets_["client_id"],
            "client_secret": secrets_["client_secret"],
            "refresh_token": refresh,
            "token_uri": self.token_uri,
        }
        if quota_project_id is not None:
            info["quota_project_id"] = quota_project_id
        return info

    # ------------------------------------------------------------------ federation
    def create_workload_identity_pool(
        self,
        kind: str = "oidc",
        *,
        workforce: bool = False,
        pool_id: str | None = None,
        provider_id: str | None = None,
        project_number: str | None = None,
        project_id: str | None = None,
        credential_source: Mapping[str, Any] | str | None = None,
        service_account: str | None = None,
        token_lifetime_seconds: int | None = None,
        workforce_pool_user_project: str | None = None,
        attribute_condition: str | None = None,
        attribute_mapping: Mapping[str, str] | None = None,
        allowed_audiences: Sequence[str] | None = None,
        issuer: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        aws_account_id: str | None = None,
        aws_region: str | None = None,
        subject: str = _oidc.DEFAULT_SUBJECT,
    ) -> dict[str, Any]:
        """Create a workload identity pool (or, with ``workforce=True`` or a
        ``workforce_pool_user_project``, a workforce pool) with one provider, and return
        an ``external_account`` credential configuration for it, shaped like the file
        ``gcloud iam workload-identity-pools create-cred-config`` writes: ``type``,
        ``audience`` (the provider's full resource name), ``subject_token_type``,
        ``token_url`` (the emulator's STS), ``credential_source``, ``universe_domain``;
        ``service_account_impersonation_url`` (the emulator's IAM Credentials API) with
        ``service_account=``; ``workforce_pool_user_project`` for workforce pools.

        ``kind="oidc"`` trusts the emulator's own OIDC issuer (:attr:`oidc_issuer`,
        tokens from :meth:`issue_oidc_token`), or ``issuer=`` with its keys given as
        ``jwks=`` (a JWK Set, as Google's "upload JWKS" option: nothing is fetched).
        ``credential_source`` is used as given when it is a dict (``file``, ``url`` or
        ``executable``); the strings ``"file"`` (the default: a text file the emulator
        owns, holding a fresh token for ``subject`` and removed at :meth:`stop`),
        ``"file-json"`` (``{"id_token": JWT}``), ``"url"`` (``{"value": JWT}`` from the
        emulator's ``/oidc/token``) and ``"url-text"`` pick a source served by the
        emulator. Tokens in the emulator's files expire: :meth:`write_subject_token`
        writes a fresh one.

        ``kind="aws"`` trusts AWS account ``aws_account_id`` (default
        ``config.aws_account_id``) in region ``aws_region`` (default ``config.aws_region``);
        the ``credential_source`` points at the emulator's IMDSv2 stand-in
        (``region_url``, ``url``, ``imdsv2_session_token_url``) and holds
        ``regional_cred_verification_url``
        ``https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15``:
        a template the client fills in and *signs*; nothing ever fetches it (the
        emulator's STS verifies the signed request itself).

        ``service_account`` (an account the emulator knows) gives the pool's principals
        the Workload Identity User role on it (``principalSet://.../POOL/*``), so
        ``generateAccessToken`` works with the federated token. ``attribute_condition``
        is a CEL expression in the subset of :mod:`gcauth.emulator._cel` (refused here,
        with ``ValueError``, when outside it); ``attribute_mapping`` defaults to
        ``{"google.subject": "assertion.sub"}`` (OIDC) or
        ``{"google.subject": "assertion.arn"}`` (AWS). ``allowed_audiences`` default to
        the provider's name in its ``//iam.googleapis.com/...`` and
        ``https://iam.googleapis.com/...`` forms, as at Google.

        The project number (default ``config.metadata_numeric_project_id``) and a
        workforce pool's user project (default the same) are known to the Resource
        Manager stand-in; an unknown number is registered with ``project_id`` (default
        ``emu-project-<number>``).
        """
        if kind not in ("oidc", "aws"):
            raise ValueError('kind must be "oidc" or "aws" (the emulator has no SAML '
                             "providers)")
        workforce = workforce or workforce_pool_user_project is not None
        if workforce and kind != "oidc":
            raise ValueError("workforce pools federate OIDC (or SAML) identity providers, "
                             "not AWS")
        with self._state.lock:
            self._pool_serial += 1
            serial = self._pool_serial
        pool_id = pool_id or f"emu-pool-{serial}"
        provider_id = provider_id or f"emu-{kind}-{serial}"
        for what, value in (("pool_id", pool_id), ("provider_id", provider_id)):
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]{2,62}", value):
                raise ValueError(f"{what} must be 3-63 lower-case letters, digits and "
                                 f"hyphens, got {value!r}")
        number: str | None = None
        if workforce:
            name = (f"//{IAM_HOST}/locations/global/workforcePools/{pool_id}/providers/"
                    f"{provider_id}")
            if workforce_pool_user_project is None:
                workforce_pool_user_project = self.config.metadata_numeric_project_id
            self._register_project(workforce_pool_user_project, project_id)
        else:
            number = project_number or self.config.metadata_numeric_project_id
            if not number.isdigit():
                raise ValueError(f"project_number must be digits, got {number!r}")
            self._register_project(number, project_id)
            name = (f"//{IAM_HOST}/projects/{number}/locations/global/workloadIdentityPools/"
                    f"{pool_id}/providers/{provider_id}")
        if attribute_mapping is None:
            attribute_mapping = {"google.subject": "assertion.arn" if kind == "aws"
                                 else "assertion.sub"}
        if "google.subject" not in attribute_mapping:
            raise ValueError("attribute_mapping must map google.subject")
        try:
            mapping = {target: _cel.parse(expr) for target, expr in attribute_mapping.items()}
            condition = (None if attribute_condition is None
                         else _cel.parse(attribute_condition))
        except _cel.CelError as exc:
            raise ValueError(f"attribute condition/mapping: {exc}") from None
        keys: tuple[dict[str, Any], ...] = ()
        if jwks is not None:
            if issuer is None or not isinstance(jwks.get("keys"), list):
                raise ValueError('jwks= needs issuer= and a JWK Set ({"keys": [...]})')
            keys = tuple(dict(k) for k in jwks["keys"])
        sa_email: str | None = None
        if service_account is not None:
            sa = self._state.account(service_account)
            if sa is None:
                raise KeyError(f"unknown service account {service_account!r}")
            sa_email = sa.email
        pool = IdentityPool(
            name=name, kind=kind, pool_id=pool_id, provider_id=provider_id,
            project_number=number,
            allowed_audiences=tuple(allowed_audiences or ()),
            attribute_condition=attribute_condition, condition=condition,
            attribute_mapping=dict(attribute_mapping), mapping=mapping,
            issuer=(issuer or self.oidc_issuer) if kind == "oidc" else None, jwks=keys,
            aws_account_id=(aws_account_id or self.config.aws_account_id)
            if kind == "aws" else None,
            aws_region=(aws_region or self.config.aws_region) if kind == "aws" else None,
            workforce_pool_user_project=workforce_pool_user_project,
            service_account=sa_email)
        with self._state.lock:
            if name in self._state.pools:
                raise ValueError(f"the provider {name} exists already")
            self._state.pools[name] = pool
            if sa_email is not None:
                self._state.token_creators.add((pool.principal_set, sa_email))
        config: dict[str, Any] = {
            "universe_domain": DEFAULT_UNIVERSE_DOMAIN,
            "type": "external_account",
            "audience": name,
            "subject_token_type": AWS4_TOKEN_TYPE if kind == "aws" else JWT_TOKEN_TYPE,
            "token_url": self.sts_token_url,
        }
        if kind == "aws":
            config["credential_source"] = {
                "environment_id": "aws1",
                "region_url": self.url + "/latest/meta-data/placement/availability-zone",
                "url": self.url + "/latest/meta-data/iam/security-credentials",
                "regional_cred_verification_url":
                    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity"
                    "&Version=2011-06-15",
                "imdsv2_session_token_url": self.url + "/latest/api/token",
            }
        else:
            config["credential_source"] = self._oidc_source(pool, credential_source, subject)
        if sa_email is not None:
            config["service_account_impersonation_url"] = (
                f"{self.iam_endpoint}/v1/projects/-/serviceAccounts/{quote(sa_email)}"
                ":generateAccessToken")
            if token_lifetime_seconds is not None:
                config["service_account_impersonation"] = {
                    "token_lifetime_seconds": int(token_lifetime_seconds)}
        if workforce:
            config["workforce_pool_user_project"] = workforce_pool_user_project
        if isinstance(config["credential_source"], dict) and \
                "file" in config["credential_source"] and credential_source in (None, "file",
                                                                              "file-json"):
            self.write_subject_token(config, subject=subject)
        return config

    def _register_project(self, number: str, project_id: str | None) -> None:
        if self._state.project_id_for(number) is None:
            with self._state.lock:
                self._state.projects[number] = project_id or f"emu-project-{number}"

    def _oidc_source(self, pool: IdentityPool, source: Mapping[str, Any] | str | None,
                     subject: str) -> dict[str, Any]:
        if isinstance(source, Mapping):
            return dict(source)
        audience = "https:" + pool.name
        if source in (None, "file", "file-json"):
            if self._token_dir is None:
                self._token_dir = Path(tempfile.mkdtemp(prefix="gcauth-emulator-"))
            suffix = "json" if source == "file-json" else "txt"
            path = str(self._token_dir / f"{pool.pool_id}-{pool.provider_id}.{suffix}")
            if source == "file-json":
                return {"file": path, "format": {"type": "json",
                                                 "subject_token_field_name": "id_token"}}
            return {"file": path, "format": {"type": "text"}}
        if source in ("url", "url-text"):
            query = {"audience": audience, "subject": subject}
            if source == "url-text":
                query["format"] = "text"
                return {"url": f"{self.url}/oidc/token?{urlencode(query)}",
                        "format": {"type": "text"}}
            return {"url": f"{self.url}/oidc/token?{urlencode(query)}",
                    "format": {"type": "json", "subject_token_field_name": "value"}}
        raise ValueError('credential_source must be a dict or one of "file", "file-json", '
                         '"url", "url-text"')

    def issue_oidc_token(
        self,
        subject: str = _oidc.DEFAULT_SUBJECT,
        audience: str | Sequence[str] | None = None,
        claims: Mapping[str, Any] | None = None,
        lifetime: float = 3600,
    ) -> str:
        """An RS256 ID token from the emulator's OIDC issuer (:attr:`oidc_issuer`, its key
        at ``{issuer}/jwks``): ``iss``, ``sub``, ``aud``, ``iat``, ``exp`` (emulator clock,
        ``lifetime`` seconds, at most 24 h), plus ``claims`` (which may override any of
        them). ``audience`` defaults to the ``https://iam.googleapis.com/...`` form of the
        most recently created OIDC provider (``ValueError`` when there is none)."""
        if audience is None:
            with self._state.lock:
                pools = [p for p in self._state.pools.values() if p.kind == "oidc"]
            if not pools:
                raise ValueError("no OIDC workload identity pool yet: create one with "
                                 "create_workload_identity_pool() or pass audience=")
            latest = pools[-1]
            audience = latest.allowed_audiences[0] if latest.allowed_audiences else (
                "https:" + latest.name)
        aud: str | list[str] = audience if isinstance(audience, str) else list(audience)
        return _oidc.issue(self._state, self.url, now=self._state.now(), subject=subject,
                           audience=aud, claims=dict(claims or {}), lifetime=lifetime)

    def write_subject_token(self, config: Mapping[str, Any], token: str | None = None, *,
                            subject: str = _oidc.DEFAULT_SUBJECT) -> str:
        """Write ``token`` (default: a fresh :meth:`issue_oidc_token` for the config's
        provider and ``subject``) into a file-sourced configuration's ``credential_source``
        file, in its ``format`` (text, or JSON under ``subject_token_field_name``),
        atomically with mode 0600. Returns the path."""
        source = config.get("credential_source")
        if not isinstance(source, Mapping) or not isinstance(source.get("file"), str):
            raise ValueError("the configuration has no file credential_source")
        if token is None:
            pool = self._state.pools.get(str(config.get("audience")))
            if pool is None:
                raise ValueError("the configuration's audience is not a provider of this "
                                 "emulator; pass token=")
            audience = pool.allowed_audiences[0] if pool.allowed_audiences else (
                "https:" + pool.name)
            token = self.issue_oidc_token(subject, audience)
        fmt = source.get("format") or {}
        if fmt.get("type") == "json":
            text = json.dumps({str(fmt.get("subject_token_field_name")): token})
        else:
            text = token
        write_private_text(source["file"], text)
        return str(source["file"])

    def create_aws_credentials(self, role: str | None = None, *, account_id: str | None = None,
                               lifetime: float = 3600, region: str | None = None,
                               ) -> dict[str, str]:
        """Temporary AWS credentials for ``role`` (default ``config.aws_role``) in
        ``account_id`` (default ``config.aws_account_id``) that the emulator's STS accepts
        in an ``aws4_request`` subject token, as environment variables:
        ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` and
        ``AWS_REGION`` (``region``, default ``config.aws_region``; with it set, clients do
        not ask the IMDS for the region)."""
        creds: AwsCredentials = _aws.issue_credentials(
            self._state, now=self._state.now(), role=role or self.config.aws_role,
            account_id=account_id or self.config.aws_account_id, lifetime=lifetime,
            session_name="emu-session")
        return {"AWS_ACCESS_KEY_ID": creds.access_key_id,
                "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
                "AWS_SESSION_TOKEN": creds.session_token,
                "AWS_REGION": region or self.config.aws_region}

    def create_external_account_authorized_user(
        self,
        *,
        pool: str | None = None,
        account: str = "alice@example.com",
        scopes: Sequence[str] = (CLOUD_PLATFORM,),
        quota_project_id: str | None = None,
    ) -> dict[str, str]:
        """The content of an ``external_account_authorized_user`` file (what ``gcloud auth
        login --login-config`` saves for a workforce identity user): ``type``,
        ``audience``, ``refresh_token``, ``token_url`` (the emulator's
        ``/v1/oauthtoken``), ``token_info_url``, ``revoke_url``, ``client_id``,
        ``client_secret``, ``universe_domain``, and ``quota_project_id`` when given.

        ``pool`` is a workforce provider's audience (default: a new workforce OIDC pool);
        ``account`` becomes the principal's subject. Refreshes are counted as
        ``sts_oauthtoken``."""
        if pool is None:
            pool = self.create_workload_identity_pool(workforce=True)["audience"]
        rec = self._state.pools.get(pool)
        if rec is None or not rec.workforce:
            raise KeyError(f"not a workforce provider of this emulator: {pool!r}")
        client = self._state.new_client("installed", "emu-project", (),
                                        "Workforce identity (emulator)")
        refresh = self._state.new_refresh_token(
            client.client_id, account, tuple(normalize_scopes(list(scopes))), audience=pool)
        info = {
            "type": "external_account_authorized_user",
            "audience": pool,
            "refresh_token": refresh,
            "token_url": self.url + "/v1/oauthtoken",
            "token_info_url": self.url + "/v1/introspect",
            "revoke_url": self.url + "/v1/revoke",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "universe_domain": DEFAULT_UNIVERSE_DOMAIN,
        }
        if quota_project_id is not None:
            info["quota_project_id"] = quota_project_id
        return info

    # ------------------------------------------------------------------ inspection
    @property
    def counts(self) -> Counter[str]:
        """Per-endpoint request counters (a snapshot; missing keys read as 0)."""
        with self._state.lock:
            return Counter(self._state.counts)

    def reset_counts(self) -> None:
        """Zero all counters and forget :attr:`quota_projects_seen`."""
        with self._state.lock:
            self._state.counts.clear()
            self._state.quota_projects_seen.clear()

    @property
    def quota_projects_seen(self) -> list[str | None]:
        """``X-Goog-User-Project`` of every sample-API request, None when absent."""
        with self._state.lock:
            return list(self._state.quota_projects_seen)

    def issued_access_tokens(self) -> list[AccessToken]:
        """Copies of every access token issued so far (oldest first)."""
        with self._state.lock:
            return [dataclasses.replace(t) for t in self._state.access_tokens.values()]

    def issued_refresh_tokens(self) -> list[RefreshToken]:
        """Copies of every refresh token (user grant) so far (oldest first)."""
        with self._state.lock:
            return [dataclasses.replace(t) for t in self._state.refresh_tokens.values()]

    def access_token_info(self, token: str) -> AccessToken | None:
        """A copy of the record of access token ``token``, or None if unknown."""
        with self._state.lock:
            rec = self._state.access_tokens.get(token)
            return None if rec is None else dataclasses.replace(rec)

    def is_access_token_valid(self, token: str) -> bool:
        """Whether ``token`` is a known, unexpired, unrevoked access token."""
        return self._state.live_access_token(token) is not None

    def expire_access_token(self, token: str) -> None:
        """Make access token ``token`` expired now.  KeyError if unknown."""
        with self._state.lock:
            self._state.access_tokens[token].expiry = self._state.now() - 1

    def revoke(self, token: str) -> bool:
        """Revoke an access or refresh token like ``POST /revoke`` does."""
        return self._state.revoke(token)

    def approve_device(self, user_code: str, account: str = "alice@example.com") -> None:
        """Approve a pending device authorization, as the user would in the browser."""
        self._decide_device(user_code, account)

    def deny_device(self, user_code: str) -> None:
        """Deny a pending device authorization."""
        self._decide_device(user_code, None)

    def _decide_device(self, user_code: str, account: str | None) -> None:
        with self._state.lock:
            grant = self._state.find_device(user_code)
            if grant is None:
                raise KeyError("unknown user code")
            if grant.status != "pending" or self._state.now() >= grant.expiry:
                raise ValueError(f"device authorization is not pending (status {grant.status})")
            grant.status = "denied" if account is None else "approved"
            grant.account = account
