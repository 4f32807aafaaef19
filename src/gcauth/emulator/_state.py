"""The emulator's in-memory state: accounts, clients, grants and tokens.

Every record holding a secret keeps it out of ``repr``.  All mutation happens
under :attr:`State.lock`, a single re-entrant lock shared by every endpoint.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._clock import Clock
from ._jwt import SigningKey, new_signing_key

if TYPE_CHECKING:
    from ._config import Config

__all__ = [
    "ACCESS_TOKEN_PREFIX",
    "CLIENT_KINDS",
    "AccessToken",
    "AuthCode",
    "AwsCredentials",
    "DeviceGrant",
    "IdentityPool",
    "OAuthClient",
    "PendingConsent",
    "RefreshToken",
    "ServiceAccount",
    "State",
    "random_secret",
]

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GOOGLE_ISSUER = "https://accounts.google.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
USERINFO_PROFILE = "https://www.googleapis.com/auth/userinfo.profile"
SQLSERVICE_ADMIN = "https://www.googleapis.com/auth/sqlservice.admin"
ACCESS_TOKEN_PREFIX = "ya29.emu-"
REFRESH_TOKEN_PREFIX = "1//emu-"

#: Short scope aliases Google expands when granting.
SCOPE_ALIASES = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}


def normalize_scopes(scopes: list[str]) -> list[str]:
    """Expand Google's short aliases and drop duplicates, keeping order."""
    out: list[str] = []
    for s in scopes:
        s = SCOPE_ALIASES.get(s, s)
        if s not in out:
            out.append(s)
    return out


def is_valid_scope(scope: str) -> bool:
    """Whether Google would recognise ``scope`` (approximation: Google-owned URLs)."""
    if scope in ("openid", "email", "profile"):
        return True
    return scope.startswith(
        ("https://www.googleapis.com/auth/", "https://mail.google.com/", "https://www.google.com/")
    ) and all(c.isprintable() and not c.isspace() for c in scope)


def numeric_id(seed: str, digits: int = 21) -> str:
    """A stable pseudo-random decimal id derived from ``seed`` (like Google's subject ids)."""
    value = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:12], "big")
    return "1" + str(value).zfill(digits)[-(digits - 1):]


@dataclass
class ServiceAccount:
    """A service account and the keys issued for it."""

    email: str
    project_id: str
    unique_id: str
    domain_wide_delegation: bool
    keys: dict[str, SigningKey] = field(default_factory=dict, repr=False)
    #: the Google-managed key IAM signBlob/signJwt sign with (made on first use; also in
    #: ``keys``, so the certs endpoints publish it and the token endpoint accepts it)
    system_key: SigningKey | None = field(default=None, repr=False)

    @property
    def member(self) -> str:
        """The IAM member naming this account (``serviceAccount:EMAIL``)."""
        return "serviceAccount:" + self.email


#: The client types of Google's Cloud console, by the names ``create_oauth_client`` takes:
#: "Desktop app", "Web application", "TVs and Limited Input devices".
CLIENT_KINDS = ("installed", "web", "limited-input")
#: The application name a client shows on the consent page unless it is given one.
DEFAULT_APPLICATION_NAME = "Emulator test app"


@dataclass
class OAuthClient:
    """An OAuth client (``installed``, ``web`` or ``limited-input``) and the application name
    its consent page shows (Google takes it from the project's OAuth consent screen)."""

    client_id: str
    client_secret: str = field(repr=False)
    kind: str = "installed"
    redirect_uris: tuple[str, ...] = ()
    project_id: str = "emu-project"
    name: str = DEFAULT_APPLICATION_NAME


@dataclass
class RefreshToken:
    """A user grant: a refresh token for ``account`` issued to ``client_id``."""

    token: str = field(repr=False)
    client_id: str
    account: str
    scopes: tuple[str, ...]
    revoked: bool = False
    #: None for a Google user grant (``/token``); the workforce provider's audience for an
    #: ``external_account_authorized_user`` grant (redeemed at the STS ``/v1/oauthtoken``)
    audience: str | None = None


@dataclass
class AccessToken:
    """An issued access token and what it is good for."""

    token: str = field(repr=False)
    expiry: float
    scopes: tuple[str, ...]
    azp: str
    email: str | None
    sub: str | None
    source: str  # "service_account", "user", "metadata", "delegated", "federated"
    refresh_token: str | None = field(default=None, repr=False)
    access_type: str = "online"
    revoked: bool = False
    #: the IAM principal of a federated token (``principal://iam.googleapis.com/...``)
    principal: str | None = None

    def live(self, now: float) -> bool:
        """True when the token is neither expired nor revoked at ``now``."""
        return not self.revoked and now < self.expiry


@dataclass
class AuthCode:
    """An authorization code from the consent page."""

    code: str = field(repr=False)
    client_id: str
    redirect_uri: str
    account: str
    scopes: tuple[str, ...]
    code_challenge: str = field(repr=False)
    code_challenge_method: str
    expiry: float
    access_type: str
    nonce: str | None = None
    used: bool = False
    refresh_token: str | None = field(default=None, repr=False)


@dataclass
class DeviceGrant:
    """A pending or finished RFC 8628 device authorization."""

    device_code: str = field(repr=False)
    user_code: str
    client_id: str
    scopes: tuple[str, ...]
    expiry: float
    interval: float
    last_poll: float | None = None
    status: str = "pending"  # pending | approved | denied | done
    account: str | None = None


@dataclass
class PendingConsent:
    """A consent page that was rendered and awaits the user's decision."""

    pending_id: str = field(repr=False)
    kind: str  # "code" or "device"
    client_id: str
    scopes: tuple[str, ...]
    expiry: float
    redirect_uri: str = ""
    state: str | None = None
    code_challenge: str = field(default="", repr=False)
    code_challenge_method: str = "S256"
    access_type: str = "online"
    nonce: str | None = None
    user_code: str | None = None
    accounts: tuple[str, ...] = ()


IAM_HOST = "iam.googleapis.com"
#: The subject token types Google's STS knows (RFC 8693 ``subject_token_type``).
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
SAML2_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:saml2"
AWS4_TOKEN_TYPE = "urn:ietf:params:aws:token-type:aws4_request"


@dataclass
class IdentityPool:
    """A workload identity pool (or workforce pool) with one provider.

    ``name`` is the provider's full resource name, the STS ``audience``
    (``//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/V``
    or ``//iam.googleapis.com/locations/global/workforcePools/P/providers/V``).
    """

    name: str
    kind: str  # "oidc" | "aws"
    pool_id: str
    provider_id: str
    project_number: str | None  # workload pools only
    allowed_audiences: tuple[str, ...]
    attribute_condition: str | None
    #: parsed ``attribute_condition`` (a :mod:`._cel` expression)
    condition: Any = field(default=None, repr=False, compare=False)
    #: ``{"google.subject": "assertion.sub", "attribute.x": ...}`` (CEL expressions)
    attribute_mapping: dict[str, str] = field(default_factory=dict)
    mapping: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    issuer: str | None = None  # oidc
    #: keys that verify this provider's tokens (the emulator issuer's, or uploaded JWKS)
    jwks: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    aws_account_id: str | None = None
    aws_region: str | None = None
    workforce_pool_user_project: str | None = None
    service_account: str | None = None

    @property
    def workforce(self) -> bool:
        return self.project_number is None

    @property
    def pool_resource(self) -> str:
        """``projects/N/locations/global/workloadIdentityPools/P`` (or the workforce form)."""
        if self.project_number is None:
            return f"locations/global/workforcePools/{self.pool_id}"
        return (f"projects/{self.project_number}/locations/global/"
                f"workloadIdentityPools/{self.pool_id}")

    def principal(self, subject: str) -> str:
        """The IAM principal of ``subject`` (``google.subject``) in this pool."""
        return f"principal://{IAM_HOST}/{self.pool_resource}/subject/{subject}"

    @property
    def principal_set(self) -> str:
        """Every identity of the pool (``principalSet://.../POOL/*``)."""
        return f"principalSet://{IAM_HOST}/{self.pool_resource}/*"


@dataclass
class AwsCredentials:
    """Temporary AWS security credentials the emulator issued (IMDS or
    ``create_aws_credentials``)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiry: float
    account_id: str
    role_name: str
    session_name: str

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.role_name}"

    @property
    def assumed_role_arn(self) -> str:
        """What AWS STS GetCallerIdentity answers as ``Arn`` for these credentials."""
        return (f"arn:aws:sts::{self.account_id}:assumed-role/{self.role_name}/"
                f"{self.session_name}")


def random_secret(prefix: str = "", nbytes: int = 32) -> str:
    """An unguessable URL-safe random string (token values, codes, consent ids)."""
    return prefix + secrets.token_urlsafe(nbytes)


class State:
    """All emulator state behind one lock.  Time comes from ``clock``, token lifetimes
    from ``config``."""

    def __init__(self, config: Config, clock: Clock | None = None, *,
                 issuer_name: str = "gcauth-emulator") -> None:
        self.config = config
        self.clock = clock if clock is not None else Clock()
        self.lock = threading.RLock()
        self.signing_key = new_signing_key(issuer_name)
        self.service_accounts: dict[str, ServiceAccount] = {}
        self.keys_by_kid: dict[str, ServiceAccount] = {}
        self.clients: dict[str, OAuthClient] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.codes: dict[str, AuthCode] = {}
        self.devices: dict[str, DeviceGrant] = {}
        self.devices_by_user_code: dict[str, DeviceGrant] = {}
        self.pending: dict[str, PendingConsent] = {}
        self.counts: Counter[str] = Counter()
        self.quota_projects_seen: list[str | None] = []
        #: (member, service account email): ``member`` holds the Service Account Token
        #: Creator role on the account (IAM Credentials API)
        self.token_creators: set[tuple[str, str]] = set()
        #: workload identity / workforce pool providers by full resource name (audience)
        self.pools: dict[str, IdentityPool] = {}
        #: AWS credentials by access key id; IMDSv2 session tokens and their expiry
        self.aws_credentials: dict[str, AwsCredentials] = {}
        self.imds_sessions: dict[str, float] = {}
        #: project number -> project id (Resource Manager); the metadata project is implied
        self.projects: dict[str, str] = {}
        self._oidc_key: SigningKey | None = None

    # -- clock ---------------------------------------------------------------
    def now(self) -> float:
        """The server clock (:meth:`Clock.now`)."""
        return self.clock.now()

    @property
    def token_lifetime(self) -> float:
        """Lifetime of access and ID tokens issued from now on (``config.token_lifetime``)."""
        return float(self.config.token_lifetime)

    # -- counters ------------------------------------------------------------
    def count(self, key: str) -> None:
        """Increment the request counter ``key``."""
        with self.lock:
            self.counts[key] += 1

    # -- federation ------------------------------------------------------------
    @property
    def oidc_key(self) -> SigningKey:
        """The signing key of the emulator's own OIDC issuer (made on first use)."""
        with self.lock:
            if self._oidc_key is None:
                self._oidc_key = new_signing_key("gcauth-emulator-oidc")
            return self._oidc_key

    def project_id_for(self, number_or_id: str) -> tuple[str, str] | None:
        """``(project_number, project_id)`` of a known project, by number or id."""
        with self.lock:
            known = dict(self.projects)
        known.setdefault(self.config.metadata_numeric_project_id,
                         self.config.metadata_project_id)
        for number, project_id in known.items():
            if number_or_id in (number, project_id):
                return number, project_id
        return None

    def may_act_as(self, member: str, email: str) -> bool:
        """Whether ``member`` holds the Token Creator (or, for a federated principal,
        Workload Identity User) role on account ``email``, itself or through its pool."""
        with self.lock:
            if (member, email) in self.token_creators:
                return True
            if member.startswith("principal://"):
                pool_set = "principalSet://" + member[len("principal://"):].split(
                    "/subject/", 1)[0] + "/*"
                return (pool_set, email) in self.token_creators
        return False

    # -- issuing -------------------------------------------------------------
    def new_service_account(
        self, project_id: str, name: str | None, domain_wide_delegation: bool,
        with_key: bool = True,
    ) -> tuple[ServiceAccount, SigningKey | None]:
        """Create (or add a key to) a service account and return it with its new key
        (``None`` for a keyless account, ``with_key=False``)."""
        if name is None:
            name = "sa-" + secrets.token_hex(4)
        email = f"{name}@{project_id}.iam.gserviceaccount.com"
        key = new_signing_key(email) if with_key else None
        with self.lock:
            sa = self.service_accounts.get(email)
            if sa is None:
                sa = ServiceAccount(
                    email=email,
                    project_id=project_id,
                    unique_id=numeric_id(email),
                    domain_wide_delegation=domain_wide_delegation,
                )
                self.service_accounts[email] = sa
            else:
                sa.domain_wide_delegation = domain_wide_delegation
            if key is not None:
                sa.keys[key.kid] = key
                self.keys_by_kid[key.kid] = sa
        return sa, key

    def account(self, name: str) -> ServiceAccount | None:
        """A service account by email or unique id; the metadata server's instance account
        exists too (a keyless account, made on first use)."""
        with self.lock:
            sa = self.service_accounts.get(name)
            if sa is not None:
                return sa
            for candidate in self.service_accounts.values():
                if candidate.unique_id == name:
                    return candidate
            if name == self.config.metadata_service_account_email:
                sa = ServiceAccount(email=name, project_id=self.config.metadata_project_id,
                                    unique_id=numeric_id("sa:" + name),
                                    domain_wide_delegation=False)
                self.service_accounts[name] = sa
                return sa
        return None

    def system_key(self, sa: ServiceAccount) -> SigningKey:
        """The Google-managed key of ``sa`` (generated on first use)."""
        with self.lock:
            if sa.system_key is None:
                key = new_signing_key(sa.email)
                sa.system_key = key
                sa.keys[key.kid] = key
                self.keys_by_kid[key.kid] = sa
            return sa.system_key

    def new_client(
        self, kind: str, project_id: str, redirect_uris: tuple[str, ...],
        name: str = DEFAULT_APPLICATION_NAME,
    ) -> OAuthClient:
        """Register a new OAuth client."""
        prefix = numeric_id(random_secret(), 12)
        client_id = f"{prefix}-{secrets.token_hex(16)}.apps.googleusercontent.com"
        client = OAuthClient(
            client_id=client_id,
            client_secret="GOCSPX-" + secrets.token_urlsafe(21),
            kind=kind,
            redirect_uris=redirect_uris,
            project_id=project_id,
            name=name,
        )
        with self.lock:
            self.clients[client_id] = client
        return client

    def new_refresh_token(self, client_id: str, account: str, scopes: tuple[str, ...],
                          audience: str | None = None) -> str:
        """Record a user grant and return its refresh token (``audience``: a workforce
        provider, for an ``external_account_authorized_user`` grant)."""
        value = random_secret(REFRESH_TOKEN_PREFIX, 48)
        with self.lock:
            self.refresh_tokens[value] = RefreshToken(
                token=value, client_id=client_id, account=account, scopes=scopes,
                audience=audience,
            )
        return value

    def new_access_token(
        self,
        *,
        now: float,
        scopes: tuple[str, ...],
        azp: str,
        email: str | None,
        sub: str | None,
        source: str,
        refresh_token: str | None = None,
        access_type: str = "online",
        expired: bool = False,
        lifetime: float | None = None,
        principal: str | None = None,
    ) -> tuple[str, int]:
        """Mint an access token; return it and its ``expires_in`` (``lifetime``: at most
        that long, and never longer than ``config.token_lifetime``)."""
        lifetime = 0.0 if expired else (
            self.token_lifetime if lifetime is None else min(lifetime, self.token_lifetime))
        value = random_secret(ACCESS_TOKEN_PREFIX, 48)
        with self.lock:
            self.access_tokens[value] = AccessToken(
                token=value,
                expiry=now + lifetime,
                scopes=scopes,
                azp=azp,
                email=email,
                sub=sub,
                source=source,
                refresh_token=refresh_token,
                access_type=access_type,
                principal=principal,
            )
        return value, int(lifetime)

    def id_token(
        self,
        *,
        now: float,
        aud: str,
        azp: str,
        sub: str,
        email: str | None,
        extra: dict[str, object] | None = None,
        expired: bool = False,
    ) -> str:
        """An ID token signed by the emulator's own key (verifiable via the certs endpoints)."""
        iat = int(now) - (int(self.token_lifetime) + 1 if expired else 0)
        claims: dict[str, object] = {
            "iss": GOOGLE_ISSUER,
            "azp": azp,
            "aud": aud,
            "sub": sub,
        }
        if email is not None:
            claims["email"] = email
            claims["email_verified"] = True
        claims["iat"] = iat
        claims["exp"] = iat + max(1, int(self.token_lifetime) + 1)
        if extra:
            claims.update(extra)
        return self.signing_key.sign(claims)

    # -- lookups ---------------------------------------------------------------
    def live_access_token(self, value: str, now: float | None = None) -> AccessToken | None:
        """The record for ``value`` if it is live at ``now`` (default: the clock), else None."""
        with self.lock:
            rec = self.access_tokens.get(value)
            if rec is None or not rec.live(self.now() if now is None else now):
                return None
            return rec

    def find_device(self, user_code: str) -> DeviceGrant | None:
        """A device grant by user code (case- and hyphen-insensitive), or None."""
        raw = re.sub(r"[\s-]", "", user_code).upper()
        if len(raw) != 8:
            return None
        with self.lock:
            return self.devices_by_user_code.get(f"{raw[:4]}-{raw[4:]}")

    def revoke(self, value: str, now: float | None = None) -> bool:
        """Revoke an access or refresh token.  Google revokes the whole grant.

        Revoking a refresh token invalidates every access token minted from it;
        revoking an access token minted from a refresh token revokes that refresh
        token (and so its siblings) too.  Returns False for unknown/revoked tokens.
        """
        with self.lock:
            rt = self.refresh_tokens.get(value)
            if rt is not None:
                if rt.revoked:
                    return False
                self._revoke_grant(value)
                return True
            at = self.access_tokens.get(value)
            if at is None or not at.live(self.now() if now is None else now):
                return False
            at.revoked = True
            if at.refresh_token is not None:
                self._revoke_grant(at.refresh_token)
            return True

    def _revoke_grant(self, refresh_value: str) -> None:
        rt = self.refresh_tokens.get(refresh_value)
        if rt is not None:
            rt.revoked = True
        for at in self.access_tokens.values():
            if at.refresh_token == refresh_value:
                at.revoked = True
