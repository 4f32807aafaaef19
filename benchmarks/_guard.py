"""The network guard every benchmark process installs before importing either library.

It refuses every connect to, and every name lookup of, anything but loopback, so neither
gcauth nor google-auth can reach Google (metadata server, token endpoint, google-auth's
regional-access-boundary lookup) however it is configured. Refusals are counted, and the
report says how many there were.

:data:`PRELUDE` is the same guard as source text, for ``python -c`` subprocesses (import
timing), so those processes are guarded too without a ``sitecustomize``.
"""

from __future__ import annotations

PRELUDE = r'''
import socket as _s
def _ok(h):
    h = h.decode() if isinstance(h, bytes) else h
    return h in ("localhost", "::1") or h.startswith("127.") or h in ("", None)
def _no(*a):
    raise OSError(101, "benchmark network guard: non-loopback address refused")
def _ga(host, *a, _o=_s.getaddrinfo, **k):
    if host is not None and not _ok(host): _no()
    return _o(host, *a, **k)
def _cc(addr, *a, _o=_s.create_connection, **k):
    if not _ok(addr[0]): _no()
    return _o(addr, *a, **k)
def _mk(name, _o):
    def f(self, addr):
        if isinstance(addr, tuple) and not _ok(addr[0]): _no()
        return _o(self, addr)
    f.__name__ = name
    return f
_s.getaddrinfo = _ga
_s.create_connection = _cc
_s.socket.connect = _mk("connect", _s.socket.connect)
_s.socket.connect_ex = _mk("connect_ex", _s.socket.connect_ex)
'''

refused: list[str] = []


def install() -> None:
    """Patch :mod:`socket` in this process (idempotent)."""
    import socket

    if getattr(socket, "_gcauth_bench_guard", False):
        return

    def loopback(host: object) -> bool:
        if isinstance(host, bytes):
            host = host.decode()
        return host in (None, "", "localhost", "::1") or (
            isinstance(host, str) and host.startswith("127."))

    def refuse(host: object) -> None:
        refused.append(str(host))
        raise OSError(101, f"benchmark network guard: {host!r} is not loopback")

    real_getaddrinfo = socket.getaddrinfo
    real_create_connection = socket.create_connection
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not loopback(host):
            refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def create_connection(address, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not loopback(address[0]):
            refuse(address[0])
        return real_create_connection(address, *args, **kwargs)

    def connect(self, address):  # type: ignore[no-untyped-def]
        if isinstance(address, tuple) and not loopback(address[0]):
            refuse(address[0])
        return real_connect(self, address)

    def connect_ex(self, address):  # type: ignore[no-untyped-def]
        if isinstance(address, tuple) and not loopback(address[0]):
            refuse(address[0])
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.create_connection = create_connection
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket._gcauth_bench_guard = True  # type: ignore[attr-defined]
