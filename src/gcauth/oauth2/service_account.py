"""Alias of :mod:`gcauth.service_account`, so ``from google.oauth2 import service_account``
becomes ``from gcauth.oauth2 import service_account``."""

from ..service_account import Credentials, IDTokenCredentials

__all__ = ["Credentials", "IDTokenCredentials"]
