"""The public surface, locked: a change here is an API change and must be deliberate."""

from __future__ import annotations
import __future__

import importlib
import types

import pytest

SURFACE = {
    "gcauth": ["DefaultCredentialsError", "GCAuthError", "MalformedCredentialsError",
               "RefreshError", "TransportError", "__version__", "default",
               "load_credentials_from_dict", "load_credentials_from_file"],
    "gcauth.exceptions": ["DefaultCredentialsError", "FlowError", "GCAuthError",
                          "InvalidTokenError", "MalformedCredentialsError",
                          "RefreshAbandonedError", "RefreshDeadlockError", "RefreshError",
                          "SigningError", "TransportError", "UnsafeEndpointError", "UsageError"],
    "gcauth.tokens": ["Clock", "Token", "TokenCache", "TokenState", "utcnow"],
    "gcauth.service_account": ["Credentials", "IDTokenCredentials"],
    "gcauth.impersonated_credentials": ["Credentials", "IDTokenCredentials"],
    "gcauth.iam": ["IAM_SCOPE", "Signer"],
    "gcauth.id_token": ["CertCache", "afetch_id_token", "averify_oauth2_token", "averify_token",
                        "fetch_id_token", "fetch_id_token_credentials", "verify_firebase_token",
                        "verify_oauth2_token", "verify_token"],
    "gcauth.oauth2.id_token": ["CertCache", "afetch_id_token", "averify_oauth2_token",
                               "averify_token", "fetch_id_token", "fetch_id_token_credentials",
                               "verify_firebase_token", "verify_oauth2_token", "verify_token"],
    "gcauth.authorized_user": ["Credentials"],
    "gcauth.compute_engine": ["Credentials", "IDTokenCredentials", "MetadataDetection",
                              "detect_metadata_server", "get_project_id", "is_on_gce"],
    "gcauth.credentials": ["Credentials", "Scoped", "Signing"],
    "gcauth.transport": ["AsyncRequest", "Request", "resolve_request"],
    "gcauth.oauth2": ["decode_id_token", "id_token_jwt_grant", "jwt_grant", "refresh_grant",
                      "verify_id_token"],
    "gcauth.oauth2.service_account": ["Credentials", "IDTokenCredentials"],
    "gcauth.oauth2.credentials": ["Credentials"],
    "gcauth.flow": ["ClientConfig", "DeviceAuthorization", "DeviceFlow", "InstalledAppFlow",
                    "device_instructions"],
    "gcauth.transport.urllib3": ["AuthorizedHttp", "Request"],
    "gcauth.transport.requests": ["Auth", "AuthorizedSession", "Request"],
    "gcauth.transport.httpx": ["AsyncRequest", "Auth", "Request"],
    "gcauth.transport.aiohttp": ["AsyncRequest", "AuthorizedSession"],
    "gcauth.compat.google_auth": ["Credentials", "RefreshError", "ScopedCredentials",
                                  "TransportError", "to_google_auth"],
    "gcauth.emulator": ["AccessToken", "Emulator", "Fault", "FaultInjector", "RefreshToken",
                        "serve_forever"],
}


@pytest.mark.parametrize("module", sorted(SURFACE))
def test_exported_members(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(SURFACE[module])
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is exported but missing"


#: Modules whose whole namespace is checked, like httpx's ``test_exported_members.py``.
NO_LEAKS = ["gcauth", "gcauth.credentials", "gcauth.transport", "gcauth.compat.google_auth"]


def _leaks(module: str) -> list[str]:
    """Public names of ``module`` that are not in ``__all__`` and are not plainly foreign.

    Skipped: submodules, ``from __future__`` features, and objects defined outside gcauth
    (``Any``, ``datetime``: they say where they come from). Anything else without a leading
    underscore -- a class or function defined in gcauth, a constant -- is either in
    ``__all__`` or a leak.
    """
    mod = importlib.import_module(module)
    exported = set(mod.__all__)
    leaks = []
    for name, value in vars(mod).items():
        if name.startswith("_") or name in exported:
            continue
        if isinstance(value, (types.ModuleType, __future__._Feature)):
            continue
        origin = getattr(value, "__module__", None)
        if isinstance(origin, str) and not origin.startswith("gcauth"):
            continue
        leaks.append(name)
    return sorted(leaks)


@pytest.mark.parametrize("module", NO_LEAKS)
def test_nothing_else_leaks(module: str) -> None:
    assert _leaks(module) == []


def test_the_leak_check_sees_a_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    import gcauth.credentials

    monkeypatch.setattr(gcauth.credentials, "SOME_CONSTANT", "x", raising=False)
    assert "SOME_CONSTANT" in _leaks("gcauth.credentials")


def test_google_style_aliases_are_the_same_classes() -> None:
    from gcauth import authorized_user, service_account
    from gcauth.oauth2 import credentials as oauth2_credentials
    from gcauth.oauth2 import service_account as oauth2_service_account

    assert oauth2_service_account.Credentials is service_account.Credentials
    assert oauth2_credentials.Credentials is authorized_user.Credentials


def test_every_error_is_a_gcauth_error() -> None:
    from gcauth import exceptions

    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), exceptions.GCAuthError)
