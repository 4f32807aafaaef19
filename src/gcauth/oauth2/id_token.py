"""Alias of :mod:`gcauth.id_token`, so ``from google.oauth2 import id_token`` becomes
``from gcauth.oauth2 import id_token``."""

from ..id_token import (
    CertCache,
    afetch_id_token,
    averify_oauth2_token,
    averify_token,
    fetch_id_token,
    fetch_id_token_credentials,
    verify_firebase_token,
    verify_oauth2_token,
    verify_token,
)

__all__ = ["CertCache", "afetch_id_token", "averify_oauth2_token", "averify_token",
           "fetch_id_token", "fetch_id_token_credentials", "verify_firebase_token",
           "verify_oauth2_token", "verify_token"]
