"""Alias of :mod:`gcauth.authorized_user` (google-auth's ``google.oauth2.credentials``)."""

from ..authorized_user import Credentials

__all__ = ["Credentials"]
