"""gcauth: authenticate to Google Cloud-style APIs.

::

    import gcauth
    credentials, project = gcauth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
"""

from ._default import default, load_credentials_from_dict, load_credentials_from_file
from .exceptions import (
    DefaultCredentialsError,
    GCAuthError,
    MalformedCredentialsError,
    RefreshError,
    TransportError,
)

__version__ = "0.1.0"

__all__ = [
    "DefaultCredentialsError",
    "GCAuthError",
    "MalformedCredentialsError",
    "RefreshError",
    "TransportError",
    "__version__",
    "default",
    "load_credentials_from_dict",
    "load_credentials_from_file",
]
