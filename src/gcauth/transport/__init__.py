"""Transports: how flows reach the network, and authorized sessions for API calls.

A *request* object sends one :class:`~gcauth._http.HttpRequest` and returns the
:class:`~gcauth._http.HttpResponse`; it raises :class:`~gcauth.exceptions.TransportError` when
there is no reply. Token, metadata and revoke calls never follow redirects.

Adapters (each an optional extra except urllib3, the core default):

* :mod:`gcauth.transport.urllib3` -- ``Request``, ``AuthorizedHttp``
* :mod:`gcauth.transport.requests` -- ``Request``, ``AuthorizedSession``, ``Auth``
* :mod:`gcauth.transport.httpx` -- ``Request``, ``AsyncRequest``, ``Auth`` (sync + async)
* :mod:`gcauth.transport.aiohttp` -- ``AsyncRequest``, ``AuthorizedSession``

Every authorized session drives the one refresh-on-401 rule in
:mod:`gcauth.transport._authflow`.

For google-auth compatibility each ``Request`` is also callable as
``request(url, method="GET", body=None, headers=None, timeout=None)`` and returns an object with
``status``, ``headers`` and ``data``.

The protocols and :func:`resolve_request` live below this package (in ``gcauth._http`` and
``gcauth._sender``) so that credentials never import the adapters; they are re-exported here.
"""

from __future__ import annotations

from .._http import AsyncRequest, Request
from .._sender import resolve_request

__all__ = ["AsyncRequest", "Request", "resolve_request"]
