"""Bridges from gcauth to other authentication libraries' interfaces.

* :mod:`gcauth.compat.google_auth` -- :func:`~gcauth.compat.google_auth.to_google_auth`: a
  ``google.auth.credentials.Credentials`` backed by a gcauth credential, for Google's client
  libraries (``pip install 'gcauth[google]'``).

Only this package imports other authentication libraries; gcauth's core never does.
"""
